//! The exporter thread: the one place the agent talks to the network.
//! Application threads write what ended into rings (`ring`, `ended`); the
//! agent's own threads hand their rarer records (GC pauses, heap dumps,
//! stuck transactions) through a bounded queue. Neither ever blocks a
//! writer (a full one drops and counts) nor wakes this thread (it polls
//! both every 50 ms, so a record costs a few stores, no system call). It
//! writes records as
//! OTLP spans straight into export requests (`otlp`) and sends them itself
//! (`trace_client`), collects the metrics and sends them with
//! opentelemetry-otlp, every `export_interval`.
//! When the backend fails it drops that batch, counts it, says so once, and
//! backs off; spans the backend rejects are counted the same way. On VMDeath
//! it flushes for at most the time it is given.

use std::collections::{HashMap, VecDeque};
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_otlp::{
    MetricExporter, RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::Resource;

use crate::ended::{self, Ended};
use crate::guard;
use crate::interned::STRING_IDS;
use crate::log::{self, line};
use crate::metrics::SharedReader;
use crate::options::{LogLevel, Protocol, Settings};
use crate::otlp::{Rejected, TraceRequest};
use crate::profile_join::Join;
use crate::record::{Record, SpanIds};
use crate::ring::{self, Ring};
use crate::trace_client::TraceClient;

/// Records waiting in the channel to the exporter thread: enough for
/// 300 000 transactions a second between two polls.
const CHANNEL_CAPACITY: usize = 16 * 1024;
/// How often the exporter thread looks at the channel.
const POLL: Duration = Duration::from_millis(50);
/// Records the exporter thread holds while the backend is slow or away.
const PENDING_CAPACITY: usize = 4096;
/// Spans sent in one export request.
pub(crate) const BATCH: usize = 512;
/// Profile text one export request carries at most (a profile is at most
/// 64 KiB): with its other spans the request stays under the 4 MiB an
/// OpenTelemetry Collector accepts by default.
const REQUEST_PROFILE_BYTES: usize = 3 << 20;
/// The longest wait between two attempts while the backend fails.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The sending side: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Queue {
    sender: SyncSender<Record>,
    dropped: Arc<AtomicU64>,
}

