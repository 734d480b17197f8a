//! Where the viewer's data comes from: a running `jvmapm serve` over its
//! query API (live), or a data directory read in place (offline). Both answer
//! in the query API's JSON shapes, so the rest of the viewer does not care
//! which it has. A [`Fetcher`] thread does all the reading, so the screen
//! never waits on a slow or absent server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use jvmapm_analyzer::meter::Meter;
use jvmapm_analyzer::printable::printable_json;
use jvmapm_analyzer::query::{self, PointRow, XlogFilter};
use jvmapm_analyzer::store::instances::Instances;
use jvmapm_analyzer::store::{Mode, Store};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::points::Row;

/// Points asked for in one page.
const PAGE: usize = 100_000;
/// How often a live viewer asks for new points.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// How often the panels (statistics, JVM, instances) are read again.
const PANELS_EVERY: Duration = Duration::from_secs(2);

/// One page of `/api/v1/xlog`.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub points: Vec<Row>,
    pub cursor: String,
}

/// One row of `/api/v1/stats`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct EndpointRow {
    pub service: String,
    pub endpoint: String,
    pub count: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One row of `/api/v1/instances`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct InstanceRow {
    pub service: String,
    pub instance: String,
    pub last_seen_ms: u64,
    /// Resource attributes (host, pid, runtime) the instance reported.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl InstanceRow {
    /// The instance as operators know a JVM, `service@host:pid`; its id
    /// (often 32 hex digits) when it did not report both host and pid.
    pub fn label(&self) -> String {
        let attribute = |key: &str| self.attributes.get(key).filter(|v| !v.is_empty());
        match (attribute("host.name"), attribute("process.pid")) {
            (Some(host), Some(pid)) => format!("{}@{host}:{pid}", self.service),
            _ => self.instance.clone(),
        }
    }
}

/// `/api/v1/jvm` of one instance.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct JvmData {
    pub series: BTreeMap<String, Vec<(u64, f64)>>,
    pub gc_pauses: Vec<GcPause>,
    pub events: Vec<Value>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct GcPause {
    pub start_ms: u64,
    pub duration_ms: f64,
}

/// What the viewer reads.
pub trait Source: Send {
    /// Where from, for the status line.
    fn describe(&self) -> String;
    fn xlog(&mut self, from_ms: u64, to_ms: u64, after: &str) -> Result<Value, String>;
    fn stats(&mut self, from_ms: u64, to_ms: u64) -> Result<Value, String>;
    fn instances(&mut self) -> Result<Value, String>;
    fn jvm(&mut self, instance: &str, from_ms: u64, to_ms: u64) -> Result<Value, String>;
    fn transaction(&mut self, trace_id: &str, span_id: &str, end_ms: u64) -> Result<Value, String>;
    /// Something the operator should know about what was read (offline:
    /// damaged records skipped), shown once the points are loaded.
    fn note(&self) -> Option<String> {
        None
    }
}

/// A source whose answers hold only printable strings: names, attributes
/// and SQL come from the wire and are drawn on the operator's terminal,
/// where an escape sequence must not retitle or clear it (see
/// `jvmapm_analyzer::printable`).
pub struct Printable(pub Box<dyn Source>);

fn printable(answer: Result<Value, String>) -> Result<Value, String> {
    match answer {
        Ok(mut value) => {
            printable_json(&mut value);
            Ok(value)
        }
        Err(message) => Err(jvmapm_analyzer::printable::printable(&message).into_owned()),
    }
}

