//! The ClickHouse writer: takes the receivers' batches through the same
//! bounded queue as the local store's writer and inserts them in groups,
//! because ClickHouse wants few large inserts: the batches that arrive
//! within [`GROUP_WAIT`] of the first (or until [`GROUP_ROWS`] rows) go in
//! one insert per table, and their exports are answered together once
//! ClickHouse has accepted every row of them. An insert that fails answers
//! them all with the error (the receivers say 503 with Retry-After), so
//! nothing is acknowledged that ClickHouse did not take; while it inserts,
//! new batches wait in the queue, and a full queue is refused at once.
//!
//! Points go last, after their spans, so a point a reader sees always has
//! its span; they are numbered ([`seq`](super::seq)) just before their
//! insert is sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use clickhouse::{RowOwned, RowWrite};
use jvmapm_contract::clock::unix_ms;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::rows::{EventRecord, InstanceRecord, MetricRecord, PointRecord, SpanRecord};
use super::seq::{Stamper, SETTLE_MS};
use super::ClickHouse;
use crate::ingest::jvm_metrics::MetricsBatch;
use crate::ingest::xlog::{ResourceGroup, TraceBatch};
use crate::store::writer::{self, work_identities, Job, Work, WriterHandle};

/// How long the first batch of a group waits for others.
const GROUP_WAIT: Duration = Duration::from_millis(50);
/// Rows that close a group at once.
const GROUP_ROWS: usize = 50_000;
/// How long one insert may take before it is given up (shorter than
/// [`SETTLE_MS`], so live tails never pass points still being inserted).
pub const INSERT_TIMEOUT: Duration = Duration::from_millis(SETTLE_MS * 3 / 4);
/// How often the instances heard from are written.
const INSTANCES_EVERY: Duration = Duration::from_secs(1);

/// Starts the writer task. It ends once every handle is dropped and the
/// queue is drained; await it to know everything acknowledged is inserted.
pub fn spawn(
    clickhouse: Arc<ClickHouse>,
    queue_capacity: usize,
) -> (WriterHandle, tokio::task::JoinHandle<()>) {
    let (handle, rx) = writer::channel(queue_capacity);
    let task = tokio::spawn(run(clickhouse, rx));
    (handle, task)
}

/// The rows of one group, per table.
#[derive(Default)]
struct Group {
    points: Vec<PointRecord>,
    spans: Vec<SpanRecord>,
    metrics: Vec<MetricRecord>,
    events: Vec<EventRecord>,
}

impl Group {
    fn rows(&self) -> usize {
        self.points.len() + self.spans.len() + self.metrics.len() + self.events.len()
    }

    fn add(&mut self, work: &Work) {
        match work {
            Work::Traces(batch) => self.add_traces(batch),
            Work::Metrics(batch) => self.add_metrics(batch),
        }
    }

    fn add_traces(&mut self, batch: &TraceBatch) {
        for group in &batch.groups {
            self.add_group(group);
        }
        for event in &batch.events {
            self.events.push(EventRecord {
                t_ms: event.t_ms,
                instance: event.identity.instance.clone(),
                event: event.json.clone(),
            });
        }
    }

    fn add_group(&mut self, group: &ResourceGroup) {
        let span = |trace_id,
                    span_id,
                    parent_span_id,
                    end_ms,
                    is_point,
                    detail: &std::ops::Range<usize>| SpanRecord {
            trace_id,
            span_id,
            parent_span_id,
            end_ms,
            is_point,
            resource: group.resource_record.clone(),
            span: group.body[detail.clone()].to_vec(),
        };
        for c in &group.children {
            self.spans.push(span(
                c.trace_id,
                c.span_id,
                c.parent_span_id,
                c.end_ms,
                0,
                &c.detail,
            ));
        }
        for p in &group.spans {
            self.spans.push(span(
                p.trace_id,
                p.span_id,
                p.parent_span_id,
                p.end_ms,
                1,
                &p.detail,
            ));
            let sql = p.sql.unwrap_or_default();
            let http = p.http.unwrap_or_default();
            self.points.push(PointRecord {
                seq: 0,
                end_ms: p.end_ms,
                elapsed_us: p.elapsed_us,
                trace_id: p.trace_id,
                span_id: p.span_id,
                parent_span_id: p.parent_span_id,
                service: group.identity.service.clone(),
                instance: group.identity.instance.clone(),
                endpoint: p.endpoint.clone(),
                status_code: p.status_code,
                error: u8::from(p.error),
                has_cpu: u8::from(p.cpu_us.is_some()),
                cpu_us: p.cpu_us.unwrap_or(0),
                has_sql: u8::from(p.sql.is_some()),
                sql_count: sql.count,
                sql_us: sql.time_us,
                has_http: u8::from(p.http.is_some()),
                http_count: http.count,
                http_us: http.time_us,
            });
        }
    }

