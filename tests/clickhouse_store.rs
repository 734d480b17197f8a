//! Many analyzers, one ClickHouse: two `jvmapm serve` on one real
//! ClickHouse server, each sent half the spans (by the OpenTelemetry Python
//! SDK and by OTLP/HTTP), answer the same points, statistics,
//! transactions, JVM data and live tail, each point exactly once; and a
//! ClickHouse killed with SIGKILL during a load loses no acknowledged span
//! while the analyzer answers 503 and recovers by itself; and two
//! ClickHouse servers as two shards behind `Distributed` tables answer
//! what one server answers, with the rows spread over both.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::clickhouse::{ClickHouse, SETTLE};
use common::{kv, now_ns, run_python, server_span, trace_request, Analyzer};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span, Status};
use prost::Message;
use serde_json::Value;

/// One export of `service` with one SERVER span numbered `n`.
fn export(service: &str, n: u64) -> Vec<u8> {
    let span = server_span(
        n,
        "GET /tail",
        now_ns(),
        2_000,
        vec![kv("http.route", "/tail")],
    );
    trace_request(vec![kv("service.name", service)], vec![span]).encode_to_vec()
}

/// POSTs an OTLP/HTTP protobuf export; the status.
fn post(url: &str, body: Vec<u8>) -> u16 {
    reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .map_or(0, |r| r.status().as_u16())
}

/// Every point ending since 0, sorted by span id.
fn all_points(analyzer: &Analyzer) -> Vec<Value> {
    let mut points = analyzer.points();
    points.sort_by(|a, b| a["span_id"].as_str().cmp(&b["span_id"].as_str()));
    points
}