impl Source for Printable {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn note(&self) -> Option<String> {
        self.0
            .note()
            .map(|note| jvmapm_analyzer::printable::printable(&note).into_owned())
    }
    fn xlog(&mut self, from_ms: u64, to_ms: u64, after: &str) -> Result<Value, String> {
        printable(self.0.xlog(from_ms, to_ms, after))
    }
    fn stats(&mut self, from_ms: u64, to_ms: u64) -> Result<Value, String> {
        printable(self.0.stats(from_ms, to_ms))
    }
    fn instances(&mut self) -> Result<Value, String> {
        printable(self.0.instances())
    }
    fn jvm(&mut self, instance: &str, from_ms: u64, to_ms: u64) -> Result<Value, String> {
        printable(self.0.jvm(instance, from_ms, to_ms))
    }
    fn transaction(&mut self, trace_id: &str, span_id: &str, end_ms: u64) -> Result<Value, String> {
        printable(self.0.transaction(trace_id, span_id, end_ms))
    }
}

/// A running analyzer's query API.
pub struct Live {
    base: String,
    token: Option<String>,
    client: reqwest::blocking::Client,
}

impl Live {
    pub fn new(base: &str, token: Option<String>) -> Result<Live, String> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Live {
            base: base.trim_end_matches('/').to_string(),
            token,
            client,
        })
    }

    fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, String> {
        let mut request = self.client.get(format!("{}{path}", self.base)).query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .map_err(|e| format!("cannot reach {}: {}", self.base, root_cause(&e)))?;
        let status = response.status();
        let body: Value = response
            .bytes()
            .map_err(|e| format!("cannot read the answer of {}: {e}", self.base))
            .and_then(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{} answered {status} with no JSON: {e}", self.base))
            })?;
        if !status.is_success() {
            let why = body["error"].as_str().unwrap_or("no reason given");
            return Err(format!("{} answered {status}: {why}", self.base));
        }
        Ok(body)
    }
}

/// The innermost error, which says what actually failed (refused, timed out).
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut e = e;
    while let Some(source) = e.source() {
        e = source;
    }
    e.to_string()
}

impl Source for Live {
    fn describe(&self) -> String {
        self.base.clone()
    }

    fn xlog(&mut self, from_ms: u64, to_ms: u64, after: &str) -> Result<Value, String> {
        let query = [
            ("from", from_ms.to_string()),
            ("to", to_ms.to_string()),
            ("after", after.to_string()),
            ("limit", PAGE.to_string()),
        ];
        self.get("/api/v1/xlog", &query)
    }

    fn stats(&mut self, from_ms: u64, to_ms: u64) -> Result<Value, String> {
        let query = [("from", from_ms.to_string()), ("to", to_ms.to_string())];
        self.get("/api/v1/stats", &query)
    }

    fn instances(&mut self) -> Result<Value, String> {
        self.get("/api/v1/instances", &[])
    }

    fn jvm(&mut self, instance: &str, from_ms: u64, to_ms: u64) -> Result<Value, String> {
        let query = [
            ("instance", instance.to_string()),
            ("from", from_ms.to_string()),
            ("to", to_ms.to_string()),
        ];
        self.get("/api/v1/jvm", &query)
    }

    fn transaction(&mut self, trace_id: &str, span_id: &str, end_ms: u64) -> Result<Value, String> {
        let path = format!("/api/v1/transactions/{trace_id}/{span_id}");
        self.get(&path, &[("end_ms", end_ms.to_string())])
    }
}

/// A data directory read in place (beside a running server or not).
pub struct Offline {
    dir: PathBuf,
    store: Store,
    /// Empty: statistics are computed from the stored points.
    meter: Mutex<Meter>,
}

impl Offline {
    pub fn open(dir: &Path) -> Result<Offline, String> {
        let store = Store::open(dir, Mode::ReadOnly).map_err(|e| e.to_string())?;
        Ok(Offline {
            dir: dir.to_path_buf(),
            store,
            meter: Mutex::new(Meter::new(u64::MAX)),
        })
    }
}

impl Offline {
    /// End time of the newest stored point, where an offline view opens.
    pub fn latest_end_ms(&self) -> Option<u64> {
        let seg = self.store.segments_in(0, u64::MAX / 2).pop()?;
        let count = seg.point_count();
        let points = seg.read_points(count.saturating_sub(4096), count).ok()?;
        points.iter().map(|p| p.end_ms).max()
    }
}

