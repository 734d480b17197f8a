//! Spans sent by the official Rust OpenTelemetry SDK (opentelemetry-otlp) over
//! gRPC and over HTTP/protobuf become exactly the expected XLog points.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use common::Analyzer;
use opentelemetry::trace::{
    Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer, TracerProvider,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde_json::Value;

/// What a test expects of one point.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    endpoint: String,
    elapsed_us: u64,
    /// `None`: no HTTP status, `null` in the API.
    status_code: Option<u64>,
    error: bool,
    trace_id: String,
    span_id: String,
    cpu_us: Option<u64>,
    sql_count: Option<u64>,
}

fn got(points: &[Value]) -> BTreeSet<Expected> {
    points
        .iter()
        .map(|p| Expected {
            endpoint: p["endpoint"].as_str().unwrap().to_string(),
            elapsed_us: p["elapsed_us"].as_u64().unwrap(),
            status_code: match &p["status_code"] {
                Value::Null => None,
                code => Some(code.as_u64().unwrap()),
            },
            error: p["error"].as_bool().unwrap(),
            trace_id: p["trace_id"].as_str().unwrap().to_string(),
            span_id: p["span_id"].as_str().unwrap().to_string(),
            cpu_us: p["cpu_us"].as_u64(),
            sql_count: p["sql_count"].as_u64(),
        })
        .collect()
}

/// Sends a mix of spans through `provider` and returns the points they must make:
/// SERVER spans (ok, 500, one without a route, a thrown error), a root
/// INTERNAL span (a batch job), a CONSUMER child; CLIENT and INTERNAL children
/// make no point but are kept with their transaction.
fn send_scenario(provider: &SdkTracerProvider) -> BTreeSet<Expected> {
    let tracer = provider.tracer("jvmapm-test");
    let base = SystemTime::now() - Duration::from_secs(5);
    let mut expected = BTreeSet::new();
    let mut expect = |span: &opentelemetry_sdk::trace::Span,
                      endpoint: &str,
                      elapsed_ms: u64,
                      status: Option<u64>,
                      error: bool,
                      cpu: Option<u64>,
                      sql: Option<u64>| {
        let sc = span.span_context();
        expected.insert(Expected {
            endpoint: endpoint.into(),
            elapsed_us: elapsed_ms * 1000,
            status_code: status,
            error,
            trace_id: sc.trace_id().to_string(),
            span_id: sc.span_id().to_string(),
            cpu_us: cpu,
            sql_count: sql,
        });
    };
    for (i, (status, elapsed_ms)) in [(200, 12u64), (200, 40), (500, 7), (404, 3)]
        .into_iter()
        .enumerate()
    {
        let start = base + Duration::from_millis(i as u64 * 100);
        let mut span = tracer
            .span_builder("GET /orders/{id}")
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/orders/{id}"),
                KeyValue::new("url.path", format!("/orders/{i}")),
                KeyValue::new("http.response.status_code", status as i64),
                KeyValue::new("jvmapm.cpu.time", 900_i64),
                KeyValue::new("jvmapm.sql.count", 2_i64),
                KeyValue::new("jvmapm.sql.time", 0.0015),
            ])
            .start(&tracer);
        expect(
            &span,
            "/orders/{id}",
            elapsed_ms,
            Some(status),
            status >= 500,
            Some(900),
            Some(2),
        );
        // Children inside the transaction make no points: an internal step,
        // and a SQL call inside that step, each exported before the
        // transaction ends.
        let cx = Context::current().with_remote_span_context(span.span_context().clone());
        let mut step = tracer
            .span_builder("load order")
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .start_with_context(&tracer, &cx);
        let cx = Context::current().with_remote_span_context(step.span_context().clone());
        let mut sql = tracer
            .span_builder("SELECT orders")
            .with_kind(SpanKind::Client)
            .with_start_time(start + Duration::from_millis(1))
            .with_attributes([KeyValue::new(
                "db.query.text",
                "SELECT * FROM orders WHERE id = ?",
            )])
            .start_with_context(&tracer, &cx);
        sql.end_with_timestamp(start + Duration::from_millis(2));
        step.end_with_timestamp(start + Duration::from_millis(2));
        span.end_with_timestamp(start + Duration::from_millis(elapsed_ms));
    }
    // A request without a route, named by method and target as SDKs do: its
    // endpoint is the target, as the routed spans' endpoints are routes.
    let start = base + Duration::from_millis(500);
    let mut unrouted = tracer
        .span_builder("GET /command/core/get-version")
        .with_kind(SpanKind::Server)
        .with_start_time(start)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 200_i64),
        ])
        .start(&tracer);
    expect(
        &unrouted,
        "/command/core/get-version",
        9,
        Some(200),
        false,
        None,
        None,
    );
    unrouted.end_with_timestamp(start + Duration::from_millis(9));
    // A handler that threw: status Error without an HTTP status.
    let start = base + Duration::from_millis(600);
    let mut thrown = tracer
        .span_builder("POST /pay")
        .with_kind(SpanKind::Server)
        .with_start_time(start)
        .start(&tracer);
    thrown.set_status(Status::error("java.lang.IllegalStateException"));
    expect(&thrown, "POST /pay", 25, None, true, None, None);
    thrown.end_with_timestamp(start + Duration::from_millis(25));
    // A batch job: a root span of kind INTERNAL, named by its method.
    let mut job = tracer
        .span_builder("com.acme.Batch#run")
        .with_start_time(start)
        .start(&tracer);
    expect(&job, "com.acme.Batch#run", 1500, None, false, None, None);
    job.end_with_timestamp(start + Duration::from_millis(1500));
    // A message consumer continuing a producer's trace: a point although it has a parent.
    let producer = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = Context::current().with_remote_span_context(producer);
    let mut consumer = tracer
        .span_builder("orders process")
        .with_kind(SpanKind::Consumer)
        .with_start_time(start)
        .start_with_context(&tracer, &cx);
    expect(&consumer, "orders process", 30, None, false, None, None);
    consumer.end_with_timestamp(start + Duration::from_millis(30));
    expected
}

