//! Property test of the OTLP input path: valid exports mutated at random
//! (bit flips, cuts, spliced bytes) either fail to decode or build into points
//! and events without a panic, and every span is accounted for exactly once
//! (a point, an event, a rejection, or a child span that is not kept).

use jvmapm_analyzer::ingest::jvm_metrics::{self, DeltaTracker};
use jvmapm_analyzer::ingest::xlog;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn seed_traces() -> ExportTraceServiceRequest {
    let spans = (0..6u64)
        .map(|n| Span {
            trace_id: [7u8; 16].to_vec(),
            span_id: (n + 1).to_be_bytes().to_vec(),
            parent_span_id: if n % 3 == 2 { vec![9; 8] } else { vec![] },
            name: format!("GET /x{n}"),
            kind: (n % 6) as i32,
            start_time_unix_nano: 1_000_000_000,
            end_time_unix_nano: 1_000_000_000 + n * 1_000_000,
            attributes: vec![
                kv(
                    "http.route",
                    any_value::Value::StringValue("/x/{id}".into()),
                ),
                kv(
                    "http.response.status_code",
                    any_value::Value::IntValue(200 + n as i64 * 60),
                ),
                kv("jvmapm.sql.time", any_value::Value::DoubleValue(0.25)),
                kv(
                    "jvmapm.event",
                    any_value::Value::StringValue("gc.pause".into()),
                ),
            ]
            .into_iter()
            .take(if n == 5 { 4 } else { 3 })
            .collect(),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => {
                let cut = rng.below(bytes.len() + 1);
                bytes.truncate(cut);
            }
            2 => {
                let i = rng.below(bytes.len() + 1);
                let b = rng.next() as u8;
                bytes.insert(i, b);
            }
            _ if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = [0x00, 0xff, 0x7f, 0x80, b'"', b'{'][rng.below(6)];
            }
            _ => {}
        }
    }
}

#[test]
fn mutated_trace_exports_never_panic_and_account_for_every_span() {
    let seed = seed_traces();
    let protobuf = seed.encode_to_vec();
    let json = serde_json::to_vec(&seed).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0;
    for round in 0..20_000 {
        let mut bytes = if round % 2 == 0 {
            protobuf.clone()
        } else {
            json.clone()
        };
        mutate(&mut rng, &mut bytes);
        // Protobuf goes to the in-place reader as it is; JSON through serde first.
        let body = if round % 2 == 0 {
            bytes
        } else {
            match serde_json::from_slice::<ExportTraceServiceRequest>(&bytes) {
                Ok(request) => request.encode_to_vec(),
                Err(_) => continue,
            }
        };
        let built = xlog::build(body.clone().into());
        // Whatever prost makes of the same bytes, the builder must agree that
        // they are a request, or refuse them with an error (never a panic).
        let Ok(batch) = built else { continue };
        let Ok(request) = ExportTraceServiceRequest::decode(&body[..]) else {
            continue;
        };
        decoded += 1;
        let total: usize = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        let accounted = batch.point_count() + batch.events.len() + batch.rejected.total() as usize;
        assert!(
            accounted <= total,
            "round {round}: {accounted} accounted of {total}"
        );
        for group in &batch.groups {
            for p in &group.spans {
                assert!(p.detail.end <= group.body.len());
            }
        }
    }
    assert!(
        decoded > 1_000,
        "the mutations leave enough decodable inputs ({decoded})"
    );
}

#[test]
fn mutated_metric_exports_never_panic() {
    let seed = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "jvm.finalizer.pending".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: 5,
                            value: Some(number_data_point::Value::AsInt(3)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let protobuf = seed.encode_to_vec();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut tracker = DeltaTracker::new(0);
    for _ in 0..20_000 {
        let mut bytes = protobuf.clone();
        mutate(&mut rng, &mut bytes);
        if let Ok(request) = ExportMetricsServiceRequest::decode(&bytes[..]) {
            jvm_metrics::build(request, &mut tracker);
        }
    }
}
