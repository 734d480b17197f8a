//! The query API's answers as types: what `/api/v1/...` sends as JSON, and
//! what the viewer reads back, live over HTTP (deserialized) or offline
//! (made by the query functions directly). The field names, `null`s and
//! omitted fields here are the API's JSON; changing one changes the API.
//!
//! Rows kept elsewhere appear as they are: an endpoint's statistics
//! ([`EndpointStats`], made by the meter), an instance ([`InstanceInfo`],
//! kept by the registry) and the JVM view ([`JvmView`], beside the code that
//! reads it).
//!
//! [`JvmView`]: crate::query::jvm::JvmView

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use jvmapm_contract::names::span;
use opentelemetry_proto::tonic::common::v1::KeyValue;

use crate::ingest::otlp_values::{find_i64, find_str};
use crate::meter::EndpointStats;
use crate::point::{Point, SpanId, TraceId};
use crate::printable::printable;
use crate::query::call_tree::CallTree;
use crate::query::source::Points;
use crate::store::instances::InstanceInfo;

/// A point as the query API and `jvmapm export` print it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointRow {
    pub end_ms: u64,
    pub elapsed_us: u64,
    pub service: Arc<str>,
    pub instance: Arc<str>,
    pub endpoint: Arc<str>,
    /// HTTP status code; `None` (`null`, an empty CSV field) when the
    /// transaction had none, as a handler that threw or a batch job.
    pub status_code: Option<u16>,
    pub error: bool,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub cpu_us: Option<u64>,
    pub sql_count: Option<u32>,
    pub sql_us: Option<u64>,
    /// Outgoing calls and their total time; absent from servers before them.
    #[serde(default)]
    pub http_count: Option<u32>,
    #[serde(default)]
    pub http_us: Option<u64>,
}

impl PointRow {
    pub fn new(p: &Point, store: &dyn Points) -> Self {
        let strings = store.strings();
        PointRow {
            end_ms: p.end_ms,
            elapsed_us: p.elapsed_us,
            service: strings.get(p.service),
            instance: strings.get(p.instance),
            endpoint: strings.get(p.endpoint),
            status_code: (p.status_code != 0).then_some(p.status_code),
            error: p.error,
            trace_id: p.trace_id.into(),
            span_id: p.span_id.into(),
            cpu_us: p.cpu_us,
            sql_count: p.sql.map(|s| s.count),
            sql_us: p.sql.map(|s| s.time_us),
            http_count: p.http.map(|h| h.count),
            http_us: p.http.map(|h| h.time_us),
        }
    }

    /// Field names in order, for a CSV header.
    pub const FIELDS: [&'static str; 14] = [
        "end_ms",
        "elapsed_us",
        "service",
        "instance",
        "endpoint",
        "status_code",
        "error",
        "trace_id",
        "span_id",
        "cpu_us",
        "sql_count",
        "sql_us",
        "http_count",
        "http_us",
    ];

    /// The row as CSV fields (quoted where needed), in [`Self::FIELDS`] order.
    pub fn csv(&self) -> String {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let fields = [
            self.end_ms.to_string(),
            self.elapsed_us.to_string(),
            csv_quote(&printable(&self.service)),
            csv_quote(&printable(&self.instance)),
            csv_quote(&printable(&self.endpoint)),
            opt(self.status_code.map(u64::from)),
            self.error.to_string(),
            self.trace_id.to_string(),
            self.span_id.to_string(),
            opt(self.cpu_us),
            opt(self.sql_count.map(u64::from)),
            opt(self.sql_us),
            opt(self.http_count.map(u64::from)),
            opt(self.http_us),
        ];
        fields.join(",")
    }
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One page of `/api/v1/xlog`: points in the order they were stored, and
/// the cursor to pass back as `after` for newer ones. The server's `Points`
/// makes each row only as it is serialized (see `api`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct XlogPage<Points = Vec<PointRow>> {
    pub points: Points,
    /// A number, sent as a string.
    #[serde(with = "number_as_text")]
    pub cursor: u64,
}

/// `/api/v1/stats`: per-endpoint statistics since the server started
/// (`since_ms`), or over a range (`from_ms` to `to_ms`, no later than now).
/// The offline viewer's answer has neither.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    // Fields in the order the API has always sent them.
    pub endpoints: Vec<EndpointStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ms: Option<u64>,
}

/// `/api/v1/tps`: transactions per second, by second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tps {
    pub seconds: Vec<TpsSecond>,
}

/// One second of [`Tps`], `[start_ms, count, errors]` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "[u64; 3]", into = "[u64; 3]")]
pub struct TpsSecond {
    pub start_ms: u64,
    pub count: u64,
    pub errors: u64,
}

