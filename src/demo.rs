//! `jvmapm demo`: the whole product in front of a new user with one command.
//! It starts an analyzer on a temporary data directory, launches the bundled
//! HTTP service fixture in two JVMs with the agent: `demo-shop` (fast, slow,
//! failing, SQL and CPU-bound endpoints, a slowly growing Finalizer backlog,
//! and a checkout that calls the other over HTTP) and `demo-stock` (which
//! answers those calls with SQL), drives a mix of load against the shop,
//! and opens the XLog viewer on it: traces across both services, the
//! service map, profiles of the slow requests. Quitting the viewer stops
//! everything it started and removes the directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use jvmapm_analyzer::receiver::DEFAULT_MAX_BODY;
use jvmapm_analyzer::server::{ServeConfig, Server};
use jvmapm_contract::random::Rng;

/// The fixture the demo runs, compiled on the spot.
const SERVICE_SOURCE: &str = include_str!("../java-fixtures/HttpService.java");
/// Debian's H2 (package libh2-java), for the SQL endpoint.
const H2_JAR: &str = "/usr/share/java/h2.jar";
/// Requests a second the load driver aims at.
const REQUESTS_PER_SECOND: u64 = 40;

pub struct DemoOptions {
    /// The agent library; default: next to this executable.
    pub agent: Option<PathBuf>,
    /// Keep the data directory after the demo.
    pub keep: bool,
    /// Detail of the analyzer's log (`analyzer.log` in the demo's directory).
    pub log_level: tracing::Level,
}

