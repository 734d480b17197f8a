//! The thread that reads from a source, so the screen never waits on a
//! slow or absent server: it loads the window's points page by page (and,
//! live, whatever arrives after), reads the panels' data every few seconds,
//! and when asked one transaction in full with its distributed trace, the
//! merged profile of an area, or the service map of the window and the
//! calls of one of its edges; and it reports trouble once.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use jvmapm_analyzer::meter::EndpointStats;
use jvmapm_analyzer::point::{SpanId, TraceId};
use jvmapm_analyzer::query::answers::{
    AreaProfile, EdgeCalls, PointRow, ServiceMap, Trace, Transaction,
};
use jvmapm_analyzer::query::jvm::JvmView;
use jvmapm_analyzer::query::profile::{self, Area};
use jvmapm_analyzer::store::instances::InstanceInfo;
use jvmapm_contract::names::{event, span};

use crate::source::{Printable, Source, SourceError, PAGE};

/// How often a live viewer asks for new points.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// How often the panels (statistics, JVM, instances) are read again.
const PANELS_EVERY: Duration = Duration::from_secs(2);

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
        trace_id: TraceId,
        span_id: SpanId,
        end_ms: u64,
        instance: String,
    },
    /// The merged profile of the transactions in an area.
    Profile(Area),
    /// The service map of the transactions ending in a range.
    ServiceMap { from_ms: u64, to_ms: u64 },
    /// The transactions that made the calls of one edge of that map.
    EdgeCalls {
        from_ms: u64,
        to_ms: u64,
        caller: String,
        callee: String,
    },
}

/// A transaction in full, with its thread's stack when it was reported
/// stuck, and the distributed trace it is part of.
pub struct Detail {
    pub transaction: Transaction,
    pub stuck_stack: Option<String>,
    /// Its trace across services, or why it could not be read.
    pub trace: Result<Trace, SourceError>,
}

/// What the fetcher tells the viewer.
pub enum Update {
    Points(Vec<PointRow>),
    /// Points are now loaded from this time on.
    LoadedFrom(u64),
    Stats(Vec<EndpointStats>),
    Instances(Vec<InstanceInfo>),
    Jvm(JvmView),
    Detail(Result<Box<Detail>, SourceError>),
    Profile(Result<Box<AreaProfile>, SourceError>),
    ServiceMap(Result<Box<ServiceMap>, SourceError>),
    EdgeCalls(Result<EdgeCalls, SourceError>),
    /// `None` once the source answers again.
    Trouble(Option<SourceError>),
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
            cursor: 0,
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
    cursor: u64,
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
                    let detail = self.detail(trace_id, span_id, end_ms, &instance);
                    if self.send(Update::Detail(detail.map(Box::new))).is_err() {
                        return;
                    }
                }
                Ok(Request::Profile(area)) => {
                    let answer = self.source.profile(&area, profile::DEFAULT_LIMIT);
                    if self.send(Update::Profile(answer.map(Box::new))).is_err() {
                        return;
                    }
                }
                Ok(Request::ServiceMap { from_ms, to_ms }) => {
                    let answer = self.source.service_map(from_ms, to_ms);
                    if self.send(Update::ServiceMap(answer.map(Box::new))).is_err() {
                        return;
                    }
                }
                Ok(Request::EdgeCalls {
                    from_ms,
                    to_ms,
                    caller,
                    callee,
                }) => {
                    let answer = self.source.edge_calls(from_ms, to_ms, &caller, &callee);
                    if self.send(Update::EdgeCalls(answer)).is_err() {
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
    fn outcome<T>(&mut self, result: Result<T, SourceError>) -> Result<Option<T>, Gone> {
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
                if let Some(cursor) = self.load_range(from_ms, end, 0)? {
                    self.loaded = Some((from_ms, end));
                    self.cursor = cursor;
                    self.loaded_from(from_ms)?;
                }
            }
            Some((loaded_from, loaded_to)) => {
                if from_ms < loaded_from && self.load_range(from_ms, loaded_from - 1, 0)?.is_some()
                {
                    self.loaded = Some((from_ms, loaded_to));
                    self.loaded_from(from_ms)?;
                }
                if self.follow.live {
                    let (from, _) = self.loaded.expect("set above");
                    if let Some(cursor) = self.load_range(from, u64::MAX / 2, self.cursor)? {
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
    fn load_range(&mut self, from_ms: u64, to_ms: u64, after: u64) -> Result<Option<u64>, Gone> {
        let mut cursor = after;
        let mut loaded = 0usize;
        loop {
            let page = self.source.xlog(from_ms, to_ms, cursor);
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
        let instances = self.source.instances();
        if let Some(list) = self.outcome(instances)? {
            self.send(Update::Instances(list.instances))?;
        }
        let Some((from_ms, to_ms, instance)) = self.window.clone() else {
            return Ok(());
        };
        let stats = self.source.stats(from_ms, to_ms);
        if let Some(stats) = self.outcome(stats)? {
            self.send(Update::Stats(stats.endpoints))?;
        }
        if let Some(instance) = instance {
            let jvm = self.source.jvm(&instance, from_ms, to_ms);
            if let Some(data) = self.outcome(jvm)? {
                self.send(Update::Jvm(data))?;
            }
        }
        Ok(())
    }

    fn detail(
        &mut self,
        trace_id: TraceId,
        span_id: SpanId,
        end_ms: u64,
        instance: &str,
    ) -> Result<Detail, SourceError> {
        let transaction = self.source.transaction(trace_id, span_id, end_ms)?;
        let stuck = transaction
            .attributes()
            .and_then(|a| a.get(span::STUCK))
            .and_then(|v| v.as_bool())
            == Some(true);
        let stuck_stack = if stuck {
            // The stuck event was sent while it ran, before its end.
            let from = end_ms.saturating_sub(24 * 3_600_000);
            let jvm = self.source.jvm(instance, from, end_ms)?;
            let trace_id = trace_id.to_string();
            jvm.events
                .iter()
                .find(|e| e["kind"] == event::STUCK && e["trace_id"] == trace_id)
                .and_then(|e| e["attributes"][event::STACK].as_str())
                .map(str::to_string)
        } else {
            None
        };
        Ok(Detail {
            transaction,
            stuck_stack,
            trace: self.source.trace(trace_id, end_ms),
        })
    }
}
