//! OTLP trace export requests written by hand, in the protobuf wire format
//! of opentelemetry-proto's `ExportTraceServiceRequest` (trace v1), and the
//! partial success read back from its `ExportTraceServiceResponse`.
//!
//! It exists for the exporter thread's CPU time: going from records through
//! the SDK's `SpanData`, opentelemetry-proto's structs and prost cost about
//! 1.3 µs a span before anything was sent. Here a span goes from borrowed
//! fields straight into one buffer that every batch reuses, with the
//! resource and the scope encoded once (bench/src/exporter_cost.rs measures
//! both). One request has one resource, one scope and the spans of a batch.
//!
//! Field numbers and wire types are those of opentelemetry-proto's
//! trace/v1/trace.proto, common/v1/common.proto, resource/v1/resource.proto
//! and collector/trace/v1/trace_service.proto.

use bytes::{BufMut, Bytes};
use opentelemetry_sdk::Resource;

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// Field numbers, per message.
mod field {
    pub mod export_request {
        pub const RESOURCE_SPANS: u32 = 1;
    }
    pub mod resource_spans {
        pub const RESOURCE: u32 = 1;
        pub const SCOPE_SPANS: u32 = 2;
    }
    pub mod resource {
        pub const ATTRIBUTES: u32 = 1;
    }
    pub mod scope_spans {
        pub const SCOPE: u32 = 1;
        pub const SPANS: u32 = 2;
    }
    pub mod scope {
        pub const NAME: u32 = 1;
    }
    pub mod span {
        pub const TRACE_ID: u32 = 1;
        pub const SPAN_ID: u32 = 2;
        pub const PARENT_SPAN_ID: u32 = 4;
        pub const NAME: u32 = 5;
        pub const KIND: u32 = 6;
        pub const START_TIME_UNIX_NANO: u32 = 7;
        pub const END_TIME_UNIX_NANO: u32 = 8;
        pub const ATTRIBUTES: u32 = 9;
        pub const STATUS: u32 = 15;
        pub const FLAGS: u32 = 16;
    }
    pub mod status {
        pub const CODE: u32 = 3;
    }
    pub mod key_value {
        pub const KEY: u32 = 1;
        pub const VALUE: u32 = 2;
    }
    pub mod any_value {
        pub const STRING: u32 = 1;
        pub const BOOL: u32 = 2;
        pub const INT: u32 = 3;
    }
    pub mod export_response {
        pub const PARTIAL_SUCCESS: u32 = 1;
    }
    pub mod partial_success {
        pub const REJECTED_SPANS: u32 = 1;
        pub const ERROR_MESSAGE: u32 = 2;
    }
}

/// `Status.code` of a failed span (`STATUS_CODE_ERROR`).
const STATUS_CODE_ERROR: u64 = 2;
/// `Span.flags`: the W3C trace flags (every span the agent sends is
/// sampled), and whether the parent is remote, as opentelemetry-otlp 0.33
/// sets them (`SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`, `..._IS_REMOTE_MASK`).
const FLAG_SAMPLED: u32 = 0x01;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// The scope every span is sent under.
const SCOPE_NAME: &str = "jvmapm-agent";

/// The longest protobuf varint.
const MAX_VARINT: usize = 10;

/// `Span.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// An attribute value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attribute<'a> {
    pub key: &'a str,
    pub value: Value<'a>,
}

/// The most attributes a span carries (a transaction's, at most 17: 12,
/// and 5 of its profile).
const MAX_ATTRIBUTES: usize = 24;

/// A span's attributes, gathered on the stack.
pub struct Attributes<'a> {
    list: [Attribute<'a>; MAX_ATTRIBUTES],
    len: usize,
}

impl Default for Attributes<'_> {
    fn default() -> Self {
        Attributes {
            list: [Attribute {
                key: "",
                value: Value::Bool(false),
            }; MAX_ATTRIBUTES],
            len: 0,
        }
    }
}

impl<'a> Attributes<'a> {
    /// Adds an attribute; past `MAX_ATTRIBUTES` it is left out.
    pub fn push(&mut self, key: &'a str, value: Value<'a>) {
        if let Some(slot) = self.list.get_mut(self.len) {
            *slot = Attribute { key, value };
            self.len += 1;
        }
    }

    pub fn as_slice(&self) -> &[Attribute<'a>] {
        &self.list[..self.len]
    }
}