fn io(e: std::io::Error) -> String {
    format!("cannot read the data directory: {e}")
}

impl Source for Offline {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn note(&self) -> Option<String> {
        jvmapm_analyzer::store::damage::report()
    }

    fn xlog(&mut self, from_ms: u64, to_ms: u64, after: &str) -> Result<Value, String> {
        let after = after.parse().unwrap_or(0);
        let page = query::page(&self.store, &XlogFilter::range(from_ms, to_ms), after, PAGE)
            .map_err(io)?;
        let points: Vec<PointRow> = page
            .points
            .iter()
            .map(|p| PointRow::new(p, &self.store))
            .collect();
        Ok(json!({ "points": points, "cursor": page.cursor.to_string() }))
    }

    fn stats(&mut self, from_ms: u64, to_ms: u64) -> Result<Value, String> {
        let rows = query::stats(
            &self.store,
            &self.meter,
            from_ms,
            to_ms,
            u64::MAX / 2,
            &query::Cancel::default(),
        )
        .map_err(io)?;
        Ok(json!({ "endpoints": rows }))
    }

    fn instances(&mut self) -> Result<Value, String> {
        let instances = Instances::load(self.dir.join("instances.json"));
        Ok(json!({ "instances": instances.list() }))
    }

    fn jvm(&mut self, instance: &str, from_ms: u64, to_ms: u64) -> Result<Value, String> {
        let view =
            jvmapm_analyzer::query::jvm::read(&self.store, instance, from_ms, to_ms).map_err(io)?;
        serde_json::to_value(view).map_err(|e| e.to_string())
    }

    fn transaction(&mut self, trace_id: &str, span_id: &str, end_ms: u64) -> Result<Value, String> {
        let (Some(trace), Some(span)) = (
            jvmapm_analyzer::point::parse_hex::<16>(trace_id),
            jvmapm_analyzer::point::parse_hex::<8>(span_id),
        ) else {
            return Err(format!("no transaction {trace_id}/{span_id}"));
        };
        jvmapm_analyzer::query::transaction::find(&self.store, &trace, &span, Some(end_ms))
            .map_err(io)?
            .ok_or_else(|| format!("no transaction {trace_id}/{span_id}"))
    }
}

/// What the viewer asks the fetcher for.
pub enum Request {
    /// The window shown now: points in it that are not loaded yet, and the
    /// panels' data for it and `instance`.
    Window {
        from_ms: u64,
        to_ms: u64,
        instance: Option<String>,
    },
    /// One transaction in full.
    Detail {
        trace_id: String,
        span_id: String,
        end_ms: u64,
        instance: String,
    },
}

/// A transaction in full, with its thread's stack when it was reported stuck.
pub struct Detail {
    pub json: Value,
    pub stuck_stack: Option<String>,
}

/// What the fetcher tells the viewer.
pub enum Update {
    Points(Vec<Row>),
    /// Points are now loaded from this time on.
    LoadedFrom(u64),
    Stats(Vec<EndpointRow>),
    Instances(Vec<InstanceRow>),
    Jvm(JvmData),
    Detail(Result<Detail, String>),
    /// `None` once the source answers again.
    Trouble(Option<String>),
    /// Work in progress, for the status line.
    Progress(String),
}

/// The thread that reads from a source.
pub struct Fetcher {
    pub requests: Sender<Request>,
    pub updates: Receiver<Update>,
}

/// How the fetcher follows the source.
#[derive(Clone, Copy)]
pub struct Follow {
    /// Keep asking for new points (live), or read the window once (offline
    /// or a past window).
    pub live: bool,
}

impl Fetcher {
    pub fn start(source: Box<dyn Source>, follow: Follow) -> Fetcher {
        let (requests, requests_rx) = mpsc::channel();
        let (updates_tx, updates) = mpsc::channel();
        let worker = Worker {
            source: Box::new(Printable(source)),
            follow,
            updates: updates_tx,
            loaded: None,
            cursor: String::new(),
            window: None,
            trouble: false,
        };
        thread::Builder::new()
            .name("jvmapm-xlog-fetch".into())
            .spawn(move || worker.run(requests_rx))
            .expect("a thread can be started");
        Fetcher { requests, updates }
    }
}

