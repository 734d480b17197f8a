//! Statistics and JVM data through the query API: percentiles from
//! `/api/v1/stats` match those computed from the sent durations within HDR
//! precision (from the live meters and, after a restart, from the store), TPS
//! is over the time the points cover, and JVM metrics and GC pause events come
//! back per instance from `/api/v1/jvm`.

mod common;

use common::{kv, now_ns, server_span as span, trace_request, Analyzer};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};
use prost::Message;
use serde_json::Value;

const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", "billing"),
            kv("service.instance.id", "billing-7"),
        ],
        ..Default::default()
    })
}

fn traces(spans: Vec<Span>) -> Vec<u8> {
    trace_request(resource().unwrap().attributes, spans).encode_to_vec()
}

fn traces_from(instance: &str, spans: Vec<Span>) -> Vec<u8> {
    let resource = vec![
        kv("service.name", "billing"),
        kv("service.instance.id", instance),
    ];
    trace_request(resource, spans).encode_to_vec()
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1] as f64
}

fn assert_close(got_ms: f64, exact_us: f64, what: &str) {
    let exact_ms = exact_us / 1000.0;
    assert!(
        (got_ms - exact_ms).abs() <= exact_ms * 0.01 + 0.001,
        "{what}: got {got_ms} ms, exact {exact_ms} ms"
    );
}

fn check_rows(stats: &Value, durations: &[(String, Vec<u64>)]) {
    let rows = stats["endpoints"].as_array().unwrap();
    assert_eq!(rows.len(), durations.len(), "{stats}");
    for (route, values) in durations {
        let row = rows
            .iter()
            .find(|r| r["endpoint"] == route.as_str())
            .unwrap();
        let mut sorted = values.clone();
        sorted.sort_unstable();
        assert_eq!(row["count"], sorted.len() as u64);
        assert_eq!(row["service"], "billing");
        for (field, q) in [
            ("p50_ms", 0.5),
            ("p90_ms", 0.9),
            ("p95_ms", 0.95),
            ("p99_ms", 0.99),
        ] {
            assert_close(
                row[field].as_f64().unwrap(),
                percentile(&sorted, q),
                &format!("{route} {field}"),
            );
        }
        assert_close(
            row["max_ms"].as_f64().unwrap(),
            *sorted.last().unwrap() as f64,
            "max",
        );
    }
}

#[test]
fn percentiles_match_the_sent_durations_within_hdr_precision() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let end = now_ns() - 2_000_000_000;
    // Deterministic pseudo-random durations from 200 us to about 4 s, skewed short.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut durations = vec![
        ("/invoices".to_string(), Vec::new()),
        ("/refunds".to_string(), Vec::new()),
    ];
    let mut n = 0;
    for _ in 0..4 {
        let mut spans = Vec::new();
        for _ in 0..1000 {
            let which = (next() % 3 == 0) as usize;
            let r = next() % 10_000;
            let elapsed_us = 200 + r * r / 25;
            durations[which].1.push(elapsed_us);
            spans.push(span(n, &durations[which].0, end, elapsed_us, vec![]));
            n += 1;
        }
        let (status, _) = analyzer.request("POST", "/v1/traces", &[PROTOBUF], traces(spans));
        assert_eq!(status, 200);
    }
    // Since start, from the live minute windows, and (after a restart) from the store.
    check_rows(&analyzer.get("/api/v1/stats"), &durations);
    let end_ms = end / 1_000_000;
    let window = format!("/api/v1/stats?from={}&to={}", end_ms - 1000, end_ms + 1000);
    check_rows(&analyzer.get(&window), &durations);
    analyzer.stop();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let stats = analyzer.get(&window);
    check_rows(&stats, &durations);
    let tps = stats["endpoints"][0]["tps"].as_f64().unwrap();
    assert!(tps > 0.0, "{stats}");
}

#[test]
fn tps_is_the_count_over_the_time_the_points_cover() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    // 1001 points ending over exactly 10 s from now (ends ahead of the clock
    // are accepted), so the live minute windows hold them as the store does.
    let first_ms = now_ns() / 1_000_000;
    let spans = (0..=1000u64)
        .map(|n| {
            let end_ns = (first_ms + n * 10) * 1_000_000;
            span(n, "/quote", end_ns, 2_000, vec![])
        })
        .collect();
    analyzer.post_traces(traces(spans));
    let from_store = "/api/v1/stats?from=0".to_string();
    let since_start = "/api/v1/stats".to_string();
    let from_live_windows = format!("/api/v1/stats?from={first_ms}");
    for path in [from_store, since_start, from_live_windows] {
        let stats = analyzer.get(&path);
        let row = &stats["endpoints"][0];
        assert_eq!(row["count"], 1001, "{path}: {stats}");
        let tps = row["tps"].as_f64().unwrap();
        assert!(
            (tps - 100.1).abs() < 0.01,
            "{path}: tps {tps}, not 1001 / 10 s"
        );
    }
}