#[test]
fn two_analyzers_on_one_clickhouse_answer_all_points_once() {
    let ch = ClickHouse::start();
    let url = ch.url("shared");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Analyzer::start(dir_a.path(), &["--clickhouse", &url]);
    let b = Analyzer::start(dir_b.path(), &["--clickhouse", &url]);

    // The Python SDK: half the spans to each analyzer, over gRPC and HTTP.
    let a_sent = run_python(
        "otel_python_sdk.py",
        &["grpc", &format!("http://{}", a.grpc), "py-a"],
    );
    let b_sent = run_python(
        "otel_python_sdk.py",
        &["http", &b.url("/v1/traces"), "py-b"],
    );
    let sent: BTreeSet<String> = [a_sent, b_sent]
        .iter()
        .flat_map(|out| {
            String::from_utf8(out.clone())
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .map(|l| {
            serde_json::from_str::<Value>(&l).unwrap()["span_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(sent.len(), 8);
    std::thread::sleep(SETTLE);

    let points_a = all_points(&a);
    let points_b = all_points(&b);
    let ids: Vec<String> = points_a
        .iter()
        .map(|p| p["span_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 8, "each point once: {ids:?}");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), sent);
    assert_eq!(points_a, points_b, "both analyzers answer the same points");

    // Statistics over all of them, the same from either.
    let stats = |an: &Analyzer| an.get("/api/v1/stats?from=0")["endpoints"].clone();
    let counted: u64 = stats(&a)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 8);
    assert_eq!(stats(&a), stats(&b));
    let since_start: u64 = b.get("/api/v1/stats")["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        since_start, 8,
        "since start counts what the other analyzer stored too"
    );

    // Each transaction in full, with the CLIENT span inside it, from either.
    for p in &points_a {
        let (from_a, from_b) = (a.detail(p), b.detail(p));
        assert_eq!(from_a, from_b);
        if p["endpoint"] == "/basket/{id}" {
            assert_eq!(from_a["children"].as_array().unwrap().len(), 1, "{from_a}");
        }
    }

    // Instances and JVM answers name both senders, the same from either.
    let instances = |an: &Analyzer| -> BTreeSet<String> {
        an.get("/api/v1/instances")["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["instance"].as_str().unwrap().to_string())
            .collect()
    };
    common::wait_until("both instances are listed", Duration::from_secs(10), || {
        let listed = instances(&a);
        (listed.len() == 2)
            .then_some(())
            .ok_or(format!("{listed:?}"))
    });
    assert_eq!(instances(&a), instances(&b));
    for instance in ["py-a", "py-b"] {
        let path = format!("/api/v1/jvm?from=0&instance={instance}");
        assert_eq!(a.get(&path), b.get(&path));
    }
}

#[test]
fn the_live_tail_through_either_analyzer_sees_each_point_once() {
    let ch = ClickHouse::start();
    let url = ch.url("tail");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Analyzer::start(dir_a.path(), &["--clickhouse", &url]);
    let b = Analyzer::start(dir_b.path(), &["--clickhouse", &url]);
    let sending = Arc::new(AtomicBool::new(true));
    const EACH: u64 = 60;
    let (url_a, url_b) = (a.url("/v1/traces"), b.url("/v1/traces"));
    let sender = std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            for n in 0..EACH {
                assert_eq!(post(&url_a, export("tail-a", 2 * n)), 200);
                assert_eq!(post(&url_b, export("tail-b", 2 * n + 1)), 200);
                std::thread::sleep(Duration::from_millis(20));
            }
            sending.store(false, Ordering::SeqCst);
        });
        // Tail through A and through B at once, as two viewers would.
        let mut seen: [BTreeMap<String, u32>; 2] = Default::default();
        let mut cursors = [String::from("0"), String::from("0")];
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut quiet_since: Option<Instant> = None;
        loop {
            for (i, an) in [&a, &b].into_iter().enumerate() {
                let page = an.get(&format!("/api/v1/xlog?from=0&limit=7&after={}", cursors[i]));
                for p in page["points"].as_array().unwrap() {
                    *seen[i]
                        .entry(p["span_id"].as_str().unwrap().to_string())
                        .or_default() += 1;
                }
                cursors[i] = page["cursor"].as_str().unwrap().to_string();
            }
            let done = seen.iter().all(|s| s.len() as u64 == 2 * EACH);
            if done && !sending.load(Ordering::SeqCst) {
                // A while more, to see nothing comes twice.
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() > SETTLE {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the tails saw {} and {} of {}",
                seen[0].len(),
                seen[1].len(),
                2 * EACH
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        sender.join().unwrap();
        seen
    });
    for seen in &sender {
        assert_eq!(seen.len() as u64, 2 * EACH);
        assert!(
            seen.values().all(|&c| c == 1),
            "a point came twice: {seen:?}"
        );
    }
    assert_eq!(sender[0], sender[1]);
}

#[test]
fn clickhouse_killed_during_a_load_loses_no_acknowledged_span() {
    let mut ch = ClickHouse::start();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &["--clickhouse", &ch.url("crash")]);
    let running = AtomicBool::new(true);
    let url = analyzer.url("/v1/traces");
    let (acked, refused) = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            let (mut acked, mut refused) = (Vec::new(), BTreeMap::<u16, u32>::new());
            let mut n = 0;
            while running.load(Ordering::SeqCst) {
                let status = post(&url, export("crash", n));
                if status == 200 {
                    acked.push(format!("{:016x}", n + 1));
                } else {
                    *refused.entry(status).or_default() += 1;
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            (acked, refused)
        });
        std::thread::sleep(Duration::from_secs(2));
        ch.kill();
        std::thread::sleep(Duration::from_secs(2));
        ch.restart();
        std::thread::sleep(Duration::from_secs(3));
        running.store(false, Ordering::SeqCst);
        load.join().unwrap()
    });
    assert!(
        refused.get(&503).is_some_and(|&c| c > 0),
        "refused meanwhile: {refused:?}"
    );
    assert!(refused.keys().all(|&s| s == 503 || s == 429), "{refused:?}");
    std::thread::sleep(SETTLE);
    let stored: BTreeSet<String> = analyzer
        .points()
        .iter()
        .map(|p| p["span_id"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged spans lost: {lost:?}",
        lost.len()
    );
    // It recovered by itself: spans acknowledged after the restart.
    let (status, _) = analyzer.request(
        "POST",
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        export("crash", 1_000_000),
    );
    assert_eq!(status, 200);
}

/// A span of trace `trace`, ids from numbers, ending `end_ns`.
fn span(trace: u64, id: u64, parent: u64, kind: SpanKind, name: &str, end_ns: u64) -> Span {
    Span {
        trace_id: [&[0x7a; 8][..], &trace.to_be_bytes()].concat(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: if parent == 0 {
            Vec::new()
        } else {
            parent.to_be_bytes().to_vec()
        },
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: end_ns - (1 + id % 7) * 3_000_000,
        end_time_unix_nano: end_ns,
        ..Default::default()
    }
}

/// The same exports for every store: `TRACES` traces in which `front`
/// serves a request, calls `back` (a CLIENT span inside its transaction)
/// and `back` serves it with a SQL call inside; one in five fails.
fn sharded_exports(base_ns: u64) -> Vec<Vec<u8>> {
    let (mut front, mut back) = (Vec::new(), Vec::new());
    for t in 0..TRACES {
        let end = base_ns + t * 10_000_000;
        let id = |k: u64| t * 10 + k;
        let mut root = span(t, id(1), 0, SpanKind::Server, "GET /orders", end);
        root.attributes = vec![kv("http.route", "/orders/{id}")];
        if t % 5 == 0 {
            root.status = Some(Status {
                code: StatusCode::Error as i32,
                ..Default::default()
            });
        }
        front.push(root);
        front.push(span(
            t,
            id(2),
            id(1),
            SpanKind::Client,
            "GET",
            end - 1_000_000,
        ));
        let mut served = span(
            t,
            id(3),
            id(2),
            SpanKind::Server,
            "GET /stock",
            end - 2_000_000,
        );
        served.attributes = vec![kv("http.route", "/stock")];
        back.push(served);
        back.push(span(
            t,
            id(4),
            id(3),
            SpanKind::Client,
            "SELECT",
            end - 3_000_000,
        ));
    }
    [("front", front), ("back", back)]
        .into_iter()
        .map(|(service, spans)| {
            let resource = vec![
                kv("service.name", service),
                kv("service.instance.id", &format!("{service}-1")),
            ];
            trace_request(resource, spans).encode_to_vec()
        })
        .collect()
}

const TRACES: u64 = 40;

/// What the viewer asks of `analyzer` about these traces: the XLog, the
/// statistics and transactions per second, each transaction with its
/// children, and each trace across services.
fn answers(analyzer: &Analyzer, base_ms: u64) -> Vec<Value> {
    let points = all_points(analyzer);
    let range = format!("from={}&to={}", base_ms - 60_000, base_ms + 10_000);
    let mut out = vec![
        Value::from(points.clone()),
        analyzer.get(&format!("/api/v1/stats?{range}")),
        analyzer.get(&format!("/api/v1/tps?{range}")),
    ];
    for p in &points {
        out.push(analyzer.detail(p));
        out.push(analyzer.get(&format!(
            "/api/v1/traces/{}?around={base_ms}",
            p["trace_id"].as_str().unwrap()
        )));
    }
    out
}

#[test]
fn two_shards_behind_distributed_tables_answer_as_one_server() {
    let one = ClickHouse::start();
    let shards = ClickHouse::two_shards("two");
    // Each shard's own tables, as 001_tables.sql has them: an analyzer
    // pointed at the shard's database `local` creates them.
    for shard in &shards {
        let dir = tempfile::tempdir().unwrap();
        Analyzer::start(dir.path(), &["--clickhouse", &shard.url("local")]).kill();
    }
    // On the first, the analyzers' database: Distributed tables of the
    // same names over both shards, traces kept whole on one.
    let entry = &shards[0];
    entry.query("CREATE DATABASE jvmapm");
    for (table, key) in [
        ("points", "cityHash64(trace_id)"),
        ("spans", "cityHash64(trace_id)"),
        ("jvm_metrics", "cityHash64(instance)"),
        ("jvm_events", "cityHash64(instance)"),
        ("instances", "cityHash64(instance)"),
    ] {
        entry.query(&format!(
            "CREATE TABLE jvmapm.{table} AS local.{table} \
             ENGINE = Distributed(two, local, {table}, {key})"
        ));
    }
    let (dir_one, dir_two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let single = Analyzer::start(dir_one.path(), &["--clickhouse", &one.url("jvmapm")]);
    let sharded = Analyzer::start(dir_two.path(), &["--clickhouse", &entry.url("jvmapm")]);

    let base_ns = now_ns() - 30_000_000_000;
    for body in sharded_exports(base_ns) {
        for analyzer in [&single, &sharded] {
            assert_eq!(post(&analyzer.url("/v1/traces"), body.clone()), 200);
        }
    }
    // Acknowledged means on the shards already (inserts are synchronous),
    // and the rows are spread over both.
    for (table, rows) in [("points", 2 * TRACES), ("spans", 4 * TRACES)] {
        let counts: Vec<u64> = shards
            .iter()
            .map(|s| {
                let sql = format!("SELECT count() FROM local.{table}");
                s.query(&sql).trim().parse().unwrap()
            })
            .collect();
        assert_eq!(counts.iter().sum::<u64>(), rows, "{table}: {counts:?}");
        assert!(counts.iter().all(|&c| c > 0), "{table}: {counts:?}");
    }
    std::thread::sleep(SETTLE);

    let base_ms = base_ns / 1_000_000;
    let expected = answers(&single, base_ms);
    assert_eq!(expected[0].as_array().unwrap().len() as u64, 2 * TRACES);
    let trace = &expected[4];
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(4), "{trace}");
    let got = answers(&sharded, base_ms);
    assert_eq!(got.len(), expected.len());
    for (i, (got, expected)) in got.iter().zip(&expected).enumerate() {
        assert!(
            got == expected,
            "answer {i}: {got}\n  one server: {expected}"
        );
    }
}
