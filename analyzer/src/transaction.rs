//! One transaction in full: its point plus every span and resource attribute,
//! read back from the span details the store keeps beside the point.

use std::io;

use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, Span};
use prost::Message;
use serde_json::{json, Value};

use crate::otlp_values::attrs_to_json;
use crate::point::hex;
use crate::query::PointRow;
use crate::store::detail::{self, FrameRef};
use crate::store::Store;

fn damaged(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("damaged {what} record"))
}

/// The transaction with these ids as JSON, or `None` if no point has them.
/// `near_ms` (its end time) speeds up the lookup when known.
pub fn find(
    store: &Store,
    trace_id: &[u8; 16],
    span_id: &[u8; 8],
    near_ms: Option<u64>,
) -> io::Result<Option<Value>> {
    let Some((seg, point)) = store.find_point(trace_id, span_id, near_ms)? else {
        return Ok(None);
    };
    let payload = store.read_detail(&seg, point.detail)?;
    let (resource_ref, span_bytes) = detail::split_span(&payload).ok_or_else(|| damaged("span"))?;
    let span = Span::decode(span_bytes).map_err(|_| damaged("span"))?;
    let FrameRef { offset, len } = resource_ref;
    let resource_payload = seg.details.read_frame(offset, len)?;
    let header = detail::resource_bytes(&resource_payload)
        .and_then(|b| ResourceSpans::decode(b).ok())
        .ok_or_else(|| damaged("resource"))?;
    let scope = header.scope_spans.first().and_then(|s| s.scope.as_ref());
    let mut out = serde_json::to_value(PointRow::new(&point, store)).expect("rows serialize");
    let extra = json!({
        "name": span.name,
        "kind": SpanKind::try_from(span.kind).map_or("SPAN_KIND_UNSPECIFIED", |k| k.as_str_name()),
        "parent_span_id": hex(&span.parent_span_id),
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "status": span.status.as_ref().map(|s| json!({"code": s.code, "message": s.message})),
        "attributes": attrs_to_json(&span.attributes),
        "events": span.events.iter().map(|e| json!({
            "name": e.name,
            "time_unix_nano": e.time_unix_nano,
            "attributes": attrs_to_json(&e.attributes),
        })).collect::<Vec<_>>(),
        "resource": header.resource.as_ref().map(|r| attrs_to_json(&r.attributes)).unwrap_or_default(),
        "scope": scope.map(|s| json!({"name": s.name, "version": s.version})),
    });
    if let (Value::Object(o), Value::Object(e)) = (&mut out, extra) {
        o.extend(e);
    }
    Ok(Some(out))
}
