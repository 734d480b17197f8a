//! The agent's JVM health, end to end: real JVMs (JDK 17 and every newer JDK
//! found) run fixtures with the agent, which exports to a real `jvmapm
//! serve`; the tests read what arrived through the query API.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{java_launchers, java_with_agent, launcher_version, wait_until, Analyzer, JvmTurn};
use serde_json::Value;

/// The values of every series whose key starts with `prefix`, by key.
fn series<'a>(jvm: &'a Value, prefix: &str) -> Vec<(&'a str, Vec<f64>)> {
    jvm["series"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| key.starts_with(prefix))
        .map(|(key, points)| {
            let values = points
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p[1].as_f64().unwrap())
                .collect();
            (key.as_str(), values)
        })
        .collect()
}

/// The last value of the one series named exactly `name`.
fn last(jvm: &Value, name: &str) -> f64 {
    let found = series(jvm, name);
    let (_, values) = found
        .iter()
        .find(|(key, _)| *key == name)
        .unwrap_or_else(|| panic!("no series {name} in {}", jvm["series"]));
    *values.last().unwrap()
}

/// The sum of every value of every series whose key starts with `prefix`:
/// the analyzer stores counters and histogram counts as increments.
fn total(jvm: &Value, prefix: &str) -> f64 {
    series(jvm, prefix)
        .iter()
        .flat_map(|(_, values)| values.iter())
        .sum()
}

/// A child's output stream, read as it comes so a test can wait for a line
/// while the child runs.
struct Captured {
    text: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
}

impl Captured {
    fn read(stream: impl Read + Send + 'static) -> Captured {
        let text = Arc::new(Mutex::new(String::new()));
        let into = text.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut text = into.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Captured { text, reader }
    }

    /// `Ok` once `needle` was written, else what was written so far.
    fn holds(&self, needle: &str) -> Result<(), String> {
        let text = self.text.lock().unwrap();
        if text.contains(needle) {
            Ok(())
        } else {
            Err(text.clone())
        }
    }

    /// Everything written, once the child has exited and the stream closed.
    fn finish(self) -> String {
        self.reader.join().unwrap();
        let text = self.text.lock().unwrap();
        text.clone()
    }
}

fn succeeded(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what}: {stderr}");
    stderr
}

