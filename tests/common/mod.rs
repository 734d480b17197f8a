//! Test harness shared by the end-to-end tests: starts the real `jvmapm serve`
//! binary on ephemeral ports with its own data directory, talks to it over real
//! sockets, and compiles and runs the Java fixtures.

#![allow(dead_code)] // each test file uses its own part of the harness

pub mod clickhouse;
pub mod fixture;
pub mod postgres;
pub mod tomcat;
pub mod two_services;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use serde_json::Value;

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// An attribute with any value.
pub fn attr(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string attribute.
pub fn kv(key: &str, value: &str) -> KeyValue {
    attr(key, any_value::Value::StringValue(value.into()))
}

/// A trace export of `spans` from one resource with these attributes.
pub fn trace_request(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A SERVER span numbered `n` (span id `n + 1`, trace id from `n`) that ends at
/// `end_ns` after `elapsed_us`.
pub fn server_span(
    n: u64,
    name: &str,
    end_ns: u64,
    elapsed_us: u64,
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: [&[0x5e; 8][..], &n.to_be_bytes()].concat(),
        span_id: (n + 1).to_be_bytes().to_vec(),
        name: name.into(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: end_ns - elapsed_us * 1000,
        end_time_unix_nano: end_ns,
        attributes,
        ..Default::default()
    }
}

/// Polls `probe` every 50 ms until it answers `Ok`, and returns that; fails
/// once `within` has passed, naming `what` and showing the last `Err` (the
/// state it saw). Tests wait for another process this way rather than sleep
/// a fixed time, which is too short on a loaded machine and wasted on an
/// idle one.
pub fn wait_until<T>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe() {
            Ok(done) => return done,
            Err(seen) if Instant::now() >= deadline => {
                panic!("gave up waiting {within:?} for {what}; last seen:\n{seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Which tests run JVMs beside which. Two kinds of assertion on time:
///
/// - An order of events that is causal is asserted as that order, which
///   holds however loaded the machine: a transaction began after its client
///   sent the request and before it had the answer
///   ([`Analyzer::assert_began_during`]), it lasted at least as long as the
///   handler slept. No lock is needed for those.
/// - A figure no order can stand in for, such as how much longer a job runs
///   with the agent than without, is only meaningful when nothing else runs:
///   such a test takes the JVMs alone ([`JvmTurn::alone`]), and every other
///   test that runs a JVM takes its turn shared ([`JvmTurn::shared`]), so it
///   runs beside its like but never beside a measurement.
///
/// The turn is a flock(2) on `target/jvm-tests.lock`, as test binaries may
/// run as parallel processes and a binary's tests as parallel threads; each
/// turn opens the file anew, and flock sets threads of one process against
/// each other as it does processes. The lock goes with the guard.
pub struct JvmTurn {
    _file: std::fs::File,
}

impl JvmTurn {
    /// For a test that measures: waits until no other test runs a JVM.
    pub fn alone() -> JvmTurn {
        JvmTurn::take(libc::LOCK_EX)
    }

    /// For a test that runs a JVM: waits while a measuring test runs.
    pub fn shared() -> JvmTurn {
        JvmTurn::take(libc::LOCK_SH)
    }

    fn take(operation: libc::c_int) -> JvmTurn {
        use std::os::fd::AsRawFd;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/jvm-tests.lock");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
                return JvmTurn { _file: file };
            }
            let error = std::io::Error::last_os_error();
            assert!(
                error.kind() == std::io::ErrorKind::Interrupted,
                "flock {}: {error}",
                path.display()
            );
        }
    }
}

/// A client's view of one request: when it began sending and when it had
/// the whole answer, in nanoseconds since the epoch (CLOCK_REALTIME, the
/// clock the agent stamps a transaction's start with).
#[derive(Clone, Copy, Debug)]
pub struct Exchange {
    pub sent_ns: u64,
    pub answered_ns: u64,
}

impl Exchange {
    /// Runs `request` and says when it ran.
    pub fn time<T>(request: impl FnOnce() -> T) -> (T, Exchange) {
        let sent_ns = now_ns();
        let answer = request();
        let answered_ns = now_ns();
        (
            answer,
            Exchange {
                sent_ns,
                answered_ns,
            },
        )
    }
}

/// `jvmapm serve` on ports the kernel picks (the server prints them).
pub const SERVE_ON_FREE_PORTS: [&str; 5] =
    ["serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"];

/// A running `jvmapm serve`.
pub struct Analyzer {
    child: Option<Child>,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub data: PathBuf,
    stderr: mpsc::Receiver<String>,
    pub token: Option<String>,
}

impl Analyzer {
    /// Starts a server on `data` with extra flags, and waits until it listens.
    pub fn start(data: &Path, extra: &[&str]) -> Analyzer {
        Analyzer::start_with(&SERVE_ON_FREE_PORTS, data, extra)
    }

    /// Starts a server whose OTLP/gRPC port is `grpc` (an agent already
    /// points there), the HTTP port free.
    pub fn start_on_grpc(grpc: SocketAddr, data: &Path) -> Analyzer {
        let grpc = grpc.to_string();
        Analyzer::start_with(
            &["serve", "--grpc", &grpc, "--http", "127.0.0.1:0"],
            data,
            &[],
        )
    }

    fn start_with(serve: &[&str], data: &Path, extra: &[&str]) -> Analyzer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jvmapm"))
            .args(serve)
            .arg("--data")
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("jvmapm starts");
        let (tx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (tx_ready, ready) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            let mut grpc = None;
            let mut http = None;
            while let Some(Ok(line)) = lines.next() {
                if let Some(a) = line.strip_prefix("jvmapm serve: OTLP/gRPC on ") {
                    grpc = a.parse::<SocketAddr>().ok();
                }
                if let Some(a) =
                    line.strip_prefix("jvmapm serve: OTLP/HTTP and query API on http://")
                {
                    http = a.parse::<SocketAddr>().ok();
                }
                if let (Some(g), Some(h)) = (grpc, http) {
                    let _ = tx_ready.send((g, h));
                    grpc = None;
                }
            }
        });
        let token = extra
            .windows(2)
            .find(|w| w[0] == "--token")
            .map(|w| w[1].to_string());
        match ready.recv_timeout(Duration::from_secs(30)) {
            Ok((grpc, http)) => Analyzer {
                child: Some(child),
                grpc,
                http,
                data: data.to_path_buf(),
                stderr,
                token,
            },
            Err(_) => {
                let _ = child.kill();
                let logs: Vec<String> = stderr.try_iter().collect();
                panic!("jvmapm serve did not start:\n{}", logs.join("\n"));
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// GET a query API path and parse the JSON answer (asserting 200).
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.request("GET", path, &[], Vec::new());
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("JSON answer")
    }

    /// `/api/v1/jvm` of the one instance of `service` (asserting there is one).
    pub fn jvm_of(&self, service: &str) -> Value {
        let instances = self.get("/api/v1/instances");
        let ids: Vec<&str> = instances["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["service"] == service)
            .map(|i| i["instance"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 1, "one instance of {service}: {instances}");
        self.get(&format!("/api/v1/jvm?instance={}", ids[0]))
    }

    /// Any HTTP request; returns status and body. Runs on its own thread so it
    /// works from inside async tests too.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Vec<u8>) {
        let url = self.url(path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(t) = &self.token {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            {
                headers.push(("authorization".into(), format!("Bearer {t}")));
            }
        }
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let mut req = client.request(method, url).body(body);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let resp = req.send().expect("the server answers");
            let status = resp.status().as_u16();
            (status, resp.bytes().unwrap().to_vec())
        })
        .join()
        .unwrap()
    }

    /// POSTs an encoded trace export over OTLP/HTTP, asserting it is accepted.
    pub fn post_traces(&self, body: Vec<u8>) {
        let (status, reply) = self.request(
            "POST",
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            body,
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    }

    /// POSTs an encoded trace export over OTLP/HTTP, asserting it is
    /// answered 200, and returns its partial success (the spans refused).
    pub fn post_traces_partly(
        &self,
        body: Vec<u8>,
    ) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
        use prost::Message;
        let (status, reply) = self.request(
            "POST",
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            body,
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
        ExportTraceServiceResponse::decode(reply.as_slice())
            .expect("an OTLP response")
            .partial_success
            .expect("partial success")
    }

    /// All points ending in `[from, to]` ms (everything by default).
    pub fn points(&self) -> Vec<Value> {
        let page = self.get("/api/v1/xlog?from=0&limit=100000");
        page["points"].as_array().unwrap().clone()
    }

    /// The points of `service`, waiting (up to 20 s) until `count` have arrived.
    pub fn points_of(&self, service: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let points: Vec<Value> = self
                .points()
                .into_iter()
                .filter(|p| p["service"] == service)
                .collect();
            if points.len() >= count || Instant::now() > deadline {
                return points;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The detail of a point: its transaction with attributes and children.
    pub fn detail(&self, point: &Value) -> Value {
        self.get(&format!(
            "/api/v1/transactions/{}/{}",
            point["trace_id"].as_str().unwrap(),
            point["span_id"].as_str().unwrap()
        ))
    }

    /// Asserts that the transaction of `point` began while `exchange` was
    /// under way: after the client sent the request, before it had the
    /// answer. That order is causal, so it holds however loaded the machine.
    /// Its end is not compared with the answer's arrival: the agent stamps it
    /// when the handler returns, after the response is written, and the
    /// client may read the response before the JVM's thread runs again.
    pub fn assert_began_during(&self, point: &Value, exchange: Exchange, what: &str) {
        let start = self.detail(point)["start_time_unix_nano"]
            .as_u64()
            .expect("a start time");
        assert!(
            exchange.sent_ns <= start && start <= exchange.answered_ns,
            "{what}: began at {start} ns, outside the exchange {exchange:?}: {point}"
        );
    }

    /// The attributes of a point's transaction.
    pub fn attributes(&self, point: &Value) -> Value {
        self.detail(point)["attributes"].clone()
    }

    /// Waits until the server logged a line containing `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("the server never logged {needle:?}");
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        assert!(exit.success(), "jvmapm serve exited with {exit}");
    }
}

impl Drop for Analyzer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `jvmapm` with arguments; returns (exit success, stdout, stderr).
pub fn jvmapm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jvmapm"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The jars the servlet fixtures compile and run against (Debian's embedded
/// Tomcat 10 and the Jakarta annotations it needs; scripts/test.sh installs
/// them).
pub const SERVLET_JARS: [&str; 2] = [
    "/usr/share/java/tomcat10-embed-core.jar",
    "/usr/share/java/jakarta-annotation-api.jar",
];

/// Compiles the `.java` files of `java-fixtures/{dir}` against `classpath`
/// into `target/{out}` and returns that directory.
fn compile_fixtures(dir: &str, classpath: &str, out: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target").join(out);
    std::fs::create_dir_all(&out).unwrap();
    let sources: Vec<PathBuf> = std::fs::read_dir(root.join("java-fixtures").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "java"))
        .collect();
    let status = Command::new("javac")
        .args(["--release", "17", "-nowarn", "-cp", classpath, "-d"])
        .arg(&out)
        .args(&sources)
        .status()
        .expect("javac runs (scripts/test.sh installs a JDK)");
    assert!(
        status.success(),
        "the fixtures in java-fixtures/{dir} compile"
    );
    out
}

/// Compiles the servlet fixtures (`java-fixtures/servlet/`) once per test
/// process and returns the class path that runs them.
pub fn servlet_fixtures() -> String {
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            for jar in SERVLET_JARS {
                assert!(
                    Path::new(jar).is_file(),
                    "{jar} is missing: install libtomcat10-embed-java and libjakarta-annotation-api-java (scripts/test.sh does)"
                );
            }
            let libraries = SERVLET_JARS.join(":");
            let out = compile_fixtures("servlet", &libraries, "java-fixtures-servlet");
            format!("{}:{libraries}", out.display())
        })
        .clone()
}

/// The HTTP client libraries the outgoing-call fixtures call through
/// (Debian's libhttpclient-java, libhttpclient5-java and libokhttp-java
/// with what they need; scripts/test.sh installs them).
pub const CLIENT_JARS: [&str; 11] = [
    "/usr/share/java/httpclient.jar",
    "/usr/share/java/httpcore.jar",
    "/usr/share/java/commons-logging.jar",
    "/usr/share/java/httpclient5.jar",
    "/usr/share/java/httpcore5.jar",
    "/usr/share/java/httpcore5-h2.jar",
    "/usr/share/java/slf4j-api.jar",
    "/usr/share/java/slf4j-nop.jar",
    "/usr/share/java/okhttp.jar",
    "/usr/share/java/okio.jar",
    "/usr/share/java/h2.jar",
];

/// Compiles the outgoing-call fixtures (`java-fixtures/outgoing/`, on the
/// servlet fixtures and the client libraries) once per test process and
/// returns the class path that runs them, with the other fixtures (the
/// back service) and H2 on it.
pub fn outgoing_fixtures() -> String {
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            for jar in CLIENT_JARS {
                assert!(
                    Path::new(jar).is_file(),
                    "{jar} is missing: install libhttpclient-java, libhttpclient5-java, libokhttp-java, libslf4j-java and libh2-java (scripts/test.sh does)"
                );
            }
            let libraries = format!("{}:{}", servlet_fixtures(), CLIENT_JARS.join(":"));
            let out = compile_fixtures("outgoing", &libraries, "java-fixtures-outgoing");
            format!(
                "{}:{}:{libraries}",
                out.display(),
                java_fixtures().display()
            )
        })
        .clone()
}

