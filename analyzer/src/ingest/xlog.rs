//! The XLog builder: turns an OTLP trace export into XLog points, JVM events and
//! the span details kept beside them, and counts the spans it must reject.
//!
//! A point is made for every SERVER or CONSUMER span and every root span,
//! except spans that carry `jvmapm.event` (GC pauses, heap dumps, stuck
//! transactions), which become JVM events instead. Other spans with a parent
//! (SQL calls, outgoing requests, internal steps) are kept as the children of
//! the transaction they belong to (see `store::children`), not as points.

use bytes::Bytes;
use jvmapm_contract::names::resource;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use prost::Message;
use serde_json::json;

use crate::ingest::otlp_values::{attrs_to_json, find_i64, find_str, to_text};
use crate::ingest::span_reader::{Attr, Key, RawSpan};
use crate::ingest::wire::{self, Fields, Value, WireError};
use crate::point::{hex, CallTotals};

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

    pub fn child_count(&self) -> usize {
        self.groups.iter().map(|g| g.children.len()).sum()
    }
}

/// The points of one resource and scope, with the details they refer to.
pub struct ResourceGroup {
    pub identity: Identity,
    /// Encoded `ResourceSpans` holding the resource and scope, without spans.
    pub resource_record: Vec<u8>,
    pub spans: Vec<SpanPoint>,
    pub children: Vec<ChildSpan>,
    /// The export as received; each point and child says where its encoded span lies.
    pub body: Bytes,
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
    resource::HOST_NAME,
    resource::PROCESS_PID,
    resource::PROCESS_RUNTIME_VERSION,
    resource::PROCESS_RUNTIME_NAME,
    resource::TELEMETRY_SDK_LANGUAGE,
];

impl Identity {
    /// `service.name` (else `unknown_service`) and `service.instance.id` (else
    /// `host.name:process.pid`, else what part of it there is, else `unknown`).
    pub fn of(resource: Option<&Resource>) -> Identity {
        let attrs: &[KeyValue] = resource.map_or(&[], |r| &r.attributes);
        let service = find_str(attrs, resource::SERVICE_NAME)
            .unwrap_or("unknown_service")
            .to_string();
        let host = find_str(attrs, resource::HOST_NAME);
        let pid = find_i64(attrs, resource::PROCESS_PID);
        let instance = match (find_str(attrs, resource::SERVICE_INSTANCE_ID), host, pid) {
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
    pub sql: Option<CallTotals>,
    /// Outgoing calls (`jvmapm.http.count`, `jvmapm.http.time`).
    pub http: Option<CallTotals>,
    /// All zero for a root span.
    pub parent_span_id: [u8; 8],
    /// Where the encoded span lies in the group's `body`.
    pub detail: std::ops::Range<usize>,
}

/// A span inside a transaction, to be kept with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSpan {
    pub end_ms: u64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: [u8; 8],
    /// Where the encoded span lies in the group's `body`.
    pub detail: std::ops::Range<usize>,
}

/// A JVM event (GC pause, heap dump, ...) as JSON, with the time that files it.
pub struct JvmEvent {
    pub t_ms: u64,
    pub json: Vec<u8>,
    /// Who sent it (an instance that only reports events is still listed).
    pub identity: Identity,
}

/// Spans refused by the builder, by reason, for OTLP partial success.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Rejections {
    pub bad_trace_id: u64,
    pub bad_span_id: u64,
    pub bad_times: u64,
    pub too_deep: u64,
}

