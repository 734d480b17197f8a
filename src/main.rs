//! The `jvmapm` command line: parses arguments and hands each subcommand to
//! the library that does the work (`demo` only wires the others together;
//! `profile` prints the analyzer's merged profiles, drawn by `flame_graph`;
//! `huge_pages` is the allocator).

mod demo;
mod flame_graph;
mod huge_pages;
mod profile;

#[global_allocator]
static ALLOCATOR: huge_pages::HugePages = huge_pages::HugePages;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use jvmapm_analyzer::clickhouse::Config as ClickHouseConfig;
use jvmapm_analyzer::query::export::{self, ExportFormat};
use jvmapm_analyzer::receiver::DEFAULT_MAX_BODY;
use jvmapm_analyzer::server::{ServeConfig, Server};
use jvmapm_contract::clock::unix_ms;
use jvmapm_contract::duration;

#[derive(Parser)]
#[command(
    name = "jvmapm",
    version,
    about = "JVM performance monitor: collect transactions and JVM health over OTLP, keep them, query them",
    long_about = "jvmapm collects transactions (spans) and JVM metrics over OTLP from the jvmapm agent \
                  or any OpenTelemetry SDK, turns every transaction into a point of a Scouter-style XLog \
                  (end time x response time), keeps them durably and answers queries."
)]
struct Cli {
    /// Log detail on stderr: error, warn, info or debug.
    #[arg(long, global = true, default_value = "info", value_name = "LEVEL")]
    log_level: tracing::Level,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive OTLP (gRPC and HTTP), keep XLog points and JVM metrics, serve the query API.
    #[command(after_help = "Point an OpenTelemetry exporter at it, e.g.\n  \
        OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 (gRPC) or http://127.0.0.1:4318 (HTTP).\n\
        Query API: GET http://127.0.0.1:4318/api/v1/xlog, /stats, /tps, /instances, /jvm, /transactions/TRACE/SPAN, /profile.\n\
        Stops cleanly on Ctrl-C or SIGTERM; every acknowledged export is on disk.")]
    Serve {
        /// Data directory (created if missing).
        #[arg(long, value_name = "DIR", default_value_os_t = default_data_dir())]
        data: PathBuf,
        /// Address of the OTLP/gRPC listener.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4317")]
        grpc: SocketAddr,
        /// Address of the OTLP/HTTP and query API listener.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4318")]
        http: SocketAddr,
        /// Require `Authorization: Bearer TOKEN` on every request (gRPC and HTTP).
        #[arg(
            long,
            value_name = "TOKEN",
            env = "JVMAPM_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
        /// How long data is kept: e.g. 7d, 12h, 30m.
        #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = duration::parse)]
        retention: Duration,
        /// Largest request accepted, in bytes, measured after decompression.
        #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY)]
        max_body: usize,
        /// Keep everything in ClickHouse instead of --data, e.g.
        /// http://127.0.0.1:8123/?database=jvmapm (user and password in the URL
        /// or JVMAPM_CLICKHOUSE_USER and JVMAPM_CLICKHOUSE_PASSWORD); any number
        /// of analyzers may share one.
        #[arg(long, value_name = "URL")]
        clickhouse: Option<String>,
    },
    /// Print stored XLog points offline (works beside a running server).
    #[command(
        after_help = "Damaged records are skipped and named on stderr (file and byte offset), \
        with exit status 3."
    )]
    Export {
        /// Data directory written by `jvmapm serve`.
        #[arg(long, value_name = "DIR", default_value_os_t = default_data_dir())]
        data: PathBuf,
        /// First end time to include, Unix milliseconds (default: everything).
        #[arg(long, value_name = "MS", default_value_t = 0)]
        from: u64,
        /// Last end time to include, Unix milliseconds (default: everything).
        #[arg(long, value_name = "MS", default_value_t = u64::MAX / 2)]
        to: u64,
        /// Output format: one JSON object per line, or CSV with a header.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
    },
    /// Where the transactions of an area of the XLog spent their time: their stack samples merged.
    #[command(
        after_help = "Reads the profiles (stack samples) that slow transactions carry, from a server \
        (default http://127.0.0.1:4318) or offline from a data directory with --data, merged over \
        every transaction in the area the options give, as /api/v1/profile does.\n\n\
        Formats: tree (each frame's share of the samples and its count, callees indented below \
        their caller, the hottest first), folded (one `frame;frame;frame count` line a stack, root \
        first, for flame-graph tools), svg (a flame graph to open in a browser). The summary line \
        goes to standard error with folded and svg.\n\n\
        Examples:\n  jvmapm profile --from 1h --endpoint 'GET /orders*' --min-ms 1000\n  \
        jvmapm profile --data /var/lib/jvmapm --from 1700000000000 --to 1700000600000 --format folded\n  \
        jvmapm profile --errors --format svg > slow.svg"
    )]
    Profile(profile::ProfileArgs),
    /// Explain a HotSpot heap dump (jcmd GC.heap_dump, jmap, the agent's dumps; gzip too).
    #[command(
        after_help = "Prints the class histogram (instances, shallow bytes as the JVM lays objects \
        out, and retained bytes), the Finalizer overview, the threads, the biggest objects by \
        retained size and the leak suspects (objects or classes keeping more than 10% of the heap, \
        where their objects accumulate, and the shortest path from a GC root). Weak, soft and \
        phantom references keep nothing alive; an object only its Finalizer keeps is reported as \
        such. FILE may be - (standard input) or a pipe, read once as a stream: histogram, Finalizers \
        and threads only (the dominator tree reads the dump twice).\n\n\
        Exit status: 0 a whole report; 1 an error (not a heap dump, unreadable); 2 a usage error; \
        3 a partial report (the dump is cut short or damaged: the report covers what comes before the \
        damage, and the warnings say where).\n\nExamples:\n  jvmapm heap app.hprof\n  jvmapm heap --json app.hprof.gz\n  \
        jvmapm heap --path-to-root 0x7ff01a2b8 app.hprof\n  jvmapm heap --diff monday.hprof tuesday.hprof\n  \
        ssh host cat /tmp/app.hprof.gz | jvmapm heap --no-dominators -"
    )]
    Heap {
        /// The .hprof file (or .hprof.gz); - or a pipe is read once, as a stream.
        #[arg(value_name = "FILE", required_unless_present = "diff")]
        file: Option<PathBuf>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Rows per table in the text report, and objects in the biggest-objects table.
        #[arg(long, value_name = "N", default_value_t = 30)]
        top: usize,
        /// Skip the dominator tree (retained sizes, biggest objects, leak suspects): faster.
        #[arg(long)]
        no_dominators: bool,
        /// Print the shortest path from a GC root to this object (id in hex 0x... or decimal).
        #[arg(long, value_name = "OBJECT_ID", value_parser = parse_object_id)]
        path_to_root: Option<u64>,
        /// Compare two dumps: the classes whose instances or bytes grew most.
        #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with_all = ["file", "path_to_root"])]
        diff: Option<Vec<PathBuf>>,
    },
    /// Try it all: an analyzer, a JVM with the agent under load, and the XLog viewer on it.
    #[command(
        after_help = "Needs a JDK 17+ (javac) and the agent library beside this executable \
        (cargo build --release -p jvmapm-agent); scripts/demo.sh builds and installs what is missing. \
        Quitting the viewer (q) stops everything the demo started."
    )]
    Demo {
        /// The agent library (default: libjvmapm_agent.so beside this executable).
        #[arg(long, value_name = "PATH")]
        agent: Option<PathBuf>,
        /// Keep the demo's data directory (for `jvmapm xlog --data` afterwards).
        #[arg(long)]
        keep: bool,
    },
    /// The XLog viewer in this terminal: every transaction as a point (end time x response time).
    #[command(
        after_help = "Live from a server (default http://127.0.0.1:4318), following new points, or \
        offline over a data directory with --data.\n\
        Keys: arrows pan and scale, +/- window, l log Y, m measure, p pause, drag or v to select, \
        s / / > < e c filters, ? every key, q quits."
    )]
    Xlog {
        #[command(flatten)]
        source: SourceArgs,
        /// Start of a past window: Unix ms, or how long ago (e.g. 2h).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        from: Option<u64>,
        /// End of a past window: Unix ms, or how long ago (e.g. 1h).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        to: Option<u64>,
        /// Width of the window when --from and --to do not both give it.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_ms)]
        window: u64,
        /// Y maximum to start with (points above it stay visible on the top row).
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_ms)]
        y_max: u64,
        /// Elapsed time from which a point is drawn yellow (errors are red).
        #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_ms)]
        slow: u64,
    },
}

