//! Interop with a second OpenTelemetry implementation: spans sent by the
//! official Python SDK (gRPC exporter on grpcio, HTTP/protobuf exporter on
//! requests) become exactly the expected XLog points.

mod common;

use common::{run_python, Analyzer};
use serde_json::Value;
use std::collections::BTreeSet;

const FIELDS: [&str; 6] = [
    "trace_id",
    "span_id",
    "endpoint",
    "elapsed_us",
    "status_code",
    "error",
];

fn key(v: &Value) -> String {
    FIELDS
        .iter()
        .map(|f| v[f].to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn send_and_check(protocol: &str) {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let endpoint = match protocol {
        "grpc" => format!("http://{}", analyzer.grpc),
        _ => analyzer.url("/v1/traces"),
    };
    let instance = format!("py-{protocol}");
    let out = run_python("otel_python_sdk.py", &[protocol, &endpoint, &instance]);
    let expected: BTreeSet<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| key(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(expected.len(), 4);
    let points = analyzer.points();
    assert_eq!(points.len(), 4, "CLIENT children make no points");
    assert_eq!(points.iter().map(key).collect::<BTreeSet<_>>(), expected);
    assert!(points
        .iter()
        .all(|p| p["service"] == "python-shop" && p["instance"] == format!("py-{protocol}")));
}

#[test]
fn python_sdk_spans_over_grpc_become_the_expected_points() {
    send_and_check("grpc");
}

#[test]
fn python_sdk_spans_over_http_protobuf_become_the_expected_points() {
    send_and_check("http");
}
