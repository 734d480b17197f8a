//! Reading OTLP attribute values: lookups by key, numbers that may arrive as
//! ints, doubles or strings, and conversion to JSON for the query API.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use serde_json::{Map, Value as Json};

use crate::point::hex;

/// The value of attribute `key`, if present.
pub fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

pub fn find_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match find(attrs, key)? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// An integer attribute; strings holding an integer count too (OTLP/JSON
/// senders and some SDKs stringify numbers).
pub fn find_i64(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match find(attrs, key)? {
        Value::IntValue(i) => Some(*i),
        Value::DoubleValue(d) => Some(*d as i64),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A value as plain text, for series keys and instance attributes.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::StringValue(s) => s.clone(),
        other => to_json(other).to_string(),
    }
}

pub fn to_json(v: &Value) -> Json {
    match v {
        Value::StringValue(s) => Json::from(s.as_str()),
        Value::BoolValue(b) => Json::from(*b),
        Value::IntValue(i) => Json::from(*i),
        Value::DoubleValue(d) => Json::from(*d),
        Value::BytesValue(b) => Json::from(hex(b)),
        Value::ArrayValue(a) => Json::Array(
            a.values
                .iter()
                .map(|v| v.value.as_ref().map_or(Json::Null, to_json))
                .collect(),
        ),
        Value::KvlistValue(kv) => Json::Object(attrs_to_json(&kv.values)),
        // An index into a profiles string table: meaningless without it.
        Value::StringValueStrindex(i) => Json::from(*i),
    }
}

pub fn attrs_to_json(attrs: &[KeyValue]) -> Map<String, Json> {
    attrs
        .iter()
        .map(|kv| {
            let v = kv
                .value
                .as_ref()
                .and_then(|v: &AnyValue| v.value.as_ref())
                .map_or(Json::Null, to_json);
            (kv.key.clone(), v)
        })
        .collect()
}