/// `-Xcheck:jni` prints warnings about misused JNI to stdout or stderr.
fn jni_warnings(out: &Output) -> Vec<String> {
    [&out.stdout, &out.stderr]
        .iter()
        .flat_map(|text| {
            String::from_utf8_lossy(text)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|line| line.contains("WARNING") || line.contains("FATAL ERROR"))
        .collect()
}

/// Regression: a pause was named only when one collector alone had run
/// since the last sampling round, so a round with young collections and a
/// full one (and often the first pause) had an empty collector and action.
#[test]
fn every_gc_pause_is_named_by_its_collector_when_two_collectors_ran_in_one_round() {
    let _jvms = JvmTurn::shared();
    const ROUNDS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    for launcher in java_launchers() {
        let service = format!("gc-mix-{}", launcher_version(&launcher));
        let out = java_with_agent(
            &launcher,
            &format!(
                "service={service},endpoint=http://{},interval=1s,export_interval=200ms",
                analyzer.grpc
            ),
            &["-Xmx256m", "-Xmn8m", "GcMix", &ROUNDS.to_string()],
        )
        .output()
        .unwrap();
        let stderr = succeeded(&out, &service);
        let jvm = analyzer.jvm_of(&service);
        let pauses = jvm["gc_pauses"].as_array().unwrap();
        let named = |name: &str, action: &str| {
            pauses
                .iter()
                .filter(|p| p["gc_name"] == name && p["action"] == action)
                .count()
        };
        let young = named("G1 Young Generation", "end of minor GC");
        let full = named("G1 Old Generation", "end of major GC");
        let details = format!("{service}: {pauses:#?}\n{stderr}");
        // Every collection a collector counted names its pause.
        assert_eq!(full, ROUNDS, "one full pause per System.gc(): {details}");
        assert!(young >= ROUNDS, "young collections ran: {details}");
        assert_eq!(
            young as f64,
            total(&jvm, "jvm.gc.count{jvm.gc.name=G1 Young Generation}"),
            "{details}"
        );
        // JDK 17's G1 also pauses briefly around a System.gc() without any
        // collector counting it: such a pause stays unnamed, not misnamed.
        let unnamed = pauses.len() - young - full;
        if launcher_version(&launcher) >= 21 {
            assert_eq!(unnamed, 0, "{details}");
        } else {
            assert!(unnamed <= ROUNDS, "{details}");
        }
    }
}

#[test]
fn gc_pauses_collectors_and_pools_arrive_under_check_jni() {
    let _jvms = JvmTurn::shared();
    const GCS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    for launcher in java_launchers() {
        let service = format!("gc-loop-{}", launcher_version(&launcher));
        // Sleeps between the collections keep the JVM up for several sampling rounds.
        let out = java_with_agent(
            &launcher,
            &format!(
                "service={service},endpoint=http://{},interval=100ms,export_interval=500ms",
                analyzer.grpc
            ),
            &["-Xcheck:jni", "GcLoop", &GCS.to_string(), "100"],
        )
        .output()
        .unwrap();
        let stderr = succeeded(&out, &service);
        assert_eq!(
            jni_warnings(&out),
            Vec::<String>::new(),
            "{service}: {stderr}"
        );

        let jvm = analyzer.jvm_of(&service);
        let pauses = jvm["gc_pauses"].as_array().unwrap();
        assert!(
            pauses.len() >= GCS,
            "{service}: {} pauses for {GCS} System.gc() calls",
            pauses.len()
        );
        for pause in pauses {
            let ms = pause["duration_ms"].as_f64().unwrap();
            assert!(ms > 0.0 && ms < 10_000.0, "{service}: {pause}");
        }
        // The histogram counts the same pauses the events list.
        let counted = total(&jvm, "jvm.gc.duration.count");
        assert_eq!(counted as usize, pauses.len(), "{service}");
        // System.gc() is a full collection of G1 (the default collector here),
        // so the pauses are named after its old generation collector.
        assert!(
            pauses.iter().any(|p| p["gc_name"] == "G1 Old Generation"),
            "{service}: {pauses:?}"
        );
        assert!(total(&jvm, "jvm.gc.count{jvm.gc.name=G1 Old Generation}") >= GCS as f64);

        for pool in ["G1 Eden Space", "G1 Old Gen", "G1 Survivor Space"] {
            let key =
                |name: &str| format!("{name}{{jvm.memory.pool.name={pool},jvm.memory.type=heap}}");
            let used = last(&jvm, &key("jvm.memory.used"));
            let committed = last(&jvm, &key("jvm.memory.committed"));
            assert!(
                used >= 0.0 && used <= committed,
                "{service} {pool}: {used} > {committed}"
            );
        }
        let old = "{jvm.memory.pool.name=G1 Old Gen,jvm.memory.type=heap}";
        assert!(
            last(&jvm, &format!("jvm.memory.limit{old}"))
                >= last(&jvm, &format!("jvm.memory.committed{old}"))
        );
        assert!(
            last(
                &jvm,
                "jvm.memory.used{jvm.memory.pool.name=Metaspace,jvm.memory.type=non_heap}"
            ) > 1e6
        );
        assert!(last(&jvm, "jvm.thread.count") >= 2.0);
        assert!(last(&jvm, "jvm.class.count") > 300.0);
        assert!(total(&jvm, "jvm.class.loaded") >= last(&jvm, "jvm.class.count"));
        assert!(total(&jvm, "jvm.cpu.time") > 0.0);
        assert_eq!(last(&jvm, "jvm.finalizer.pending"), 0.0);
        assert_eq!(last(&jvm, "jvmapm.agent.dropped"), 0.0);
    }
}

/// Also the HTTP/protobuf protocol: this test exports over OTLP/HTTP.
#[test]
fn a_finalizer_backlog_is_seen_and_dumped_once() {
    let _jvms = JvmTurn::shared();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(&dir.path().join("data"), &[]);
    for launcher in java_launchers() {
        let service = format!("finalizers-{}", launcher_version(&launcher));
        let dumps = dir.path().join(&service);
        std::fs::create_dir(&dumps).unwrap();
        let out = java_with_agent(
            &launcher,
            &format!(
                "service={service},protocol=http/protobuf,endpoint=http://{},interval=100ms,export_interval=500ms,heapdump_dir={},heapdump_on_finalizer_pending=200",
                analyzer.http,
                dumps.display()
            ),
            &["SlowFinalizers", "4"],
        )
        .output()
        .unwrap();
        let stderr = succeeded(&out, &service);

        let jvm = analyzer.jvm_of(&service);
        let (_, pending) = &series(&jvm, "jvm.finalizer.pending")[0];
        let peak = pending.iter().cloned().fold(0.0, f64::max);
        assert!(
            peak >= 200.0,
            "{service}: the pending count peaked at {peak}: {pending:?}"
        );

        // One dump, although the backlog stays over the threshold: the
        // minimum interval (30 minutes by default) holds the next one back.
        let files: Vec<_> = std::fs::read_dir(&dumps)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{service}: {files:?}\n{stderr}");
        let file = &files[0];
        assert_eq!(file.extension().unwrap(), "hprof");
        let header = std::fs::read(file).unwrap();
        assert!(
            header.starts_with(b"JAVA PROFILE 1.0.2\0"),
            "{service}: not an HPROF file"
        );
        assert!(
            stderr.contains(&format!("heap dump {} written", file.display())),
            "{stderr}"
        );

        let events = jvm["events"].as_array().unwrap();
        let dumped: Vec<&Value> = events.iter().filter(|e| e["kind"] == "heapdump").collect();
        assert_eq!(dumped.len(), 1, "{service}: {events:?}");
        let attributes = &dumped[0]["attributes"];
        assert_eq!(attributes["jvmapm.heapdump.path"], file.to_str().unwrap());
        let reason = attributes["jvmapm.heapdump.reason"].as_str().unwrap();
        assert!(
            reason.contains("heapdump_on_finalizer_pending=200"),
            "{reason}"
        );
    }
}

/// What a run of the Churn fixture printed and how it ended.
struct ChurnRun {
    /// "done N in MS ms rss_kb KB gcs COUNT cpu_ms CPU crc CRC", the job's
    /// own report.
    report: String,
    work_ms: u64,
    /// CPU time of the thread that did the work.
    work_cpu_ms: u64,
    rss_kb: u64,
    /// From the report line to the process's exit.
    exit_after: Duration,
    stderr: String,
}

fn churn(mut command: std::process::Command) -> ChurnRun {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut report = String::new();
    stdout.read_line(&mut report).unwrap();
    let done_at = Instant::now();
    let output = child.wait_with_output().unwrap();
    let exit_after = done_at.elapsed();
    let stderr = succeeded(&output, "Churn");
    let words: Vec<&str> = report.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"done"), "{report}\n{stderr}");
    ChurnRun {
        work_ms: words[3].parse().unwrap(),
        rss_kb: words[6].parse().unwrap(),
        work_cpu_ms: words[10].parse().unwrap(),
        report: report.clone(),
        exit_after,
        stderr,
    }
}

