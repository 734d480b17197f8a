//! One transaction in full: its point plus every span and resource attribute,
//! and the spans inside it (SQL calls, outgoing requests), read back from the
//! span details the store keeps beside the point.

use std::io;

use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};

use crate::ingest::otlp_values::attrs_to_json;
use crate::point::{SpanId, TraceId};
use crate::query::answers::{
    ChildSpan, PointRow, Profile, Scope, SpanBody, SpanEvent, SpanInFull, SpanRecord, SpanStatus,
    Transaction,
};
use crate::query::source::{Kept, Points, Want};

/// The transaction with these ids, or `None` if no point has them.
/// `near_ms` (its end time) speeds up the lookup when known. When the stored
/// span cannot be decoded (a sender's invalid UTF-8 in an attribute, which
/// ingest does not check), the point is still returned, with why.
pub fn find(
    store: &dyn Points,
    trace_id: TraceId,
    span_id: SpanId,
    near_ms: Option<u64>,
) -> io::Result<Option<Transaction>> {
    let Some(point) = store.find_point(&trace_id.0, &span_id.0, near_ms)? else {
        return Ok(None);
    };
    let kept = store
        .spans(std::slice::from_ref(&point), Want::Full)?
        .pop()
        .unwrap_or_else(|| Err("nothing kept".into()));
    let (span, profile) = match kept.and_then(span_in_full) {
        Ok((full, profile)) => (SpanRecord::Read(Box::new(full)), profile.map(Box::new)),
        Err(why) => (SpanRecord::Unreadable { detail_error: why }, None),
    };
    Ok(Some(Transaction {
        point: PointRow::new(&point, store),
        span,
        profile,
    }))
}

/// The span's own fields and attributes, with its resource and scope and
/// its children in the order they started, and its profile.
fn span_in_full(kept: Kept) -> Result<(SpanInFull, Option<Profile>), String> {
    let header = kept
        .resource
        .unwrap_or_else(|| Err("the stored resource was not read".into()))?;
    let scope = header.scope_spans.first().and_then(|s| s.scope.as_ref());
    let mut children: Vec<(u64, ChildSpan)> = kept
        .children
        .into_iter()
        .map(|(span_id, child)| {
            let (start, span) = match child {
                Ok(span) => (
                    span.start_time_unix_nano,
                    SpanRecord::Read(span_body(&span)),
                ),
                Err(why) => (0, SpanRecord::Unreadable { detail_error: why }),
            };
            (
                start,
                ChildSpan {
                    span_id: span_id.into(),
                    span,
                },
            )
        })
        .collect();
    children.sort_by_key(|(start, _)| *start);
    let full = SpanInFull {
        span: span_body(&kept.span),
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
    };
    Ok((full, Profile::of_span(&kept.span.attributes)))
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
