//! The query API as a viewer uses it: a live tail that follows the cursor,
//! filters by service and endpoint glob, errors and elapsed range, pages by
//! limit; and OTLP/JSON sent by a real JVM (a Java fixture) arriving as
//! points. Each runs against both stores: a data directory and ClickHouse.

mod common;

use std::collections::BTreeSet;

use common::clickhouse::TestStore;
use common::{attr, kv, now_ns, run_java, server_span, trace_request, JvmTurn};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use serde_json::Value;

/// One export from `service` with spans `(n, route, elapsed_ms, status)`.
fn export(service: &str, spans: &[(u64, &str, u64, i64)]) -> Vec<u8> {
    let end = now_ns();
    let spans = spans
        .iter()
        .map(|&(n, route, elapsed_ms, status)| {
            let attributes = vec![
                kv("http.route", route),
                attr(
                    "http.response.status_code",
                    any_value::Value::IntValue(status),
                ),
            ];
            server_span(
                n,
                &format!("GET {route}"),
                end,
                elapsed_ms * 1000,
                attributes,
            )
        })
        .collect();
    trace_request(vec![kv("service.name", service)], spans).encode_to_vec()
}

fn ids(page: &Value) -> Vec<u64> {
    page["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| u64::from_str_radix(p["span_id"].as_str().unwrap(), 16).unwrap() - 1)
        .collect()
}

fn the_cursor_returns_only_newer_points(store: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = store.analyzer(dir.path());
    analyzer.post_traces(export("web", &[(0, "/a", 5, 200), (1, "/b", 6, 200)]));
    store.settle();
    let first = analyzer.get("/api/v1/xlog");
    assert_eq!(ids(&first), [0, 1]);
    let cursor = first["cursor"].as_str().unwrap().to_string();
    // Nothing new yet: an empty page, the same cursor (on ClickHouse, one
    // that moved on with the settled time, never back).
    let idle = analyzer.get(&format!("/api/v1/xlog?after={cursor}"));
    assert_eq!(ids(&idle), Vec::<u64>::new());
    match store {
        TestStore::Local => assert_eq!(idle["cursor"], cursor.as_str()),
        TestStore::ClickHouse(_) => {
            let number = |c: &Value| c.as_str().unwrap().parse::<u64>().unwrap();
            assert!(number(&idle["cursor"]) >= number(&first["cursor"]));
        }
    }
    analyzer.post_traces(export("web", &[(2, "/a", 7, 200)]));
    analyzer.post_traces(export("web", &[(3, "/c", 8, 200)]));
    store.settle();
    let next = analyzer.get(&format!("/api/v1/xlog?after={cursor}"));
    assert_eq!(ids(&next), [2, 3]);

    // Pages by limit walk through everything exactly once.
    let mut seen = Vec::new();
    let mut after = String::from("0");
    loop {
        let page = analyzer.get(&format!("/api/v1/xlog?from=0&limit=3&after={after}"));
        let got = ids(&page);
        if got.is_empty() {
            break;
        }
        seen.extend(got);
        after = page["cursor"].as_str().unwrap().to_string();
    }
    assert_eq!(seen, [0, 1, 2, 3]);
}

fn filters_select_by_glob_errors_and_elapsed(store: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = store.analyzer(dir.path());
    analyzer.post_traces(export(
        "orders-api",
        &[
            (0, "/orders/{id}", 5, 200),
            (1, "/orders/{id}", 900, 503),
            (2, "/health", 1, 200),
        ],
    ));
    analyzer.post_traces(export(
        "billing",
        &[(3, "/invoices", 40, 500), (4, "/orders/export", 2500, 200)],
    ));
    store.settle();
    let query = |q: &str| -> BTreeSet<u64> {
        ids(&analyzer.get(&format!("/api/v1/xlog?from=0&{q}")))
            .into_iter()
            .collect()
    };
    assert_eq!(query("service=orders-*"), BTreeSet::from([0, 1, 2]));
    assert_eq!(query("endpoint=/orders/*"), BTreeSet::from([0, 1, 4]));
    assert_eq!(query("errors=true"), BTreeSet::from([1, 3]));
    assert_eq!(query("min_ms=30&max_ms=1000"), BTreeSet::from([1, 3]));
    assert_eq!(query("service=billing&errors=true"), BTreeSet::from([3]));
    assert_eq!(query("to=1000"), BTreeSet::new());

    let (status, body) = analyzer.request("GET", "/api/v1/xlog?min_ms=fast", &[], Vec::new());
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("min_ms"),
        "the error names the parameter"
    );
}

fn otlp_json_from_a_real_jvm_becomes_points(store: TestStore) {
    let _jvms = JvmTurn::shared();
    let dir = tempfile::tempdir().unwrap();
    let analyzer = store.analyzer(dir.path());
    let out = run_java("OtlpJsonSender", &[&analyzer.url("/v1/traces"), "8"]);
    let sent: Vec<(String, u64, u64)> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[1].to_string(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(sent.len(), 8);
    store.settle();
    let points = analyzer.points();
    assert_eq!(points.len(), 8);
    for (span_id, elapsed_us, status) in sent {
        let p = points
            .iter()
            .find(|p| p["span_id"] == span_id.as_str())
            .unwrap();
        assert_eq!(p["service"], "java-json");
        assert_eq!(p["endpoint"], "/java/{n}");
        assert_eq!(p["elapsed_us"], elapsed_us);
        assert_eq!(p["status_code"], status);
        assert_eq!(p["error"], status >= 500);
        assert_eq!(
            p["instance"].as_str().unwrap().split(':').next(),
            Some("fixture-host")
        );
    }
    let instances = analyzer.get("/api/v1/instances");
    let runtime = &instances["instances"][0]["attributes"]["process.runtime.version"];
    assert!(
        runtime
            .as_str()
            .unwrap()
            .starts_with(|c: char| c.is_ascii_digit()),
        "{instances}"
    );
}

/// Each test above, once on a data directory and once on ClickHouse.
macro_rules! on_both_stores {
    ($($test:ident),*) => {
        mod local {
            $(#[test]
            fn $test() {
                super::$test(super::TestStore::Local);
            })*
        }
        mod clickhouse {
            $(#[test]
            fn $test() {
                super::$test(super::TestStore::clickhouse());
            })*
        }
    };
}

on_both_stores!(
    the_cursor_returns_only_newer_points,
    filters_select_by_glob_errors_and_elapsed,
    otlp_json_from_a_real_jvm_becomes_points
);