impl From<[u64; 3]> for TpsSecond {
    fn from([start_ms, count, errors]: [u64; 3]) -> Self {
        TpsSecond {
            start_ms,
            count,
            errors,
        }
    }
}

impl From<TpsSecond> for [u64; 3] {
    fn from(s: TpsSecond) -> Self {
        [s.start_ms, s.count, s.errors]
    }
}

/// `/api/v1/instances`: every instance that has sent data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceList {
    pub instances: Vec<InstanceInfo>,
}

/// Any refused request of the API: its status says what kind, this says why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiFailure {
    pub error: String,
}

/// `/api/v1/transactions/{trace_id}/{span_id}`: the point, and its span in
/// full or why that could not be read. On the wire one object: the point's
/// fields beside the span's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    #[serde(flatten)]
    pub point: PointRow,
    #[serde(flatten)]
    pub span: SpanRecord<Box<SpanInFull>>,
    /// Its stack samples parsed (the span's `jvmapm.profile`, which stays
    /// among its attributes too); `null` when it has none.
    #[serde(default)]
    pub profile: Option<Box<Profile>>,
}

impl Transaction {
    /// The span's attributes, when it could be read.
    pub fn attributes(&self) -> Option<&Map<String, Value>> {
        match &self.span {
            SpanRecord::Read(full) => Some(&full.span.attributes),
            SpanRecord::Unreadable { .. } => None,
        }
    }
}

/// Stack samples of one transaction or merged over many, with what the
/// senders said of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub tree: CallTree,
    /// Samples taken, as the senders counted them (the tree's count when a
    /// sender did not say): the tree may hold fewer, see `truncated`.
    pub samples: u64,
    /// Samples due but not taken (over the agent's budget, thread unreadable).
    pub dropped: u64,
    /// Samples taken but left out of the profile by its size bound.
    pub truncated: u64,
    /// Microseconds between samples, so a count times it is time; `null`
    /// when not sent, or when the profiles merged had different ones.
    pub interval_us: Option<u64>,
}

impl Profile {
    /// The profile a span carries, if it has one (a `jvmapm.profile` string).
    /// Counts missing or negative read as none sent.
    pub fn of_span(attributes: &[KeyValue]) -> Option<Profile> {
        let tree = CallTree::parse(find_str(attributes, span::PROFILE)?);
        let count = |key| find_i64(attributes, key).and_then(|n| u64::try_from(n).ok());
        Some(Profile {
            samples: count(span::PROFILE_SAMPLES).unwrap_or(tree.samples()),
            dropped: count(span::PROFILE_DROPPED).unwrap_or(0),
            truncated: count(span::PROFILE_TRUNCATED).unwrap_or(0),
            interval_us: count(span::PROFILE_INTERVAL),
            tree,
        })
    }
}

/// `/api/v1/profile`: the merged profile of the transactions in an area of
/// the XLog (the filters of `/api/v1/xlog`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AreaProfile {
    #[serde(flatten)]
    pub profile: Profile,
    /// Transactions in the area.
    pub transactions: u64,
    /// Those whose spans were read, in the order they were stored, at most
    /// the query's limit.
    pub read: u64,
    /// Those read that had a profile.
    pub with_profile: u64,
}

/// A span from the details the store keeps: read, or `detail_error` saying
/// why not (a sender's invalid UTF-8 in an attribute, which ingest does not
/// check; a segment past retention).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SpanRecord<Span> {
    Read(Span),
    Unreadable { detail_error: String },
}

/// A transaction's own span, with its resource and scope and the spans
/// inside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanInFull {
    #[serde(flatten)]
    pub span: SpanBody,
    /// The resource's attributes; empty when it had none.
    pub resource: Map<String, Value>,
    pub scope: Option<Scope>,
    /// Spans inside it (SQL calls, outgoing requests), in the order they started.
    pub children: Vec<ChildSpan>,
}

/// A span inside a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildSpan {
    pub span_id: SpanId,
    #[serde(flatten)]
    pub span: SpanRecord<SpanBody>,
}

/// A span's own fields, attributes and events (its id is beside it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanBody {
    pub name: String,
    /// The OTLP kind's name, as `SPAN_KIND_SERVER`.
    pub kind: String,
    /// `""` when the span has no parent.
    #[serde(with = "optional_id")]
    pub parent_span_id: Option<SpanId>,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub status: Option<SpanStatus>,
    pub attributes: Map<String, Value>,
    pub events: Vec<SpanEvent>,
}

/// The OTLP status of a span: `code` 2 is an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanStatus {
    pub code: i32,
    pub message: String,
}

