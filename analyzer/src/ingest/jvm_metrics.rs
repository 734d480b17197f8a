//! JVM metrics from OTLP: keeps the `jvm.*` (and our `jvmapm.*`) series of each
//! instance as plain samples. Gauges and non-monotonic sums are kept as they
//! come; cumulative counters and histogram counts/sums are turned into deltas,
//! so a stored sample always says "this much happened in this interval".

use std::collections::HashMap;

use jvmapm_contract::names::metric;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, NumberDataPoint,
};

use crate::ingest::otlp_values::to_text;
use crate::ingest::xlog::Identity;

/// Metric name prefixes kept; other metrics are accepted and not stored.
const KEPT_PREFIXES: [&str; 2] = [metric::JVM_PREFIX, metric::JVMAPM_PREFIX];

/// Samples of one export, grouped by the instance that sent them.
#[derive(Default)]
pub struct MetricsBatch {
    pub instances: Vec<InstanceSamples>,
    /// Data points refused (no timestamp).
    pub rejected: u64,
}

pub struct InstanceSamples {
    pub identity: Identity,
    pub samples: Vec<NamedSample>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NamedSample {
    /// `name{attr=value,...}` with attributes sorted, or just `name`.
    pub series: String,
    pub t_ms: u64,
    pub value: f64,
}

/// The last cumulative value seen per instance and series.
pub struct DeltaTracker {
    /// Series that started before this moment may have been counted by an
    /// earlier run of the analyzer; their first value is only a baseline.
    started_ns: u64,
    last: HashMap<(String, String), Cumulative>,
}

#[derive(Clone, Copy)]
struct Cumulative {
    start_ns: u64,
    value: f64,
}

impl DeltaTracker {
    pub fn new(started_ns: u64) -> Self {
        DeltaTracker {
            started_ns,
            last: HashMap::new(),
        }
    }

    /// The increase since the previous value of this series, `None` when this
    /// value is only a baseline.
    fn delta(&mut self, instance: &str, series: &str, start_ns: u64, value: f64) -> Option<f64> {
        let now = Cumulative { start_ns, value };
        let key = (instance.to_string(), series.to_string());
        match self.last.insert(key, now) {
            Some(prev) if prev.start_ns == start_ns && value >= prev.value => {
                Some(value - prev.value)
            }
            // A restart of the counter (new start time or a drop): all of it is new.
            Some(_) => Some(value),
            None if start_ns != 0 && start_ns >= self.started_ns => Some(value),
            None => None,
        }
    }
}

/// `name{k=v,...}`, attributes sorted by key.
pub fn series_key(name: &str, attrs: &[KeyValue]) -> String {
    if attrs.is_empty() {
        return name.to_string();
    }
    let mut pairs: Vec<(String, String)> = attrs
        .iter()
        .map(|kv| {
            let v = kv
                .value
                .as_ref()
                .and_then(|v| v.value.as_ref())
                .map(to_text)
                .unwrap_or_default();
            (kv.key.clone(), v)
        })
        .collect();
    pairs.sort();
    let body: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name}{{{}}}", body.join(","))
}

fn number(p: &NumberDataPoint) -> Option<f64> {
    match p.value? {
        number_data_point::Value::AsDouble(d) => Some(d),
        number_data_point::Value::AsInt(i) => Some(i as f64),
    }
}

/// Turns one export into samples.
pub fn build(request: ExportMetricsServiceRequest, tracker: &mut DeltaTracker) -> MetricsBatch {
    let mut batch = MetricsBatch::default();
    for rm in request.resource_metrics {
        let identity = Identity::of(rm.resource.as_ref());
        let mut out = InstanceSamples {
            identity,
            samples: Vec::new(),
        };
        for metric in rm.scope_metrics.into_iter().flat_map(|s| s.metrics) {
            if !KEPT_PREFIXES.iter().any(|p| metric.name.starts_with(p)) {
                continue;
            }
            let Some(data) = metric.data else { continue };
            let mut sink = Sink {
                instance: &out.identity.instance,
                tracker: &mut *tracker,
                samples: &mut out.samples,
                rejected: &mut batch.rejected,
            };
            match data {
                Data::Gauge(g) => {
                    for p in &g.data_points {
                        sink.gauge(
                            series_key(&metric.name, &p.attributes),
                            p.time_unix_nano,
                            number(p),
                        );
                    }
                }
                Data::Sum(s) => {
                    let cumulative = is_cumulative(s.aggregation_temporality);
                    for p in &s.data_points {
                        let series = series_key(&metric.name, &p.attributes);
                        if cumulative && s.is_monotonic {
                            sink.counter(
                                series,
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                number(p),
                            );
                        } else {
                            sink.gauge(series, p.time_unix_nano, number(p));
                        }
                    }
                }
                Data::Histogram(h) => {
                    let cumulative = is_cumulative(h.aggregation_temporality);
                    for p in &h.data_points {
                        let d = Distribution::at(
                            &p.attributes,
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                        );
                        sink.distribution(&metric.name, cumulative, d, p.count, p.sum);
                    }
                }
                Data::ExponentialHistogram(h) => {
                    let cumulative = is_cumulative(h.aggregation_temporality);
                    for p in &h.data_points {
                        let d = Distribution::at(
                            &p.attributes,
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                        );
                        sink.distribution(&metric.name, cumulative, d, p.count, p.sum);
                    }
                }
                Data::Summary(s) => {
                    for p in &s.data_points {
                        let d = Distribution::at(
                            &p.attributes,
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                        );
                        sink.distribution(&metric.name, true, d, p.count, Some(p.sum));
                    }
                }
            }
        }
        if !out.samples.is_empty() {
            batch.instances.push(out);
        }
    }
    batch
}