#[test]
fn a_backend_that_is_down_costs_the_jvm_nothing() {
    // It compares the job's time with and without the agent: no other
    // JVM may run meanwhile.
    let _jvms = JvmTurn::alone();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let launcher = &java_launchers()[0];
    // A small heap, so the job collects often and the agent has pauses to send.
    let job = ["-Xmx64m", "Churn", "200000"];
    let without = || {
        let mut command = std::process::Command::new(launcher);
        command
            .arg("-Xverify:all")
            .arg("-cp")
            .arg(common::java_fixtures())
            .args(job);
        churn(command)
    };
    let with = || {
        churn(java_with_agent(
            launcher,
            &format!("service=down,endpoint=http://{closed},interval=100ms,export_interval=100ms"),
            &job,
        ))
    };
    // Warm the disk cache, then run each side three times, interleaved, and
    // compare the medians.
    without();
    let runs: Vec<(ChurnRun, ChurnRun)> = (0..3).map(|_| (without(), with())).collect();
    let median = |side: fn(&(ChurnRun, ChurnRun)) -> u64| {
        let mut times: Vec<u64> = runs.iter().map(side).collect();
        times.sort();
        times[1]
    };
    // What the application thread paid, on its own CPU clock: the agent's
    // threads run beside it, and a loaded machine stretches wall time
    // (printed for the record) but not a thread's CPU time.
    let (cpu_without, cpu_with) = (median(|r| r.0.work_cpu_ms), median(|r| r.1.work_cpu_ms));
    let (wall_without, wall_with) = (median(|r| r.0.work_ms), median(|r| r.1.work_ms));
    assert!(
        cpu_with <= cpu_without * 5 / 4 + 50,
        "the job's thread used {cpu_with} ms of CPU with the agent and {cpu_without} ms without \
         (medians of 3; wall time {wall_with} and {wall_without} ms)"
    );
    // A thread made to wait (on a lock, on the dead backend's timeouts)
    // uses no CPU while it waits: wall time tells that, on a bound loose
    // enough for a machine busy with other work.
    assert!(
        wall_with <= wall_without * 2 + 200,
        "the job took {wall_with} ms with the agent and {wall_without} ms without (medians of 3)"
    );
    for (without, with) in &runs {
        // Same work, same result (the report ends with the job's checksum).
        let result = |r: &ChurnRun| r.report.split(" crc ").nth(1).map(str::to_string);
        assert_eq!(result(with), result(without));
        // The flush at exit gives up after 2 seconds.
        assert!(
            with.exit_after < Duration::from_secs(4),
            "exit took {:?}\n{}",
            with.exit_after,
            with.stderr
        );
        assert!(
            with.rss_kb.saturating_sub(without.rss_kb) < 40 * 1024,
            "RSS {} KiB with the agent, {} KiB without",
            with.rss_kb,
            without.rss_kb
        );
        // The trouble is said once, not once per attempt.
        assert_eq!(
            with.stderr.matches("cannot export").count(),
            1,
            "{}",
            with.stderr
        );
    }
}