/// An event recorded on a span (an exception, a log line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    pub name: String,
    pub time_unix_nano: u64,
    pub attributes: Map<String, Value>,
}

/// The instrumentation scope that made a span.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub name: String,
    pub version: String,
}

/// `/api/v1/traces/{trace_id}`: every span of a trace kept in the window
/// searched, from every service, as a tree in a flat list: each span comes
/// after its parent (depth first, siblings in the order they started), and
/// names it by its index, so the tree reads back however deep it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub trace_id: TraceId,
    /// The end times searched for its transactions, Unix ms, inclusive.
    pub from_ms: u64,
    pub to_ms: u64,
    pub spans: Vec<TraceSpan>,
    /// Spans left out past the bound of one answer.
    pub truncated: u64,
    /// Spans inside a transaction whose stored detail could not be read.
    pub unreadable: u64,
}

/// One span of a [`Trace`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceSpan {
    pub span_id: SpanId,
    /// `""` when the span has no parent.
    #[serde(with = "optional_id")]
    pub parent_span_id: Option<SpanId>,
    /// The index of its parent in [`Trace::spans`]; `null` for a root.
    pub parent: Option<usize>,
    /// 0 for a root.
    pub depth: usize,
    /// A root that has a parent span id: that parent was not found (not
    /// kept, outside the window searched, or in a cycle of hostile ids).
    pub parent_missing: bool,
    pub service: Arc<str>,
    pub instance: Arc<str>,
    pub name: String,
    /// The OTLP kind's name, as `SPAN_KIND_CLIENT`.
    pub kind: String,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// Status Error, an `error.type`, or a failed transaction.
    pub error: bool,
    /// The endpoint of a span that is an XLog point (a transaction, which
    /// `/api/v1/transactions` opens); `null` for a span inside one.
    pub endpoint: Option<Arc<str>>,
    /// Its attributes that say what it did (method, URL, peer, status,
    /// statement, error, call totals).
    pub attributes: Map<String, Value>,
}

/// `/api/v1/servicemap`: the calls between services in a window, as edges
/// from caller to callee, measured on the caller's CLIENT spans.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceMap {
    /// The end times of the calling transactions, Unix ms, inclusive.
    pub from_ms: u64,
    pub to_ms: u64,
    /// Busiest first.
    pub edges: Vec<Edge>,
    /// Transactions in the window.
    pub transactions: u64,
    /// Those whose spans were read, in the order they were stored, at most
    /// the bound of one answer: when fewer than `transactions`, the figures
    /// cover only these.
    pub read: u64,
    /// CLIENT spans inside them with no callee: no SERVER span answered
    /// them and they name no `server.address`.
    pub unresolved: u64,
}

/// Calls from one service to another (or to an address).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub caller: Arc<str>,
    /// The service whose SERVER span answered, else `server.address:port`.
    pub callee: Arc<str>,
    /// Whether `callee` is a service that sent spans (else an address).
    pub callee_is_service: bool,
    pub calls: u64,
    pub errors: u64,
    /// The CLIENT spans' durations.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// The median of the callee's own time (its SERVER spans' elapsed);
    /// `null` when no SERVER span answered.
    pub callee_p50_ms: Option<f64>,
}

/// `/api/v1/servicemap/calls`: the transactions that made an edge's calls,
/// as XLog points in the order they were stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeCalls {
    pub points: Vec<PointRow>,
    /// Points left out past the query's limit.
    pub truncated: u64,
}

/// A `u64` as a JSON string, which clients in JavaScript read without loss.
mod number_as_text {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(n)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// An id that may be absent, `""` on the wire when it is.
mod optional_id {
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    use crate::point::SpanId;

    pub fn serialize<S: Serializer>(id: &Option<SpanId>, serializer: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => id.serialize(serializer),
            None => serializer.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SpanId>, D::Error> {
        let text = String::deserialize(deserializer)?;
        match &*text {
            "" => Ok(None),
            hex => hex.parse().map(Some).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Mode, Store};
    use opentelemetry_proto::tonic::common::v1::{any_value::Value as Any, AnyValue};

    #[test]
    fn a_point_without_an_http_status_has_none_in_json_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Mode::Write).unwrap();
        let row = |status_code| {
            PointRow::new(
                &Point {
                    status_code,
                    ..Point::default()
                },
                &store,
            )
        };
        let status_of = |row: &PointRow| {
            let json = serde_json::to_value(row).unwrap();
            let csv = row.csv();
            let field = csv.split(',').nth(5).unwrap().to_string();
            (json["status_code"].clone(), field)
        };
        assert_eq!(status_of(&row(0)), (serde_json::Value::Null, String::new()));
        assert_eq!(status_of(&row(503)), (503.into(), "503".to_string()));
        assert_eq!(PointRow::FIELDS[5], "status_code");
    }