/// Where `jvmapm xlog` and `jvmapm profile` read: a running server, or a
/// data directory in place.
#[derive(clap::Args)]
struct SourceArgs {
    /// Query API of a running `jvmapm serve`.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:4318",
        conflicts_with = "data"
    )]
    server: String,
    /// Read a data directory instead (offline; works beside a running server).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Bearer token of a server started with --token.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "JVMAPM_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

impl SourceArgs {
    fn origin(self) -> jvmapm_tui::Origin {
        match self.data {
            Some(dir) => jvmapm_tui::Origin::Data(dir),
            None => jvmapm_tui::Origin::Server {
                url: self.server,
                token: self.token,
            },
        }
    }
}

/// A point in time on the command line: Unix milliseconds, or a duration
/// meaning that long ago (`90m`, `2h`).
fn parse_time(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(ms) if ms >= 100_000_000_000 => Ok(ms),
        _ => duration::parse(text)
            .map(|ago| unix_ms().saturating_sub(ago.as_millis() as u64))
            .map_err(|_| {
                format!("{text:?} is neither Unix milliseconds nor a duration ago like 90m")
            }),
    }
}

fn parse_ms(text: &str) -> Result<u64, String> {
    duration::parse(text).map(|d| d.as_millis() as u64)
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Jsonl,
    Csv,
}

