//! Reads, straight from the protobuf bytes of an OTLP export, what the XLog
//! needs of each span (ids, times, kind, name, status and a handful of
//! attributes) without decoding the rest: the span's own bytes are kept as its
//! detail, so nothing is allocated or encoded again per span.
//!
//! Field numbers are those of `opentelemetry/proto/trace/v1/trace.proto` and
//! `common/v1/common.proto`. Fields the XLog does not need (events, links,
//! trace state, the values of other attributes) are skipped, not checked; a
//! wrong wire type or invalid UTF-8 in a field that is read is an error, as it
//! is for a full protobuf decoder. Checking every string of every span for
//! UTF-8 cost more than a tenth of ingest, so a sender's invalid UTF-8 in an
//! unread attribute is only found when the transaction's detail is opened.

use jvmapm_contract::names::{event, span};

use crate::ingest::wire::{utf8, Fields, Value, WireError};

/// An attribute value, as far as the XLog cares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Attr<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    /// Bool, bytes, arrays, maps: kept in the detail, not read here.
    Other,
}

impl Attr<'_> {
    /// An integer; strings holding an integer count too (some SDKs stringify numbers).
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Attr::Int(i) => Some(i),
            Attr::Double(d) => Some(d as i64),
            Attr::Str(s) => s.trim().parse().ok(),
            Attr::Other => None,
        }
    }

    /// A duration in microseconds: integers are microseconds, doubles seconds.
    pub fn as_micros(self) -> Option<u64> {
        match self {
            Attr::Int(i) => u64::try_from(i).ok(),
            Attr::Double(d) if d >= 0.0 && d.is_finite() => Some((d * 1e6).round() as u64),
            _ => None,
        }
    }
}

/// The attributes the XLog reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Route,
    Method,
    LegacyMethod,
    StatusCode,
    LegacyStatusCode,
    CpuTime,
    SqlCount,
    SqlTime,
    HttpCount,
    HttpTime,
    Event,
}

const KEY_COUNT: usize = 11;

impl Key {
    /// The key named by the raw bytes of an attribute key (all ours are ASCII,
    /// so a byte match is also a UTF-8 match).
    fn of(name: &[u8]) -> Option<Key> {
        const ROUTE: &[u8] = span::HTTP_ROUTE.as_bytes();
        const METHOD: &[u8] = span::HTTP_REQUEST_METHOD.as_bytes();
        const LEGACY_METHOD: &[u8] = span::HTTP_METHOD_LEGACY.as_bytes();
        const STATUS_CODE: &[u8] = span::HTTP_RESPONSE_STATUS_CODE.as_bytes();
        const LEGACY_STATUS_CODE: &[u8] = span::HTTP_STATUS_CODE_LEGACY.as_bytes();
        const CPU_TIME: &[u8] = span::CPU_TIME.as_bytes();
        const SQL_COUNT: &[u8] = span::SQL_COUNT.as_bytes();
        const SQL_TIME: &[u8] = span::SQL_TIME.as_bytes();
        const HTTP_COUNT: &[u8] = span::HTTP_COUNT.as_bytes();
        const HTTP_TIME: &[u8] = span::HTTP_TIME.as_bytes();
        const EVENT: &[u8] = event::KIND.as_bytes();
        Some(match name {
            ROUTE => Key::Route,
            METHOD => Key::Method,
            LEGACY_METHOD => Key::LegacyMethod,
            STATUS_CODE => Key::StatusCode,
            LEGACY_STATUS_CODE => Key::LegacyStatusCode,
            CPU_TIME => Key::CpuTime,
            SQL_COUNT => Key::SqlCount,
            SQL_TIME => Key::SqlTime,
            HTTP_COUNT => Key::HttpCount,
            HTTP_TIME => Key::HttpTime,
            EVENT => Key::Event,
            _ => return None,
        })
    }
}

/// What the XLog needs of one span; slices borrow the export's bytes.
#[derive(Debug, Default)]
pub struct RawSpan<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    /// The span name, not yet checked for UTF-8 (see [`RawSpan::name`]).
    name: &'a [u8],
    name_at: usize,
    pub kind: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    /// `Status.code`: 0 unset, 1 ok, 2 error.
    pub status_code: u64,
    /// Values of the attributes read, indexed by [`Key`].
    attrs: [Option<Attr<'a>>; KEY_COUNT],
    /// An attribute value (of the span, an event or a link) nests arrays
    /// and maps deeper than [`MAX_VALUE_NESTING`]: a full decoder would
    /// refuse the span when its detail is read back.
    pub nested_too_deep: bool,
}

/// How deep attribute values may nest arrays and key-value lists. A full
/// protobuf decoder stops at 100 message levels, and each level of a
/// key-value list costs three (list, pair, value) below the span's own
/// (record, scope, span, event, pair, value): 16 stays well inside.
pub const MAX_VALUE_NESTING: usize = 16;

