//! OTLP/HTTP and gRPC edge cases on real sockets: JSON and gzip bodies are
//! accepted; malformed, mistyped, oversized and gzip-bomb bodies get the
//! specified status codes and the server keeps serving; rejected spans are
//! reported as partial success; a bearer token guards every request.

mod common;

use std::io::Write;

use common::{kv, now_ns, trace_request, Analyzer};
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");

/// A SERVER span with ids derived from `n`, ending now after `elapsed_ms`.
fn server_span(n: u64, elapsed_ms: u64) -> Span {
    common::server_span(
        n,
        "GET /items",
        now_ns(),
        elapsed_ms * 1000,
        vec![kv("http.route", "/items")],
    )
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    trace_request(
        vec![
            kv("service.name", "shop"),
            kv("service.instance.id", "shop-1"),
        ],
        spans,
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn json_and_gzip_bodies_are_accepted_and_bad_bodies_get_their_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &["--max-body", "1048576"]);
    let post = |headers: &[(&str, &str)], body: Vec<u8>| {
        analyzer.request("POST", "/v1/traces", headers, body)
    };

    // OTLP/JSON as the specification spells it: hex ids, enum numbers, int64 as strings.
    let end = now_ns();
    let body = json!({"resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
    "scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "name": "GET /cart", "kind": 2,
        "startTimeUnixNano": (end - 8_000_000).to_string(), "endTimeUnixNano": end.to_string(),
        "attributes": [{"key": "http.response.status_code", "value": {"intValue": "502"}}],
    }]}]}]});
    let (status, reply) = post(
        &[("content-type", "application/json")],
        serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert!(
        reply["partialSuccess"].is_null(),
        "nothing rejected: {reply}"
    );

    // A gzip protobuf body.
    let (status, _) = post(
        &[PROTOBUF, ("content-encoding", "gzip")],
        gzip(&request(vec![server_span(1, 20)]).encode_to_vec()),
    );
    assert_eq!(status, 200);

    // Malformed protobuf, malformed JSON, broken gzip.
    assert_eq!(
        post(&[PROTOBUF], vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 1]).0,
        400
    );
    assert_eq!(
        post(
            &[("content-type", "application/json")],
            b"{\"resourceSpans\": [".to_vec()
        )
        .0,
        400
    );
    assert_eq!(
        post(
            &[PROTOBUF, ("content-encoding", "gzip")],
            b"not gzip at all".to_vec()
        )
        .0,
        400
    );
    // Wrong content type or encoding.
    assert_eq!(
        post(&[("content-type", "text/plain")], b"hello".to_vec()).0,
        415
    );
    assert_eq!(
        post(&[PROTOBUF, ("content-encoding", "br")], b"x".to_vec()).0,
        415
    );
    // Over the limit as sent, and over the limit once inflated (a gzip bomb of 64 MiB of zeros).
    assert_eq!(post(&[PROTOBUF], vec![0u8; 2 << 20]).0, 413);
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    assert_eq!(post(&[PROTOBUF, ("content-encoding", "gzip")], bomb).0, 413);
    // Unknown path.
    assert_eq!(
        analyzer.request("GET", "/v2/nothing", &[], Vec::new()).0,
        404
    );

    // Still serving, and only the two good exports made points.
    let (status, _) = post(
        &[PROTOBUF],
        request(vec![server_span(2, 5)]).encode_to_vec(),
    );
    assert_eq!(status, 200);
    let points = analyzer.points();
    assert_eq!(points.len(), 3);
    let cart = points
        .iter()
        .find(|p| p["endpoint"] == "GET /cart")
        .unwrap();
    assert_eq!(cart["status_code"], 502);
    assert_eq!(cart["error"], true);
    assert_eq!(cart["elapsed_us"], 8000);
}

