//! A distributed trace across two services, sent over real OTLP sockets: the
//! caller `shop` (spans built here, OTLP/HTTP protobuf) serves `GET
//! /checkout`, calls `stock` (which answers with a SERVER span continuing
//! the trace and a SQL call inside it, sent by the official OpenTelemetry
//! Python SDK) and calls a closed port, which fails and is answered by
//! nobody; `stock` also serves an unrelated trace.

use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span, Status};
use prost::Message;
use serde_json::Value;

use super::{attr, kv, now_ns, run_python, trace_request, Analyzer};

const MS: u64 = 1_000_000;

/// The ids (hex) of what [`send`] sent.
pub struct TwoServices {
    pub trace: String,
    pub checkout: String,
    pub call_stock: String,
    pub call_closed: String,
    pub stock: String,
    pub sql: String,
    pub unrelated_trace: String,
    pub unrelated: String,
    /// When the checkout ended, Unix ms.
    pub end_ms: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends the two services' spans to `analyzer`; its three points are stored
/// when this returns.
pub fn send(analyzer: &Analyzer) -> TwoServices {
    let base = now_ns() - 10_000 * MS;
    let trace = [0x17; 16].to_vec();
    let (checkout, call_stock, call_closed) = ([0xa1; 8], [0xa2; 8], [0xa3; 8]);
    let span = |id: [u8; 8], parent: &[u8], name: &str, kind: SpanKind, from: u64, to: u64| Span {
        trace_id: trace.clone(),
        span_id: id.to_vec(),
        parent_span_id: parent.to_vec(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: base + from * MS,
        end_time_unix_nano: base + to * MS,
        ..Default::default()
    };
    let stock_port = 18_081;
    let to_stock = Span {
        attributes: vec![
            kv("http.request.method", "GET"),
            kv("url.full", &format!("http://127.0.0.1:{stock_port}/items")),
            kv("server.address", "127.0.0.1"),
            attr("server.port", Any::IntValue(stock_port)),
            attr("http.response.status_code", Any::IntValue(200)),
        ],
        ..span(call_stock, &checkout, "GET", SpanKind::Client, 10, 60)
    };
    let to_closed = Span {
        attributes: vec![
            kv("http.request.method", "GET"),
            kv("url.full", "http://127.0.0.1:9/"),
            kv("server.address", "127.0.0.1"),
            attr("server.port", Any::IntValue(9)),
            kv("error.type", "java.net.ConnectException"),
        ],
        status: Some(Status {
            code: StatusCode::Error as i32,
            message: "Connection refused".into(),
        }),
        ..span(call_closed, &checkout, "GET", SpanKind::Client, 70, 75)
    };
    let server = Span {
        attributes: vec![
            kv("http.request.method", "GET"),
            kv("http.route", "/checkout"),
            attr("http.response.status_code", Any::IntValue(200)),
            attr("jvmapm.http.count", Any::IntValue(2)),
            attr("jvmapm.http.time", Any::IntValue(55_000)),
        ],
        ..span(checkout, &[], "GET /checkout", SpanKind::Server, 0, 100)
    };
    let resource = vec![
        kv("service.name", "shop"),
        kv("service.instance.id", "shop-1"),
    ];
    let export = trace_request(resource, vec![to_stock, to_closed, server]);
    analyzer.post_traces(export.encode_to_vec());

    let traceparent = format!("00-{}-{}-01", hex(&trace), hex(&call_stock));
    let endpoint = analyzer.url("/v1/traces");
    let out = run_python(
        "otel_python_callee.py",
        &[&endpoint, &traceparent, &base.to_string()],
    );
    let ids: Value = serde_json::from_slice(&out).unwrap();
    let id = |key: &str| ids[key].as_str().unwrap().to_string();
    assert_eq!(
        analyzer.points().len(),
        3,
        "shop's, stock's and the unrelated one"
    );
    TwoServices {
        trace: hex(&trace),
        checkout: hex(&checkout),
        call_stock: hex(&call_stock),
        call_closed: hex(&call_closed),
        stock: id("server"),
        sql: id("sql"),
        unrelated_trace: id("unrelated_trace"),
        unrelated: id("unrelated"),
        end_ms: (base + 100 * MS) / MS,
    }
}