/// The first byte of an `AnyValue` holding an `array_value` (field 5) or a
/// `kvlist_value` (field 6), both length-delimited: only those nest.
const NESTING_TAGS: [u8; 2] = [(5 << 3) | 2, (6 << 3) | 2];

impl<'a> RawSpan<'a> {
    pub fn attr(&self, key: Key) -> Option<Attr<'a>> {
        self.attrs[key as usize]
    }

    /// The span name, checked for UTF-8 now that it is used.
    pub fn name(&self) -> Result<&'a str, WireError> {
        utf8(self.name, self.name_at)
    }

    /// Reads the span encoded in `bytes`, found at `offset` of the export.
    pub fn read(bytes: &'a [u8], offset: usize) -> Result<RawSpan<'a>, WireError> {
        let mut span = RawSpan::default();
        let mut fields = Fields::nested(bytes, offset);
        while let Some(field) = fields.next_field() {
            let (number, value, at) = field?;
            let bad = |what| WireError { offset: at, what };
            let bytes_of = |value: Value<'a>| {
                value
                    .bytes()
                    .ok_or_else(|| bad("a span field has the wrong wire type"))
            };
            let fixed64 = |value| match value {
                Value::Fixed64(v) => Ok(v),
                _ => Err(bad("a span time is not fixed64")),
            };
            match number {
                1 => span.trace_id = bytes_of(value)?,
                2 => span.span_id = bytes_of(value)?,
                4 => span.parent_span_id = bytes_of(value)?,
                5 => {
                    span.name = bytes_of(value)?;
                    span.name_at = at;
                }
                6 => match value {
                    Value::Varint(v) => span.kind = v,
                    _ => return Err(bad("a span kind is not a varint")),
                },
                7 => span.start_ns = fixed64(value)?,
                8 => span.end_ns = fixed64(value)?,
                9 => {
                    span.nested_too_deep |= read_attribute(bytes_of(value)?, at, &mut span.attrs)?;
                }
                // An event's (attributes are field 3) or a link's (field 4).
                11 | 13 => {
                    let attributes_field = if number == 11 { 3 } else { 4 };
                    let mut inner = Fields::nested(bytes_of(value)?, at);
                    while let Some(field) = inner.next_field() {
                        if let (n, Value::Bytes(attribute), at) = field? {
                            if n == attributes_field {
                                span.nested_too_deep |=
                                    attribute_nesting(attribute, at)? > MAX_VALUE_NESTING;
                            }
                        }
                    }
                }
                15 => span.status_code = read_status(bytes_of(value)?, at)?,
                _ => {}
            }
        }
        Ok(span)
    }
}

fn read_status(bytes: &[u8], offset: usize) -> Result<u64, WireError> {
    let mut code = 0;
    let mut fields = Fields::nested(bytes, offset);
    while let Some(field) = fields.next_field() {
        if let (3, Value::Varint(v), _) = field? {
            code = v;
        }
    }
    Ok(code)
}

/// Reads one `KeyValue`; stores its value if its key is a [`Key`]. True
/// when its value nests deeper than [`MAX_VALUE_NESTING`].
fn read_attribute<'a>(
    bytes: &'a [u8],
    offset: usize,
    out: &mut [Option<Attr<'a>>; KEY_COUNT],
) -> Result<bool, WireError> {
    let mut key: &[u8] = &[];
    let mut value = None;
    let mut fields = Fields::nested(bytes, offset);
    while let Some(field) = fields.next_field() {
        match field? {
            (1, Value::Bytes(b), _) => key = b,
            (2, Value::Bytes(b), at) => value = Some((b, at)),
            (1 | 2, _, at) => {
                return Err(WireError {
                    offset: at,
                    what: "an attribute field has the wrong wire type",
                })
            }
            _ => {}
        }
    }
    if let Some(key) = Key::of(key) {
        out[key as usize] = value.map(|(b, at)| read_any_value(b, at)).transpose()?;
    }
    match value {
        // Only arrays and key-value lists nest: a plain value costs one byte's look.
        Some((b, at)) if b.first().is_some_and(|tag| NESTING_TAGS.contains(tag)) => {
            Ok(value_nesting(b, at, 0)? > MAX_VALUE_NESTING)
        }
        _ => Ok(false),
    }
}

/// How deep the value of one `KeyValue` nests arrays and key-value lists
/// (0 for a plain value), counted no further than just past
/// [`MAX_VALUE_NESTING`]. A plain value costs one byte's look.
fn attribute_nesting(key_value: &[u8], offset: usize) -> Result<usize, WireError> {
    key_value_nesting(key_value, offset, 0)
}

/// How deep the value of a `KeyValue` nests, at `depth` already.
fn key_value_nesting(key_value: &[u8], offset: usize, depth: usize) -> Result<usize, WireError> {
    let mut fields = Fields::nested(key_value, offset);
    while let Some(field) = fields.next_field() {
        if let (2, Value::Bytes(value), at) = field? {
            return value_nesting(value, at, depth);
        }
    }
    Ok(depth)
}

