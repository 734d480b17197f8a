//! The XLog builder: turns an OTLP trace export into XLog points, JVM events and
//! the span details kept beside them, and counts the spans it must reject.
//!
//! A point is made for every SERVER or CONSUMER span and every root span,
//! except spans that carry `jvmapm.event` (GC pauses, heap dumps, stuck
//! transactions), which become JVM events instead. Other spans (clients,
//! internals inside a transaction) are accepted and not kept as points.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span,
};
use prost::Message;
use serde_json::json;

use crate::otlp_values::{attrs_to_json, find_i64, find_micros, find_str, to_text};
use crate::point::{hex, SqlTotals};

/// Attribute that marks a span as a JVM event rather than a transaction; its
/// value is the event kind (`gc.pause`, `heapdump`, `stuck`, ...).
pub const EVENT_ATTRIBUTE: &str = "jvmapm.event";
/// Event kind of a stop-the-world GC pause.
pub const GC_PAUSE: &str = "gc.pause";

/// Thread CPU time of a transaction (int microseconds or double seconds).
pub const CPU_TIME: &str = "jvmapm.cpu.time";
/// Number of SQL statements a transaction ran.
pub const SQL_COUNT: &str = "jvmapm.sql.count";
/// Total time of those statements (int microseconds or double seconds).
pub const SQL_TIME: &str = "jvmapm.sql.time";

/// What one trace export yields.
#[derive(Default)]
pub struct TraceBatch {
    pub groups: Vec<ResourceGroup>,
    pub events: Vec<JvmEvent>,
    pub rejected: Rejections,
}

impl TraceBatch {
    pub fn point_count(&self) -> usize {
        self.groups.iter().map(|g| g.spans.len()).sum()
    }
}

/// The points of one resource and scope, with the details they refer to.
pub struct ResourceGroup {
    pub identity: Identity,
    /// Encoded `ResourceSpans` holding the resource and scope, without spans.
    pub resource_record: Vec<u8>,
    pub spans: Vec<SpanPoint>,
    /// Encoded spans back to back; each point says where its own lies.
    pub span_bytes: Vec<u8>,
}

/// Which service and instance sent something, as the store and registry name them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub service: String,
    pub instance: String,
    /// Resource attributes worth listing with the instance (host, pid, runtime).
    pub attributes: Vec<(String, String)>,
}

/// Resource attributes listed with an instance in `/api/v1/instances`.
const INSTANCE_ATTRIBUTES: [&str; 5] = [
    "host.name",
    "process.pid",
    "process.runtime.version",
    "process.runtime.name",
    "telemetry.sdk.language",
];

impl Identity {
    /// `service.name` (else `unknown_service`) and `service.instance.id` (else
    /// `host.name:process.pid`, else what part of it there is, else `unknown`).
    pub fn of(resource: Option<&Resource>) -> Identity {
        let attrs: &[KeyValue] = resource.map_or(&[], |r| &r.attributes);
        let service = find_str(attrs, "service.name")
            .unwrap_or("unknown_service")
            .to_string();
        let host = find_str(attrs, "host.name");
        let pid = find_i64(attrs, "process.pid");
        let instance = match (find_str(attrs, "service.instance.id"), host, pid) {
            (Some(id), _, _) => id.to_string(),
            (None, Some(h), Some(p)) => format!("{h}:{p}"),
            (None, Some(h), None) => h.to_string(),
            (None, None, Some(p)) => format!("pid:{p}"),
            (None, None, None) => "unknown".to_string(),
        };
        let attributes = attrs
            .iter()
            .filter(|kv| INSTANCE_ATTRIBUTES.contains(&kv.key.as_str()))
            .filter_map(|kv| Some((kv.key.clone(), to_text(kv.value.as_ref()?.value.as_ref()?))))
            .collect();
        Identity {
            service,
            instance,
            attributes,
        }
    }
}

/// One transaction before its strings are interned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanPoint {
    pub end_ms: u64,
    pub elapsed_us: u64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub endpoint: String,
    pub status_code: u16,
    pub error: bool,
    pub cpu_us: Option<u64>,
    pub sql: Option<SqlTotals>,
    /// Where the encoded span lies in the group's `span_bytes`.
    pub detail: std::ops::Range<usize>,
}

/// A JVM event (GC pause, heap dump, ...) as JSON, with the time that files it.
pub struct JvmEvent {
    pub t_ms: u64,
    pub json: Vec<u8>,
}

/// Spans refused by the builder, by reason, for OTLP partial success.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Rejections {
    pub bad_trace_id: u64,
    pub bad_span_id: u64,
    pub bad_times: u64,
}

impl Rejections {
    pub fn total(&self) -> u64 {
        self.bad_trace_id + self.bad_span_id + self.bad_times
    }

