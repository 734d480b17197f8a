//! Transactions measured by the agent's bytecode, end to end: real JVMs
//! (JDK 17 and every newer JDK found, all under `-Xverify:all`) serve real
//! HTTP requests or run a batch job with the agent, which exports to a real
//! `jvmapm serve`; the tests compare the XLog points with what the client
//! sent and the server measured.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{
    java_fixtures, java_launchers, java_with_agent, launcher_version, spawn_piped, Analyzer,
    Exchange, JvmTurn,
};
use serde_json::Value;

// Each test here runs one or more JVMs under load for seconds and then
// waits for every point; on two cores, two of them at once were seen to miss
// points within the wait. They take the JVMs alone, one at a time.

/// A running HttpService fixture.
struct Service {
    child: Child,
    /// Its standard output after the "port" line.
    stdout: BufReader<std::process::ChildStdout>,
    port: u16,
}

impl Service {
    fn start(mut command: Command) -> Service {
        let (child, mut stdout) = spawn_piped(&mut command);
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line
            .strip_prefix("port ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("HttpService said {line:?}"));
        Service {
            child,
            stdout,
            port,
        }
    }

    /// GET `path`; returns status, the X-Filter headers and the body.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<String>, String) {
        let client = reqwest::blocking::Client::new();
        let mut request = client.get(format!("http://127.0.0.1:{}{path}", self.port));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.send() {
            Ok(response) => {
                let status = response.status().as_u16();
                let filters = response
                    .headers()
                    .get_all("x-filter")
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect();
                (status, filters, response.text().unwrap())
            }
            // A handler that throws makes the JDK server close the connection.
            Err(_) => (0, Vec::new(), String::new()),
        }
    }

    /// Closes its input, waits for it to exit, returns the rest of its
    /// standard output and its standard error; asserts that `-Xcheck:jni`
    /// (when given) found nothing wrong.
    fn stop(mut self) -> String {
        use std::io::Read;
        drop(self.child.stdin.take());
        let mut output = String::new();
        self.stdout.read_to_string(&mut output).unwrap();
        let out = self.child.wait_with_output().unwrap();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{output}");
        for complaint in ["WARNING in native method", "FATAL ERROR in native method"] {
            assert!(!output.contains(complaint), "{output}");
        }
        output
    }
}

/// The requests of one run, with what the server answered.
struct Sent {
    path: &'static str,
    status: u16,
    filters: Vec<String>,
    /// The handler's own measurement, from the body ("took N" microseconds).
    took_us: Option<u64>,
    /// When the client sent it and had the answer.
    exchange: Exchange,
}

/// Requests sent before the measured ones.
const WARM_UP: usize = 5;

const REQUESTS: [&str; 9] = [
    "/fast",
    "/slow?ms=20",
    "/slow?ms=60",
    "/slow?ms=120",
    "/fail",
    "/throw",
    "/filtered",
    "/filtered",
    "/fast",
];

fn send_all(service: &Service) -> Vec<Sent> {
    REQUESTS
        .iter()
        .map(|&path| {
            let ((status, filters, body), exchange) = Exchange::time(|| service.get(path, &[]));
            Sent {
                exchange,
                path,
                status,
                filters,
                took_us: body
                    .strip_prefix("took ")
                    .and_then(|t| t.trim().parse().ok()),
            }
        })
        .collect()
}