/// One span, its strings borrowed.
pub struct SpanOut<'a> {
    pub trace_id: u128,
    pub span_id: u64,
    /// 0 for a root span.
    pub parent_span_id: u64,
    /// The parent came from another process (a `traceparent` header).
    pub parent_is_remote: bool,
    pub kind: Kind,
    /// The name's parts, written one after the other (`GET`, ` `, `/orders`).
    pub name: &'a [&'a str],
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: &'a [Attribute<'a>],
    /// Status ERROR; otherwise the status is left unset.
    pub error: bool,
}

/// An `ExportTraceServiceRequest` being written: spans are pushed into it
/// one at a time, and `finish` hands the request over and starts the next.
pub struct TraceRequest {
    /// Room for the request's head, then the spans pushed so far.
    buffer: Vec<u8>,
    /// `ResourceSpans.resource`, tag and length included.
    resource: Vec<u8>,
    /// `ScopeSpans.scope`, tag and length included.
    scope: Vec<u8>,
}

impl TraceRequest {
    /// A request for spans of `resource`.
    pub fn new(resource: &Resource) -> TraceRequest {
        let mut encoded_resource = Vec::new();
        message(
            &mut encoded_resource,
            field::resource_spans::RESOURCE,
            2,
            |b| {
                for (key, value) in resource.iter() {
                    let text;
                    let value = match value {
                        opentelemetry::Value::I64(n) => Value::Int(*n),
                        opentelemetry::Value::Bool(v) => Value::Bool(*v),
                        opentelemetry::Value::String(s) => Value::Str(s.as_str()),
                        other => {
                            text = other.as_str();
                            Value::Str(&text)
                        }
                    };
                    attribute(
                        b,
                        field::resource::ATTRIBUTES,
                        &Attribute {
                            key: key.as_str(),
                            value,
                        },
                    );
                }
            },
        );
        let mut scope = Vec::new();
        message(&mut scope, field::scope_spans::SCOPE, 1, |b| {
            string(b, field::scope::NAME, SCOPE_NAME)
        });
        let mut request = TraceRequest {
            buffer: Vec::new(),
            resource: encoded_resource,
            scope,
        };
        request.buffer.resize(request.head_room(), 0);
        request
    }

    /// The bytes the head takes at most: the request's tag and length, the
    /// resource, the scope spans' tag and length, the scope.
    fn head_room(&self) -> usize {
        2 * (1 + MAX_VARINT) + self.resource.len() + self.scope.len()
    }

    pub fn push(&mut self, span: &SpanOut<'_>) {
        // Most spans take 128 bytes to 16 KiB: two bytes of length.
        message(&mut self.buffer, field::scope_spans::SPANS, 2, |b| {
            bytes(b, field::span::TRACE_ID, &span.trace_id.to_be_bytes());
            bytes(b, field::span::SPAN_ID, &span.span_id.to_be_bytes());
            if span.parent_span_id != 0 {
                bytes(
                    b,
                    field::span::PARENT_SPAN_ID,
                    &span.parent_span_id.to_be_bytes(),
                );
            }
            tag(b, field::span::NAME, LEN);
            varint(b, span.name.iter().map(|part| part.len() as u64).sum());
            for part in span.name {
                b.put_slice(part.as_bytes());
            }
            tag(b, field::span::KIND, VARINT);
            varint(b, span.kind as u64);
            tag(b, field::span::START_TIME_UNIX_NANO, FIXED64);
            b.put_u64_le(span.start_ns);
            tag(b, field::span::END_TIME_UNIX_NANO, FIXED64);
            b.put_u64_le(span.end_ns);
            for a in span.attributes {
                attribute(b, field::span::ATTRIBUTES, a);
            }
            if span.error {
                message(b, field::span::STATUS, 1, |b| {
                    tag(b, field::status::CODE, VARINT);
                    varint(b, STATUS_CODE_ERROR);
                });
            }
            let remote = if span.parent_is_remote {
                FLAG_IS_REMOTE
            } else {
                0
            };
            tag(b, field::span::FLAGS, FIXED32);
            b.put_u32_le(FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | remote);
        });
    }