struct Worker {
    source: Box<dyn Source>,
    follow: Follow,
    updates: Sender<Update>,
    /// Points with end times in this range are loaded.
    loaded: Option<(u64, u64)>,
    /// The follow cursor: new points come after it.
    cursor: String,
    window: Option<(u64, u64, Option<String>)>,
    trouble: bool,
}

/// The viewer went away.
struct Gone;

impl Worker {
    fn run(mut self, requests: Receiver<Request>) {
        let mut next_follow = Instant::now();
        let mut next_panels = Instant::now();
        loop {
            let wait = next_follow
                .min(next_panels)
                .saturating_duration_since(Instant::now());
            match requests.recv_timeout(wait) {
                Ok(Request::Window {
                    from_ms,
                    to_ms,
                    instance,
                }) => {
                    self.window = Some((from_ms, to_ms, instance));
                    next_panels = Instant::now();
                    next_follow = Instant::now();
                }
                Ok(Request::Detail {
                    trace_id,
                    span_id,
                    end_ms,
                    instance,
                }) => {
                    let detail = self.detail(&trace_id, &span_id, end_ms, &instance);
                    if self.updates.send(Update::Detail(detail)).is_err() {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if now >= next_follow {
                next_follow = now + FOLLOW_EVERY;
                if self.load().is_err() {
                    return;
                }
            }
            if now >= next_panels {
                next_panels = now + PANELS_EVERY;
                if self.panels().is_err() {
                    return;
                }
            }
        }
    }

    fn send(&self, update: Update) -> Result<(), Gone> {
        self.updates.send(update).map_err(|_| Gone)
    }

    /// Reports trouble once, and that it is over once.
    fn outcome<T>(&mut self, result: Result<T, String>) -> Result<Option<T>, Gone> {
        match result {
            Ok(v) => {
                if std::mem::take(&mut self.trouble) {
                    self.send(Update::Trouble(None))?;
                }
                Ok(Some(v))
            }
            Err(why) => {
                self.trouble = true;
                self.send(Update::Trouble(Some(why)))?;
                Ok(None)
            }
        }
    }

    /// Loads what the window needs: older points it shows for the first
    /// time, then (live) whatever arrived since the cursor.
    fn load(&mut self) -> Result<(), Gone> {
        let Some((from_ms, to_ms, _)) = self.window.clone() else {
            return Ok(());
        };
        match self.loaded {
            None => {
                let end = if self.follow.live {
                    u64::MAX / 2
                } else {
                    to_ms
                };
                if let Some(cursor) = self.load_range(from_ms, end, "")? {
                    self.loaded = Some((from_ms, end));
                    self.cursor = cursor;
                    self.loaded_from(from_ms)?;
                }
            }
            Some((loaded_from, loaded_to)) => {
                if from_ms < loaded_from && self.load_range(from_ms, loaded_from - 1, "")?.is_some()
                {
                    self.loaded = Some((from_ms, loaded_to));
                    self.loaded_from(from_ms)?;
                }
                if self.follow.live {
                    let cursor = self.cursor.clone();
                    let (from, _) = self.loaded.expect("set above");
                    if let Some(cursor) = self.load_range(from, u64::MAX / 2, &cursor)? {
                        self.cursor = cursor;
                    }
                }
            }
        }
        Ok(())
    }

    /// Says points are loaded from `from_ms` on, with the source's note.
    fn loaded_from(&self, from_ms: u64) -> Result<(), Gone> {
        self.send(Update::LoadedFrom(from_ms))?;
        match self.source.note() {
            Some(note) => self.send(Update::Progress(note)),
            None => Ok(()),
        }
    }

    /// Reads every page of `[from_ms, to_ms]` after `cursor` and hands the
    /// points over; the last cursor, or `None` on trouble.
    fn load_range(
        &mut self,
        from_ms: u64,
        to_ms: u64,
        cursor: &str,
    ) -> Result<Option<String>, Gone> {
        let mut cursor = cursor.to_string();
        let mut loaded = 0usize;
        loop {
            let page = self
                .source
                .xlog(from_ms, to_ms, &cursor)
                .and_then(parse::<Page>);
            let Some(page) = self.outcome(page)? else {
                return Ok(None);
            };
            let n = page.points.len();
            loaded += n;
            cursor = page.cursor;
            if n > 0 {
                self.send(Update::Points(page.points))?;
            }
            if n < PAGE {
                return Ok(Some(cursor));
            }
            self.send(Update::Progress(format!("loading: {loaded} points so far")))?;
        }
    }

    fn panels(&mut self) -> Result<(), Gone> {
        let instances = self
            .source
            .instances()
            .and_then(|v| parse_field(v, "instances"));
        if let Some(rows) = self.outcome(instances)? {
            self.send(Update::Instances(rows))?;
        }
        let Some((from_ms, to_ms, instance)) = self.window.clone() else {
            return Ok(());
        };
        let stats = self
            .source
            .stats(from_ms, to_ms)
            .and_then(|v| parse_field(v, "endpoints"));
        if let Some(rows) = self.outcome(stats)? {
            self.send(Update::Stats(rows))?;
        }
        if let Some(instance) = instance {
            let jvm = self
                .source
                .jvm(&instance, from_ms, to_ms)
                .and_then(parse::<JvmData>);
            if let Some(data) = self.outcome(jvm)? {
                self.send(Update::Jvm(data))?;
            }
        }
        Ok(())
    }

    fn detail(
        &mut self,
        trace_id: &str,
        span_id: &str,
        end_ms: u64,
        instance: &str,
    ) -> Result<Detail, String> {
        let json = self.source.transaction(trace_id, span_id, end_ms)?;
        let stuck = json["attributes"]["jvmapm.stuck"].as_bool() == Some(true);
        let stuck_stack = if stuck {
            // The stuck event was sent while it ran, before its end.
            let from = end_ms.saturating_sub(24 * 3_600_000);
            let jvm = self
                .source
                .jvm(instance, from, end_ms)
                .and_then(parse::<JvmData>)?;
            jvm.events
                .iter()
                .find(|e| e["kind"] == "stuck" && e["trace_id"] == trace_id)
                .and_then(|e| e["attributes"]["jvmapm.stack"].as_str())
                .map(str::to_string)
        } else {
            None
        };
        Ok(Detail { json, stuck_stack })
    }
}

fn parse<T: DeserializeOwned>(v: Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| format!("unexpected answer: {e}"))
}

fn parse_field<T: DeserializeOwned>(mut v: Value, field: &str) -> Result<T, String> {
    parse(v[field].take())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jvmapm_analyzer::ingest::xlog::Identity;

    #[test]
    fn offline_instances_are_named_by_service_host_and_pid() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), Mode::Write).unwrap());
        let registry = Instances::load(dir.path().join("instances.json"));
        let identity = |instance: &str, attributes: &[(&str, &str)]| Identity {
            service: "orders".into(),
            instance: instance.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let with_host = [("host.name", "web-01"), ("process.pid", "4242")];
        registry.seen(&identity("f444e8abf2e375e57ba9795da1c0ffee", &with_host), 1);
        registry.seen(&identity("orders-2", &[("host.name", "web-02")]), 1);
        registry.save_if_dirty().unwrap();

        let mut offline = Offline::open(dir.path()).unwrap();
        let rows: Vec<InstanceRow> =
            parse_field(offline.instances().unwrap(), "instances").unwrap();
        let labels: Vec<String> = rows.iter().map(InstanceRow::label).collect();
        assert_eq!(labels, ["orders@web-01:4242", "orders-2"], "no pid: the id");
        assert_eq!(rows[0].instance, "f444e8abf2e375e57ba9795da1c0ffee");
    }
}