    fn point_row() -> PointRow {
        PointRow {
            end_ms: 2_000,
            elapsed_us: 1_500,
            service: "shop".into(),
            instance: "shop-1".into(),
            endpoint: "/orders".into(),
            status_code: Some(200),
            error: false,
            trace_id: TraceId::from([1; 16]),
            span_id: SpanId::from([2; 8]),
            cpu_us: None,
            sql_count: None,
            sql_us: None,
            http_count: None,
            http_us: None,
        }
    }

    fn span_body(name: &str, parent_span_id: Option<SpanId>) -> SpanBody {
        SpanBody {
            name: name.into(),
            kind: "SPAN_KIND_SERVER".into(),
            parent_span_id,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            status: None,
            attributes: Map::new(),
            events: Vec::new(),
        }
    }

    #[test]
    fn a_transaction_is_one_flat_object_with_its_span_id_once() {
        let full = Transaction {
            point: point_row(),
            span: SpanRecord::Read(Box::new(SpanInFull {
                span: span_body("GET /orders", None),
                resource: Map::new(),
                scope: None,
                children: vec![
                    ChildSpan {
                        span_id: SpanId::from([3; 8]),
                        span: SpanRecord::Read(span_body("SELECT", Some(SpanId::from([2; 8])))),
                    },
                    ChildSpan {
                        span_id: SpanId::from([4; 8]),
                        span: SpanRecord::Unreadable {
                            detail_error: "its segment is past retention".into(),
                        },
                    },
                ],
            })),
            profile: None,
        };
        let text = serde_json::to_string(&full).unwrap();
        assert_eq!(text.matches("\"span_id\"").count(), 3, "{text}");
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["span_id"], "0202020202020202");
        assert_eq!(json["parent_span_id"], "", "no parent");
        assert_eq!(json["status"], Value::Null);
        assert_eq!(json["scope"], Value::Null);
        assert_eq!(json["profile"], Value::Null);
        assert_eq!(json["children"][0]["parent_span_id"], "0202020202020202");
        assert_eq!(
            json["children"][1],
            serde_json::json!({"span_id": "0404040404040404", "detail_error": "its segment is past retention"})
        );
        assert_eq!(serde_json::from_str::<Transaction>(&text).unwrap(), full);

        let unread = Transaction {
            point: point_row(),
            span: SpanRecord::Unreadable {
                detail_error: "damaged span record".into(),
            },
            profile: None,
        };
        let json = serde_json::to_value(&unread).unwrap();
        assert_eq!(json["detail_error"], "damaged span record");
        assert_eq!(json["endpoint"], "/orders");
        assert_eq!(serde_json::from_value::<Transaction>(json).unwrap(), unread);
    }

    fn attr(key: &str, value: Any) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    #[test]
    fn a_span_profile_takes_the_senders_counts_or_the_trees() {
        let folded = attr(span::PROFILE, Any::StringValue("a;[running] 3\n".into()));
        let counted = Profile::of_span(&[
            folded.clone(),
            attr(span::PROFILE_SAMPLES, Any::IntValue(5)),
            attr(span::PROFILE_TRUNCATED, Any::StringValue("2".into())),
            attr(span::PROFILE_INTERVAL, Any::IntValue(10_000)),
            attr(span::PROFILE_DROPPED, Any::IntValue(-1)),
        ])
        .unwrap();
        assert_eq!(
            (counted.samples, counted.truncated, counted.dropped),
            (5, 2, 0)
        );
        assert_eq!(counted.interval_us, Some(10_000));
        let bare = Profile::of_span(&[folded]).unwrap();
        assert_eq!((bare.samples, bare.interval_us), (3, None));
        assert_eq!(Profile::of_span(&[]), None);
    }

    #[test]
    fn the_cursor_is_a_string_and_stats_send_only_their_range() {
        let page = XlogPage {
            points: vec![point_row()],
            cursor: 42,
        };
        let json = serde_json::to_value(&page).unwrap();
        assert_eq!(json["cursor"], "42");
        assert_eq!(serde_json::from_value::<XlogPage>(json).unwrap(), page);
        let since = Stats {
            since_ms: Some(7),
            ..Stats::default()
        };
        assert_eq!(
            serde_json::to_string(&since).unwrap(),
            r#"{"endpoints":[],"since_ms":7}"#
        );
        let tps = Tps {
            seconds: vec![TpsSecond {
                start_ms: 1_000,
                count: 5,
                errors: 1,
            }],
        };
        assert_eq!(
            serde_json::to_string(&tps).unwrap(),
            r#"{"seconds":[[1000,5,1]]}"#
        );
    }
}
