//! The service map: which service calls which, how often, how many calls
//! fail and how long they take, from the CLIENT spans kept inside the
//! transactions of a window. A call's callee is the service whose SERVER
//! span names the CLIENT span as its parent (same trace), else the address
//! the CLIENT span went to (`server.address:port`), so a call to a service
//! that sends nothing still shows.
//!
//! Work and memory are bounded however big the window: the spans of at most
//! [`MAX_READ`] transactions are read (a point whose record says nothing was
//! kept inside it costs no read), at most [`MAX_CALLS`] calls are kept
//! (about 100 bytes each), and callees are found in one more scan of the
//! point records around the calls' times, reading only those of the calls'
//! traces.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io;
use std::sync::Arc;

use jvmapm_contract::names::span;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};

use crate::ingest::otlp_values::{find_i64, find_str};
use crate::point::Point;
use crate::query::answers::{Edge, EdgeCalls, PointRow, ServiceMap};
use crate::query::trace::failed;
use crate::query::{self, Cancel, Points, Want, XlogFilter};

/// Transactions whose spans one answer reads.
pub const MAX_READ: usize = 20_000;
/// CLIENT spans one answer keeps.
pub const MAX_CALLS: usize = 100_000;
/// How far outside the calls' own times their callees' SERVER spans are
/// looked for (clocks of two machines disagree).
const SKEW_MS: u64 = 60_000;
/// Points listed for an edge, unless asked otherwise, and at most.
pub const DEFAULT_LIMIT: usize = 10_000;
pub const MAX_LIMIT: usize = 100_000;

/// One CLIENT span inside a transaction of the window.
#[derive(Clone, Debug, PartialEq)]
struct Call {
    /// Its transaction, an index into [`Calls::callers`].
    caller: usize,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    start_ms: u64,
    end_ms: u64,
    duration_us: u64,
    error: bool,
    /// `server.address[:port]`, when it named one.
    address: Option<String>,
    /// The service whose SERVER span answered it, and that span's elapsed time.
    callee: Option<(u32, u64)>,
}

/// The calls of a window and what was read to find them.
#[derive(Default)]
struct Calls {
    /// Transactions that made calls, in store order.
    callers: Vec<Point>,
    calls: Vec<Call>,
    transactions: u64,
    read: u64,
}

/// The edges of the calls made by the transactions ending in `[from_ms, to_ms]`.
pub fn edges(
    store: &dyn Points,
    from_ms: u64,
    to_ms: u64,
    cancel: &Cancel,
) -> io::Result<ServiceMap> {
    let found = calls(store, from_ms, to_ms, cancel)?;
    // (caller, callee, callee is a service) and the edge's calls.
    type EdgeKey = (Arc<str>, Arc<str>, bool);
    let mut by_edge: BTreeMap<EdgeKey, Vec<&Call>> = BTreeMap::new();
    let mut unresolved = 0;
    for call in &found.calls {
        match callee(store, call) {
            Some((callee, is_service)) => {
                let caller = store.strings().get(found.callers[call.caller].service);
                by_edge
                    .entry((caller, callee, is_service))
                    .or_default()
                    .push(call);
            }
            None => unresolved += 1,
        }
    }
    let mut edges: Vec<Edge> = by_edge
        .into_iter()
        .map(|((caller, callee, callee_is_service), calls)| {
            let durations: Vec<u64> = calls.iter().map(|c| c.duration_us).collect();
            let callee_times: Vec<u64> =
                calls.iter().filter_map(|c| c.callee).map(|c| c.1).collect();
            let [p50_ms, p95_ms, p99_ms] =
                [0.50, 0.95, 0.99].map(|q| ms(percentile(&durations, q)));
            Edge {
                caller,
                callee,
                callee_is_service,
                calls: calls.len() as u64,
                errors: calls.iter().filter(|c| c.error).count() as u64,
                p50_ms: p50_ms.unwrap_or(0.0),
                p95_ms: p95_ms.unwrap_or(0.0),
                p99_ms: p99_ms.unwrap_or(0.0),
                callee_p50_ms: ms(percentile(&callee_times, 0.5)),
            }
        })
        .collect();
    edges.sort_by_key(|e| std::cmp::Reverse(e.calls));
    Ok(ServiceMap {
        from_ms,
        to_ms,
        edges,
        transactions: found.transactions,
        read: found.read,
        unresolved,
    })
}

