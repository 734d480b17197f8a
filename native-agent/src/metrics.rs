//! The agent's metrics: OpenTelemetry instruments named as
//! `jvmapm_contract::names::metric` says, recorded by the sampler thread, and a reader that only the
//! exporter thread collects (no SDK thread of its own: the SDK's periodic
//! reader would be a second exporter thread).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider};
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::Resource;

use jvmapm_contract::names::metric;

use crate::management::JvmReading;

/// A `ManualReader` shared between the meter provider and the exporter thread.
#[derive(Clone, Debug)]
pub struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Totals the JVM reports since its start, kept to turn them into counter increments.
#[derive(Default)]
struct Totals {
    collections: HashMap<String, (i64, i64)>,
    classes_loaded: i64,
    cpu_ns: u64,
}

/// Every instrument the agent records into.
pub struct Instruments {
    memory_used: Gauge<i64>,
    memory_committed: Gauge<i64>,
    memory_limit: Gauge<i64>,
    gc_duration: Histogram<f64>,
    gc_count: Counter<u64>,
    gc_time: Counter<f64>,
    thread_count: Gauge<i64>,
    class_count: Gauge<i64>,
    class_loaded: Counter<u64>,
    cpu_time: Counter<f64>,
    finalizer_pending: Gauge<i64>,
    active: Gauge<i64>,
    totals: Totals,
}

impl Instruments {
    fn new(meter: &Meter) -> Instruments {
        let bytes = |name: &'static str, description: &'static str| {
            meter
                .i64_gauge(name)
                .with_unit("By")
                .with_description(description)
                .build()
        };
        Instruments {
            memory_used: bytes(metric::MEMORY_USED, "Memory used, per pool"),
            memory_committed: bytes(metric::MEMORY_COMMITTED, "Memory committed, per pool"),
            memory_limit: bytes(metric::MEMORY_LIMIT, "Memory limit, per pool"),
            gc_duration: meter
                .f64_histogram(metric::GC_DURATION)
                .with_unit("s")
                .with_description("Stop-the-world GC pauses")
                .with_boundaries(vec![0.001, 0.01, 0.1, 1.0, 10.0])
                .build(),
            gc_count: meter
                .u64_counter(metric::GC_COUNT)
                .with_unit("{collection}")
                .with_description("Collections per collector, as its MXBean counts them")
                .build(),
            gc_time: meter
                .f64_counter(metric::GC_TIME)
                .with_unit("s")
                .with_description("Collection time per collector, as its MXBean counts it")
                .build(),
            thread_count: meter
                .i64_gauge(metric::THREAD_COUNT)
                .with_unit("{thread}")
                .with_description("Live threads")
                .build(),
            class_count: meter
                .i64_gauge(metric::CLASS_COUNT)
                .with_unit("{class}")
                .with_description("Classes currently loaded")
                .build(),
            class_loaded: meter
                .u64_counter(metric::CLASS_LOADED)
                .with_unit("{class}")
                .with_description("Classes loaded since the JVM started")
                .build(),
            cpu_time: meter
                .f64_counter(metric::CPU_TIME)
                .with_unit("s")
                .with_description("CPU time the JVM process used")
                .build(),
            finalizer_pending: meter
                .i64_gauge(metric::FINALIZER_PENDING)
                .with_unit("{object}")
                .with_description("Objects waiting for the Finalizer thread")
                .build(),
            active: meter
                .i64_gauge(metric::TRANSACTIONS_ACTIVE)
                .with_unit("{transaction}")
                .with_description("Open transactions by age: under 3 s, 3 to 8 s, over 8 s")
                .build(),
            totals: Totals::default(),
        }
    }

    /// Records how many transactions are open, by age bucket.
    pub fn record_active(&self, by_age: [u64; 3]) {
        for (count, age) in by_age.into_iter().zip(metric::AGES) {
            self.active
                .record(count as i64, &[KeyValue::new(metric::AGE, age)]);
        }
    }

    /// Records one sampling round.
    pub fn record(&mut self, reading: &JvmReading, process_cpu_ns: u64) {
        for pool in &reading.pools {
            let attributes = [
                KeyValue::new(metric::MEMORY_TYPE, pool.kind.as_str()),
                KeyValue::new(metric::MEMORY_POOL_NAME, pool.name.clone()),
            ];
            self.memory_used.record(pool.usage.used, &attributes);
            self.memory_committed
                .record(pool.usage.committed, &attributes);
            if let Some(limit) = pool.usage.limit {
                self.memory_limit.record(limit, &attributes);
            }
        }
        for collector in &reading.collectors {
            let attributes = [KeyValue::new(metric::GC_NAME, collector.name.clone())];
            let (count, time_ms) = self
                .totals
                .collections
                .entry(collector.name.clone())
                .or_default();
            // A collector that does not count says -1; never count backwards.
            if collector.count > *count {
                self.gc_count
                    .add((collector.count - *count) as u64, &attributes);
                *count = collector.count;
            }
            if collector.time_ms > *time_ms {
                self.gc_time
                    .add((collector.time_ms - *time_ms) as f64 / 1e3, &attributes);
                *time_ms = collector.time_ms;
            }
        }
        self.thread_count.record(reading.threads, &[]);
        self.class_count.record(reading.classes_loaded, &[]);
        if reading.classes_loaded_total > self.totals.classes_loaded {
            self.class_loaded.add(
                (reading.classes_loaded_total - self.totals.classes_loaded) as u64,
                &[],
            );
            self.totals.classes_loaded = reading.classes_loaded_total;
        }
        if process_cpu_ns > self.totals.cpu_ns {
            self.cpu_time
                .add((process_cpu_ns - self.totals.cpu_ns) as f64 / 1e9, &[]);
            self.totals.cpu_ns = process_cpu_ns;
        }
        if let Some(pending) = reading.finalizer_pending {
            self.finalizer_pending.record(pending, &[]);
        }
    }

    /// Records one GC pause of `collector` (when known).
    pub fn record_pause(&self, duration_ns: u64, attributes: &[KeyValue]) {
        self.gc_duration
            .record(duration_ns as f64 / 1e9, attributes);
    }
}

/// The meter provider, its reader and the instruments.
pub struct Metrics {
    pub provider: SdkMeterProvider,
    pub reader: SharedReader,
    pub instruments: Instruments,
}

/// Builds the metric pipeline for `resource`; `dropped` is reported as
/// [`metric::AGENT_DROPPED`], the spans the agent could not deliver.
pub fn pipeline(resource: Resource, dropped: Arc<AtomicU64>) -> Metrics {
    let reader = SharedReader(Arc::new(ManualReader::builder().build()));
    let provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader.clone())
        .build();
    let meter = provider.meter("jvmapm-agent");
    // A gauge of the total rather than a counter: a backend that comes up
    // after the drops (the usual case) would take a counter's first value as
    // its baseline and show nothing.
    let _dropped = meter
        .u64_observable_gauge(metric::AGENT_DROPPED)
        .with_unit("{span}")
        .with_description(
            "Spans dropped since the agent started, because its queue was full or the backend failed",
        )
        .with_callback(move |observer| observer.observe(dropped.load(Ordering::Relaxed), &[]))
        .build();
    let instruments = Instruments::new(&meter);
    Metrics {
        provider,
        reader,
        instruments,
    }
}
