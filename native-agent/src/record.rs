//! What the agent's threads hand to the exporter: small records, turned into
//! OTLP spans only on the exporter thread. JVM events are spans marked with
//! `jvmapm.event` (the analyzer keeps them as events, not XLog points).

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

/// The attribute that marks a span as a JVM event, and its values.
pub const EVENT_ATTRIBUTE: &str = "jvmapm.event";
pub const GC_PAUSE: &str = "gc.pause";
pub const HEAP_DUMP: &str = "heapdump";

/// One thing for the exporter to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A stop-the-world pause; the collector when it is known.
    GcPause {
        start_ns: u64,
        duration_ns: u64,
        collector: Option<String>,
    },
    /// A heap dump the agent wrote.
    HeapDump {
        start_ns: u64,
        duration_ns: u64,
        path: String,
        reason: String,
    },
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
        SpanContext::new(
            TraceId::from_bytes(trace.to_be_bytes()),
            SpanId::from_bytes(self.next().to_be_bytes()),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    }
}

fn time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

impl Record {
    pub fn into_span(self, ids: &mut SpanIds) -> SpanData {
        let (name, start_ns, duration_ns, attributes) = match self {
            Record::GcPause {
                start_ns,
                duration_ns,
                collector,
            } => {
                let mut attributes = vec![KeyValue::new(EVENT_ATTRIBUTE, GC_PAUSE)];
                if let Some(collector) = collector {
                    if let Some(action) = crate::gc::action(&collector) {
                        attributes.push(KeyValue::new("jvm.gc.action", action));
                    }
                    attributes.push(KeyValue::new("jvm.gc.name", collector));
                }
                (GC_PAUSE, start_ns, duration_ns, attributes)
            }
            Record::HeapDump {
                start_ns,
                duration_ns,
                path,
                reason,
            } => (
                HEAP_DUMP,
                start_ns,
                duration_ns,
                vec![
                    KeyValue::new(EVENT_ATTRIBUTE, HEAP_DUMP),
                    KeyValue::new("jvmapm.heapdump.path", path),
                    KeyValue::new("jvmapm.heapdump.reason", reason),
                ],
            ),
        };
        SpanData {
            span_context: ids.context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(name),
            start_time: time(start_ns),
            end_time: time(start_ns.saturating_add(duration_ns)),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("jvmapm-agent").build(),
        }
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
            collector: Some("G1 Old Generation".into()),
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