/// Compiles the Java fixtures once per test process into `target/java-fixtures`
/// and returns that class path.
pub fn java_fixtures() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| compile_fixtures("", "", "java-fixtures"))
        .clone()
}

/// The OpenTelemetry Python SDK the interop test runs, pinned.
const PYTHON_SDK: &str = include_str!("../interop/requirements.txt");

/// The Python of `target/otel-python`, the virtual environment with the
/// OpenTelemetry Python SDK that scripts/test.sh makes before the tests (so
/// no test reaches the network). Fails saying how to make it when it is
/// missing or holds other versions.
pub fn python_with_otel_sdk() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/otel-python");
    let python = venv.join("bin/python");
    let installed = std::fs::read_to_string(venv.join("installed.txt")).unwrap_or_default();
    assert!(
        python.is_file() && installed == PYTHON_SDK,
        "{} lacks the OpenTelemetry Python SDK of tests/interop/requirements.txt: \
         scripts/test.sh installs it before the tests (by hand: python3 -m venv target/otel-python \
         && target/otel-python/bin/python -m pip install -r tests/interop/requirements.txt \
         && cp tests/interop/requirements.txt target/otel-python/installed.txt)",
        venv.display()
    );
    python
}

/// Runs `tests/interop/SCRIPT` with the Python of [`python_with_otel_sdk`]
/// and `args`; returns its standard output (asserting it succeeded).
pub fn run_python(script: &str, args: &[&str]) -> Vec<u8> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let out = Command::new(python_with_otel_sdk())
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    out.stdout
}