    /// The partial-success message, empty when nothing was rejected.
    pub fn message(&self) -> String {
        let reasons = [
            (
                self.bad_trace_id,
                "an invalid trace id (need 16 bytes, not all zero)",
            ),
            (
                self.bad_span_id,
                "an invalid span id (need 8 bytes, not all zero)",
            ),
            (
                self.bad_times,
                "an end time missing, before the start time, or more than a day ahead",
            ),
        ];
        reasons
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, why)| format!("{n} span(s) with {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Spans ending further ahead of this analyzer's clock are refused: a wrong
/// clock would otherwise create hour segments that retention never reaches.
const MAX_CLOCK_AHEAD_NS: u64 = 86_400 * 1_000_000_000;

/// Builds points, events and rejections from one export request.
pub fn build(request: ExportTraceServiceRequest) -> TraceBatch {
    let mut batch = TraceBatch::default();
    let latest_end_ns = crate::unix_ms() * 1_000_000 + MAX_CLOCK_AHEAD_NS;
    for resource_spans in request.resource_spans {
        let identity = Identity::of(resource_spans.resource.as_ref());
        for scope_spans in resource_spans.scope_spans {
            let header = ResourceSpans {
                resource: resource_spans.resource.clone(),
                scope_spans: vec![ScopeSpans {
                    scope: scope_spans.scope,
                    spans: Vec::new(),
                    schema_url: scope_spans.schema_url,
                }],
                schema_url: resource_spans.schema_url.clone(),
            };
            let mut group = ResourceGroup {
                identity: identity.clone(),
                resource_record: header.encode_to_vec(),
                spans: Vec::new(),
                span_bytes: Vec::new(),
            };
            for span in scope_spans.spans {
                add_span(&mut batch, &mut group, span, latest_end_ns);
            }
            if !group.spans.is_empty() {
                batch.groups.push(group);
            }
        }
    }
    batch
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|&b| b != 0)
}

fn add_span(batch: &mut TraceBatch, group: &mut ResourceGroup, span: Span, latest_end_ns: u64) {
    if !valid_id(&span.trace_id, 16) {
        batch.rejected.bad_trace_id += 1;
        return;
    }
    if !valid_id(&span.span_id, 8) {
        batch.rejected.bad_span_id += 1;
        return;
    }
    let end = span.end_time_unix_nano;
    if end == 0 || end < span.start_time_unix_nano || end > latest_end_ns {
        batch.rejected.bad_times += 1;
        return;
    }
    if let Some(kind) = find_str(&span.attributes, EVENT_ATTRIBUTE) {
        batch.events.push(event(kind, &group.identity, &span));
        return;
    }
    let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
    let is_root = span.parent_span_id.iter().all(|&b| b == 0);
    if !(is_root || kind == SpanKind::Server || kind == SpanKind::Consumer) {
        return;
    }
    let attrs = &span.attributes;
    let status_code = find_i64(attrs, "http.response.status_code")
        .or_else(|| find_i64(attrs, "http.status_code"))
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(0);
    let status_error = span
        .status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32);
    let sql_count = find_i64(attrs, SQL_COUNT).and_then(|c| u32::try_from(c).ok());
    let sql_time = find_micros(attrs, SQL_TIME);
    let sql = (sql_count.is_some() || sql_time.is_some()).then(|| SqlTotals {
        count: sql_count.unwrap_or(0),
        time_us: sql_time.unwrap_or(0),
    });
    let endpoint = find_str(attrs, "http.route")
        .filter(|r| !r.is_empty())
        .unwrap_or(&span.name)
        .to_string();
    let point = SpanPoint {
        end_ms: span.end_time_unix_nano / 1_000_000,
        elapsed_us: (span.end_time_unix_nano - span.start_time_unix_nano) / 1_000,
        trace_id: span.trace_id[..].try_into().unwrap(),
        span_id: span.span_id[..].try_into().unwrap(),
        endpoint,
        status_code,
        error: status_error || status_code >= 500,
        cpu_us: find_micros(attrs, CPU_TIME),
        sql,
        detail: 0..0,
    };
    let start = group.span_bytes.len();
    span.encode(&mut group.span_bytes)
        .expect("a Vec grows as needed");
    group.spans.push(SpanPoint {
        detail: start..group.span_bytes.len(),
        ..point
    });
}

fn event(kind: &str, identity: &Identity, span: &Span) -> JvmEvent {
    let start_ms = span.start_time_unix_nano / 1_000_000;
    let json = json!({
        "kind": kind,
        "name": span.name,
        "start_ms": start_ms,
        "duration_ms": (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6,
        "service": identity.service,
        "instance": identity.instance,
        "trace_id": hex(&span.trace_id),
        "span_id": hex(&span.span_id),
        "attributes": attrs_to_json(&span.attributes),
    });
    JvmEvent {
        t_ms: start_ms,
        json: serde_json::to_vec(&json).expect("JSON values serialize"),
    }
}