#[test]
fn invalid_spans_are_rejected_as_partial_success() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    let mut zero_trace = server_span(1, 5);
    zero_trace.trace_id = vec![0; 16];
    let mut short_span = server_span(2, 5);
    short_span.span_id = vec![1, 2, 3];
    let mut backwards = server_span(3, 5);
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    let mut far_future = server_span(5, 5);
    far_future.end_time_unix_nano += 3 * 86_400 * 1_000_000_000;
    let good = server_span(4, 5);
    let partial = analyzer.post_traces_partly(
        request(vec![zero_trace, short_span, backwards, far_future, good]).encode_to_vec(),
    );
    assert_eq!(partial.rejected_spans, 4);
    assert!(
        partial.error_message.contains("invalid trace id"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains("invalid span id"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains(
            "2 span(s) with an end time missing, before the start time, or more than a day ahead"
        ),
        "{}",
        partial.error_message
    );
    assert_eq!(analyzer.points().len(), 1);
}

#[test]
fn a_bearer_token_guards_grpc_http_and_the_query_api() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &["--token", "s3cret"]);
    let body = request(vec![server_span(1, 5)]).encode_to_vec();
    let wrong = ("authorization", "Bearer nope");
    assert_eq!(
        analyzer
            .request("POST", "/v1/traces", &[PROTOBUF, wrong], body.clone())
            .0,
        401
    );
    assert_eq!(
        analyzer
            .request("GET", "/api/v1/xlog", &[wrong], Vec::new())
            .0,
        401
    );
    assert_eq!(
        analyzer.request("POST", "/v1/traces", &[PROTOBUF], body).0,
        200
    );

    let endpoint = format!("http://{}", analyzer.grpc);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (denied, allowed) = runtime.block_on(async {
        let mut client = TraceServiceClient::connect(endpoint).await.unwrap();
        let denied = client
            .export(request(vec![server_span(2, 5)]))
            .await
            .unwrap_err();
        let mut with_token = tonic::Request::new(request(vec![server_span(3, 5)]));
        with_token
            .metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().unwrap());
        (denied, client.export(with_token).await)
    });
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    assert!(allowed.is_ok(), "{allowed:?}");
    assert_eq!(analyzer.points().len(), 2);
}

#[test]
fn grpc_refuses_a_gzip_bomb_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &["--max-body", "1048576"]);
    let endpoint = format!("http://{}", analyzer.grpc);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = TraceServiceClient::connect(endpoint)
            .await
            .unwrap()
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .max_encoding_message_size(usize::MAX);
        // 20k spans with a 1 KiB attribute each: about 20 MiB raw, tiny compressed.
        let mut spans: Vec<Span> = (0..20_000).map(|n| server_span(n, 1)).collect();
        for s in &mut spans {
            s.attributes.push(kv("padding", &"x".repeat(1024)));
        }
        let status = client.export(request(spans)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        client
            .export(request(vec![server_span(1, 5)]))
            .await
            .unwrap();
    });
    assert_eq!(analyzer.points().len(), 1);
}

/// Breaks the UTF-8 of the last occurrence of `marker` in `bytes`.
fn break_utf8(bytes: &mut [u8], marker: &[u8]) {
    let at = bytes
        .windows(marker.len())
        .rposition(|w| w == marker)
        .expect("marker present");
    bytes[at] = 0xff;
}

#[test]
fn invalid_utf8_is_refused_where_read_and_reported_in_the_detail_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::start(dir.path(), &[]);
    // In the route (after the span name in the encoding), which makes the endpoint: refused.
    let mut body = request(vec![server_span(1, 5)]).encode_to_vec();
    break_utf8(&mut body, b"/items");
    let (status, reply) = analyzer.request("POST", "/v1/traces", &[PROTOBUF], body);
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&reply).contains("not valid UTF-8"));
    // In an attribute the XLog does not read: the point is kept, its detail says why it is bare.
    let mut span = server_span(2, 5);
    span.attributes
        .push(kv("user_agent.original", "MARKER-agent"));
    let mut body = request(vec![span]).encode_to_vec();
    break_utf8(&mut body, b"MARKER");
    let (status, _) = analyzer.request("POST", "/v1/traces", &[PROTOBUF], body);
    assert_eq!(status, 200);
    let points = analyzer.points();
    assert_eq!(points.len(), 1);
    let p = &points[0];
    let detail = analyzer.get(&format!(
        "/api/v1/transactions/{}/{}",
        p["trace_id"].as_str().unwrap(),
        p["span_id"].as_str().unwrap()
    ));
    assert_eq!(detail["endpoint"], "/items");
    assert!(
        detail["detail_error"]
            .as_str()
            .unwrap()
            .contains("cannot be decoded"),
        "{detail}"
    );
}
