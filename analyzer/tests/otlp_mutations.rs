//! Property test of the OTLP input path: valid exports, trace and metric,
//! mutated at random (bit flips, cuts, spliced bytes) in protobuf and in JSON
//! either fail to decode or build without a panic, and what they build
//! accounts for no more than the input held: each span at most once (a point,
//! an event, a rejection, or a child span that is not kept), each metric data
//! point at most once per series it feeds (a sample or a rejection).

use jvmapm_analyzer::ingest::jvm_metrics::{self, DeltaTracker};
use jvmapm_analyzer::ingest::xlog;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;

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

/// What became of the mutated copies of one seed export.
#[derive(Debug, Default)]
struct Tally {
    /// Copies refused by a decoder (serde for JSON, the analyzer's or
    /// prost's for protobuf).
    refused: usize,
    /// Copies decoded and built, whose result was checked.
    built: usize,
}

impl Tally {
    /// Both outcomes happened often: the mutations neither all break the
    /// input nor all leave it readable, so both paths were exercised.
    fn assert_mixed(&self, at_least: usize) {
        assert!(
            self.built >= at_least && self.refused >= at_least,
            "at least {at_least} mutated inputs built and {at_least} refused: {self:?}"
        );
    }
}

/// Mutates `rounds` copies of `seed`, its protobuf encoding and its JSON in
/// turn, and hands `build` each copy as protobuf (a JSON copy serde still
/// reads is encoded again, as the OTLP/HTTP receiver does). `build` answers
/// whether the copy was decoded and built, having checked what it built.
fn mutate_exports<M>(
    seed: &M,
    rng: u64,
    rounds: usize,
    mut build: impl FnMut(usize, Vec<u8>) -> bool,
) -> Tally
where
    M: Message + Serialize + DeserializeOwned,
{
    let protobuf = seed.encode_to_vec();
    let json = serde_json::to_vec(seed).unwrap();
    let mut rng = Rng(rng);
    let mut tally = Tally::default();
    for round in 0..rounds {
        let in_json = round % 2 == 1;
        let mut bytes = if in_json {
            json.clone()
        } else {
            protobuf.clone()
        };
        mutate(&mut rng, &mut bytes);
        let body = if in_json {
            match serde_json::from_slice::<M>(&bytes) {
                Ok(request) => request.encode_to_vec(),
                Err(_) => {
                    tally.refused += 1;
                    continue;
                }
            }
        } else {
            bytes
        };
        if build(round, body) {
            tally.built += 1;
        } else {
            tally.refused += 1;
        }
    }
    tally
}

#[test]
fn mutated_trace_exports_never_panic_and_account_for_every_span() {
    let tally = mutate_exports(
        &seed_traces(),
        0x9e37_79b9_7f4a_7c15,
        20_000,
        |round, body| {
            // Whatever prost makes of the same bytes, the builder must agree that
            // they are a request, or refuse them with an error (never a panic).
            let Ok(batch) = xlog::build(body.clone().into()) else {
                return false;
            };
            let Ok(request) = ExportTraceServiceRequest::decode(&body[..]) else {
                return false;
            };
            let total: usize = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            let accounted =
                batch.point_count() + batch.events.len() + batch.rejected.total() as usize;
            assert!(
                accounted <= total,
                "round {round}: {accounted} accounted of {total}"
            );
            for group in &batch.groups {
                for p in &group.spans {
                    assert!(p.detail.end <= group.body.len());
                }
            }
            true
        },
    );
    tally.assert_mixed(1_000);
}

/// A number data point at `time_ns` (0: no timestamp, which is refused).
fn number_point(start_ns: u64, time_ns: u64, value: i64) -> NumberDataPoint {
    NumberDataPoint {
        start_time_unix_nano: start_ns,
        time_unix_nano: time_ns,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    }
}