    /// A copy of the request with every span pushed since the last call;
    /// the next request starts empty, in the same buffer. (Writing into a
    /// plain `Vec` and copying once a batch costs less than writing into
    /// a buffer that could be handed over without the copy.)
    pub fn finish(&mut self) -> Bytes {
        let room = self.head_room();
        let spans_len = self.buffer.len() - room;
        let scope_spans_len = self.scope.len() + spans_len;
        let resource_spans_len =
            self.resource.len() + 1 + varint_len(scope_spans_len as u64) + scope_spans_len;
        let head_len = 1
            + varint_len(resource_spans_len as u64)
            + self.resource.len()
            + 1
            + varint_len(scope_spans_len as u64)
            + self.scope.len();
        let start = room - head_len;
        let mut head = &mut self.buffer[start..room];
        tag(&mut head, field::export_request::RESOURCE_SPANS, LEN);
        varint(&mut head, resource_spans_len as u64);
        head.put_slice(&self.resource);
        tag(&mut head, field::resource_spans::SCOPE_SPANS, LEN);
        varint(&mut head, scope_spans_len as u64);
        head.put_slice(&self.scope);
        let request = Bytes::copy_from_slice(&self.buffer[start..]);
        self.buffer.truncate(room);
        request
    }
}

fn tag(buffer: &mut impl BufMut, number: u32, wire_type: u32) {
    varint(buffer, u64::from(number << 3 | wire_type));
}

fn varint(buffer: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        buffer.put_u8(value as u8 | 0x80);
        value >>= 7;
    }
    buffer.put_u8(value as u8);
}

fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn bytes(buffer: &mut Vec<u8>, number: u32, value: &[u8]) {
    tag(buffer, number, LEN);
    varint(buffer, value.len() as u64);
    buffer.put_slice(value);
}

fn string(buffer: &mut Vec<u8>, number: u32, value: &str) {
    bytes(buffer, number, value.as_bytes());
}

/// Writes a `KeyValue`. Its lengths are worked out before, not patched
/// after: attributes are most of a span, and all their fields are short.
fn attribute(buffer: &mut Vec<u8>, number: u32, attribute: &Attribute<'_>) {
    // The `AnyValue`'s one field, its one-byte tag included.
    let value_len = match attribute.value {
        Value::Str(s) => 1 + varint_len(s.len() as u64) + s.len(),
        Value::Bool(_) => 2,
        Value::Int(n) => 1 + varint_len(n as u64),
    };
    let key_len = attribute.key.len();
    let len =
        1 + varint_len(key_len as u64) + key_len + 1 + varint_len(value_len as u64) + value_len;
    tag(buffer, number, LEN);
    varint(buffer, len as u64);
    string(buffer, field::key_value::KEY, attribute.key);
    tag(buffer, field::key_value::VALUE, LEN);
    varint(buffer, value_len as u64);
    match attribute.value {
        Value::Str(s) => string(buffer, field::any_value::STRING, s),
        Value::Bool(v) => {
            tag(buffer, field::any_value::BOOL, VARINT);
            varint(buffer, u64::from(v));
        }
        Value::Int(n) => {
            tag(buffer, field::any_value::INT, VARINT);
            varint(buffer, n as u64);
        }
    }
}

/// Writes a message field whose body `body` writes, leaving `guess` bytes
/// for its length and moving the body when the length takes more or fewer.
fn message(buffer: &mut Vec<u8>, number: u32, guess: usize, body: impl FnOnce(&mut Vec<u8>)) {
    tag(buffer, number, LEN);
    let length_at = buffer.len();
    buffer.put_bytes(0, guess);
    body(buffer);
    let body_at = length_at + guess;
    let body_len = buffer.len() - body_at;
    let length_len = varint_len(body_len as u64);
    if length_len != guess {
        let end = buffer.len();
        if length_len > guess {
            buffer.put_bytes(0, length_len - guess);
        }
        buffer.copy_within(body_at..end, length_at + length_len);
        buffer.truncate(length_at + length_len + body_len);
    }
    varint(&mut &mut buffer[length_at..], body_len as u64);
}

/// What an `ExportTraceServiceResponse` says the backend rejected.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rejected {
    pub spans: u64,
    pub message: String,
}

/// Reads the partial success of an `ExportTraceServiceResponse`; `None`
/// when the bytes are not one.
pub fn rejected(response: &[u8]) -> Option<Rejected> {
    let mut rejected = Rejected::default();
    let mut fields = Fields(response);
    while let Some((number, value)) = fields.next()? {
        let (field::export_response::PARTIAL_SUCCESS, Field::Len(partial)) = (number, value) else {
            continue;
        };
        let mut inner = Fields(partial);
        while let Some((number, value)) = inner.next()? {
            match (number, value) {
                (field::partial_success::REJECTED_SPANS, Field::Varint(n)) => {
                    // An int64 on the wire; a negative count is no count.
                    rejected.spans = (n as i64).max(0) as u64;
                }
                (field::partial_success::ERROR_MESSAGE, Field::Len(text)) => {
                    rejected.message = String::from_utf8_lossy(text).into_owned();
                }
                _ => {}
            }
        }
    }
    Some(rejected)
}

