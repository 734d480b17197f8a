//! One distributed trace, whole: the transactions of every service that
//! share a trace id (their points) and the spans kept inside each (SQL
//! calls, outgoing requests, steps), joined into one tree by parent span id,
//! so a call from one service shows the other service's transaction under
//! the CLIENT span that made it.
//!
//! Finding them costs a scan of the point records ending in a window around
//! a time the caller gives (the viewer passes the end of the transaction it
//! shows), never of the whole store: a record is 128 bytes and holds the
//! trace id, so the scan reads no span detail until it has a match.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;

use jvmapm_contract::names::span;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};

use crate::ingest::otlp_values::{self, attrs_to_json};
use crate::point::{Point, SpanId, TraceId};
use crate::query::answers::{Trace, TraceSpan};
use crate::query::transaction::kind_name;
use crate::query::{self, Cancel, Points, Want, XlogFilter};
use crate::store::Strings;

/// How far before and after its time a trace's transactions are looked
/// for, unless asked otherwise.
pub const DEFAULT_WITHIN_MS: u64 = 15 * 60_000;
/// The most asked for: the scan reads every point ending in twice this.
pub const MAX_WITHIN_MS: u64 = 6 * 3_600_000;
/// Spans in one answer; those past it are counted, not sent.
pub const MAX_SPANS: usize = 10_000;

/// Attributes of a span that say what it did, sent with it in a trace.
const KEY_ATTRIBUTES: [&str; 15] = [
    span::HTTP_REQUEST_METHOD,
    span::HTTP_ROUTE,
    span::URL_PATH,
    span::URL_FULL,
    span::SERVER_ADDRESS,
    span::SERVER_PORT,
    span::HTTP_RESPONSE_STATUS_CODE,
    span::ERROR_TYPE,
    span::DB_OPERATION_NAME,
    span::DB_QUERY_TEXT,
    span::CODE_NAMESPACE,
    span::CODE_FUNCTION,
    span::SQL_COUNT,
    span::HTTP_COUNT,
    span::HTTP_TIME,
];

/// The spans of `trace_id` whose transactions end within `within_ms` of
/// `around_ms`, as a tree.
pub fn find(
    store: &dyn Points,
    trace_id: TraceId,
    around_ms: u64,
    within_ms: u64,
    cancel: &Cancel,
) -> io::Result<Trace> {
    let from_ms = around_ms.saturating_sub(within_ms);
    let to_ms = around_ms.saturating_add(within_ms);
    let filter = XlogFilter {
        cancel: cancel.clone(),
        ..XlogFilter::range(from_ms, to_ms)
    };
    let filter = XlogFilter {
        trace_id: Some(trace_id.0),
        ..filter
    };
    let (mut truncated, mut unreadable) = (0, 0);
    let mut points = Vec::new();
    query::for_each(store, &filter, |point| {
        if points.len() >= MAX_SPANS {
            truncated += 1;
        } else {
            points.push(point.clone());
        }
    })?;
    let strings = store.strings();
    let mut spans = Vec::new();
    for (point, kept) in points.iter().zip(store.spans(&points, Want::Inside)?) {
        let service = strings.get(point.service);
        let instance = strings.get(point.instance);
        let node = |span: &Span| TraceSpan {
            service: service.clone(),
            instance: instance.clone(),
            ..node_of(span)
        };
        match kept {
            Ok(kept) => {
                spans.push(TraceSpan {
                    error: point.error,
                    endpoint: Some(strings.get(point.endpoint)),
                    ..node(&kept.span)
                });
                for (_, child) in kept.children {
                    match child {
                        Ok(_) if spans.len() >= MAX_SPANS => truncated += 1,
                        Ok(child) => spans.push(node(&child)),
                        Err(_) => unreadable += 1,
                    }
                }
            }
            Err(_) => {
                unreadable += 1;
                spans.push(unread_point(point, strings, service, instance));
            }
        }
    }
    Ok(Trace {
        trace_id,
        from_ms,
        to_ms,
        spans: tree(spans),
        truncated,
        unreadable,
    })
}

/// A span as a node of a trace, not yet placed in the tree, its service
/// and instance left for the caller.
fn node_of(span: &Span) -> TraceSpan {
    let key: Vec<KeyValue> = span
        .attributes
        .iter()
        .filter(|kv| KEY_ATTRIBUTES.contains(&kv.key.as_str()))
        .cloned()
        .collect();
    TraceSpan {
        span_id: SpanId::from(<[u8; 8]>::try_from(span.span_id.as_slice()).unwrap_or_default()),
        parent_span_id: parent_of(&span.parent_span_id),
        parent: None,
        depth: 0,
        parent_missing: false,
        service: Arc::from(""),
        instance: Arc::from(""),
        name: span.name.clone(),
        kind: kind_name(span.kind).to_string(),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        error: failed(span),
        endpoint: None,
        attributes: attrs_to_json(&key),
    }
}

/// Whether a span failed: status Error, or an `error.type` (which the
/// semantic conventions set on a failed call whatever its status).
pub(crate) fn failed(span: &Span) -> bool {
    let error = StatusCode::Error as i32;
    span.status.as_ref().is_some_and(|s| s.code == error)
        || otlp_values::find(&span.attributes, span::ERROR_TYPE).is_some()
}

/// A span's parent id; `None` for a root (no id, or all zero).
fn parent_of(id: &[u8]) -> Option<SpanId> {
    <[u8; 8]>::try_from(id)
        .ok()
        .filter(|id| id.iter().any(|&b| b != 0))
        .map(SpanId::from)
}