/// One export of each kind of metric the builder reads: a gauge with a point
/// it keeps and one without a timestamp, a cumulative counter started after
/// the analyzer, a histogram, and a metric outside `jvm.*` that is not kept.
fn seed_metrics() -> ExportMetricsServiceRequest {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let metric = |name: &str, data| Metric {
        name: name.into(),
        data: Some(data),
        ..Default::default()
    };
    let metrics = vec![
        metric(
            "jvm.thread.count",
            metric::Data::Gauge(Gauge {
                data_points: vec![number_point(0, 5_000_000, 3), number_point(0, 0, 4)],
            }),
        ),
        metric(
            "jvm.gc.count",
            metric::Data::Sum(Sum {
                data_points: vec![number_point(1_000_000, 5_000_000, 7)],
                aggregation_temporality: cumulative,
                is_monotonic: true,
            }),
        ),
        metric(
            "jvmapm.transaction.duration",
            metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    start_time_unix_nano: 1_000_000,
                    time_unix_nano: 5_000_000,
                    count: 2,
                    sum: Some(0.5),
                    ..Default::default()
                }],
                aggregation_temporality: cumulative,
            }),
        ),
        metric(
            "process.cpu.time",
            metric::Data::Gauge(Gauge {
                data_points: vec![number_point(0, 5_000_000, 1)],
            }),
        ),
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The data points of an export, and how many samples they can make at
/// most: one a gauge or sum point, two a histogram or summary point (its
/// count and its sum).
fn metric_points(request: &ExportMetricsServiceRequest) -> (usize, usize) {
    let mut points = 0;
    let mut most_samples = 0;
    for metric in request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        let (n, each) = match &metric.data {
            Some(metric::Data::Gauge(g)) => (g.data_points.len(), 1),
            Some(metric::Data::Sum(s)) => (s.data_points.len(), 1),
            Some(metric::Data::Histogram(h)) => (h.data_points.len(), 2),
            Some(metric::Data::ExponentialHistogram(h)) => (h.data_points.len(), 2),
            Some(metric::Data::Summary(s)) => (s.data_points.len(), 2),
            None => (0, 0),
        };
        points += n;
        most_samples += n * each;
    }
    (points, most_samples)
}

#[test]
fn mutated_metric_exports_never_panic_and_account_for_every_data_point() {
    let seed = seed_metrics();
    // The seed as it is: the gauge's timed point, the counter in full, the
    // histogram's count and sum; the point without a timestamp refused and
    // process.cpu.time not kept.
    let batch = jvm_metrics::build(seed.clone(), &mut DeltaTracker::new(0));
    let series: Vec<&str> = batch.instances[0]
        .samples
        .iter()
        .map(|s| s.series.as_str())
        .collect();
    assert_eq!(
        series,
        [
            "jvm.thread.count",
            "jvm.gc.count",
            "jvmapm.transaction.duration.count",
            "jvmapm.transaction.duration.sum"
        ]
    );
    assert_eq!(batch.rejected, 1);

    let mut tracker = DeltaTracker::new(0);
    let (mut samples, mut rejected) = (0, 0);
    let tally = mutate_exports(&seed, 0x1234_5678_9abc_def1, 20_000, |round, body| {
        let Ok(request) = ExportMetricsServiceRequest::decode(&body[..]) else {
            return false;
        };
        let (points, most_samples) = metric_points(&request);
        let batch = jvm_metrics::build(request, &mut tracker);
        let kept: usize = batch.instances.iter().map(|i| i.samples.len()).sum();
        assert!(
            kept + batch.rejected as usize <= most_samples,
            "round {round}: {kept} samples and {} rejected from {points} data points",
            batch.rejected
        );
        for instance in &batch.instances {
            assert!(
                !instance.samples.is_empty(),
                "round {round}: an instance without samples"
            );
            for sample in &instance.samples {
                assert!(
                    sample.series.starts_with("jvm.") || sample.series.starts_with("jvmapm."),
                    "round {round}: kept {:?}",
                    sample.series
                );
            }
        }
        samples += kept;
        rejected += batch.rejected as usize;
        true
    });
    tally.assert_mixed(1_000);
    assert!(
        samples >= 1_000 && rejected >= 100,
        "the mutated exports that decode still make samples ({samples}) and refuse data points ({rejected})"
    );
}