#[test]
fn every_http_exchange_is_one_point_with_its_time_status_and_error() {
    let _jvms = JvmTurn::alone();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    for launcher in java_launchers() {
        let service = format!("http-{}", launcher_version(&launcher));
        let agent = Service::start(java_with_agent(
            &launcher,
            &format!(
                "service={service},endpoint=http://{},export_interval=200ms",
                analyzer.grpc
            ),
            &["-Xcheck:jni", "HttpService"],
        ));
        // Warm up: the first requests of a JVM pay for class loading and
        // linking, in the handler's measurement and outside it.
        for _ in 0..WARM_UP {
            assert_eq!(agent.get("/slow?ms=1", &[]).0, 200);
        }
        let sent = send_all(&agent);
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (status, _, _) = agent.get("/fast", &[("traceparent", parent)]);
        assert_eq!(status, 200);
        let stderr = agent.stop();
        assert!(!stderr.contains("as it was"), "{service}: {stderr}");

        let total = WARM_UP + sent.len() + 1;
        let points = analyzer.points_of(&service, total);
        assert_eq!(points.len(), total, "{service}: {points:#?}\n{stderr}");
        let mut by_endpoint: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for p in &points {
            by_endpoint
                .entry(p["endpoint"].as_str().unwrap().to_string())
                .or_default()
                .push(p);
        }
        let count = |e: &str| by_endpoint.get(e).map_or(0, Vec::len);
        assert_eq!(count("/fast"), 3, "{by_endpoint:?}");
        assert_eq!(count("/slow"), WARM_UP + 3);
        assert_eq!(count("/fail"), 1);
        assert_eq!(count("/throw"), 1);
        assert_eq!(
            count("/filtered"),
            2,
            "one point per request behind two filters"
        );

        // Elapsed covers the handler's own time, and the transaction began
        // while the client waited for its answer (which is causal, where
        // "elapsed within the round trip" is not: see assert_began_during).
        // In the order they were sent: the warm-up first, then 20, 60, 120 ms.
        let mut slow: Vec<&Value> = by_endpoint["/slow"].clone();
        slow.sort_by_key(|p| p["end_ms"].as_u64().unwrap());
        let sent_slow = sent.iter().filter(|s| s.path.starts_with("/slow"));
        for ((point, sent), delay_ms) in slow[WARM_UP..].iter().zip(sent_slow).zip([20, 60, 120]) {
            let elapsed = point["elapsed_us"].as_u64().unwrap();
            let took = sent.took_us.unwrap();
            assert!(
                elapsed >= delay_ms * 1000,
                "{service}: {elapsed} us for a {delay_ms} ms delay"
            );
            assert!(
                took <= elapsed,
                "{service}: agent {elapsed} us, handler {took} us"
            );
            analyzer.assert_began_during(point, sent.exchange, &format!("{service} {}", sent.path));
        }

        let fail = by_endpoint["/fail"][0];
        assert_eq!(
            (fail["status_code"].as_u64(), fail["error"].as_bool()),
            (Some(500), Some(true))
        );
        assert_eq!(analyzer.attributes(fail)["error.type"], "500");
        // The handler threw before answering: the JDK server closed the
        // connection, so the client got no status, and neither does the point.
        let thrown = by_endpoint["/throw"][0];
        assert_eq!(thrown["error"], true);
        assert!(thrown["status_code"].is_null(), "{thrown}");
        let thrown_attributes = analyzer.attributes(thrown);
        assert_eq!(
            thrown_attributes["error.type"],
            "java.lang.IllegalStateException"
        );
        assert!(
            thrown_attributes.get("http.response.status_code").is_none(),
            "{thrown_attributes}"
        );
        assert!(by_endpoint["/fast"]
            .iter()
            .all(|p| p["error"] == false && p["status_code"] == 200));

        let fast = analyzer.attributes(by_endpoint["/fast"][0]);
        assert_eq!(fast["http.request.method"], "GET");
        assert_eq!(fast["url.path"], "/fast");
        assert_eq!(fast["http.route"], "/fast");
        assert!(
            fast["thread.name"]
                .as_str()
                .is_some_and(|t| t.starts_with("pool-")),
            "{fast}"
        );
        assert!(fast["jvmapm.cpu.time"].as_i64().is_some(), "{fast}");

        // An incoming traceparent continues its trace.
        assert!(
            points
                .iter()
                .any(|p| p["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"),
            "{service}: {points:#?}"
        );

        // The same answers without the agent.
        let mut plain = Command::new(&launcher);
        plain
            .arg("-Xverify:all")
            .arg("-cp")
            .arg(java_fixtures())
            .arg("HttpService");
        let without = Service::start(plain);
        let sent_without = send_all(&without);
        without.stop();
        for (with, without) in sent.iter().zip(&sent_without) {
            assert_eq!(
                (
                    with.path,
                    with.status,
                    &with.filters,
                    with.took_us.is_some()
                ),
                (
                    without.path,
                    without.status,
                    &without.filters,
                    without.took_us.is_some()
                )
            );
        }
    }
}

#[test]
fn a_hooked_method_is_an_application_transaction_and_nested_calls_are_not() {
    let _jvms = JvmTurn::alone();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let launcher = &java_launchers()[0];
    let out = java_with_agent(
        launcher,
        &format!(
            "service=batch,endpoint=http://{},hook=Batch#run;Batch#step",
            analyzer.grpc
        ),
        &["Batch", "6"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let plain = Command::new(launcher)
        .arg("-cp")
        .arg(java_fixtures())
        .args(["Batch", "6"])
        .output()
        .unwrap();
    assert_eq!(
        out.stdout, plain.stdout,
        "the job's output is the same with the agent"
    );

    let points = analyzer.points_of("batch", 6);
    assert_eq!(points.len(), 6, "{points:#?}\n{stderr}");
    for p in &points {
        assert_eq!(p["endpoint"], "Batch.run", "{p}");
        assert!(p["elapsed_us"].as_u64().unwrap() >= 20_000, "{p}");
    }
    let errors: Vec<&Value> = points.iter().filter(|p| p["error"] == true).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        analyzer.attributes(errors[0])["error.type"],
        "java.lang.IllegalArgumentException"
    );
    // The agent learns a thread's name once, and again when it changes.
    let mut names: Vec<(u64, String)> = points
        .iter()
        .map(|p| {
            let name = analyzer.attributes(p)["thread.name"].clone();
            (
                p["end_ms"].as_u64().unwrap(),
                name.as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    names.sort();
    let names: Vec<&str> = names.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "main",
            "main",
            "main",
            "batch-second-half",
            "batch-second-half",
            "batch-second-half"
        ]
    );
}

#[test]
fn every_servlet_request_is_one_point_behind_its_filters() {
    let _jvms = JvmTurn::alone();
    let classpath = common::servlet_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    for launcher in java_launchers() {
        let service = format!("tomcat-{}", launcher_version(&launcher));
        let tomcat = Service::start(java_with_agent(
            &launcher,
            &format!(
                "service={service},endpoint=http://{},export_interval=200ms",
                analyzer.grpc
            ),
            &["-Xcheck:jni", "-cp", &classpath, "TomcatService"],
        ));
        for _ in 0..WARM_UP {
            assert_eq!(tomcat.get("/hello", &[]).0, 200);
        }
        let parent = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let answers: Vec<(u16, Vec<String>)> = [
            ("/hello", None),
            ("/slow?ms=40", None),
            ("/error", None),
            ("/boom", None),
            ("/hello", Some(parent)),
        ]
        .iter()
        .map(|(path, traceparent)| {
            let headers: Vec<(&str, &str)> =
                traceparent.iter().map(|t| ("traceparent", *t)).collect();
            let (status, filters, _) = tomcat.get(path, &headers);
            (status, filters)
        })
        .collect();
        let stderr = tomcat.stop();
        assert_eq!(
            answers.iter().map(|a| a.0).collect::<Vec<_>>(),
            [200, 200, 500, 500, 200],
            "{stderr}"
        );
        assert_eq!(answers[0].1, ["one", "two"], "both filters ran");

        // One point per request although two filters and the servlet are
        // all instrumented.
        let points = analyzer.points_of(&service, WARM_UP + 5);
        assert_eq!(
            points.len(),
            WARM_UP + 5,
            "{service}: {points:#?}\n{stderr}"
        );
        let endpoint =
            |e: &str| -> Vec<&Value> { points.iter().filter(|p| p["endpoint"] == e).collect() };
        assert_eq!(endpoint("/hello").len(), WARM_UP + 2);
        let slow = endpoint("/slow");
        assert!(
            slow[0]["elapsed_us"].as_u64().unwrap() >= 40_000,
            "{slow:?}"
        );
        let error = endpoint("/error");
        assert_eq!(
            (
                error[0]["status_code"].as_u64(),
                error[0]["error"].as_bool()
            ),
            (Some(500), Some(true))
        );
        // The servlet threw: the client got Tomcat's 500, and so does the point.
        let boom = endpoint("/boom");
        assert_eq!(
            (boom[0]["status_code"].as_u64(), boom[0]["error"].as_bool()),
            (Some(500), Some(true))
        );
        let boom_attributes = analyzer.attributes(boom[0]);
        assert_eq!(
            boom_attributes["error.type"],
            "jakarta.servlet.ServletException"
        );
        assert_eq!(boom_attributes["http.response.status_code"], 500);
        assert!(points
            .iter()
            .any(|p| p["trace_id"] == "5bf92f3577b34da6a3ce929d0e0e4736"));
        let hello = analyzer.attributes(endpoint("/hello")[0]);
        assert_eq!(hello["http.request.method"], "GET");
        assert_eq!(hello["url.path"], "/hello");
    }
}

#[test]
fn a_stuck_transaction_is_reported_once_with_its_stack() {
    let _jvms = JvmTurn::alone();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let launcher = &java_launchers()[0];
    let service = Service::start(java_with_agent(
        launcher,
        &format!(
            "service=stuck,endpoint=http://{},interval=200ms,export_interval=200ms,stuck=1s",
            analyzer.grpc
        ),
        &["HttpService"],
    ));
    assert_eq!(service.get("/slow?ms=2500", &[]).0, 200);
    assert_eq!(service.get("/fast", &[]).0, 200);
    let stderr = service.stop();

    let points = analyzer.points_of("stuck", 2);
    let slow = points.iter().find(|p| p["endpoint"] == "/slow").unwrap();
    let fast = points.iter().find(|p| p["endpoint"] == "/fast").unwrap();
    assert_eq!(analyzer.attributes(slow)["jvmapm.stuck"], true);
    assert!(analyzer.attributes(fast).get("jvmapm.stuck").is_none());

    let jvm = analyzer.jvm_of("stuck");
    let stuck: Vec<&Value> = jvm["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "stuck")
        .collect();
    assert_eq!(stuck.len(), 1, "reported once: {stuck:#?}\n{stderr}");
    assert_eq!(stuck[0]["trace_id"], slow["trace_id"], "tied to its trace");
    let stack = stuck[0]["attributes"]["jvmapm.stack"].as_str().unwrap();
    assert!(stack.contains("Thread.sleep"), "{stack}");
    assert!(stack.contains("HttpService"), "{stack}");
    // While it ran, the active count saw it.
    let active: f64 = jvm["series"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("jvmapm.transactions.active"))
        .flat_map(|(_, points)| {
            points
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p[1].as_f64().unwrap())
        })
        .fold(0.0, f64::max);
    assert!(active >= 1.0, "{}", jvm["series"]);
}

#[test]
fn exchanges_on_virtual_threads_are_measured_on_jdk_21_and_newer() {
    let _jvms = JvmTurn::alone();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let launchers: Vec<_> = java_launchers()
        .into_iter()
        .filter(|l| launcher_version(l) >= 21)
        .collect();
    for launcher in launchers {
        let service = format!("virtual-{}", launcher_version(&launcher));
        let server = Service::start(java_with_agent(
            &launcher,
            &format!(
                "service={service},endpoint=http://{},export_interval=200ms",
                analyzer.grpc
            ),
            &["HttpService", "virtual"],
        ));
        // Concurrent requests, so virtual threads park and move between carriers.
        let delays = [30u64, 60, 90, 120, 150, 30, 60, 90];
        std::thread::scope(|scope| {
            for ms in delays {
                let server = &server;
                scope.spawn(move || {
                    assert_eq!(server.get(&format!("/slow?ms={ms}"), &[]).0, 200);
                });
            }
        });
        let stderr = server.stop();
        let points = analyzer.points_of(&service, delays.len());
        assert_eq!(
            points.len(),
            delays.len(),
            "{service}: {points:#?}\n{stderr}"
        );
        let mut elapsed: Vec<u64> = points
            .iter()
            .map(|p| p["elapsed_us"].as_u64().unwrap())
            .collect();
        elapsed.sort();
        let mut expected = delays.to_vec();
        expected.sort();
        for (us, ms) in elapsed.iter().zip(expected) {
            assert!(*us >= ms * 1000, "{service}: {us} us for {ms} ms");
        }
    }
}

/// Debian's H2 database (libh2-java; scripts/test.sh installs it).
const H2_JAR: &str = "/usr/share/java/h2.jar";

/// HttpService with H2 on its class path and the agent (`options` plus the
/// analyzer's endpoint), on the first JDK found.
fn service_with_h2(analyzer: &Analyzer, options: &str) -> Service {
    assert!(
        std::path::Path::new(H2_JAR).is_file(),
        "{H2_JAR} is missing: install libh2-java (scripts/test.sh does)"
    );
    let classpath = format!("{}:{H2_JAR}", java_fixtures().display());
    Service::start(java_with_agent(
        &java_launchers()[0],
        &format!(
            "{options},endpoint=http://{},export_interval=200ms",
            analyzer.grpc
        ),
        &["-Xcheck:jni", "-cp", &classpath, "HttpService"],
    ))
}

#[test]
fn sql_count_and_time_are_the_statements_the_transaction_ran() {
    let _jvms = JvmTurn::alone();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let server = service_with_h2(&analyzer, "service=sql");
    for path in ["/sql?n=5", "/sql?n=2", "/fast"] {
        assert_eq!(server.get(path, &[]).0, 200, "{path}");
    }
    let stderr = server.stop();
    let points = analyzer.points_of("sql", 3);
    assert_eq!(points.len(), 3, "{points:#?}\n{stderr}");
    let mut counts: Vec<Option<u64>> = points.iter().map(|p| p["sql_count"].as_u64()).collect();
    counts.sort();
    assert_eq!(counts, [None, Some(2), Some(5)], "{points:#?}");
    for p in points.iter().filter(|p| p["endpoint"] == "/sql") {
        let sql_us = p["sql_us"].as_u64().unwrap();
        assert!(
            sql_us > 0 && sql_us <= p["elapsed_us"].as_u64().unwrap(),
            "{p}"
        );
        // Each statement is a child span kept with the transaction, its
        // literals replaced by `?`; plain and prepared statements alternate.
        let detail = analyzer.get(&format!(
            "/api/v1/transactions/{}/{}",
            p["trace_id"].as_str().unwrap(),
            p["span_id"].as_str().unwrap()
        ));
        let statements: Vec<&str> = detail["children"]
            .as_array()
            .unwrap()
            .iter()
            .inspect(|c| {
                assert_eq!(c["kind"], "SPAN_KIND_CLIENT", "{c}");
                assert_eq!(c["parent_span_id"], p["span_id"], "{c}");
            })
            .map(|c| c["attributes"]["db.query.text"].as_str().unwrap())
            .collect();
        assert_eq!(statements.len() as u64, p["sql_count"], "{detail:#}");
        for (i, statement) in statements.iter().enumerate() {
            let expected = if i % 2 == 0 {
                "SELECT name FROM items WHERE id = ?"
            } else {
                "UPDATE items SET hits = hits + ? WHERE id = ?"
            };
            assert_eq!(*statement, expected);
        }
    }
}

/// The INTERNAL children of a transaction named after the hooked step
/// method, in the order they started, each checked to be a step of it:
/// `HttpService.step` with its class and method, lying within it.
fn steps_of(detail: &Value) -> Vec<&Value> {
    let start = detail["start_time_unix_nano"].as_u64().unwrap();
    let end = detail["end_time_unix_nano"].as_u64().unwrap();
    let steps: Vec<&Value> = detail["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "SPAN_KIND_INTERNAL")
        .collect();
    for step in &steps {
        assert_eq!(step["name"], "HttpService.step", "{step}");
        assert_eq!(step["parent_span_id"], detail["span_id"], "{step}");
        assert_eq!(step["attributes"]["code.namespace"], "HttpService");
        assert_eq!(step["attributes"]["code.function"], "step");
        let (begin, finish) = (
            step["start_time_unix_nano"].as_u64().unwrap(),
            step["end_time_unix_nano"].as_u64().unwrap(),
        );
        assert!(
            start <= begin && begin <= finish && finish <= end,
            "a step outside its transaction {start}..{end}: {step}"
        );
    }
    steps
}

#[test]
fn hooked_methods_called_inside_a_request_are_its_steps_up_to_the_bound() {
    let _jvms = JvmTurn::alone();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let server = Service::start(java_with_agent(
        &java_launchers()[0],
        &format!(
            "service=steps,endpoint=http://{},export_interval=200ms,hook=HttpService#step",
            analyzer.grpc
        ),
        &["-Xcheck:jni", "HttpService"],
    ));
    // Three steps of 30 ms; 300 instant ones; one that throws.
    for path in ["/steps?n=3&ms=30", "/steps?n=300&ms=0", "/steps?n=1&ms=-1"] {
        assert_eq!(server.get(path, &[]).0, 200, "{path}");
    }
    let stderr = server.stop();
    let points = analyzer.points_of("steps", 3);
    assert_eq!(points.len(), 3, "{points:#?}\n{stderr}");
    let mut details: Vec<Value> = points.iter().map(|p| analyzer.detail(p)).collect();
    details.sort_by_key(|d| d["start_time_unix_nano"].as_u64());
    for point in &points {
        assert_eq!(point["error"], false, "a step's throw is not the request's");
    }
    for detail in &details {
        assert_eq!(detail["name"], "GET /steps", "{detail:#}");
    }

    let slow = steps_of(&details[0]);
    assert_eq!(slow.len(), 3, "{:#}", details[0]);
    let mut previous_end = 0;
    for step in slow {
        let begin = step["start_time_unix_nano"].as_u64().unwrap();
        let end = step["end_time_unix_nano"].as_u64().unwrap();
        assert!(end - begin >= 30_000_000, "{step}");
        assert!(begin >= previous_end, "in the order they ran: {step}");
        previous_end = end;
        assert_eq!(step["status"], Value::Null, "{step}");
    }
    assert_eq!(
        details[0]["attributes"]["jvmapm.steps.truncated"],
        Value::Null
    );

    let many = steps_of(&details[1]);
    assert_eq!(many.len(), 256, "the agent's bound");
    assert_eq!(details[1]["attributes"]["jvmapm.steps.truncated"], 44);

    let failed = steps_of(&details[2]);
    assert_eq!(failed.len(), 1, "{:#}", details[2]);
    assert_eq!(failed[0]["status"]["code"], 2, "{}", failed[0]);
    assert_eq!(
        failed[0]["attributes"]["error.type"],
        "java.lang.IllegalStateException"
    );
}

#[test]
fn cpu_off_leaves_thread_cpu_time_out_and_measures_the_rest() {
    let _jvms = JvmTurn::alone();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let server = service_with_h2(&analyzer, "service=no-cpu,cpu=off");
    for path in ["/fast", "/sql?n=2"] {
        assert_eq!(server.get(path, &[]).0, 200);
    }
    let stderr = server.stop();
    let points = analyzer.points_of("no-cpu", 2);
    assert_eq!(points.len(), 2, "{points:#?}\n{stderr}");
    for point in &points {
        assert!(point["cpu_us"].is_null(), "{point}");
        assert!(point["elapsed_us"].as_u64().unwrap() > 0, "{point}");
        let attributes = analyzer.attributes(point);
        assert!(attributes.get("jvmapm.cpu.time").is_none(), "{attributes}");
    }
    let sql = points.iter().find(|p| p["endpoint"] == "/sql").unwrap();
    assert_eq!(sql["sql_count"], 2);
}

#[test]
fn sample_thins_successful_transactions_but_counts_them_all_and_keeps_errors() {
    let _jvms = JvmTurn::alone();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let server = service_with_h2(&analyzer, "service=sampled,sample=0");
    for path in ["/fast", "/sql?n=3", "/fail"] {
        server.get(path, &[]);
    }
    let stderr = server.stop();
    let points = analyzer.points_of("sampled", 3);
    assert_eq!(
        points.len(),
        3,
        "every transaction is counted: {points:#?}\n{stderr}"
    );
    let find = |e: &str| points.iter().find(|p| p["endpoint"] == e).unwrap();
    let fast = analyzer.attributes(find("/fast"));
    assert_eq!(fast["jvmapm.detail"], "thinned", "{fast}");
    assert!(
        fast.get("thread.name").is_none() && fast.get("url.path").is_none(),
        "{fast}"
    );
    assert_eq!(find("/sql")["sql_count"], 3, "SQL is still counted");
    let fail = analyzer.attributes(find("/fail"));
    assert!(
        fail.get("jvmapm.detail").is_none(),
        "errors keep their detail: {fail}"
    );
    assert!(fail["thread.name"].is_string());
}

/// Writes `source` as `dir/NAME.java` and compiles it with `release`.
fn compile(dir: &std::path::Path, name: &str, source: &str, release: &str) {
    std::fs::write(dir.join(format!("{name}.java")), source).unwrap();
    let status = Command::new("javac")
        .args(["--release", release, "-nowarn", "-d"])
        .arg(dir)
        .arg(dir.join(format!("{name}.java")))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{name} compiles");
}

#[test]
fn odd_classes_are_left_alone_or_wrapped_and_the_program_runs_the_same() {
    let _jvms = JvmTurn::alone();
    let dir = tempfile::tempdir().unwrap();
    let classes = dir.path();
    // A method of about 50 KB of bytecode (the limit is 64 KB): the wrapper
    // leaves its code as it is, so it still fits.
    let body: String = (0..4_000)
        .map(|i| format!("        x = x * 31 + {i};\n"))
        .collect();
    compile(
        classes,
        "Huge",
        &format!(
            "public class Huge {{\n    static long run(long x) {{\n{body}        return x;\n    }}\n    public static void main(String[] a) {{ System.out.println(\"huge \" + run(1)); }}\n}}\n"
        ),
        "17",
    );
    // A class file older than Java 6 (no stack map frames): the rewriter
    // refuses it, and the class must load as it was.
    compile(
        classes,
        "Old",
        "public class Old {\n    static int run() { return 6 * 7; }\n    public static void main(String[] a) { System.out.println(\"old \" + run()); }\n}\n",
        "8",
    );
    let old = classes.join("Old.class");
    let mut bytes = std::fs::read(&old).unwrap();
    bytes[6..8].copy_from_slice(&49u16.to_be_bytes());
    std::fs::write(&old, bytes).unwrap();

    let analyzer_dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(analyzer_dir.path(), &[]);
    let launcher = &java_launchers()[0];
    let classpath = classes.to_str().unwrap();
    for (class, expected) in [("Huge", "huge "), ("Old", "old 42")] {
        let plain = Command::new(launcher)
            .args(["-Xverify:all", "-cp", classpath, class])
            .output()
            .unwrap();
        let with = java_with_agent(
            launcher,
            &format!(
                "service=odd-{class},endpoint=http://{},hook={class}#run",
                analyzer.grpc
            ),
            &["-cp", classpath, class],
        )
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&with.stderr);
        assert!(with.status.success(), "{class}: {stderr}");
        assert!(String::from_utf8_lossy(&with.stdout).starts_with(expected));
        assert_eq!(
            with.stdout, plain.stdout,
            "{class}: same output with the agent"
        );
        if class == "Old" {
            assert_eq!(
                stderr
                    .matches("left Old as it was: class file version 49")
                    .count(),
                1,
                "{stderr}"
            );
            // The JVM has exited, so whatever it sent is stored.
            assert!(analyzer.points().iter().all(|p| p["service"] != "odd-Old"));
        } else {
            assert!(!stderr.contains("as it was"), "{stderr}");
            assert_eq!(analyzer.points_of("odd-Huge", 1).len(), 1);
        }
    }
}
