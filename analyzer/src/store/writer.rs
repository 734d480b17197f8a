//! The single writer of a data directory: takes batches from the receivers
//! through a bounded queue, interns their strings, appends them to the hour
//! segments, syncs, and only then meters the points and acknowledges, so an
//! acknowledged export is on disk. Batches that queue up while a sync runs are
//! committed together (group commit), which is what makes durability cheap.
//!
//! A full queue is refused at once (the receiver answers 429/503 with
//! Retry-After); receivers never wait for room.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use jvmapm_contract::clock::unix_ms;
use tokio::sync::{mpsc, oneshot};

use super::children::{ChildRef, ParentKey, WaitingChildren};
use super::detail;
use super::partition::hour_of;
use super::segment::{Log, Sample, Segment};
use super::strings::Interner;
use super::Store;
use crate::ingest::jvm_metrics::MetricsBatch;
use crate::ingest::xlog::{ResourceGroup, TraceBatch};
use crate::meter::Meter;
use crate::point::{DetailRef, Lineage, Point};
use crate::store::instances::Instances;

/// Most jobs committed together.
const MAX_GROUP: usize = 256;
/// How often the instance registry is saved and meters pruned.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// What a receiver hands to the writer.
pub enum Work {
    Traces(TraceBatch),
    Metrics(MetricsBatch),
}

/// A batch and where to say whether it was stored.
pub struct Job {
    pub work: Work,
    pub done: oneshot::Sender<Result<(), String>>,
}

/// Why a submission was not stored.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full: the client should retry later.
    Busy,
    /// The server is shutting down.
    Closed,
    /// Writing failed (disk full, I/O error); nothing of the batch was kept.
    Store(String),
}

/// The receivers' side of the writer.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Job>,
}

impl WriterHandle {
    /// Queues `work` and waits until it is durable.
    pub async fn submit(&self, work: Work) -> Result<(), SubmitError> {
        let (done, rx) = oneshot::channel();
        self.tx.try_send(Job { work, done }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Busy,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
        })?;
        rx.await
            .map_err(|_| SubmitError::Closed)?
            .map_err(SubmitError::Store)
    }
}

/// A bounded queue of jobs: the receivers' handle and a writer's end.
pub fn channel(capacity: usize) -> (WriterHandle, mpsc::Receiver<Job>) {
    let (tx, rx) = mpsc::channel(capacity);
    (WriterHandle { tx }, rx)
}

/// What the writer updates besides the files.
pub struct Shared {
    pub store: Arc<Store>,
    pub meter: Arc<Mutex<Meter>>,
    pub instances: Arc<Instances>,
}

/// Starts the writer thread. It ends once every handle is dropped and the
/// queue is drained; join it to know everything acknowledged is flushed.
pub fn spawn(
    shared: Shared,
    queue_capacity: usize,
) -> std::io::Result<(WriterHandle, thread::JoinHandle<()>)> {
    let strings_path = shared.store.dir().join("strings.log");
    let interner = Interner::open(&strings_path, &shared.store.strings)?;
    let (handle, rx) = channel(queue_capacity);
    let writer = Writer {
        next_seq: shared.store.committed_seq() + 1,
        shared,
        interner,
        strings_path,
        failing: false,
        children: WaitingChildren::default(),
    };
    let thread = thread::Builder::new()
        .name("jvmapm-store-writer".into())
        .spawn(move || {
            // A writer that cannot go on must not leave a server that takes
            // exports it can never store: stop, so a supervisor restarts it.
            let run = std::panic::AssertUnwindSafe(|| writer.run(rx));
            if std::panic::catch_unwind(run).is_err() {
                tracing::error!("the store writer failed; jvmapm serve stops (everything acknowledged is on disk)");
                std::process::exit(70);
            }
        })?;
    Ok((handle, thread))
}

struct Writer {
    shared: Shared,
    interner: Interner,
    strings_path: PathBuf,
    next_seq: u64,
    /// A commit failed and no commit has succeeded since (logs once per outage).
    failing: bool,
    /// Stored child spans whose transaction has not come yet.
    children: WaitingChildren,
}

/// What one commit does to the waiting children once it is durable.
#[derive(Default)]
struct ChildChanges {
    /// Children stored by this commit, by parent.
    staged: HashMap<ParentKey, Vec<ChildRef>>,
    /// Parents whose transaction this commit wrote with its children.
    claimed: Vec<ParentKey>,
}

/// What one commit appends to one segment.
struct Pending {
    seg: Arc<Segment>,
    points: Vec<u8>,
    details: Vec<u8>,
    metrics: Vec<u8>,
    events: Vec<u8>,
}

impl Pending {
    fn logs(&self) -> [(&Log, &Vec<u8>); 4] {
        [
            (&self.seg.details, &self.details),
            (&self.seg.events, &self.events),
            (&self.seg.points, &self.points),
            (&self.seg.metrics, &self.metrics),
        ]
    }
}