impl Rejections {
    pub fn total(&self) -> u64 {
        self.bad_trace_id + self.bad_span_id + self.bad_times + self.too_deep
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
            (
                self.too_deep,
                "attribute values nesting arrays or maps more than 16 deep",
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

/// Builds points, events and rejections from an encoded
/// `ExportTraceServiceRequest`, reading it in place (see `span_reader`).
pub fn build(body: Bytes) -> Result<TraceBatch, WireError> {
    let latest_end_ns = jvmapm_contract::clock::unix_ms() * 1_000_000 + MAX_CLOCK_AHEAD_NS;
    let mut batch = TraceBatch::default();
    let mut request = Fields::new(&body);
    while let Some(field) = request.next_field() {
        match field? {
            (1, Value::Bytes(resource_spans), at) => {
                add_resource_spans(&mut batch, &body, resource_spans, at, latest_end_ns)?
            }
            (1, _, at) => return Err(wrong_type(at)),
            _ => {}
        }
    }
    Ok(batch)
}

fn wrong_type(offset: usize) -> WireError {
    WireError {
        offset,
        what: "a message field has the wrong wire type",
    }
}

/// Where `part` (a slice of `body`) starts in `body`.
fn offset_in(body: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - body.as_ptr() as usize
}

fn add_resource_spans(
    batch: &mut TraceBatch,
    body: &Bytes,
    bytes: &[u8],
    offset: usize,
    latest_end_ns: u64,
) -> Result<(), WireError> {
    let mut resource = None;
    let mut schema_url: &[u8] = &[];
    let mut scopes = Vec::new();
    let mut fields = Fields::nested(bytes, offset);
    while let Some(field) = fields.next_field() {
        match field? {
            (1, Value::Bytes(b), at) => resource = Some((b, at)),
            (2, Value::Bytes(b), at) => scopes.push((b, at)),
            (3, Value::Bytes(b), _) => schema_url = b,
            (1..=3, _, at) => return Err(wrong_type(at)),
            _ => {}
        }
    }
    let decoded = match resource {
        Some((b, at)) => Some(Resource::decode(b).map_err(|_| WireError {
            offset: at,
            what: "a resource is malformed",
        })?),
        None => None,
    };
    let identity = Identity::of(decoded.as_ref());
    for (scope_spans, at) in scopes {
        let mut scope: Option<&[u8]> = None;
        let mut scope_schema_url: &[u8] = &[];
        let mut spans = Vec::new();
        let mut fields = Fields::nested(scope_spans, at);
        while let Some(field) = fields.next_field() {
            match field? {
                (1, Value::Bytes(b), _) => scope = Some(b),
                (2, Value::Bytes(b), at) => spans.push((b, at)),
                (3, Value::Bytes(b), _) => scope_schema_url = b,
                (1..=3, _, at) => return Err(wrong_type(at)),
                _ => {}
            }
        }
        let mut group = ResourceGroup {
            identity: identity.clone(),
            resource_record: resource_record(
                resource.map(|(b, _)| b),
                schema_url,
                scope,
                scope_schema_url,
            ),
            spans: Vec::with_capacity(spans.len()),
            children: Vec::new(),
            body: body.clone(),
        };
        for (span, at) in spans {
            add_span(batch, &mut group, span, at, latest_end_ns)?;
        }
        if !group.spans.is_empty() || !group.children.is_empty() {
            batch.groups.push(group);
        }
    }
    Ok(())
}

/// An encoded `ResourceSpans` holding the resource and one `ScopeSpans` with
/// its scope and no spans: what a span's detail refers to.
fn resource_record(
    resource: Option<&[u8]>,
    schema_url: &[u8],
    scope: Option<&[u8]>,
    scope_schema_url: &[u8],
) -> Vec<u8> {
    let mut scope_spans = Vec::new();
    if let Some(scope) = scope {
        wire::put_bytes_field(&mut scope_spans, 1, scope);
    }
    if !scope_schema_url.is_empty() {
        wire::put_bytes_field(&mut scope_spans, 3, scope_schema_url);
    }
    let mut record = Vec::new();
    if let Some(resource) = resource {
        wire::put_bytes_field(&mut record, 1, resource);
    }
    wire::put_bytes_field(&mut record, 2, &scope_spans);
    if !schema_url.is_empty() {
        wire::put_bytes_field(&mut record, 3, schema_url);
    }
    record
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|&b| b != 0)
}

fn add_span(
    batch: &mut TraceBatch,
    group: &mut ResourceGroup,
    bytes: &[u8],
    offset: usize,
    latest_end_ns: u64,
) -> Result<(), WireError> {
    let span = RawSpan::read(bytes, offset)?;
    if !valid_id(span.trace_id, 16) {
        batch.rejected.bad_trace_id += 1;
        return Ok(());
    }
    if !valid_id(span.span_id, 8) {
        batch.rejected.bad_span_id += 1;
        return Ok(());
    }
    let end = span.end_ns;
    if end == 0 || end < span.start_ns || end > latest_end_ns {
        batch.rejected.bad_times += 1;
        return Ok(());
    }
    // Refused, not acknowledged and then unreadable as a detail.
    if span.nested_too_deep {
        batch.rejected.too_deep += 1;
        return Ok(());
    }
    if let Some(Attr::Str(kind)) = span.attr(Key::Event) {
        let full = Span::decode(bytes).map_err(|_| WireError {
            offset,
            what: "an event span is malformed",
        })?;
        batch.events.push(event(kind, &group.identity, &full));
        return Ok(());
    }
    let start = offset_in(&group.body, bytes);
    let trace_id = span.trace_id.try_into().expect("checked to be 16 bytes");
    let span_id = span.span_id.try_into().expect("checked to be 8 bytes");
    let is_root = span.parent_span_id.iter().all(|&b| b == 0);
    let kind = span.kind;
    if !(is_root || kind == SpanKind::Server as u64 || kind == SpanKind::Consumer as u64) {
        if let Ok(parent_span_id) = span.parent_span_id.try_into() {
            group.children.push(ChildSpan {
                end_ms: end / 1_000_000,
                trace_id,
                span_id,
                parent_span_id,
                detail: start..start + bytes.len(),
            });
        }
        return Ok(());
    }
    let status_code = span
        .attr(Key::StatusCode)
        .or(span.attr(Key::LegacyStatusCode))
        .and_then(Attr::as_i64)
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(0);
    let endpoint = endpoint(&span)?;
    group.spans.push(SpanPoint {
        end_ms: end / 1_000_000,
        elapsed_us: (end - span.start_ns) / 1_000,
        trace_id,
        span_id,
        endpoint: endpoint.to_string(),
        status_code,
        error: span.status_code == StatusCode::Error as u64 || status_code >= 500,
        cpu_us: span.attr(Key::CpuTime).and_then(Attr::as_micros),
        sql: totals(&span, Key::SqlCount, Key::SqlTime),
        http: totals(&span, Key::HttpCount, Key::HttpTime),
        parent_span_id: span.parent_span_id.try_into().unwrap_or_default(),
        detail: start..start + bytes.len(),
    });
    Ok(())
}

/// Calls made inside a transaction, from its `count` and `time` attributes
/// (either is enough; the other is then 0).
fn totals(span: &RawSpan, count: Key, time: Key) -> Option<CallTotals> {
    let count = span
        .attr(count)
        .and_then(Attr::as_i64)
        .and_then(|c| u32::try_from(c).ok());
    let time = span.attr(time).and_then(Attr::as_micros);
    (count.is_some() || time.is_some()).then(|| CallTotals {
        count: count.unwrap_or(0),
        time_us: time.unwrap_or(0),
    })
}

/// A transaction's endpoint: its `http.route` when it has one, else its span
/// name without the HTTP method in front. OpenTelemetry names a server span
/// `GET /orders/{id}` with a route and `GET /orders/7` without, so stripping
/// the method makes a service's endpoints read alike either way. A name that
/// does not start with the span's method and a space (a batch job's
/// `Batch.run`, a bare `GET`) is the endpoint as it is.
fn endpoint<'a>(span: &RawSpan<'a>) -> Result<&'a str, WireError> {
    if let Some(Attr::Str(route)) = span.attr(Key::Route) {
        if !route.is_empty() {
            return Ok(route);
        }
    }
    let name = span.name()?;
    let Some(Attr::Str(method)) = span.attr(Key::Method).or(span.attr(Key::LegacyMethod)) else {
        return Ok(name);
    };
    Ok(name
        .strip_prefix(method)
        .and_then(|rest| rest.strip_prefix(' '))
        .filter(|target| !target.is_empty())
        .unwrap_or(name))
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
        identity: identity.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn text(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    /// The points one export of root spans `(name, attributes)` makes.
    fn points(spans: Vec<(&str, Vec<KeyValue>)>) -> Vec<SpanPoint> {
        let now_ns = jvmapm_contract::clock::unix_ms() * 1_000_000;
        let spans = spans
            .into_iter()
            .enumerate()
            .map(|(i, (name, attributes))| Span {
                trace_id: vec![1; 16],
                span_id: vec![i as u8 + 1; 8],
                name: name.into(),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: now_ns - 5_000_000,
                end_time_unix_nano: now_ns,
                attributes,
                ..Default::default()
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let batch = build(Bytes::from(request.encode_to_vec())).unwrap();
        batch.groups.into_iter().flat_map(|g| g.spans).collect()
    }

    #[test]
    fn the_endpoint_is_the_route_else_the_span_name_without_its_method() {
        let get = || text("http.request.method", "GET");
        let endpoints: Vec<String> = points(vec![
            (
                "GET /orders/{id}",
                vec![get(), text("http.route", "/orders/{id}")],
            ),
            // An SDK span without a route: method, space, target.
            ("GET /command/core/get-version", vec![get()]),
            (
                "POST /pay",
                vec![text("http.method", "POST"), text("http.route", "")],
            ),
            // No method to strip, or a name that does not start with it.
            ("POST /checkout", vec![]),
            ("GET /stock", vec![text("http.request.method", "PUT")]),
            ("GET", vec![get()]),
            ("com.acme.Batch#run", vec![get()]),
        ])
        .into_iter()
        .map(|p| p.endpoint)
        .collect();
        assert_eq!(
            endpoints,
            [
                "/orders/{id}",
                "/command/core/get-version",
                "/pay",
                "POST /checkout",
                "GET /stock",
                "GET",
                "com.acme.Batch#run",
            ]
        );
    }
}
