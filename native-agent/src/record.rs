//! What the agent's threads hand to the exporter: small records, turned into
//! OTLP spans only on the exporter thread. JVM events are spans marked with
//! `jvmapm.event` (the analyzer keeps them as events, not XLog points).

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::ended::{Finished, SqlCall};
use crate::gc::Collection;
use crate::transaction::{self, SiteKind, Stuck};

/// The attribute that marks a span as a JVM event, and its values.
pub const EVENT_ATTRIBUTE: &str = "jvmapm.event";
pub const GC_PAUSE: &str = "gc.pause";
pub const HEAP_DUMP: &str = "heapdump";
pub const STUCK: &str = "stuck";

/// One thing for the exporter to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A stop-the-world pause; its collection when a collector's bean told it.
    GcPause {
        start_ns: u64,
        duration_ns: u64,
        collection: Option<Collection>,
    },
    /// A heap dump the agent wrote.
    HeapDump {
        start_ns: u64,
        duration_ns: u64,
        path: String,
        reason: String,
    },
    /// A transaction that ended.
    Transaction(Box<Finished>),
    /// A JDBC call inside a transaction.
    Sql(Box<SqlCall>),
    /// A transaction open past the `stuck` threshold, with its thread's
    /// stack when it could be read.
    Stuck(Box<Stuck>, Option<String>),
}

/// Random trace and span ids (xorshift64*, seeded from the OS's randomness
/// through the standard library's hasher seeds).
pub struct SpanIds {
    state: u64,
}

impl SpanIds {
    pub fn new() -> SpanIds {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        SpanIds { state: seed | 1 }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn context(&mut self) -> SpanContext {
        let trace = (u128::from(self.next()) << 64) | u128::from(self.next());
        sampled_context(trace, self.next())
    }
}

/// The context of a sampled span with these ids.
fn sampled_context(trace_id: u128, span_id: u64) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(trace_id.to_be_bytes()),
        SpanId::from_bytes(span_id.to_be_bytes()),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    )
}

fn time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// A span with every field the agent does not use left empty.
struct Parts {
    context: SpanContext,
    parent: SpanId,
    kind: SpanKind,
    name: Cow<'static, str>,
    start_ns: u64,
    duration_ns: u64,
    attributes: Vec<KeyValue>,
    status: Status,
}

impl Parts {
    fn event(
        ids: &mut SpanIds,
        name: &'static str,
        start_ns: u64,
        duration_ns: u64,
        attributes: Vec<KeyValue>,
    ) -> Parts {
        Parts {
            context: ids.context(),
            parent: SpanId::INVALID,
            kind: SpanKind::Internal,
            name: Cow::Borrowed(name),
            start_ns,
            duration_ns,
            attributes,
            status: Status::Unset,
        }
    }

    fn span(self) -> SpanData {
        SpanData {
            span_context: self.context,
            parent_span_id: self.parent,
            parent_span_is_remote: self.parent != SpanId::INVALID,
            span_kind: self.kind,
            name: self.name,
            start_time: time(self.start_ns),
            end_time: time(self.start_ns.saturating_add(self.duration_ns)),
            attributes: self.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: self.status,
            instrumentation_scope: InstrumentationScope::builder("jvmapm-agent").build(),
        }
    }
}

impl Record {
    pub fn into_span(self, ids: &mut SpanIds) -> SpanData {
        match self {
            Record::GcPause {
                start_ns,
                duration_ns,
                collection,
            } => {
                let mut attributes = vec![KeyValue::new(EVENT_ATTRIBUTE, GC_PAUSE)];
                if let Some(collection) = collection {
                    attributes.push(KeyValue::new("jvm.gc.action", collection.action));
                    attributes.push(KeyValue::new("jvm.gc.name", collection.collector));
                }
                Parts::event(ids, GC_PAUSE, start_ns, duration_ns, attributes).span()
            }
            Record::HeapDump {
                start_ns,
                duration_ns,
                path,
                reason,
            } => Parts::event(
                ids,
                HEAP_DUMP,
                start_ns,
                duration_ns,
                vec![
                    KeyValue::new(EVENT_ATTRIBUTE, HEAP_DUMP),
                    KeyValue::new("jvmapm.heapdump.path", path),
                    KeyValue::new("jvmapm.heapdump.reason", reason),
                ],
            )
            .span(),
            Record::Transaction(finished) => transaction_span(*finished).span(),
            Record::Stuck(stuck, stack) => stuck_span(&stuck, stack).span(),
            Record::Sql(call) => sql_span(*call).span(),
        }
    }
}