/// A point to meter once its batch is durable.
struct Metered {
    key: (u32, u32),
    end_ms: u64,
    elapsed_us: u64,
    error: bool,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::new();
        let mut last_housekeeping = Instant::now();
        while let Some(job) = rx.blocking_recv() {
            jobs.push(job);
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.commit(&mut jobs);
            if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                self.housekeeping();
                last_housekeeping = Instant::now();
            }
        }
        self.housekeeping();
        tracing::debug!("store writer stopped; everything acknowledged is on disk");
    }

    fn housekeeping(&mut self) {
        self.children.evict(unix_ms());
        crate::lock(&self.shared.meter).prune(unix_ms());
        if let Err(e) = self.shared.instances.save_if_dirty() {
            tracing::warn!(error = %e, "could not save the instance registry");
        }
    }

    fn commit(&mut self, jobs: &mut Vec<Job>) {
        let now = unix_ms();
        let first_seq = self.next_seq;
        let mut pending = BTreeMap::new();
        let mut metered = Vec::new();
        let mut children = ChildChanges::default();
        let result = jobs
            .iter()
            .try_for_each(|job| self.stage(&job.work, &mut pending, &mut metered, &mut children))
            .and_then(|()| self.write(&pending));
        match result {
            Ok(()) => {
                for p in pending.values() {
                    for (log, bytes) in p.logs() {
                        if !bytes.is_empty() {
                            log.publish(log.committed() + bytes.len() as u64);
                        }
                    }
                }
                self.shared.store.publish_seq(self.next_seq - 1);
                self.children
                    .settle(&children.claimed, children.staged, now);
                let mut meter = crate::lock(&self.shared.meter);
                for m in &metered {
                    meter.record(m.key, m.end_ms, m.elapsed_us, m.error, now);
                }
                drop(meter);
                for job in jobs.iter() {
                    for identity in work_identities(&job.work) {
                        self.shared.instances.seen(identity, now);
                    }
                }
                if self.failing {
                    tracing::info!("store writes succeed again");
                    self.failing = false;
                }
                for job in jobs.drain(..) {
                    let _ = job.done.send(Ok(()));
                }
            }
            Err(e) => {
                if !self.failing {
                    tracing::error!(error = %e, dir = %self.shared.store.dir().display(), "store write failed; exports are refused until writes succeed");
                    self.failing = true;
                }
                self.rollback(&pending);
                self.next_seq = first_seq;
                let message = format!("store write failed: {e}");
                for job in jobs.drain(..) {
                    let _ = job.done.send(Err(message.clone()));
                }
            }
        }
    }

    fn pending_for<'a>(
        &self,
        pending: &'a mut BTreeMap<u64, Pending>,
        t_ms: u64,
    ) -> std::io::Result<&'a mut Pending> {
        match pending.entry(hour_of(t_ms)) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let seg = self.shared.store.segment_for_write(*e.key())?;
                Ok(e.insert(Pending {
                    seg,
                    points: Vec::new(),
                    details: Vec::new(),
                    metrics: Vec::new(),
                    events: Vec::new(),
                }))
            }
        }
    }

    /// The pending writes of the segment holding `t_ms`, with `group`'s
    /// resource record in its details (written there on first use).
    fn pending_detail<'a>(
        &self,
        pending: &'a mut BTreeMap<u64, Pending>,
        resource_at: &mut HashMap<u64, DetailRef>,
        group: &ResourceGroup,
        t_ms: u64,
    ) -> std::io::Result<(&'a mut Pending, DetailRef)> {
        let p = self.pending_for(pending, t_ms)?;
        let base = p.seg.details.committed();
        let resource = *resource_at
            .entry(p.seg.hour)
            .or_insert_with(|| detail::push_resource(&mut p.details, base, &group.resource_record));
        Ok((p, resource))
    }

    /// Stages one batch into the pending segment buffers (nothing written yet).
    fn stage(
        &mut self,
        work: &Work,
        pending: &mut BTreeMap<u64, Pending>,
        metered: &mut Vec<Metered>,
        children: &mut ChildChanges,
    ) -> std::io::Result<()> {
        match work {
            Work::Traces(batch) => {
                // The group's resource record, written once into each segment
                // it touches; children first, as their transaction may come
                // in another group (another instrumentation scope).
                let mut resources: Vec<HashMap<u64, DetailRef>> =
                    vec![HashMap::new(); batch.groups.len()];
                for (group, resource_at) in batch.groups.iter().zip(&mut resources) {
                    self.stage_children(group, resource_at, pending, children)?;
                }
                for (group, resource_at) in batch.groups.iter().zip(&mut resources) {
                    self.stage_points(group, resource_at, pending, metered, children)?;
                }
                for event in &batch.events {
                    let p = self.pending_for(pending, event.t_ms)?;
                    super::frame::push(&mut p.events, &event.json);
                }
                Ok(())
            }
            Work::Metrics(batch) => self.stage_metrics(batch, pending),
        }
    }

    /// A group's child spans (SQL calls, outgoing requests): their details,
    /// and where they wait for the transaction they belong to.
    fn stage_children(
        &mut self,
        group: &ResourceGroup,
        resource_at: &mut HashMap<u64, DetailRef>,
        pending: &mut BTreeMap<u64, Pending>,
        children: &mut ChildChanges,
    ) -> std::io::Result<()> {
        for child in &group.children {
            let (p, resource) = self.pending_detail(pending, resource_at, group, child.end_ms)?;
            let base = p.seg.details.committed();
            let body = &group.body[child.detail.clone()];
            let at = detail::push_span(&mut p.details, base, resource, &[], body);
            children
                .staged
                .entry((child.trace_id, child.parent_span_id))
                .or_default()
                .push(ChildRef {
                    span_id: child.span_id,
                    hour: p.seg.hour,
                    detail: at,
                });
        }
        Ok(())
    }

    /// A group's XLog points, each with its detail (and its children's
    /// references), and what the meter will count once they are on disk.
    fn stage_points(
        &mut self,
        group: &ResourceGroup,
        resource_at: &mut HashMap<u64, DetailRef>,
        pending: &mut BTreeMap<u64, Pending>,
        metered: &mut Vec<Metered>,
        children: &mut ChildChanges,
    ) -> std::io::Result<()> {
        let strings = &self.shared.store.strings;
        let service = self.interner.intern(strings, &group.identity.service);
        let instance = self.interner.intern(strings, &group.identity.instance);
        for span in &group.spans {
            let endpoint = self.interner.intern(strings, &span.endpoint);
            let its_children = self.children.subtree(
                &children.staged,
                (span.trace_id, span.span_id),
                &mut children.claimed,
            );
            let (p, resource) = self.pending_detail(pending, resource_at, group, span.end_ms)?;
            let base = p.seg.details.committed();
            let at = detail::push_span(
                &mut p.details,
                base,
                resource,
                &its_children,
                &group.body[span.detail.clone()],
            );
            let point = Point {
                seq: self.next_seq,
                end_ms: span.end_ms,
                elapsed_us: span.elapsed_us,
                trace_id: span.trace_id,
                span_id: span.span_id,
                service,
                instance,
                endpoint,
                status_code: span.status_code,
                error: span.error,
                cpu_us: span.cpu_us,
                sql: span.sql,
                http: span.http,
                lineage: Some(Lineage {
                    parent_span_id: span.parent_span_id,
                    has_children: !its_children.is_empty(),
                }),
                detail: DetailRef {
                    offset: at.offset,
                    len: at.len,
                },
            };
            self.next_seq += 1;
            point.encode(p.seg.format, &mut p.points);
            metered.push(Metered {
                key: (service, endpoint),
                end_ms: span.end_ms,
                elapsed_us: span.elapsed_us,
                error: span.error,
            });
        }
        Ok(())
    }

    /// A metric batch's samples, into the `.metrics` buffer of their hour.
    fn stage_metrics(
        &mut self,
        batch: &MetricsBatch,
        pending: &mut BTreeMap<u64, Pending>,
    ) -> std::io::Result<()> {
        let strings = &self.shared.store.strings;
        for inst in &batch.instances {
            let instance = self.interner.intern(strings, &inst.identity.instance);
            for s in &inst.samples {
                let series = self.interner.intern(strings, &s.series);
                let p = self.pending_for(pending, s.t_ms)?;
                Sample {
                    t_ms: s.t_ms,
                    value: s.value,
                    instance,
                    series,
                }
                .encode(&mut p.metrics);
            }
        }
        Ok(())
    }

    /// Appends and syncs: strings first, so nothing on disk refers to a missing name.
    fn write(&mut self, pending: &BTreeMap<u64, Pending>) -> std::io::Result<()> {
        self.interner.flush()?;
        for p in pending.values() {
            for (log, bytes) in p.logs() {
                if !bytes.is_empty() {
                    log.append(bytes)?;
                }
            }
        }
        for p in pending.values() {
            for (log, bytes) in p.logs() {
                if !bytes.is_empty() {
                    log.sync()?;
                }
            }
        }
        Ok(())
    }

    fn rollback(&mut self, pending: &BTreeMap<u64, Pending>) {
        let mut result = self
            .interner
            .rollback(&self.shared.store.strings, &self.strings_path);
        for p in pending.values() {
            for (log, _) in p.logs() {
                result = result.and(log.rollback());
            }
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "could not cut a failed batch from the store files; a restart will");
        }
    }
}

/// Who sent a batch: the services and instances it is from.
pub(crate) fn work_identities(work: &Work) -> Vec<&crate::ingest::xlog::Identity> {
    match work {
        Work::Traces(b) => {
            let groups = b.groups.iter().map(|g| &g.identity);
            groups.chain(b.events.iter().map(|e| &e.identity)).collect()
        }
        Work::Metrics(b) => b.instances.iter().map(|i| &i.identity).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_a_stopped_writer_says_so() {
        let (tx, rx) = mpsc::channel(1);
        let handle = WriterHandle { tx };
        let waiting = tokio::spawn({
            let handle = handle.clone();
            async move { handle.submit(Work::Metrics(MetricsBatch::default())).await }
        });
        while handle.tx.capacity() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            handle.submit(Work::Metrics(MetricsBatch::default())).await,
            Err(SubmitError::Busy)
        );
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(SubmitError::Closed));
    }
}