/// A field's value as the wire carries it.
enum Field<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

/// The fields of a message, in order.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    /// The next field; `Some(None)` at the end, `None` when malformed.
    fn next(&mut self) -> Option<Option<(u32, Field<'a>)>> {
        if self.0.is_empty() {
            return Some(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).ok()?;
        let value = match (key & 7) as u32 {
            VARINT => Field::Varint(self.varint()?),
            FIXED64 => self.skip(8).map(|_| Field::Fixed)?,
            LEN => {
                let len = usize::try_from(self.varint()?).ok()?;
                Field::Len(self.skip(len)?)
            }
            FIXED32 => self.skip(4).map(|_| Field::Fixed)?,
            _ => return None,
        };
        Some(Some((number, value)))
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, byte) in self.0.iter().take(MAX_VARINT).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }

    fn skip(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.0.len() {
            return None;
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(taken)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry::KeyValue;
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
    use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
    use prost::Message;

    /// The request as prost reads it.
    pub(crate) fn decode(request: Bytes) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(request).expect("a valid ExportTraceServiceRequest")
    }

    /// The spans of a request with one resource and one scope.
    pub(crate) fn spans_of(request: Bytes) -> Vec<Span> {
        let mut decoded = decode(request);
        assert_eq!(decoded.resource_spans.len(), 1);
        let mut resource_spans = decoded.resource_spans.remove(0);
        assert_eq!(resource_spans.scope_spans.len(), 1);
        resource_spans.scope_spans.remove(0).spans
    }

    fn resource() -> Resource {
        Resource::builder_empty()
            .with_attributes([
                KeyValue::new("service.name", "orders"),
                KeyValue::new("process.pid", 4242i64),
            ])
            .build()
    }

    fn value(v: any_value::Value) -> Option<AnyValue> {
        Some(AnyValue { value: Some(v) })
    }

    fn span(parent_span_id: u64, parent_is_remote: bool, error: bool) -> SpanOut<'static> {
        SpanOut {
            trace_id: 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
            span_id: 0x1112_1314_1516_1718,
            parent_span_id,
            parent_is_remote,
            kind: Kind::Server,
            name: &["GET", " ", "/orders/{id}"],
            start_ns: 1_750_000_000_123_456_789,
            end_ns: 1_750_000_000_125_456_789,
            attributes: &[
                Attribute {
                    key: "http.route",
                    value: Value::Str("/orders/{id}"),
                },
                Attribute {
                    key: "http.response.status_code",
                    value: Value::Int(200),
                },
                Attribute {
                    key: "jvmapm.offset",
                    value: Value::Int(-3),
                },
                Attribute {
                    key: "jvmapm.stuck",
                    value: Value::Bool(true),
                },
                Attribute {
                    key: "jvmapm.cached",
                    value: Value::Bool(false),
                },
            ],
            error,
        }
    }

    #[test]
    fn every_field_of_a_span_reads_back() {
        let mut request = TraceRequest::new(&resource());
        request.push(&span(0x2122_2324_2526_2728, false, false));
        let decoded = decode(request.finish());

        assert_eq!(decoded.resource_spans.len(), 1);
        let resource_spans = &decoded.resource_spans[0];
        assert_eq!(resource_spans.schema_url, "");
        let resource = resource_spans.resource.as_ref().expect("a resource");
        let mut attributes: Vec<_> = resource
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.clone()))
            .collect();
        attributes.sort_by_key(|(key, _)| *key);
        assert_eq!(
            attributes,
            [
                ("process.pid", value(any_value::Value::IntValue(4242))),
                (
                    "service.name",
                    value(any_value::Value::StringValue("orders".into()))
                ),
            ]
        );
        assert_eq!(resource_spans.scope_spans.len(), 1);
        let scope_spans = &resource_spans.scope_spans[0];
        let scope = scope_spans.scope.as_ref().expect("a scope");
        assert_eq!(scope.name, "jvmapm-agent");
        assert_eq!(scope.version, "");

        let expected = Span {
            trace_id: (1..=16).collect(),
            span_id: (0x11..=0x18).collect(),
            trace_state: String::new(),
            parent_span_id: (0x21..=0x28).collect(),
            flags: 0x101,
            name: "GET /orders/{id}".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: 1_750_000_000_123_456_789,
            end_time_unix_nano: 1_750_000_000_125_456_789,
            attributes: vec![
                opentelemetry_proto::tonic::common::v1::KeyValue {
                    key: "http.route".into(),
                    value: value(any_value::Value::StringValue("/orders/{id}".into())),
                    ..Default::default()
                },
                opentelemetry_proto::tonic::common::v1::KeyValue {
                    key: "http.response.status_code".into(),
                    value: value(any_value::Value::IntValue(200)),
                    ..Default::default()
                },
                opentelemetry_proto::tonic::common::v1::KeyValue {
                    key: "jvmapm.offset".into(),
                    value: value(any_value::Value::IntValue(-3)),
                    ..Default::default()
                },
                opentelemetry_proto::tonic::common::v1::KeyValue {
                    key: "jvmapm.stuck".into(),
                    value: value(any_value::Value::BoolValue(true)),
                    ..Default::default()
                },
                opentelemetry_proto::tonic::common::v1::KeyValue {
                    key: "jvmapm.cached".into(),
                    value: value(any_value::Value::BoolValue(false)),
                    ..Default::default()
                },
            ],
            dropped_attributes_count: 0,
            events: vec![],
            dropped_events_count: 0,
            links: vec![],
            dropped_links_count: 0,
            status: None,
        };
        assert_eq!(scope_spans.spans, [expected]);
    }

    #[test]
    fn a_root_span_has_no_parent() {
        let mut request = TraceRequest::new(&resource());
        request.push(&span(0, false, false));
        let spans = spans_of(request.finish());
        assert!(spans[0].parent_span_id.is_empty());
        assert_eq!(spans[0].flags, 0x101);
    }

    #[test]
    fn a_remote_parent_is_flagged() {
        let mut request = TraceRequest::new(&resource());
        request.push(&span(0x2122_2324_2526_2728, true, false));
        let spans = spans_of(request.finish());
        assert_eq!(spans[0].parent_span_id, (0x21..=0x28).collect::<Vec<u8>>());
        assert_eq!(spans[0].flags, 0x301);
    }

    #[test]
    fn a_failed_span_has_status_error() {
        let mut request = TraceRequest::new(&resource());
        request.push(&span(0, false, true));
        let spans = spans_of(request.finish());
        assert_eq!(
            spans[0].status,
            Some(Status {
                message: String::new(),
                code: status::StatusCode::Error as i32,
            })
        );
    }

    #[test]
    fn lengths_of_every_size_read_back_and_requests_do_not_mix() {
        let mut request = TraceRequest::new(&resource());
        // Spans of under 128 bytes, and attributes whose values take one,
        // two and three bytes of length.
        let texts: Vec<String> = [0, 100, 127, 128, 300, 16_383, 16_384, 70_000]
            .iter()
            .map(|&n| "x".repeat(n))
            .collect();
        for round in 0..2 {
            for text in &texts {
                let attributes = [Attribute {
                    key: "db.query.text",
                    value: Value::Str(text),
                }];
                request.push(&SpanOut {
                    trace_id: 1,
                    span_id: round,
                    parent_span_id: 0,
                    parent_is_remote: false,
                    kind: Kind::Client,
                    name: &["S"],
                    start_ns: 0,
                    end_ns: 0,
                    attributes: if text.is_empty() { &[] } else { &attributes },
                    error: false,
                });
            }
            let spans = spans_of(request.finish());
            assert_eq!(spans.len(), texts.len());
            for (span, text) in spans.iter().zip(&texts) {
                assert_eq!(span.span_id, round.to_be_bytes());
                let read = span.attributes.first().and_then(|kv| kv.value.clone());
                let expected =
                    (!text.is_empty()).then(|| any_value::Value::StringValue(text.clone()));
                assert_eq!(read.and_then(|v| v.value), expected);
            }
        }
        // A request without spans is still one.
        assert!(spans_of(request.finish()).is_empty());
    }

    #[test]
    fn the_partial_success_of_an_answer_is_read() {
        let answer = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 7,
                error_message: "too old".into(),
            }),
        };
        assert_eq!(
            rejected(&answer.encode_to_vec()),
            Some(Rejected {
                spans: 7,
                message: "too old".into()
            })
        );
        assert_eq!(
            rejected(&ExportTraceServiceResponse::default().encode_to_vec()),
            Some(Rejected::default())
        );
        // Not protobuf (a JSON answer), and a message cut short.
        assert_eq!(rejected(b"{}"), None);
        assert_eq!(rejected(&answer.encode_to_vec()[..4]), None);
    }
}