#[test]
fn drops_while_the_backend_is_away_are_reported_when_it_returns() {
    let _jvms = JvmTurn::shared();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let launcher = &java_launchers()[0];
    let mut jvm = java_with_agent(
        launcher,
        &format!("service=comeback,endpoint=http://{port},interval=50ms,export_interval=200ms"),
        &["GcLoop", "100", "50"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = Captured::read(jvm.stderr.take().unwrap());
    // The JVM collects every 50 ms for about 5 seconds. The backend stays
    // away from the first failed export the agent reports for 2 seconds
    // more (part of the scenario), in which the retries after 0.4 and 1.2 s
    // (the backoff doubles) fail with pauses in them.
    wait_until(
        "the agent to report the backend down",
        Duration::from_secs(30),
        || stderr.holds("cannot export"),
    );
    std::thread::sleep(Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start_on_grpc(port, dir.path());
    let status = jvm.wait().unwrap();
    let stderr = stderr.finish();
    assert!(status.success(), "comeback: {stderr}");
    assert!(stderr.contains("works again"), "{stderr}");
    let health = analyzer.jvm_of("comeback");
    let dropped = last(&health, "jvmapm.agent.dropped");
    assert!(dropped > 0.0, "{stderr}");
    let pauses = health["gc_pauses"].as_array().unwrap().len();
    assert!(
        pauses as f64 + dropped >= 100.0,
        "{pauses} pauses arrived and {dropped} were dropped of 100"
    );
}