impl Queue {
    /// Hands a record to the exporter thread, or drops and counts it if the
    /// queue is full.
    pub fn push(&self, record: Record) {
        if self.sender.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Between the exporter thread and its owner: the request to flush and
/// stop, and the answer that it has.
#[derive(Default)]
struct Stopped {
    requested: AtomicBool,
    done: Mutex<bool>,
    signal: Condvar,
}

/// Owner's handle on the exporter thread.
pub struct Exporter {
    thread: std::thread::Thread,
    stopped: Arc<Stopped>,
}

impl Exporter {
    /// Asks the thread to send what it holds and waits at most `limit` for it.
    pub fn flush(&self, limit: Duration) {
        self.stopped.requested.store(true, Ordering::Release);
        self.thread.unpark();
        let Ok(done) = self.stopped.done.lock() else {
            return;
        };
        let _ = self
            .stopped
            .signal
            .wait_timeout_while(done, limit, |done| !*done);
    }
}

/// Starts the exporter thread. `dropped` counts what never reached the backend.
pub fn start(
    settings: &Settings,
    resource: &Resource,
    reader: SharedReader,
    dropped: Arc<AtomicU64>,
) -> std::io::Result<(Queue, Exporter)> {
    let (sender, receiver) = mpsc::sync_channel(CHANNEL_CAPACITY);
    let queue = Queue { sender, dropped };
    let stopped = Arc::new(Stopped::default());
    let worker = Worker {
        settings: settings.clone(),
        request: TraceRequest::new(resource),
        reader,
        dropped: queue.dropped.clone(),
        pending: VecDeque::new(),
        ended: ended::Reader::default(),
        ids: SpanIds::new(),
        failures: 0,
        join: Join::new(settings.profile.map(|p| (p.after, p.interval))),
    };
    let done = stopped.clone();
    let thread = std::thread::Builder::new()
        .name("jvmapm-exporter".into())
        .spawn(move || {
            let outcome = guard::caught(|| worker.run(receiver, &done.requested));
            if outcome.is_none() {
                line(
                    LogLevel::Error,
                    "exporter thread failed; the agent sends nothing more",
                );
            }
            if let Ok(mut stopped) = done.done.lock() {
                *stopped = true;
                done.signal.notify_all();
            }
        })?;
    Ok((
        queue,
        Exporter {
            thread: thread.thread().clone(),
            stopped,
        },
    ))
}

struct Clients {
    spans: TraceClient,
    metrics: MetricExporter,
}

struct Worker {
    settings: Settings,
    /// The next span export, written as records are taken.
    request: TraceRequest,
    reader: SharedReader,
    dropped: Arc<AtomicU64>,
    pending: VecDeque<Record>,
    /// Reads what application threads wrote into the rings.
    ended: ended::Reader,
    ids: SpanIds,
    /// Failed exports in a row.
    failures: u32,
    /// Slow transactions and profiles waiting for each other.
    join: Join,
}

impl Worker {
    fn run(mut self, receiver: Receiver<Record>, flush: &AtomicBool) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                line(
                    LogLevel::Error,
                    &format!("exporter cannot start: {e}; the agent sends nothing"),
                );
                return;
            }
        };
        let mut clients = match runtime.block_on(async { self.clients() }) {
            Ok(clients) => clients,
            Err(e) => {
                line(
                    LogLevel::Error,
                    &format!(
                        "exporter for {} cannot be built: {e}; the agent sends nothing",
                        self.settings.endpoint
                    ),
                );
                return;
            }
        };
        let mut next_export = Instant::now() + self.settings.export_interval;
        // Records left in the rings while the backend keeps up: take them
        // at once rather than after the next poll.
        let mut more = false;
        loop {
            if !more {
                let wait = next_export.saturating_duration_since(Instant::now());
                std::thread::park_timeout(wait.min(POLL));
            }
            let (disconnected, rings_left) = self.take(&receiver);
            if flush.load(Ordering::Acquire) || disconnected {
                self.release(true);
                runtime.block_on(async {
                    self.send_spans(&mut clients.spans).await;
                    self.send_metrics(&clients.metrics).await;
                });
                return;
            }
            if Instant::now() >= next_export {
                runtime.block_on(async {
                    self.send_spans(&mut clients.spans).await;
                    self.send_metrics(&clients.metrics).await;
                });
                next_export = Instant::now() + self.delay();
            } else if self.pending.len() >= BATCH && self.failures == 0 {
                runtime.block_on(self.send_spans(&mut clients.spans));
            }
            more = rings_left && self.failures == 0 && self.pending.len() < PENDING_CAPACITY;
        }
    }

    /// Takes what waits in the channel, and from the rings as much as the
    /// pending buffer has room for (the rest waits there, bounded, and
    /// application threads count what a full ring refuses). Answers whether
    /// every sender is gone, and whether the rings may hold more.
    fn take(&mut self, receiver: &Receiver<Record>) -> (bool, bool) {
        let room = PENDING_CAPACITY.saturating_sub(self.pending.len());
        let mut reader = std::mem::take(&mut self.ended);
        let read = read_rings(&mut reader, ring::all(), room, &mut |record| {
            self.hold(record)
        });
        self.ended = reader;
        let rings_left = read == room;
        let disconnected = loop {
            match receiver.try_recv() {
                Ok(record) => self.hold(record),
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        self.release(false);
        (disconnected, rings_left)
    }

    /// Keeps a record for the next export, once its profile joined it.
    fn hold(&mut self, record: Record) {
        if let Some(record) = self.join.take(record, Instant::now()) {
            self.keep(record);
        }
    }

    /// Keeps the slow transactions that waited long enough for a profile
    /// (`all`: every one) for the next export.
    fn release(&mut self, all: bool) {
        let mut due = Vec::new();
        self.join
            .due(Instant::now(), all, &mut |record| due.push(record));
        for record in due {
            self.keep(record);
        }
    }

    /// Keeps a record for the next export, or drops and counts it when the
    /// backend has been away long enough to fill the buffer.
    fn keep(&mut self, record: Record) {
        if self.pending.len() < PENDING_CAPACITY {
            self.pending.push_back(record);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The wait before the next export: the interval, doubled for each
    /// failure in a row, up to a minute (or the interval, if longer).
    fn delay(&self) -> Duration {
        let interval = self.settings.export_interval;
        if self.failures == 0 {
            return interval;
        }
        let doubled = interval.saturating_mul(1 << self.failures.min(16));
        doubled.min(MAX_BACKOFF.max(interval))
    }

    fn clients(&self) -> Result<Clients, String> {
        let s = &self.settings;
        let base = s.endpoint.trim_end_matches('/');
        let built = |e: opentelemetry_otlp::ExporterBuildError| e.to_string();
        match s.protocol {
            Protocol::Grpc => {
                let metadata = metadata(&s.headers);
                Ok(Clients {
                    spans: TraceClient::grpc(base, s.timeout, metadata.clone())?,
                    metrics: MetricExporter::builder()
                        .with_tonic()
                        .with_endpoint(base)
                        .with_timeout(s.timeout)
                        .with_metadata(metadata)
                        .with_retry_policy(RetryPolicy::disabled())
                        .build()
                        .map_err(built)?,
                })
            }
            Protocol::HttpProtobuf => {
                let headers: HashMap<String, String> = s.headers.iter().cloned().collect();
                Ok(Clients {
                    spans: TraceClient::http(base, s.timeout, &s.headers)?,
                    metrics: MetricExporter::builder()
                        .with_http()
                        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                        .with_endpoint(format!("{base}/v1/metrics"))
                        .with_timeout(s.timeout)
                        .with_headers(headers)
                        .with_retry_policy(RetryPolicy::disabled())
                        .build()
                        .map_err(built)?,
                })
            }
        }
    }

    /// Sends every pending record, a batch at a time; a failed batch is
    /// dropped and counted, and the rest wait for the next attempt.
    async fn send_spans(&mut self, client: &mut TraceClient) {
        while !self.pending.is_empty() {
            let take = batch_len(&self.pending);
            let request = encode(self.pending.drain(..take), &mut self.ids, &mut self.request);
            match client.export(request).await {
                Ok(rejected) => {
                    self.count_rejected(rejected);
                    self.succeeded();
                }
                Err(e) => {
                    self.dropped.fetch_add(take as u64, Ordering::Relaxed);
                    self.failed("spans", e);
                    return;
                }
            }
        }
    }

    /// Counts the spans the backend rejected as dropped; says so once.
    fn count_rejected(&self, rejected: Rejected) {
        if rejected.spans == 0 {
            return;
        }
        self.dropped.fetch_add(rejected.spans, Ordering::Relaxed);
        log::once(
            "spans-rejected",
            LogLevel::Warn,
            &format!(
                "{} rejected {} spans of an export ({:?}); rejected spans are counted as dropped",
                self.settings.endpoint, rejected.spans, rejected.message
            ),
        );
    }

    async fn send_metrics(&mut self, client: &MetricExporter) {
        let mut metrics = ResourceMetrics::default();
        if let Err(e) = self.reader.collect(&mut metrics) {
            log::once(
                "metrics-collect",
                LogLevel::Warn,
                &format!("collecting metrics failed: {e}"),
            );
            return;
        }
        match client.export(&metrics).await {
            Ok(()) => self.succeeded(),
            Err(e) => self.failed("metrics", e),
        }
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            line(
                LogLevel::Info,
                &format!(
                    "export to {} works again; {} spans dropped so far",
                    self.settings.endpoint,
                    self.dropped.load(Ordering::Relaxed)
                ),
            );
        }
        self.failures = 0;
    }

    fn failed(&mut self, what: &str, error: impl Display) {
        if self.failures == 0 {
            line(
                LogLevel::Warn,
                &format!(
                    "cannot export {what} to {}: {error}; retrying with backoff, and counting what is dropped meanwhile",
                    self.settings.endpoint
                ),
            );
        }
        self.failures = self.failures.saturating_add(1);
    }
}

/// How many of the pending records go in the next request: at most a
/// batch, and at most [`REQUEST_PROFILE_BYTES`] of profiles (at least one).
fn batch_len(pending: &VecDeque<Record>) -> usize {
    let mut bytes = 0;
    let fits = pending
        .iter()
        .take(BATCH)
        .take_while(|record| {
            if let Record::Profiled(_, profile) = record {
                bytes += profile.text.len();
            }
            bytes <= REQUEST_PROFILE_BYTES
        })
        .count();
    fits.max(1).min(pending.len())
}

/// Reads at most `limit` records that application threads wrote into
/// `rings`; returns how many it read.
pub(crate) fn read_rings(
    reader: &mut ended::Reader,
    rings: &[Ring],
    limit: usize,
    hold: &mut dyn FnMut(Record),
) -> usize {
    STRING_IDS.with(|resolve| {
        reader.read(rings, limit, resolve, &mut |ended| {
            hold(match ended {
                Ended::Transaction(finished) => Record::Transaction(Box::new(finished)),
                Ended::Sql(call) => Record::Sql(Box::new(call)),
                Ended::Http(call) => Record::Http(Box::new(call)),
                Ended::Step(call) => Record::Step(Box::new(call)),
            })
        })
    })
}

/// Writes records as spans into one export request and hands it over.
pub(crate) fn encode(
    records: impl Iterator<Item = Record>,
    ids: &mut SpanIds,
    request: &mut TraceRequest,
) -> Bytes {
    for record in records {
        record.write_span(ids, request);
    }
    request.finish()
}

/// gRPC metadata from the configured headers; a header gRPC cannot carry
/// is left out and said once.
fn metadata(
    headers: &[(String, String)],
) -> opentelemetry_otlp::tonic_types::metadata::MetadataMap {
    use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
    let mut map = opentelemetry_otlp::tonic_types::metadata::MetadataMap::new();
    for (name, value) in headers {
        match (
            AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes()),
            AsciiMetadataValue::try_from(value.as_str()),
        ) {
            (Ok(key), Ok(value)) => {
                map.insert(key, value);
            }
            _ => line(
                LogLevel::Warn,
                &format!("header {name:?} cannot be sent over gRPC; it is left out"),
            ),
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stacks::Profile;

    fn profiled(text_bytes: usize) -> Record {
        let gc = Record::GcPause {
            start_ns: 1,
            duration_ns: 1,
            collection: None,
        };
        if text_bytes == 0 {
            return gc;
        }
        let finished = match crate::profile_join::tests::slow_transaction() {
            Record::Transaction(finished) => finished,
            _ => unreachable!(),
        };
        Record::Profiled(
            finished,
            Box::new(Profile {
                span_id: 1,
                text: "x".repeat(text_bytes),
                samples: 1,
                dropped: 0,
                truncated: 0,
                interval_us: 10_000,
            }),
        )
    }

    /// 512 spans of 64 KiB profiles would make a 32 MiB request, which an
    /// OpenTelemetry Collector refuses: profiles fill requests up to 3 MiB.
    #[test]
    fn a_request_carries_at_most_a_few_mib_of_profiles() {
        let pending: VecDeque<Record> = (0..600).map(|_| profiled(64 * 1024)).collect();
        assert_eq!(batch_len(&pending), 48);
        let pending: VecDeque<Record> = (0..600).map(|_| profiled(0)).collect();
        assert_eq!(batch_len(&pending), BATCH);
        let pending: VecDeque<Record> = [profiled(5 << 20)].into_iter().collect();
        assert_eq!(batch_len(&pending), 1, "a request takes at least one");
    }
}