/// How deep an `AnyValue` nests, at `depth` already.
fn value_nesting(any_value: &[u8], offset: usize, depth: usize) -> Result<usize, WireError> {
    if !any_value.first().is_some_and(|b| NESTING_TAGS.contains(b)) {
        return Ok(depth);
    }
    if depth > MAX_VALUE_NESTING {
        return Ok(depth);
    }
    let mut deepest = depth;
    let mut fields = Fields::nested(any_value, offset);
    while let Some(field) = fields.next_field() {
        let (number, value, at) = field?;
        let (5 | 6, Value::Bytes(list)) = (number, value) else {
            continue;
        };
        // An ArrayValue holds AnyValues, a KeyValueList KeyValues (field 1 both).
        let mut items = Fields::nested(list, at);
        while let Some(item) = items.next_field() {
            if let (1, Value::Bytes(item), at) = item? {
                let nesting = if number == 5 {
                    value_nesting(item, at, depth + 1)?
                } else {
                    key_value_nesting(item, at, depth + 1)?
                };
                deepest = deepest.max(nesting);
                if deepest > MAX_VALUE_NESTING {
                    return Ok(deepest);
                }
            }
        }
    }
    Ok(deepest)
}

fn read_any_value(bytes: &[u8], offset: usize) -> Result<Attr<'_>, WireError> {
    let mut value = Attr::Other;
    let mut fields = Fields::nested(bytes, offset);
    while let Some(field) = fields.next_field() {
        value = match field? {
            (1, Value::Bytes(b), at) => Attr::Str(utf8(b, at)?),
            (3, Value::Varint(v), _) => Attr::Int(v as i64),
            (4, Value::Fixed64(bits), _) => Attr::Double(f64::from_bits(bits)),
            _ => Attr::Other,
        };
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};
    use prost::Message;

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn reads_the_fields_a_full_decoder_reads() {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            name: "GET /orders/{id}".into(),
            kind: 2,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 5_000,
            attributes: vec![
                kv(
                    "url.path",
                    any_value::Value::StringValue("/orders/7".into()),
                ),
                kv(
                    "http.route",
                    any_value::Value::StringValue("/orders/{id}".into()),
                ),
                kv(
                    "http.request.method",
                    any_value::Value::StringValue("GET".into()),
                ),
                kv("http.method", any_value::Value::StringValue("get".into())),
                kv("http.response.status_code", any_value::Value::IntValue(503)),
                kv("jvmapm.sql.time", any_value::Value::DoubleValue(0.002)),
                kv(
                    "jvmapm.sql.count",
                    any_value::Value::StringValue("4".into()),
                ),
                kv("jvmapm.cpu.time", any_value::Value::IntValue(-5)),
                kv("jvmapm.http.count", any_value::Value::IntValue(2)),
                kv("jvmapm.http.time", any_value::Value::DoubleValue(0.25)),
            ],
            status: Some(Status {
                code: 2,
                message: "boom".into(),
            }),
            ..Default::default()
        };
        let bytes = span.encode_to_vec();
        let raw = RawSpan::read(&bytes, 0).unwrap();
        assert_eq!(
            (raw.trace_id, raw.span_id, raw.parent_span_id),
            (&[1; 16][..], &[2; 8][..], &[3; 8][..])
        );
        assert_eq!(
            (
                raw.name().unwrap(),
                raw.kind,
                raw.start_ns,
                raw.end_ns,
                raw.status_code
            ),
            ("GET /orders/{id}", 2, 1_000, 5_000, 2)
        );
        assert_eq!(raw.attr(Key::Route), Some(Attr::Str("/orders/{id}")));
        assert_eq!(raw.attr(Key::Method), Some(Attr::Str("GET")));
        assert_eq!(raw.attr(Key::LegacyMethod), Some(Attr::Str("get")));
        assert_eq!(raw.attr(Key::StatusCode).and_then(Attr::as_i64), Some(503));
        assert_eq!(raw.attr(Key::SqlTime).and_then(Attr::as_micros), Some(2000));
        assert_eq!(raw.attr(Key::SqlCount).and_then(Attr::as_i64), Some(4));
        assert_eq!(raw.attr(Key::HttpCount).and_then(Attr::as_i64), Some(2));
        assert_eq!(
            raw.attr(Key::HttpTime).and_then(Attr::as_micros),
            Some(250_000)
        );
        assert_eq!(
            raw.attr(Key::CpuTime).and_then(Attr::as_micros),
            None,
            "negative"
        );
        assert_eq!(raw.attr(Key::Event), None);
    }

    #[test]
    fn invalid_utf8_and_wrong_wire_types_are_errors() {
        let mut bytes = Span {
            name: "ok".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let last = bytes.len() - 1;
        bytes[last] = 0xff;
        let span = RawSpan::read(&bytes, 0).unwrap();
        assert_eq!(span.name().unwrap_err().what, "a string is not valid UTF-8");
        // Field 7 (start time) sent as a varint.
        assert!(RawSpan::read(&[0x38, 0x01], 0).is_err());
    }
}