/// A transaction whose span could not be read, from its point alone.
fn unread_point(
    point: &Point,
    strings: &Strings,
    service: Arc<str>,
    instance: Arc<str>,
) -> TraceSpan {
    let end = point.end_ms.saturating_mul(1_000_000);
    let endpoint = strings.get(point.endpoint);
    TraceSpan {
        span_id: SpanId::from(point.span_id),
        parent_span_id: point.lineage.and_then(|l| parent_of(&l.parent_span_id)),
        parent: None,
        depth: 0,
        parent_missing: false,
        service,
        instance,
        name: endpoint.to_string(),
        kind: kind_name(0).to_string(),
        start_time_unix_nano: end.saturating_sub(point.elapsed_us.saturating_mul(1000)),
        end_time_unix_nano: end,
        error: point.error,
        endpoint: Some(endpoint),
        attributes: Default::default(),
    }
}

/// Places `spans` in a tree by their parent span ids: a flat list, depth
/// first, each span after its parent, siblings in the order they started.
/// A span id seen again (an export sent twice) is kept once. A span whose
/// parent is not among them is a root marked `parent_missing`, and so is
/// one span of every cycle of parents (which only forged ids make).
pub fn tree(mut spans: Vec<TraceSpan>) -> Vec<TraceSpan> {
    let mut seen = HashSet::new();
    spans.retain(|s| seen.insert(s.span_id));
    spans.sort_by_key(|s| (s.start_time_unix_nano, s.span_id));
    let index: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut children = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match s.parent_span_id.and_then(|p| index.get(&p)) {
            Some(&parent) if parent != i => children[parent].push(i),
            _ => roots.push(i),
        }
    }
    // (span, its parent's place in the answer, depth), in answer order.
    let mut order: Vec<(usize, Option<usize>, usize)> = Vec::with_capacity(spans.len());
    let mut placed = vec![false; spans.len()];
    let cycles_first_spans = 0..spans.len();
    for root in roots.into_iter().chain(cycles_first_spans) {
        if placed[root] {
            continue;
        }
        let mut stack = vec![(root, None, 0)];
        while let Some((i, parent, depth)) = stack.pop() {
            if std::mem::replace(&mut placed[i], true) {
                continue;
            }
            let at = order.len();
            order.push((i, parent, depth));
            stack.extend(children[i].iter().rev().map(|&c| (c, Some(at), depth + 1)));
        }
    }
    let mut spans: Vec<Option<TraceSpan>> = spans.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|(i, parent, depth)| {
            let span = spans[i].take()?;
            Some(TraceSpan {
                parent,
                depth,
                parent_missing: parent.is_none() && span.parent_span_id.is_some(),
                ..span
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u8, parent: Option<u8>, start: u64) -> TraceSpan {
        TraceSpan {
            span_id: SpanId::from([id; 8]),
            parent_span_id: parent.map(|p| SpanId::from([p; 8])),
            parent: None,
            depth: 0,
            parent_missing: false,
            service: Arc::from("svc"),
            instance: Arc::from("i"),
            name: format!("s{id}"),
            kind: "SPAN_KIND_SERVER".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 10,
            error: false,
            endpoint: None,
            attributes: Default::default(),
        }
    }

    /// `(name, parent's name, depth, parent missing)` of each span in order.
    fn shape(spans: &[TraceSpan]) -> Vec<(String, Option<String>, usize, bool)> {
        spans
            .iter()
            .map(|s| {
                let parent = s.parent.map(|p| spans[p].name.clone());
                (s.name.clone(), parent, s.depth, s.parent_missing)
            })
            .collect()
    }

    fn row(
        name: &str,
        parent: Option<&str>,
        depth: usize,
        missing: bool,
    ) -> (String, Option<String>, usize, bool) {
        (name.into(), parent.map(String::from), depth, missing)
    }

    #[test]
    fn spans_hang_under_their_parents_in_start_order_and_orphans_are_roots() {
        let spans = vec![
            span(4, Some(2), 40), // B's SERVER span under A's CLIENT span
            span(2, Some(1), 20),
            span(1, None, 10),
            span(3, Some(1), 15),
            span(5, Some(4), 45),
            span(9, Some(8), 5),  // its parent was never kept
            span(2, Some(1), 20), // sent twice
        ];
        let tree = tree(spans);
        assert_eq!(
            shape(&tree),
            [
                row("s9", None, 0, true),
                row("s1", None, 0, false),
                row("s3", Some("s1"), 1, false),
                row("s2", Some("s1"), 1, false),
                row("s4", Some("s2"), 2, false),
                row("s5", Some("s4"), 3, false),
            ]
        );
    }

    #[test]
    fn cycles_of_forged_parents_end_and_every_span_is_placed_once() {
        let spans = vec![
            span(1, Some(2), 10),
            span(2, Some(3), 20),
            span(3, Some(1), 30),
            span(4, Some(4), 40), // its own parent
            span(5, Some(3), 50),
        ];
        let tree = tree(spans);
        assert_eq!(
            shape(&tree),
            [
                row("s4", None, 0, true),
                row("s1", None, 0, true),
                row("s3", Some("s1"), 1, false),
                row("s2", Some("s3"), 2, false),
                row("s5", Some("s3"), 2, false),
            ]
        );
    }

    #[test]
    fn a_long_chain_is_placed_without_recursion() {
        let n = 100_000u32;
        let id = |i: u32| SpanId::from(u64::from(i + 1).to_be_bytes());
        let spans = (0..n)
            .map(|i| TraceSpan {
                span_id: id(i),
                parent_span_id: i.checked_sub(1).map(id),
                ..span(0, None, u64::from(i))
            })
            .collect();
        let tree = tree(spans);
        assert_eq!(tree.len(), n as usize);
        assert_eq!(tree.last().unwrap().depth, n as usize - 1);
        assert!(tree.iter().skip(1).all(|s| s.parent == Some(s.depth - 1)));
    }
}
