//! One transaction in full: its point plus every span and resource attribute,
//! and the spans inside it (SQL calls, outgoing requests), read back from the
//! span details the store keeps beside the point.

use std::io;

use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, Span};
use prost::Message;
use serde_json::{json, Value};

use crate::ingest::otlp_values::attrs_to_json;
use crate::point::hex;
use crate::point::DetailRef;
use crate::query::PointRow;
use crate::store::children::ChildRef;
use crate::store::detail;
use crate::store::{Segment, Store};

/// The transaction with these ids as JSON, or `None` if no point has them.
/// `near_ms` (its end time) speeds up the lookup when known. When the stored
/// span cannot be decoded (a sender's invalid UTF-8 in an attribute, which
/// ingest does not check), the point is still returned, with `detail_error`.
pub fn find(
    store: &Store,
    trace_id: &[u8; 16],
    span_id: &[u8; 8],
    near_ms: Option<u64>,
) -> io::Result<Option<Value>> {
    let Some((seg, point)) = store.find_point(trace_id, span_id, near_ms)? else {
        return Ok(None);
    };
    let mut out = serde_json::to_value(PointRow::new(&point, store)).expect("rows serialize");
    let payload = seg
        .details
        .read_frame(point.detail.offset, point.detail.len)?;
    let extra = match span_detail(store, &seg, &payload) {
        Ok(extra) => extra,
        Err(why) => json!({ "detail_error": why }),
    };
    if let (Value::Object(o), Value::Object(e)) = (&mut out, extra) {
        o.extend(e);
    }
    Ok(Some(out))
}

/// The span's own fields and attributes, with its resource and scope and
/// its children in the order they started.
fn span_detail(store: &Store, seg: &Segment, payload: &[u8]) -> Result<Value, String> {
    let record = detail::split_span(payload).ok_or("damaged span record")?;
    let span = decode(record.span)?;
    let DetailRef { offset, len } = record.resource;
    let resource_payload = seg
        .details
        .read_frame(offset, len)
        .map_err(|e| e.to_string())?;
    let header = detail::resource_bytes(&resource_payload)
        .and_then(|b| ResourceSpans::decode(b).ok())
        .ok_or("the stored resource cannot be decoded")?;
    let scope = header.scope_spans.first().and_then(|s| s.scope.as_ref());
    let mut children: Vec<(u64, Value)> = record
        .children
        .iter()
        .map(|child| match read_child(store, child) {
            Ok(span) => (span.start_time_unix_nano, span_json(&span)),
            Err(why) => (
                0,
                json!({"span_id": hex(&child.span_id), "detail_error": why}),
            ),
        })
        .collect();
    children.sort_by_key(|(start, _)| *start);
    let mut out = span_json(&span);
    out["resource"] = Value::Object(
        header
            .resource
            .as_ref()
            .map(|r| attrs_to_json(&r.attributes))
            .unwrap_or_default(),
    );
    out["scope"] = json!(scope.map(|s| json!({"name": s.name, "version": s.version})));
    out["children"] = Value::Array(children.into_iter().map(|(_, c)| c).collect());
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<Span, String> {
    Span::decode(bytes).map_err(|e| format!("the stored span cannot be decoded: {e}"))
}

/// A child span from the details file of its own segment.
fn read_child(store: &Store, child: &ChildRef) -> Result<Span, String> {
    let seg = store
        .segment(child.hour)
        .ok_or("its segment is past retention")?;
    let payload = seg
        .details
        .read_frame(child.detail.offset, child.detail.len)
        .map_err(|e| e.to_string())?;
    decode(
        detail::split_span(&payload)
            .ok_or("damaged span record")?
            .span,
    )
}

/// A span's own fields, attributes and events.
fn span_json(span: &Span) -> Value {
    json!({
        "name": span.name,
        "kind": SpanKind::try_from(span.kind).map_or("SPAN_KIND_UNSPECIFIED", |k| k.as_str_name()),
        "span_id": hex(&span.span_id),
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
    })
}