    fn add_metrics(&mut self, batch: &MetricsBatch) {
        for inst in &batch.instances {
            for s in &inst.samples {
                self.metrics.push(MetricRecord {
                    t_ms: s.t_ms,
                    instance: inst.identity.instance.clone(),
                    series: s.series.clone(),
                    value: s.value,
                });
            }
        }
    }
}

async fn run(clickhouse: Arc<ClickHouse>, mut rx: mpsc::Receiver<Job>) {
    let mut stamper = Stamper::new(analyzer_number());
    let mut heard: HashMap<(String, String), InstanceRecord> = HashMap::new();
    let mut tick = tokio::time::interval(INSTANCES_EVERY);
    let mut failing = false;
    loop {
        let first = tokio::select! {
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
            _ = tick.tick() => {
                write_instances(&clickhouse, &mut heard).await;
                continue;
            }
        };
        let mut group = Group::default();
        group.add(&first.work);
        let mut jobs = vec![first];
        let deadline = Instant::now() + GROUP_WAIT;
        while group.rows() < GROUP_ROWS {
            tokio::select! {
                job = rx.recv() => match job {
                    Some(job) => {
                        group.add(&job.work);
                        jobs.push(job);
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        match insert(&clickhouse, group, &mut stamper).await {
            Ok(()) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("ClickHouse takes inserts again");
                }
                let now = unix_ms();
                for job in jobs {
                    for identity in work_identities(&job.work) {
                        heard.insert(
                            (identity.service.clone(), identity.instance.clone()),
                            InstanceRecord {
                                seen_ms: now,
                                service: identity.service.clone(),
                                instance: identity.instance.clone(),
                                attributes: attributes_json(&identity.attributes),
                            },
                        );
                    }
                    let _ = job.done.send(Ok(()));
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::error!(error = %e, clickhouse = %clickhouse.config.shown(), "ClickHouse insert failed; exports are refused until inserts succeed");
                }
                let why = format!("ClickHouse insert failed: {e}");
                for job in jobs {
                    let _ = job.done.send(Err(why.clone()));
                }
            }
        }
    }
    write_instances(&clickhouse, &mut heard).await;
    tracing::debug!("ClickHouse writer stopped; everything acknowledged is inserted");
}

/// Writes who was heard from since the last time (kept for the next try
/// when ClickHouse does not take them).
async fn write_instances(
    clickhouse: &ClickHouse,
    heard: &mut HashMap<(String, String), InstanceRecord>,
) {
    if heard.is_empty() {
        return;
    }
    let rows: Vec<InstanceRecord> = heard.values().cloned().collect();
    if insert_rows(clickhouse, "instances", &rows).await.is_ok() {
        heard.clear();
    }
}

/// Inserts a group, points last, numbered just before they are sent.
async fn insert(
    clickhouse: &ClickHouse,
    mut group: Group,
    stamper: &mut Stamper,
) -> Result<(), String> {
    insert_rows(clickhouse, "spans", &group.spans).await?;
    insert_rows(clickhouse, "jvm_events", &group.events).await?;
    insert_rows(clickhouse, "jvm_metrics", &group.metrics).await?;
    let seqs = stamper.take(group.points.len(), unix_ms());
    for (point, seq) in group.points.iter_mut().zip(seqs) {
        point.seq = seq;
    }
    insert_rows(clickhouse, "points", &group.points).await
}

/// One insert of `rows` into `table`, within [`INSERT_TIMEOUT`].
async fn insert_rows<T: RowOwned + RowWrite>(
    clickhouse: &ClickHouse,
    table: &str,
    rows: &[T],
) -> Result<(), String> {
    if rows.is_empty() {
        return Ok(());
    }
    let work = async {
        let mut insert = clickhouse.client().insert::<T>(table).await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    };
    match tokio::time::timeout(INSERT_TIMEOUT, work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{table}: {e}")),
        Err(_) => Err(format!("{table}: no answer within {INSERT_TIMEOUT:?}")),
    }
}

/// Resource attributes as the JSON object the registry keeps.
fn attributes_json(attributes: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = attributes
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// This process's number in the live-tail order: different for analyzers
/// started apart, from the clock and the process id.
fn analyzer_number() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(jvmapm_contract::clock::unix_ms());
    h.finish()
}