/// The transactions ending in `[from_ms, to_ms]` that called `callee` from
/// `caller` (names as [`edges`] gives them), at most `limit`.
pub fn edge_points(
    store: &dyn Points,
    from_ms: u64,
    to_ms: u64,
    caller: &str,
    callee: &str,
    limit: usize,
    cancel: &Cancel,
) -> io::Result<EdgeCalls> {
    let found = calls(store, from_ms, to_ms, cancel)?;
    let on_edge: BTreeSet<usize> = found
        .calls
        .iter()
        .filter(|call| {
            &*store.strings().get(found.callers[call.caller].service) == caller
                && self::callee(store, call).is_some_and(|(name, _)| &*name == callee)
        })
        .map(|call| call.caller)
        .collect();
    let points = on_edge
        .iter()
        .take(limit)
        .map(|&i| PointRow::new(&found.callers[i], store))
        .collect();
    Ok(EdgeCalls {
        points,
        truncated: on_edge.len().saturating_sub(limit) as u64,
    })
}

/// The callee of a call and whether it is a service (else an address).
fn callee(store: &dyn Points, call: &Call) -> Option<(Arc<str>, bool)> {
    match (call.callee, &call.address) {
        (Some((service, _)), _) => Some((store.strings().get(service), true)),
        (None, Some(address)) => Some((Arc::from(address.as_str()), false)),
        (None, None) => None,
    }
}

/// The CLIENT spans of the window's transactions, with the callees that
/// answered them.
fn calls(store: &dyn Points, from_ms: u64, to_ms: u64, cancel: &Cancel) -> io::Result<Calls> {
    let mut found = Calls::default();
    let filter = XlogFilter {
        cancel: cancel.clone(),
        ..XlogFilter::range(from_ms, to_ms)
    };
    let mut to_read = Vec::new();
    query::for_each(store, &filter, |point| {
        found.transactions += 1;
        if point.lineage.is_some_and(|l| !l.has_children) {
            found.read += 1;
        } else if to_read.len() < MAX_READ {
            found.read += 1;
            to_read.push(point.clone());
        }
    })?;
    for chunk in to_read.chunks(query::SPANS_AT_ONCE) {
        for (point, kept) in chunk.iter().zip(store.spans(chunk, Want::Inside)?) {
            if found.calls.len() >= MAX_CALLS {
                break;
            }
            let Ok(kept) = kept else {
                continue;
            };
            let caller = found.callers.len();
            let before = found.calls.len();
            let clients = kept
                .children
                .iter()
                .filter_map(|(_, child)| child.as_ref().ok())
                .filter(|child| child.kind == SpanKind::Client as i32);
            for client in clients.take(MAX_CALLS - before) {
                found.calls.push(call_of(caller, client));
            }
            if found.calls.len() > before {
                found.callers.push(point.clone());
            }
        }
    }
    answered(store, &mut found.calls, cancel)?;
    Ok(found)
}

/// A CLIENT span as a call of the transaction `caller`.
fn call_of(caller: usize, span: &Span) -> Call {
    let attributes = &span.attributes;
    let address = find_str(attributes, span::SERVER_ADDRESS)
        .filter(|a| !a.is_empty())
        .map(|a| match find_i64(attributes, span::SERVER_PORT) {
            Some(port) => format!("{a}:{port}"),
            None => a.to_string(),
        });
    let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
    Call {
        caller,
        trace_id: span.trace_id.as_slice().try_into().unwrap_or_default(),
        span_id: span.span_id.as_slice().try_into().unwrap_or_default(),
        start_ms: start / 1_000_000,
        end_ms: end / 1_000_000,
        duration_us: end.saturating_sub(start) / 1_000,
        error: failed(span),
        address,
        callee: None,
    }
}