fn resource(instance: &str) -> Resource {
    Resource::builder()
        .with_service_name("orders")
        .with_attribute(KeyValue::new("service.instance.id", instance.to_string()))
        .with_attribute(KeyValue::new("host.name", "test-host"))
        .build()
}

fn check(analyzer: &Analyzer, expected: BTreeSet<Expected>, instance: &str) {
    let points = analyzer.points();
    assert_eq!(
        points.len(),
        expected.len(),
        "one point per transaction, no more"
    );
    assert_eq!(got(&points), expected);
    for p in &points {
        assert_eq!(p["service"], "orders");
        assert_eq!(p["instance"], instance);
    }
    // The transaction detail has every attribute.
    let server = points.iter().find(|p| p["status_code"] == 500).unwrap();
    let detail = analyzer.get(&format!(
        "/api/v1/transactions/{}/{}",
        server["trace_id"].as_str().unwrap(),
        server["span_id"].as_str().unwrap()
    ));
    assert_eq!(detail["attributes"]["url.path"], "/orders/2");
    assert_eq!(detail["attributes"]["http.request.method"], "GET");
    assert_eq!(detail["resource"]["host.name"], "test-host");
    assert_eq!(detail["kind"], "SPAN_KIND_SERVER");
    assert_eq!(detail["sql_us"], 1500);
    // Its children, in the order they started, as a tree by their ids.
    let children = detail["children"].as_array().unwrap();
    let names: Vec<&str> = children
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["load order", "SELECT orders"], "{detail:#}");
    assert_eq!(children[0]["parent_span_id"], server["span_id"]);
    assert_eq!(children[1]["parent_span_id"], children[0]["span_id"]);
    assert_eq!(children[1]["kind"], "SPAN_KIND_CLIENT");
    assert_eq!(
        children[1]["attributes"]["db.query.text"],
        "SELECT * FROM orders WHERE id = ?"
    );
    let instances = analyzer.get("/api/v1/instances");
    assert_eq!(instances["instances"][0]["instance"], instance);
    assert_eq!(
        instances["instances"][0]["attributes"]["host.name"],
        "test-host"
    );
}

#[test]
fn sdk_spans_over_grpc_become_exactly_the_expected_points() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let endpoint = format!("http://{}", analyzer.grpc);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let expected = runtime.block_on(async move {
        tokio::task::spawn_blocking(move || {
            let exporter = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .unwrap();
            let provider = SdkTracerProvider::builder()
                .with_resource(resource("grpc-1"))
                .with_simple_exporter(exporter)
                .build();
            let expected = send_scenario(&provider);
            provider.force_flush().unwrap();
            provider.shutdown().unwrap();
            expected
        })
        .await
        .unwrap()
    });
    check(&analyzer, expected, "grpc-1");
}

#[test]
fn sdk_spans_over_http_protobuf_become_exactly_the_expected_points() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let endpoint = analyzer.url("/v1/traces");
    // With the workspace's features the SDK's HTTP client is reqwest's async
    // one, which needs a Tokio runtime around it, as in a user's service.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource("http-1"))
        .with_simple_exporter(exporter)
        .build();
    let expected = send_scenario(&provider);
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();
    check(&analyzer, expected, "http-1");
}
