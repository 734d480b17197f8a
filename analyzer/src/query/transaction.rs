//! One transaction in full: its point plus every span and resource attribute,
//! and the spans inside it (SQL calls, outgoing requests), read back from the
//! span details the store keeps beside the point.

use std::io;

use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, Span};
use prost::Message;

use crate::ingest::otlp_values::attrs_to_json;
use crate::point::{DetailRef, Point, SpanId, TraceId};
use crate::query::answers::{
    ChildSpan, PointRow, Profile, Scope, SpanBody, SpanEvent, SpanInFull, SpanRecord, SpanStatus,
    Transaction,
};
use crate::store::children::ChildRef;
use crate::store::detail;
use crate::store::{Segment, Store};

/// The transaction with these ids, or `None` if no point has them.
/// `near_ms` (its end time) speeds up the lookup when known. When the stored
/// span cannot be decoded (a sender's invalid UTF-8 in an attribute, which
/// ingest does not check), the point is still returned, with why.
pub fn find(
    store: &Store,
    trace_id: TraceId,
    span_id: SpanId,
    near_ms: Option<u64>,
) -> io::Result<Option<Transaction>> {
    let Some((seg, point)) = store.find_point(&trace_id.0, &span_id.0, near_ms)? else {
        return Ok(None);
    };
    let payload = seg
        .details
        .read_frame(point.detail.offset, point.detail.len)?;
    let read = detail::split_span(&payload)
        .ok_or_else(|| "damaged span record".to_string())
        .and_then(|record| Ok((decode(record.span)?, record)));
    let (span, profile) = match read {
        Ok((span, record)) => match span_in_full(store, &seg, &record, &span) {
            Ok(full) => (
                SpanRecord::Read(Box::new(full)),
                Profile::of_span(&span.attributes).map(Box::new),
            ),
            Err(why) => (SpanRecord::Unreadable { detail_error: why }, None),
        },
        Err(why) => (SpanRecord::Unreadable { detail_error: why }, None),
    };
    Ok(Some(Transaction {
        point: PointRow::new(&point, store),
        span,
        profile,
    }))
}

/// The span's own fields and attributes, with its resource and scope and
/// its children in the order they started.
fn span_in_full(
    store: &Store,
    seg: &Segment,
    record: &detail::SpanRecord,
    span: &Span,
) -> Result<SpanInFull, String> {
    let DetailRef { offset, len } = record.resource;
    let resource_payload = seg
        .details
        .read_frame(offset, len)
        .map_err(|e| e.to_string())?;
    let header = detail::resource_bytes(&resource_payload)
        .and_then(|b| ResourceSpans::decode(b).ok())
        .ok_or("the stored resource cannot be decoded")?;
    let scope = header.scope_spans.first().and_then(|s| s.scope.as_ref());
    let mut children: Vec<(u64, ChildSpan)> = record
        .children
        .iter()
        .map(|child| {
            let (start, span) = match read_child(store, child) {
                Ok(span) => (
                    span.start_time_unix_nano,
                    SpanRecord::Read(span_body(&span)),
                ),
                Err(why) => (0, SpanRecord::Unreadable { detail_error: why }),
            };
            let span_id = child.span_id.into();
            (start, ChildSpan { span_id, span })
        })
        .collect();
    children.sort_by_key(|(start, _)| *start);
    Ok(SpanInFull {
        span: span_body(span),
        resource: header
            .resource
            .as_ref()
            .map(|r| attrs_to_json(&r.attributes))
            .unwrap_or_default(),
        scope: scope.map(|s| Scope {
            name: s.name.clone(),
            version: s.version.clone(),
        }),
        children: children.into_iter().map(|(_, c)| c).collect(),
    })
}

fn decode(bytes: &[u8]) -> Result<Span, String> {
    Span::decode(bytes).map_err(|e| format!("the stored span cannot be decoded: {e}"))
}

/// A point's own span and the spans kept inside it, each read or why not:
/// what a trace and the service map read of a transaction.
pub(crate) fn spans_of(
    store: &Store,
    seg: &Segment,
    point: &Point,
) -> Result<(Span, Vec<Result<Span, String>>), String> {
    let payload = seg
        .details
        .read_frame(point.detail.offset, point.detail.len)
        .map_err(|e| e.to_string())?;
    let record = detail::split_span(&payload).ok_or("damaged span record")?;
    let span = decode(record.span)?;
    let children = record
        .children
        .iter()
        .map(|child| read_child(store, child))
        .collect();
    Ok((span, children))
}

/// A child span from the details file of its own segment.
fn read_child(store: &Store, child: &ChildRef) -> Result<Span, String> {
    let seg = store
        .segment(child.hour)
        .ok_or("its segment is past retention")?;
    stored_span(&seg, child.detail)
}

/// The span stored at `detail` in the details of `seg`.
pub(crate) fn stored_span(seg: &Segment, detail: DetailRef) -> Result<Span, String> {
    let payload = seg
        .details
        .read_frame(detail.offset, detail.len)
        .map_err(|e| e.to_string())?;
    decode(
        detail::split_span(&payload)
            .ok_or("damaged span record")?
            .span,
    )
}

/// The OTLP name of a span kind, as `SPAN_KIND_SERVER`.
pub(crate) fn kind_name(kind: i32) -> &'static str {
    SpanKind::try_from(kind).map_or("SPAN_KIND_UNSPECIFIED", |k| k.as_str_name())
}

/// A span's own fields, attributes and events.
fn span_body(span: &Span) -> SpanBody {
    SpanBody {
        name: span.name.clone(),
        kind: kind_name(span.kind).to_string(),
        parent_span_id: <[u8; 8]>::try_from(span.parent_span_id.as_slice())
            .ok()
            .map(SpanId::from),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        status: span.status.as_ref().map(|s| SpanStatus {
            code: s.code,
            message: s.message.clone(),
        }),
        attributes: attrs_to_json(&span.attributes),
        events: span
            .events
            .iter()
            .map(|e| SpanEvent {
                name: e.name.clone(),
                time_unix_nano: e.time_unix_nano,
                attributes: attrs_to_json(&e.attributes),
            })
            .collect(),
    }
}
