//! `exporter-cost`: the agent exporter thread's CPU time per span, against
//! its target of at most 1 µs per span on the exporter thread, really
//! sending (BENCHMARKS.md has the figures).
//!
//! It starts a `jvmapm serve` of its own (the binary next to this one, or
//! `--jvmapm`) on free local ports and a fresh data directory, builds a
//! realistic workload of agent records (`jvmapm_agent::exporter_bench`: HTTP
//! transactions with one JDBC call each, 2% 5xx, written into a ring as
//! application threads write them) and times, on this thread's CPU clock,
//! two things in turn: reading the records from the ring and encoding them
//! into OTLP export requests, a batch at a time as the exporter does, and
//! the same plus sending them over gRPC to the server, each export awaited
//! (the gRPC client runs on this thread, as in the exporter). Writing the
//! ring before each pass is not timed. It prints the median over `--runs`
//! passes, with the range.
//!
//! cargo build --release -p jvmapm -p jvmapm-bench && target/release/exporter-cost

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Instant;

use clap::Parser;
use jvmapm_agent::exporter_bench::{Encoder, GrpcSender, Workload};

#[derive(Parser, Debug)]
#[command(
    name = "exporter-cost",
    about = "CPU time per span of the jvmapm agent's exporter: encoding, and encoding + sending over gRPC to a local jvmapm serve"
)]
struct Args {
    /// The `jvmapm` binary to start the server with (default: next to this one).
    #[arg(long)]
    jvmapm: Option<PathBuf>,
    /// HTTP transactions per pass (each with one JDBC call: two spans).
    #[arg(long, default_value_t = 10_240)]
    transactions: usize,
    /// Timed passes of each kind (after one untimed warm-up pass).
    #[arg(long, default_value_t = 9)]
    runs: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("exporter-cost: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.runs == 0 || args.transactions == 0 {
        return Err("--runs and --transactions must be at least 1".into());
    }
    let jvmapm = match &args.jvmapm {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this program: {e}"))?
            .with_file_name("jvmapm"),
    };
    let server = Server::start(&jvmapm)?;
    let workload = Workload::new(args.transactions);
    let spans = workload.spans() as f64;
    let mut encoder = Encoder::new()?;
    let mut sender = GrpcSender::new(&format!("http://{}", server.grpc))?;

    let bytes = encoder.encode(workload.write());
    sender.send(workload.write())?;
    let mut encode_ns = Vec::new();
    let mut send_ns = Vec::new();
    let mut send_wall_ns = Vec::new();
    for _ in 0..args.runs {
        let written = workload.write();
        let cpu = thread_cpu_ns();
        encoder.encode(written);
        encode_ns.push((thread_cpu_ns() - cpu) as f64 / spans);

        let written = workload.write();
        let cpu = thread_cpu_ns();
        let wall = Instant::now();
        sender.send(written)?;
        send_ns.push((thread_cpu_ns() - cpu) as f64 / spans);
        send_wall_ns.push(wall.elapsed().as_nanos() as f64 / spans);
    }
    println!(
        "{} spans a pass ({} transactions + {} JDBC calls), {:.0} bytes a span encoded, {} passes:",
        workload.spans(),
        args.transactions,
        args.transactions,
        bytes as f64 / spans,
        args.runs
    );
    println!("  encode              {} CPU", summary(&mut encode_ns));
    println!("  encode + gRPC send  {} CPU", summary(&mut send_ns));
    println!("  (the same, elapsed  {})", summary(&mut send_wall_ns));
    Ok(())
}

/// `median ns/span (min–max)`.
fn summary(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "{:>6.0} ns/span ({:.0}–{:.0})",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1]
    )
}

/// CPU time this thread has used.
fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// A `jvmapm serve` on free local ports; stopped and its data removed on drop.
struct Server {
    child: Child,
    data: PathBuf,
    grpc: String,
}

impl Server {
    fn start(jvmapm: &PathBuf) -> Result<Server, String> {
        let data =
            std::env::temp_dir().join(format!("jvmapm-exporter-cost-{}", std::process::id()));
        let mut child = Command::new(jvmapm)
            .args([
                "--log-level",
                "warn",
                "serve",
                "--grpc",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", jvmapm.display()))?;
        // Read to the end on a thread of its own: the server writes more
        // lines, and a closed pipe would fail it.
        let (address, found) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(grpc) = line.strip_prefix("jvmapm serve: OTLP/gRPC on ") {
                        let _ = address.send(grpc.to_string());
                    }
                }
            });
        }
        let grpc = found.recv_timeout(std::time::Duration::from_secs(30));
        let server = Server {
            child,
            data,
            grpc: grpc.unwrap_or_default(),
        };
        if server.grpc.is_empty() {
            return Err(format!(
                "{} serve did not say where it listens",
                jvmapm.display()
            ));
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