/// A JDBC call as a CLIENT span under its transaction, named by its
/// operation (`SELECT`, `INSERT`, ...) as the database conventions say.
fn sql_span(call: SqlCall) -> Parts {
    let operation = call
        .statement
        .as_deref()
        .and_then(|s| s.split_whitespace().next())
        .map(str::to_ascii_uppercase)
        .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
        .unwrap_or_else(|| "SQL".to_string());
    let mut attributes = vec![KeyValue::new("db.operation.name", operation.clone())];
    if let Some(statement) = call.statement {
        attributes.push(KeyValue::new("db.query.text", statement));
    }
    if let Some(site) = transaction::site(call.site) {
        attributes.push(KeyValue::new("code.namespace", site.class));
        attributes.push(KeyValue::new("code.function", site.method));
    }
    let error = call.error_type.is_some();
    if let Some(error_type) = call.error_type {
        attributes.push(KeyValue::new("error.type", error_type));
    }
    Parts {
        context: sampled_context(call.trace_id, call.span_id),
        parent: SpanId::from_bytes(call.parent_span_id.to_be_bytes()),
        kind: SpanKind::Client,
        name: Cow::Owned(operation),
        start_ns: call.start_ns,
        duration_ns: call.duration_ns,
        attributes,
        status: if error {
            Status::error("")
        } else {
            Status::Unset
        },
    }
}

/// A stuck transaction as an event in its own trace, a child of its span.
fn stuck_span(stuck: &Stuck, stack: Option<String>) -> Parts {
    let mut attributes = vec![
        KeyValue::new(EVENT_ATTRIBUTE, STUCK),
        KeyValue::new("thread.id", stuck.thread_id as i64),
        KeyValue::new("jvmapm.open_ms", (stuck.open_ns / 1_000_000) as i64),
    ];
    if let Some(site) = transaction::site(stuck.site) {
        attributes.push(KeyValue::new("code.namespace", site.class));
        attributes.push(KeyValue::new("code.function", site.method));
    }
    if let Some(stack) = stack {
        attributes.push(KeyValue::new("jvmapm.stack", stack));
    }
    let now = stuck.start_ns.saturating_add(stuck.open_ns);
    Parts {
        context: sampled_context(stuck.trace_id, (stuck.span_id ^ 0x5357_5543_4b00_0000) | 1),
        parent: SpanId::from_bytes(stuck.span_id.to_be_bytes()),
        kind: SpanKind::Internal,
        name: Cow::Borrowed(STUCK),
        start_ns: now,
        duration_ns: 0,
        attributes,
        status: Status::Unset,
    }
}