/// Finds the SERVER spans that answered `calls`: the points of their
/// traces, ending around their times, whose parent is the call.
fn answered(store: &dyn Points, calls: &mut [Call], cancel: &Cancel) -> io::Result<()> {
    let (Some(first), Some(last)) = (
        calls.iter().map(|c| c.start_ms).min(),
        calls.iter().map(|c| c.end_ms).max(),
    ) else {
        return Ok(());
    };
    let by_id: HashMap<([u8; 16], [u8; 8]), usize> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.trace_id, c.span_id), i))
        .collect();
    let traces: HashSet<[u8; 16]> = calls.iter().map(|c| c.trace_id).collect();
    let filter = XlogFilter {
        cancel: cancel.clone(),
        ..XlogFilter::range(first.saturating_sub(SKEW_MS), last.saturating_add(SKEW_MS))
    };
    // A record of the first format does not hold the parent: its span does.
    let mut unknown_parent = Vec::new();
    let answer = |calls: &mut [Call], point: &Point, parent: [u8; 8]| {
        if let Some(&i) = by_id.get(&(point.trace_id, parent)) {
            calls[i].callee = Some((point.service, point.elapsed_us));
        }
    };
    query::for_each(store, &filter, |point| {
        if !traces.contains(&point.trace_id) {
            return;
        }
        match point.lineage {
            Some(lineage) => answer(calls, point, lineage.parent_span_id),
            None => unknown_parent.push(point.clone()),
        }
    })?;
    for chunk in unknown_parent.chunks(query::SPANS_AT_ONCE) {
        for (point, kept) in chunk.iter().zip(store.spans(chunk, Want::Own)?) {
            let parent = kept
                .ok()
                .and_then(|k| k.span.parent_span_id.as_slice().try_into().ok());
            if let Some(parent) = parent {
                answer(calls, point, parent);
            }
        }
    }
    Ok(())
}

/// The nearest-rank `q` quantile of `values`; `None` when there are none.
fn percentile(values: &[u64], q: f64) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

fn ms(us: Option<u64>) -> Option<f64> {
    us.map(|us| us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Status};

    fn attr(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn a_client_span_names_its_address_and_port_and_its_failure() {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            kind: SpanKind::Client as i32,
            start_time_unix_nano: 3_000_000,
            end_time_unix_nano: 7_500_000,
            attributes: vec![
                attr(span::SERVER_ADDRESS, Value::StringValue("127.0.0.1".into())),
                attr(span::SERVER_PORT, Value::IntValue(9)),
                attr(
                    span::ERROR_TYPE,
                    Value::StringValue("java.net.ConnectException".into()),
                ),
            ],
            ..Default::default()
        };
        let call = call_of(4, &span);
        assert_eq!(call.address.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(
            (call.start_ms, call.end_ms, call.duration_us),
            (3, 7, 4_500)
        );
        assert!(call.error);
        let no_port = Span {
            attributes: vec![attr(span::SERVER_ADDRESS, Value::StringValue("db".into()))],
            status: Some(Status {
                code: StatusCode::Ok as i32,
                ..Default::default()
            }),
            ..span.clone()
        };
        let call = call_of(4, &no_port);
        assert_eq!((call.address.as_deref(), call.error), (Some("db"), false));
        let hostile = Span {
            trace_id: vec![1; 3],
            span_id: vec![],
            start_time_unix_nano: 9,
            end_time_unix_nano: 1,
            attributes: vec![attr(span::SERVER_ADDRESS, Value::IntValue(5))],
            ..span
        };
        let call = call_of(0, &hostile);
        assert_eq!((call.trace_id, call.span_id), ([0; 16], [0; 8]));
        assert_eq!((call.duration_us, call.address), (0, None));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&values, 0.5), Some(50));
        assert_eq!(percentile(&values, 0.95), Some(95));
        assert_eq!(percentile(&values, 0.99), Some(99));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