/// The agent library, built by a nested cargo into its own target directory
/// (so it does not wait on the lock of the `cargo test` that runs this).
pub fn agent_library() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/agent-build");
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "jvmapm-agent", "--target-dir"])
                .arg(&target)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "the agent builds");
            target.join("debug/libjvmapm_agent.so")
        })
        .clone()
}

/// The `java` launchers of every JDK 17 or newer found: those named by
/// `JVMAPM_TEST_JDKS` (JDK directories separated by `:`), `JAVA_HOME`, the
/// one on PATH and those under /usr/lib/jvm, each JDK once.
pub fn java_launchers() -> Vec<PathBuf> {
    let mut homes: Vec<PathBuf> = Vec::new();
    if let Some(listed) = std::env::var_os("JVMAPM_TEST_JDKS") {
        for home in std::env::split_paths(&listed) {
            assert!(
                home.join("bin/java").is_file(),
                "JVMAPM_TEST_JDKS names {}, which has no bin/java",
                home.display()
            );
            homes.push(std::fs::canonicalize(home).unwrap());
        }
    }
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        if let Ok(home) = std::fs::canonicalize(home) {
            homes.push(home);
        }
    }
    if let Ok(java) = which("java") {
        if let Some(home) = std::fs::canonicalize(java)
            .ok()
            .and_then(|p| p.parent()?.parent().map(Path::to_path_buf))
        {
            homes.push(home);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/jvm") {
        for entry in entries.flatten() {
            if let Ok(home) = std::fs::canonicalize(entry.path()) {
                homes.push(home);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    homes
        .into_iter()
        .filter(|home| feature_version(home).is_some_and(|v| v >= 17))
        .filter(|home| seen.insert(home.clone()))
        .map(|home| home.join("bin/java"))
        .filter(|java| java.is_file())
        .collect()
}

fn which(program: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

/// The feature version (17, 21, 25, ...) from a JDK's `release` file.
fn feature_version(home: &Path) -> Option<u32> {
    let release = std::fs::read_to_string(home.join("release")).ok()?;
    let line = release.lines().find(|l| l.starts_with("JAVA_VERSION="))?;
    line.trim_start_matches("JAVA_VERSION=")
        .trim_matches('"')
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Starts `command` with its standard streams piped; returns the child and
/// its standard output, to be read line by line.
pub fn spawn_piped(command: &mut Command) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

/// Runs a Java fixture class with arguments; returns its stdout (asserting success).
pub fn run_java(class: &str, args: &[&str]) -> String {
    let mut child = Command::new("java")
        .arg("-cp")
        .arg(java_fixtures())
        .arg(class)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("java runs");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "java {class} failed: {err}");
    out
}

/// A JVM command with the agent (`options` after the `=`) under
/// `-Xverify:all`, with the fixtures on the class path and no OTEL_*
/// variables from the test's environment; `command_line` is what follows
/// (JVM flags, the fixture class, its arguments).
pub fn java_with_agent(launcher: &Path, options: &str, command_line: &[&str]) -> Command {
    let mut command = Command::new(launcher);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command
        .arg(format!(
            "-agentpath:{}={options}",
            agent_library().display()
        ))
        .arg("-Xverify:all")
        .arg("-cp")
        .arg(java_fixtures())
        .args(command_line);
    command
}

/// The feature version of the JDK a launcher belongs to.
pub fn launcher_version(launcher: &Path) -> u32 {
    launcher
        .parent()
        .and_then(Path::parent)
        .and_then(feature_version)
        .unwrap_or(0)
}