/// A finished transaction as a span, per DESIGN.md's wire conventions: a
/// SERVER span named `{method} {route}` for HTTP, an INTERNAL root span
/// named `Class.method` for a hooked method.
fn transaction_span(t: Finished) -> Parts {
    let site = transaction::site(t.site);
    let mut attributes = Vec::new();
    let mut error = t.ending.error_type.is_some();
    // Thinned by `sample=` unless it failed (a 5xx is found below).
    let full = t.detailed || error || t.ending.status >= 500;
    let (kind, name) = match &site {
        Some(site) if site.kind == SiteKind::Http => {
            let method: Arc<str> = t.ending.method.clone().unwrap_or_else(|| "_OTHER".into());
            // Without a route (a default servlet), the path names it.
            let name = match t.ending.route.as_ref().or(t.ending.path.as_ref()) {
                Some(target) => format!("{method} {target}"),
                None => method.to_string(),
            };
            attributes.push(KeyValue::new("http.request.method", method));
            if let Some(path) = t.ending.path.clone().filter(|_| full) {
                attributes.push(KeyValue::new("url.path", path));
            }
            if let Some(route) = t.ending.route.clone() {
                attributes.push(KeyValue::new("http.route", route));
            }
            // The status the client received, as the helper worked it out
            // (after a throw: the container's answer, or none when the
            // connection was closed without one).
            if t.ending.status >= 0 {
                attributes.push(KeyValue::new(
                    "http.response.status_code",
                    i64::from(t.ending.status),
                ));
            }
            if t.ending.status >= 500 {
                error = true;
            }
            (SpanKind::Server, name)
        }
        Some(site) => {
            attributes.push(KeyValue::new("code.namespace", site.class.clone()));
            attributes.push(KeyValue::new("code.function", site.method.clone()));
            (
                SpanKind::Internal,
                format!("{}.{}", site.class, site.method),
            )
        }
        None => (SpanKind::Internal, "unknown".to_string()),
    };
    match (&t.ending.error_type, error) {
        (Some(error_type), _) => attributes.push(KeyValue::new("error.type", error_type.clone())),
        (None, true) => attributes.push(KeyValue::new("error.type", t.ending.status.to_string())),
        (None, false) => {}
    }
    if let Some(cpu_ns) = t.cpu_ns {
        attributes.push(KeyValue::new("jvmapm.cpu.time", (cpu_ns / 1_000) as i64));
    }
    if let Some(thread) = t.ending.thread.clone().filter(|_| full) {
        attributes.push(KeyValue::new("thread.name", thread));
    }
    if !full {
        attributes.push(KeyValue::new("jvmapm.detail", "thinned"));
    }
    if t.stuck {
        attributes.push(KeyValue::new("jvmapm.stuck", true));
    }
    if t.sql_count > 0 {
        attributes.push(KeyValue::new("jvmapm.sql.count", i64::from(t.sql_count)));
        attributes.push(KeyValue::new("jvmapm.sql.time", (t.sql_ns / 1_000) as i64));
    }
    Parts {
        context: sampled_context(t.trace_id, t.span_id),
        parent: SpanId::from_bytes(t.parent_span_id.to_be_bytes()),
        kind,
        name: Cow::Owned(name),
        start_ns: t.start_ns,
        duration_ns: t.duration_ns,
        attributes,
        status: if error {
            Status::error("")
        } else {
            Status::Unset
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gc_pause_is_an_event_span_with_its_collector_and_action() {
        let span = Record::GcPause {
            start_ns: 1_700_000_000_000_000_000,
            duration_ns: 12_000_000,
            collection: Some(Collection {
                collector: "G1 Old Generation".into(),
                action: "end of major GC".into(),
                start_ms: 1_700_000_000_000,
                end_ms: 1_700_000_000_012,
            }),
        }
        .into_span(&mut SpanIds::new());
        assert_eq!(span.name, "gc.pause");
        assert_eq!(
            span.end_time.duration_since(span.start_time).unwrap(),
            Duration::from_millis(12)
        );
        let get = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(get("jvmapm.event").as_deref(), Some("gc.pause"));
        assert_eq!(get("jvm.gc.name").as_deref(), Some("G1 Old Generation"));
        assert_eq!(get("jvm.gc.action").as_deref(), Some("end of major GC"));
        assert!(span.span_context.is_valid());
    }

    #[test]
    fn span_ids_differ() {
        let mut ids = SpanIds::new();
        let a = ids.context();
        let b = ids.context();
        assert_ne!(a.trace_id(), b.trace_id());
        assert_ne!(a.span_id(), b.span_id());
    }
}
