//! Outgoing calls and distributed traces, end to end: a two-service trace
//! (one service's spans built here, the other's sent by the OpenTelemetry
//! Python SDK) arrives over real OTLP sockets at a real `jvmapm serve`;
//! `/api/v1/traces/ID` gives its tree across services, `/api/v1/servicemap`
//! counts exactly its calls and errors with the closed port's callee as
//! `host:port`, the points carry their outgoing totals, and the same
//! answers come offline from the data directory.

mod common;

use common::two_services::{self, TwoServices};
use common::Analyzer;
use jvmapm_analyzer::point::TraceId;
use jvmapm_analyzer::query::answers::{EdgeCalls, ServiceMap, Trace};
use jvmapm_tui::source::{Offline, Source};
use serde_json::Value;

/// `(service, name, parent's name, depth, error)` of each span of a trace.
fn shape(trace: &Value) -> Vec<(String, String, Option<String>, u64, bool)> {
    let spans = trace["spans"].as_array().unwrap();
    spans
        .iter()
        .map(|s| {
            let parent = s["parent"].as_u64().map(|p| {
                let p = &spans[p as usize];
                assert_eq!(p["span_id"], s["parent_span_id"], "the parent by its id");
                p["name"].as_str().unwrap().to_string()
            });
            (
                s["service"].as_str().unwrap().to_string(),
                s["name"].as_str().unwrap().to_string(),
                parent,
                s["depth"].as_u64().unwrap(),
                s["error"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn row(
    service: &str,
    name: &str,
    parent: Option<&str>,
    depth: u64,
    error: bool,
) -> (String, String, Option<String>, u64, bool) {
    (
        service.into(),
        name.into(),
        parent.map(String::from),
        depth,
        error,
    )
}

fn check_trace(trace: &Value, ids: &TwoServices) {
    assert_eq!(
        shape(trace),
        [
            row("shop", "GET /checkout", None, 0, false),
            row("shop", "GET", Some("GET /checkout"), 1, false),
            row("stock", "GET /items", Some("GET"), 2, false),
            row("stock", "SELECT items", Some("GET /items"), 3, false),
            row("shop", "GET", Some("GET /checkout"), 1, true),
        ],
        "{trace:#}"
    );
    let spans = trace["spans"].as_array().unwrap();
    let ids_in_order: Vec<&str> = spans
        .iter()
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids_in_order,
        [
            &ids.checkout,
            &ids.call_stock,
            &ids.stock,
            &ids.sql,
            &ids.call_closed
        ]
    );
    assert!(spans.iter().all(|s| s["parent_missing"] == false));
    assert_eq!(spans[0]["endpoint"], "/checkout", "a point");
    assert_eq!(spans[1]["endpoint"], Value::Null, "a span inside one");
    assert_eq!(spans[2]["kind"], "SPAN_KIND_SERVER");
    assert_eq!(
        spans[4]["attributes"]["error.type"],
        "java.net.ConnectException"
    );
    assert_eq!(
        spans[3]["attributes"]["db.query.text"],
        "SELECT * FROM items"
    );
    assert_eq!(
        (&trace["truncated"], &trace["unreadable"]),
        (&0.into(), &0.into())
    );
}

fn check_map(map: &Value) {
    let edges = map["edges"].as_array().unwrap();
    let edge = |callee: &str| {
        edges
            .iter()
            .find(|e| e["callee"] == callee)
            .unwrap_or_else(|| panic!("no edge to {callee}: {map:#}"))
    };
    assert_eq!(edges.len(), 2, "{map:#}");
    let stock = edge("stock");
    assert_eq!(stock["caller"], "shop");
    assert_eq!((&stock["calls"], &stock["errors"]), (&1.into(), &0.into()));
    assert_eq!(stock["callee_is_service"], true);
    assert_eq!(stock["p50_ms"], 50.0, "the CLIENT span's 50 ms");
    assert_eq!(stock["p99_ms"], 50.0);
    assert_eq!(stock["callee_p50_ms"], 30.0, "stock's own 30 ms");
    let closed = edge("127.0.0.1:9");
    assert_eq!(
        (&closed["calls"], &closed["errors"]),
        (&1.into(), &1.into())
    );
    assert_eq!(closed["callee_is_service"], false);
    assert_eq!(closed["callee_p50_ms"], Value::Null);
    assert_eq!(closed["p95_ms"], 5.0);
    assert_eq!(map["unresolved"], 1, "stock's SQL call names no address");
    assert_eq!((&map["transactions"], &map["read"]), (&3.into(), &3.into()));
}

#[test]
fn a_trace_across_two_services_is_one_tree_and_its_calls_make_the_service_map() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let ids = two_services::send(&analyzer);

    let trace = analyzer.get(&format!(
        "/api/v1/traces/{}?around={}",
        ids.trace, ids.end_ms
    ));
    check_trace(&trace, &ids);
    // Without a time, around now: the trace ended seconds ago.
    let around_now = analyzer.get(&format!("/api/v1/traces/{}", ids.trace));
    assert_eq!(around_now["spans"], trace["spans"]);
    let unrelated = analyzer.get(&format!("/api/v1/traces/{}", ids.unrelated_trace));
    assert_eq!(unrelated["spans"].as_array().unwrap().len(), 1);
    assert_eq!(unrelated["spans"][0]["span_id"], ids.unrelated.as_str());
    // Outside the window searched, nothing.
    let far = analyzer.get(&format!(
        "/api/v1/traces/{}?around=1000&within=0",
        ids.trace
    ));
    assert_eq!(far["spans"], serde_json::json!([]));

    let map = analyzer.get("/api/v1/servicemap?from=0");
    check_map(&map);
    let calls = analyzer.get("/api/v1/servicemap/calls?from=0&caller=shop&callee=stock");
    let points = calls["points"].as_array().unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["span_id"], ids.checkout.as_str());
    let closed = analyzer.get("/api/v1/servicemap/calls?from=0&caller=shop&callee=127.0.0.1:9");
    assert_eq!(closed["points"], calls["points"]);
    let none = analyzer.get("/api/v1/servicemap/calls?from=0&caller=stock&callee=shop");
    assert_eq!(none["points"], serde_json::json!([]));

    // The points' outgoing totals: integers are microseconds, doubles seconds.
    let points = analyzer.points();
    let point = |span: &str| {
        points
            .iter()
            .find(|p| p["span_id"] == span)
            .unwrap()
            .clone()
    };
    let checkout = point(&ids.checkout);
    assert_eq!(
        (&checkout["http_count"], &checkout["http_us"]),
        (&2.into(), &55_000.into())
    );
    let unrelated = point(&ids.unrelated);
    assert_eq!(
        (&unrelated["http_count"], &unrelated["http_us"]),
        (&1.into(), &12_500.into())
    );
    let stock = point(&ids.stock);
    assert_eq!(
        (&stock["http_count"], &stock["http_us"]),
        (&Value::Null, &Value::Null)
    );

    // Bad parameters are named.
    for (path, name) in [
        ("/api/v1/traces/xyz", "trace id"),
        (
            &format!("/api/v1/traces/{}?within=99999999999", ids.trace)[..],
            "within",
        ),
        ("/api/v1/servicemap?from=9&to=1", "range"),
        ("/api/v1/servicemap/calls?caller=shop", "callee"),
    ] {
        let (status, body) = analyzer.request("GET", path, &[], Vec::new());
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(name), "{path}: {body}");
    }

    // Offline, from the data directory: the same answers.
    let live_trace: Trace = serde_json::from_value(trace).unwrap();
    let live_map: ServiceMap = serde_json::from_value(map).unwrap();
    let live_calls: EdgeCalls = serde_json::from_value(calls).unwrap();
    analyzer.stop();
    let mut offline = Offline::open(dir.path()).unwrap();
    let trace_id: TraceId = ids.trace.parse().unwrap();
    assert_eq!(offline.trace(trace_id, ids.end_ms).unwrap(), live_trace);
    let map = offline.service_map(0, u64::MAX / 2).unwrap();
    assert_eq!(
        (map.edges, map.unresolved),
        (live_map.edges, live_map.unresolved)
    );
    let calls = offline
        .edge_calls(0, u64::MAX / 2, "shop", "stock")
        .unwrap();
    assert_eq!(calls, live_calls);
}