fn is_cumulative(temporality: i32) -> bool {
    temporality == AggregationTemporality::Cumulative as i32
}

/// Which series and interval a histogram or summary data point covers.
struct Distribution<'a> {
    attrs: &'a [KeyValue],
    start_ns: u64,
    time_ns: u64,
}

impl<'a> Distribution<'a> {
    fn at(attrs: &'a [KeyValue], start_ns: u64, time_ns: u64) -> Self {
        Distribution {
            attrs,
            start_ns,
            time_ns,
        }
    }
}

/// Where the samples of one instance go while a request is converted.
struct Sink<'a> {
    instance: &'a str,
    tracker: &'a mut DeltaTracker,
    samples: &'a mut Vec<NamedSample>,
    rejected: &'a mut u64,
}

impl Sink<'_> {
    fn push(&mut self, series: String, time_ns: u64, value: f64) {
        self.samples.push(NamedSample {
            series,
            t_ms: time_ns / 1_000_000,
            value,
        });
    }

    fn gauge(&mut self, series: String, time_ns: u64, value: Option<f64>) {
        match value {
            Some(v) if time_ns != 0 => self.push(series, time_ns, v),
            _ => *self.rejected += 1,
        }
    }

    fn counter(&mut self, series: String, start_ns: u64, time_ns: u64, value: Option<f64>) {
        let (Some(v), true) = (value, time_ns != 0) else {
            *self.rejected += 1;
            return;
        };
        if let Some(delta) = self.tracker.delta(self.instance, &series, start_ns, v) {
            self.push(series, time_ns, delta);
        }
    }

    /// Count and sum of a histogram or summary, as `NAME.count{..}` and `NAME.sum{..}`.
    fn distribution(
        &mut self,
        name: &str,
        cumulative: bool,
        at: Distribution,
        count: u64,
        sum: Option<f64>,
    ) {
        let Distribution {
            attrs,
            start_ns,
            time_ns,
        } = at;
        let parts = [("count", Some(count as f64)), ("sum", sum)];
        for (part, value) in parts {
            let Some(value) = value else { continue };
            let series = series_key(&format!("{name}.{part}"), attrs);
            if cumulative {
                self.counter(series, start_ns, time_ns, Some(value));
            } else {
                self.gauge(series, time_ns, Some(value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn series_keys_sort_attributes() {
        let attrs = [
            kv("jvm.memory.type", "heap"),
            kv("jvm.memory.pool.name", "G1 Eden Space"),
        ];
        assert_eq!(
            series_key("jvm.memory.used", &attrs),
            "jvm.memory.used{jvm.memory.pool.name=G1 Eden Space,jvm.memory.type=heap}"
        );
        assert_eq!(series_key("jvm.thread.count", &[]), "jvm.thread.count");
    }

    #[test]
    fn cumulative_values_become_deltas_and_resets_restart_them() {
        let mut t = DeltaTracker::new(1_000);
        // Started after the analyzer: the first value counts in full.
        assert_eq!(t.delta("i", "s", 2_000, 5.0), Some(5.0));
        assert_eq!(t.delta("i", "s", 2_000, 8.0), Some(3.0));
        // The process restarted: a new start time.
        assert_eq!(t.delta("i", "s", 9_000, 2.0), Some(2.0));
        // Started before the analyzer: a baseline only.
        assert_eq!(t.delta("j", "s", 500, 40.0), None);
        assert_eq!(t.delta("j", "s", 500, 41.0), Some(1.0));
    }
}