fn number(t: u64, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

#[test]
fn jvm_metrics_and_gc_pauses_come_back_per_instance() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let start = now_ns();
    let t = |i: u64| start + i * 1_000_000_000;
    let eden = vec![
        kv("jvm.memory.pool.name", "G1 Eden Space"),
        kv("jvm.memory.type", "heap"),
    ];
    let metric = |name: &str, data: Data| Metric {
        name: name.into(),
        data: Some(data),
        ..Default::default()
    };
    for i in 0..3u64 {
        let pending = [10.0, 50.0, 200.0][i as usize];
        let cpu = [1.0, 1.5, 2.5][i as usize];
        let metrics = vec![
            metric(
                "jvm.finalizer.pending",
                Data::Gauge(Gauge {
                    data_points: vec![number(t(i), pending)],
                }),
            ),
            metric(
                "jvm.memory.used",
                Data::Sum(Sum {
                    data_points: vec![NumberDataPoint {
                        attributes: eden.clone(),
                        ..number(t(i), 1e6 * (i + 1) as f64)
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: false,
                }),
            ),
            metric(
                "jvm.cpu.time",
                Data::Sum(Sum {
                    data_points: vec![NumberDataPoint {
                        start_time_unix_nano: start,
                        ..number(t(i), cpu)
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
            ),
            metric(
                "jvm.gc.duration",
                Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        attributes: vec![kv("jvm.gc.name", "G1 Young Generation")],
                        start_time_unix_nano: start,
                        time_unix_nano: t(i),
                        count: [3, 5, 5][i as usize],
                        sum: Some([0.03, 0.05, 0.05][i as usize]),
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            ),
            metric(
                "http.server.active_requests",
                Data::Gauge(Gauge {
                    data_points: vec![number(t(i), 4.0)],
                }),
            ),
        ];
        let body = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let (status, reply) = analyzer.request("POST", "/v1/metrics", &[PROTOBUF], body);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    }
    // Two GC pauses and a heap dump, sent as spans marked as JVM events, and one transaction.
    let event = |n: u64, kind: &str, gc: &str, ms: u64| {
        let mut s = span(
            n,
            "GC pause",
            t(1),
            ms * 1000,
            vec![
                kv("jvmapm.event", kind),
                kv("jvm.gc.name", gc),
                kv("jvm.gc.action", "end of minor GC"),
            ],
        );
        s.kind = SpanKind::Internal as i32;
        s
    };
    let spans = vec![
        event(1, "gc.pause", "G1 Young Generation", 12),
        event(2, "gc.pause", "G1 Old Generation", 230),
        event(3, "heapdump", "", 900),
        span(4, "/pay", t(2), 5000, vec![]),
    ];
    let (status, _) = analyzer.request("POST", "/v1/traces", &[PROTOBUF], traces(spans));
    assert_eq!(status, 200);

    let jvm = analyzer.get("/api/v1/jvm?instance=billing-7&from=0");
    let series = &jvm["series"];
    let values = |key: &str| -> Vec<f64> {
        series[key]
            .as_array()
            .unwrap_or_else(|| panic!("no series {key} in {series}"))
            .iter()
            .map(|p| p[1].as_f64().unwrap())
            .collect()
    };
    assert_eq!(values("jvm.finalizer.pending"), [10.0, 50.0, 200.0]);
    assert_eq!(
        values("jvm.memory.used{jvm.memory.pool.name=G1 Eden Space,jvm.memory.type=heap}"),
        [1e6, 2e6, 3e6]
    );
    assert_eq!(
        values("jvm.cpu.time"),
        [1.0, 0.5, 1.0],
        "cumulative turned into deltas"
    );
    assert_eq!(
        values("jvm.gc.duration.count{jvm.gc.name=G1 Young Generation}"),
        [3.0, 2.0, 0.0]
    );
    assert!(
        series.get("http.server.active_requests").is_none(),
        "only JVM series are kept"
    );
    assert_eq!(series["jvm.finalizer.pending"][2][0], t(2) / 1_000_000);

    let pauses = jvm["gc_pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 2);
    // In start order: the long old-generation pause began first.
    assert_eq!(pauses[0]["gc_name"], "G1 Old Generation");
    assert_eq!(pauses[0]["duration_ms"], 230.0);
    assert_eq!(pauses[1]["gc_name"], "G1 Young Generation");
    assert_eq!(pauses[1]["start_ms"], (t(1) - 12_000_000) / 1_000_000);
    assert_eq!(jvm["events"].as_array().unwrap().len(), 1);
    assert_eq!(jvm["events"][0]["kind"], "heapdump");
    // Events are not transactions: only /pay is an XLog point.
    let points = analyzer.points();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["endpoint"], "/pay");

    // An instance that only sends JVM events is listed too.
    let gc_only = traces_from(
        "gc-only",
        vec![event(9, "gc.pause", "G1 Young Generation", 3)],
    );
    analyzer.post_traces(gc_only);
    let instances = analyzer.get("/api/v1/instances");
    let listed: Vec<&str> = instances["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["billing-7", "gc-only"]);

    // Another instance has none of it; a missing instance is a clear 400.
    let other = analyzer.get("/api/v1/jvm?instance=nobody&from=0");
    assert_eq!(other["series"], serde_json::json!({}));
    let (status, body) = analyzer.request("GET", "/api/v1/jvm", &[], Vec::new());
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("instance is required"));
}
