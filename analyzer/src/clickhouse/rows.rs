//! The rows of jvmapm's ClickHouse tables (`schema/001_tables.sql`) as
//! Rust types, in column order, for RowBinary inserts and selects.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::point::{CallTotals, DetailRef, Lineage, Point};

/// A row of `points`. Selects name the columns of [`PointRecord::COLUMNS`].
#[derive(Row, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PointRecord {
    pub seq: u64,
    pub end_ms: u64,
    pub elapsed_us: u64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: [u8; 8],
    pub service: String,
    pub instance: String,
    pub endpoint: String,
    pub status_code: u16,
    pub error: u8,
    pub has_cpu: u8,
    pub cpu_us: u64,
    pub has_sql: u8,
    pub sql_count: u32,
    pub sql_us: u64,
    pub has_http: u8,
    pub http_count: u32,
    pub http_us: u64,
}

impl PointRecord {
    pub const COLUMNS: &'static str =
        "seq, end_ms, elapsed_us, trace_id, span_id, parent_span_id, \
        service, instance, endpoint, status_code, error, has_cpu, cpu_us, has_sql, sql_count, \
        sql_us, has_http, http_count, http_us";

    /// The point, its names made ids by `id`. A point read from ClickHouse
    /// may have spans inside it (they may have come through another
    /// analyzer), so it says so; its detail is found by its ids.
    pub fn point(&self, mut id: impl FnMut(&str) -> u32) -> Point {
        let totals = |has: u8, count, time_us| (has != 0).then_some(CallTotals { count, time_us });
        Point {
            seq: self.seq,
            end_ms: self.end_ms,
            elapsed_us: self.elapsed_us,
            trace_id: self.trace_id,
            span_id: self.span_id,
            service: id(&self.service),
            instance: id(&self.instance),
            endpoint: id(&self.endpoint),
            status_code: self.status_code,
            error: self.error != 0,
            cpu_us: (self.has_cpu != 0).then_some(self.cpu_us),
            sql: totals(self.has_sql, self.sql_count, self.sql_us),
            http: totals(self.has_http, self.http_count, self.http_us),
            lineage: Some(Lineage {
                parent_span_id: self.parent_span_id,
                has_children: true,
            }),
            detail: DetailRef::default(),
        }
    }
}

/// A row of `spans`.
#[derive(Row, Serialize, Deserialize, Clone, Debug)]
pub struct SpanRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: [u8; 8],
    pub end_ms: u64,
    pub is_point: u8,
    #[serde(with = "bytes")]
    pub resource: Vec<u8>,
    #[serde(with = "bytes")]
    pub span: Vec<u8>,
}

impl SpanRecord {
    pub const COLUMNS: &'static str =
        "trace_id, span_id, parent_span_id, end_ms, is_point, resource, span";
}

/// A row of `jvm_metrics`.
#[derive(Row, Serialize, Deserialize, Clone, Debug)]
pub struct MetricRecord {
    pub t_ms: u64,
    pub instance: String,
    pub series: String,
    pub value: f64,
}

/// A row of `jvm_events`.
#[derive(Row, Serialize, Deserialize, Clone, Debug)]
pub struct EventRecord {
    pub t_ms: u64,
    pub instance: String,
    #[serde(with = "bytes")]
    pub event: Vec<u8>,
}

/// A row of `instances`.
#[derive(Row, Serialize, Deserialize, Clone, Debug)]
pub struct InstanceRecord {
    pub seen_ms: u64,
    pub service: String,
    pub instance: String,
    pub attributes: String,
}

/// Bytes as a ClickHouse `String` (a length, then the bytes), which need
/// not be UTF-8: serde's default would write a `Vec<u8>` byte by byte.
pub(super) mod bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}