/// `$XDG_DATA_HOME/jvmapm`, else `~/.local/share/jvmapm`, else `./jvmapm-data`.
fn default_data_dir() -> PathBuf {
    let from_env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from_env("XDG_DATA_HOME")
        .or_else(|| from_env("HOME").map(|h| h.join(".local/share")))
        .map(|d| d.join("jvmapm"))
        .unwrap_or_else(|| PathBuf::from("jvmapm-data"))
}

fn main() -> ExitCode {
    huge_pages::map_large_blocks_alone();
    let cli = Cli::parse();
    // The demo's analyzer logs to a file: the viewer owns the terminal.
    if !matches!(cli.command, Command::Demo { .. }) {
        tracing_subscriber::fmt()
            .with_max_level(cli.log_level)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    match run(cli.command, cli.log_level) {
        Ok(status) => status,
        Err(message) => {
            eprintln!("jvmapm: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand: its exit status, or what went wrong.
fn run(command: Command, log_level: tracing::Level) -> Result<ExitCode, String> {
    let done = |()| ExitCode::SUCCESS;
    match command {
        Command::Serve {
            data,
            grpc,
            http,
            token,
            retention,
            max_body,
            clickhouse,
        } => {
            let clickhouse = clickhouse
                .map(|url| ClickHouseConfig::parse(&url, |name| std::env::var(name).ok()))
                .transpose()?;
            serve(ServeConfig {
                data_dir: data,
                grpc,
                http,
                token,
                retention,
                max_body,
                clickhouse,
            })
            .map(done)
        }
        Command::Export {
            data,
            from,
            to,
            format,
        } => export_points(&data, from, to, format),
        Command::Heap {
            file,
            json,
            top,
            no_dominators,
            path_to_root,
            diff,
        } => {
            let options = jvmapm_heap::Options {
                dominators: !no_dominators && diff.is_none(),
                top,
                path_to_root,
            };
            match (diff, file) {
                (Some(files), _) => heap_diff(&files[0], &files[1], &options, json, top)
                    .map(done)
                    .map_err(|e| e.to_string()),
                (None, None) => Err("heap: give a FILE (or --diff OLD NEW)".to_string()),
                (None, Some(file)) => heap(&file, &options, json),
            }
        }
        Command::Profile(args) => profile::run(args),
        Command::Demo { agent, keep } => demo::run(demo::DemoOptions {
            agent,
            keep,
            log_level,
        })
        .map(done),
        Command::Xlog {
            source,
            from,
            to,
            window,
            y_max,
            slow,
        } => {
            let origin = source.origin();
            let (window_ms, to_ms) = window_of(from, to, window)?;
            let config = jvmapm_tui::app::Config {
                window_ms,
                to_ms,
                live: true,
                slow_ms: slow,
                y_max_ms: y_max,
                panels_service: None,
            };
            jvmapm_tui::run(origin, config).map(done)
        }
    }
}

/// `jvmapm export`: the points of a data directory on standard output.
fn export_points(
    data: &std::path::Path,
    from: u64,
    to: u64,
    format: Format,
) -> Result<ExitCode, String> {
    let format = match format {
        Format::Jsonl => ExportFormat::Jsonl,
        Format::Csv => ExportFormat::Csv,
    };
    let stdout = std::io::stdout();
    let points =
        export::export(data, from, to, format, &mut stdout.lock()).map_err(|e| e.to_string())?;
    tracing::debug!(points, "exported");
    // Damaged records were skipped: the output is partial, and says so.
    if let Some(skipped) = jvmapm_analyzer::store::damage::report() {
        eprintln!("jvmapm: {skipped}; every other point was exported");
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// `jvmapm heap FILE`: the report of one dump, as text or JSON.
fn heap(
    file: &std::path::Path,
    options: &jvmapm_heap::Options,
    json: bool,
) -> Result<ExitCode, String> {
    let report = jvmapm_heap::analyze(file, options).map_err(|e| e.to_string())?;
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text(options.top));
    }
    Ok(if report.partial {
        ExitCode::from(HEAP_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

/// Exit status of `jvmapm heap` for a partial report (a dump cut short or
/// damaged); 2 stays clap's usage error.
const HEAP_PARTIAL: u8 = 3;

/// `jvmapm heap --diff OLD NEW`: both histograms, then what grew.
fn heap_diff(
    old: &std::path::Path,
    new: &std::path::Path,
    options: &jvmapm_heap::Options,
    json: bool,
    top: usize,
) -> Result<(), jvmapm_heap::Error> {
    let old = jvmapm_heap::analyze(old, options)?;
    let new = jvmapm_heap::analyze(new, options)?;
    for report in [&old, &new] {
        if report.partial {
            eprintln!(
                "jvmapm: {} is damaged or cut short: its counts cover what comes before",
                report.file
            );
        }
    }
    let diff = jvmapm_heap::diff::diff(&old, &new);
    if json {
        println!("{}", diff.json());
    } else {
        print!("{}", diff.text(top));
    }
    Ok(())
}

/// An object id as `jvmapm heap` prints it (0x7ff01a2b8) or in decimal.
fn parse_object_id(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not an object id (0x... in hex, or decimal)"))
}

/// The viewer's window width and end from --from, --to and --window.
fn window_of(
    from: Option<u64>,
    to: Option<u64>,
    window: u64,
) -> Result<(u64, Option<u64>), String> {
    match (from, to) {
        (Some(from), Some(to)) if to > from => Ok((to - from, Some(to))),
        (Some(_), Some(_)) => Err("--to must come after --from".to_string()),
        (Some(from), None) => Ok((window, Some(from + window))),
        (None, to) => Ok((window, to)),
    }
}

fn serve(config: ServeConfig) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let data = match &config.clickhouse {
            Some(ch) => format!("ClickHouse {}", ch.shown()),
            None => config.data_dir.display().to_string(),
        };
        let retention = config.retention;
        let server = Server::bind(config).await.map_err(|e| e.to_string())?;
        println!("jvmapm serve: OTLP/gRPC on {}", server.grpc_addr());
        println!(
            "jvmapm serve: OTLP/HTTP and query API on http://{}",
            server.http_addr()
        );
        println!(
            "jvmapm serve: data in {} (retention {})",
            data,
            duration::format(retention)
        );
        server.run(stop_signal()).await.map_err(|e| e.to_string())
    })
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