pub fn run(options: DemoOptions) -> Result<(), String> {
    let agent = match options.agent {
        Some(path) => path,
        None => agent_beside_executable()?,
    };
    if !agent.is_file() {
        return Err(format!(
            "no agent library at {}: build it with `cargo build --release -p jvmapm-agent` \
             (scripts/demo.sh does everything)",
            agent.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("jvmapm-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    eprintln!("jvmapm demo: working in {}", dir.display());
    let log = std::fs::File::create(dir.join("analyzer.log"))
        .map_err(|e| format!("cannot create the analyzer log: {e}"))?;
    tracing_subscriber::fmt()
        .with_max_level(options.log_level)
        .with_writer(std::sync::Mutex::new(log))
        .with_ansi(false)
        .init();
    let result = run_in(&dir, &agent);
    if options.keep {
        eprintln!("jvmapm demo: data kept in {}", dir.join("data").display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn agent_beside_executable() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    Ok(exe.with_file_name("libjvmapm_agent.so"))
}

fn run_in(dir: &Path, agent: &Path) -> Result<(), String> {
    let classes = compile_service(dir)?;
    let analyzer = Analyzer::start(&dir.join("data"))?;
    eprintln!(
        "jvmapm demo: analyzer on {} (OTLP/gRPC) and http://{} (query API)",
        analyzer.grpc, analyzer.http
    );
    let stock = Service::start(dir, &classes, agent, analyzer.grpc, "demo-stock", &[])?;
    let stock_url = format!("-Djvmapm.demo.stock=http://127.0.0.1:{}", stock.port);
    let service = Service::start(
        dir,
        &classes,
        agent,
        analyzer.grpc,
        "demo-shop",
        &[&stock_url, "HttpService", "backlog"],
    )?;
    eprintln!(
        "jvmapm demo: demo-shop on http://127.0.0.1:{} calling demo-stock on http://127.0.0.1:{}, \
         their logs in {}",
        service.port,
        stock.port,
        dir.display()
    );
    let load = Load::start(service.port);
    let config = jvmapm_tui::app::Config {
        window_ms: 5 * 60_000,
        to_ms: None,
        live: true,
        slow_ms: 3_000,
        y_max_ms: 2_000,
        panels_service: Some("demo-shop".into()),
    };
    let origin = jvmapm_tui::Origin::Server {
        url: format!("http://{}", analyzer.http),
        token: None,
    };
    let viewed = jvmapm_tui::run(origin, config);
    load.stop();
    service.stop();
    stock.stop();
    analyzer.stop();
    viewed
}

/// Writes the fixture's source and compiles it; returns the class directory.
fn compile_service(dir: &Path) -> Result<PathBuf, String> {
    let source = dir.join("HttpService.java");
    let classes = dir.join("classes");
    std::fs::write(&source, SERVICE_SOURCE)
        .map_err(|e| format!("cannot write {}: {e}", source.display()))?;
    let output = Command::new(jdk_tool("javac"))
        .args(["--release", "17", "-nowarn", "-d"])
        .arg(&classes)
        .arg(&source)
        .output()
        .map_err(|e| format!("cannot run javac ({e}): the demo needs a JDK 17 or newer (apt-get install openjdk-17-jdk-headless)"))?;
    if !output.status.success() {
        return Err(format!(
            "javac failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(classes)
}

/// `$JAVA_HOME/bin/NAME` when JAVA_HOME is set, else NAME from PATH.
fn jdk_tool(name: &str) -> PathBuf {
    std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin").join(name))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// An analyzer in this process, on free local ports.
struct Analyzer {
    grpc: SocketAddr,
    http: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: thread::JoinHandle<Result<(), String>>,
}

impl Analyzer {
    fn start(data: &Path) -> Result<Analyzer, String> {
        let config = ServeConfig {
            data_dir: data.to_path_buf(),
            grpc: "127.0.0.1:0".parse().expect("an address"),
            http: "127.0.0.1:0".parse().expect("an address"),
            token: None,
            retention: Duration::from_secs(86_400),
            max_body: DEFAULT_MAX_BODY,
            clickhouse: None,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            runtime.block_on(async move {
                let server = match Server::bind(config).await {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return Ok(());
                    }
                };
                let _ = ready_tx.send(Ok((server.grpc_addr(), server.http_addr())));
                server
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
                    .map_err(|e| e.to_string())
            })
        });
        match ready.recv() {
            Ok(Ok((grpc, http))) => Ok(Analyzer {
                grpc,
                http,
                stop,
                thread,
            }),
            Ok(Err(why)) => Err(format!("the analyzer did not start: {why}")),
            Err(_) => Err(format!(
                "the analyzer did not start: {}",
                thread
                    .join()
                    .map_or_else(|_| "it panicked".into(), |r| format!("{r:?}"))
            )),
        }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        if let Ok(Err(why)) = self.thread.join() {
            eprintln!("jvmapm demo: the analyzer stopped with an error: {why}");
        }
    }
}

/// The fixture's JVM with the agent.
struct Service {
    child: Child,
    port: u16,
}

impl Service {
    /// The fixture as the service `name` (its log in `dir/NAME.log`),
    /// `arguments` the JVM's after the class path (the main class and its
    /// arguments, with system properties before them); `HttpService` alone
    /// when empty.
    fn start(
        dir: &Path,
        classes: &Path,
        agent: &Path,
        grpc: SocketAddr,
        name: &str,
        arguments: &[&str],
    ) -> Result<Service, String> {
        let mut class_path = classes.display().to_string();
        if Path::new(H2_JAR).is_file() {
            class_path.push_str(&format!(":{H2_JAR}"));
        } else {
            eprintln!("jvmapm demo: no {H2_JAR} (apt-get install libh2-java): /sql answers 503");
        }
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let arguments = if arguments.is_empty() {
            &["HttpService"][..]
        } else {
            arguments
        };
        let mut command = Command::new(jdk_tool("java"));
        command
            .arg(format!(
                "-agentpath:{}=service={name},endpoint=http://{grpc},interval=1s,export_interval=1s,stuck=5s",
                agent.display()
            ))
            .args(["-Xmx256m", "-cp", &class_path])
            .args(arguments)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; the JVM then ends with us even
        // when we are killed.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run java ({e}): the demo needs a JDK 17 or newer"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        let _ = BufReader::new(stdout).read_line(&mut line);
        match line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
        {
            Some(port) => Ok(Service { child, port }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "the service {name} did not start; see {}",
                    log_path.display()
                ))
            }
        }
    }

    /// Closes its input (it exits), and kills it if it does not within 5 s.
    fn stop(mut self) {
        drop(self.child.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Threads sending a mix of requests to the service.
struct Load {
    running: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let running = Arc::new(AtomicBool::new(true));
        let threads = (0..4u64)
            .map(|n| {
                let running = running.clone();
                thread::spawn(move || {
                    let mut random = Rng::seeded(0x2545_F491_4F6C_DD1D ^ ((n + 1) * 0x9E37_79B9));
                    let pause = Duration::from_millis(4 * 1000 / REQUESTS_PER_SECOND);
                    while running.load(Ordering::Relaxed) {
                        let path = pick(&mut random);
                        get(port, &path);
                        thread::sleep(pause);
                    }
                })
            })
            .collect();
        Load { running, threads }
    }

    fn stop(self) {
        self.running.store(false, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// A request of the mix: mostly fast, some slow, a few very slow, failing,
/// throwing, with SQL, CPU-bound (profiled past 100 ms), a checkout that
/// calls the stock service, or behind filters.
fn pick(random: &mut Rng) -> String {
    match random.below(100) {
        0..=44 => "/fast".into(),
        45..=59 => format!("/slow?ms={}", 20 + random.below(300)),
        60..=61 => format!("/slow?ms={}", 3_000 + random.below(3_000)),
        62..=67 => "/fail".into(),
        68..=69 => "/throw".into(),
        70..=81 => format!("/sql?n={}", 1 + random.below(6)),
        82..=84 => format!("/compute?n={}", 20 + random.below(200)),
        85..=94 => "/checkout".into(),
        _ => "/filtered".into(),
    }
}

/// One GET over a fresh connection; the answer is read and dropped.
fn get(port: u16, path: &str) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        thread::sleep(Duration::from_millis(200));
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_end(&mut Vec::new());
    }
}
