//! Reading XLog points back: range scans with filters, cursor pages for the
//! live tail, and per-endpoint statistics over a range.
//!
//! This folder is the read side of the analyzer: [`transaction`] reads one
//! transaction in full, [`jvm`] an instance's JVM series and events,
//! [`call_tree`] parses and merges the stack samples of transactions,
//! [`profile`] merges those of the transactions in an area of the XLog,
//! [`trace`] joins the transactions of one distributed trace into a tree,
//! [`service_map`] measures the calls between services,
//! [`answers`] are the shapes of what is read back, [`api`] answers all of
//! it as JSON over HTTP (within the memory budget of `reply`), and
//! [`export`] prints points offline for `jvmapm export`. All of them read
//! through [`source::Points`], which the local store (`local`) and
//! ClickHouse implement.

pub mod answers;
pub mod api;
pub mod call_tree;
pub mod export;
pub mod jvm;
pub(crate) mod local;
pub mod profile;
mod reply;
pub mod service_map;
pub mod source;
pub mod trace;
pub mod transaction;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::glob::Glob;
use crate::meter::{EndpointStats, Meter};
use crate::point::Point;
use crate::store::{Segment, Strings};

pub use source::{Kept, Points, Want};

/// Points read from a segment at a time.
const CHUNK: u64 = 8192;
/// Points whose spans a query reads at a time (so it holds a bounded
/// number of decoded spans, profiles included).
pub const SPANS_AT_ONCE: usize = 256;

/// Stops a scan once set: the query API sets it when its client goes away,
/// so a costly query does not run on for nobody.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// A guard that sets it when dropped (with the request it belongs to).
    pub fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }
}

/// Sets its [`Cancel`] when dropped.
pub struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0 .0.store(true, Ordering::Relaxed);
    }
}

/// Which points a query wants. Times are end times in Unix milliseconds, inclusive.
#[derive(Clone, Debug)]
pub struct XlogFilter {
    pub from_ms: u64,
    pub to_ms: u64,
    pub service: Option<Glob>,
    pub endpoint: Option<Glob>,
    pub errors_only: bool,
    pub min_us: Option<u64>,
    pub max_us: Option<u64>,
    /// Only the points of this trace.
    pub trace_id: Option<[u8; 16]>,
    /// The scan stops (with an `Interrupted` error) once this is set.
    pub cancel: Cancel,
}

impl XlogFilter {
    /// Every point ending in `[from_ms, to_ms]`.
    pub fn range(from_ms: u64, to_ms: u64) -> Self {
        XlogFilter {
            from_ms,
            to_ms,
            service: None,
            endpoint: None,
            errors_only: false,
            min_us: None,
            max_us: None,
            trace_id: None,
            cancel: Cancel::default(),
        }
    }
}

/// Applies a filter, caching glob results per string id.
pub(crate) struct Matcher<'a> {
    filter: &'a XlogFilter,
    strings: &'a Strings,
    services: HashMap<u32, bool>,
    endpoints: HashMap<u32, bool>,
}

impl<'a> Matcher<'a> {
    pub(crate) fn new(filter: &'a XlogFilter, strings: &'a Strings) -> Self {
        Matcher {
            filter,
            strings,
            services: HashMap::new(),
            endpoints: HashMap::new(),
        }
    }

    pub(crate) fn matches(&mut self, p: &Point) -> bool {
        let f = self.filter;
        if p.end_ms < f.from_ms || p.end_ms > f.to_ms || (f.errors_only && !p.error) {
            return false;
        }
        if f.trace_id.is_some_and(|t| t != p.trace_id) {
            return false;
        }
        if f.min_us.is_some_and(|min| p.elapsed_us < min)
            || f.max_us.is_some_and(|max| p.elapsed_us > max)
        {
            return false;
        }
        let strings = self.strings;
        let glob_ok = |cache: &mut HashMap<u32, bool>, glob: &Option<Glob>, id: u32| match glob {
            None => true,
            Some(g) => *cache
                .entry(id)
                .or_insert_with(|| g.matches(&strings.get(id))),
        };
        glob_ok(&mut self.services, &f.service, p.service)
            && glob_ok(&mut self.endpoints, &f.endpoint, p.endpoint)
    }
}

/// Calls `each` for the committed points of `seg` from index `start` on, in
/// seq order, until it returns false.
pub(crate) fn walk(
    seg: &Segment,
    start: u64,
    committed_seq: u64,
    cancel: &Cancel,
    mut each: impl FnMut(Point) -> bool,
) -> io::Result<()> {
    let count = seg.point_count();
    let mut from = start;
    while from < count {
        if cancel.is_set() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the query was cancelled",
            ));
        }
        let to = (from + CHUNK).min(count);
        for p in seg.read_points(from, to)? {
            if p.seq > committed_seq || !each(p) {
                return Ok(());
            }
        }
        from = to;
    }
    Ok(())
}

/// One page of a live tail.
pub struct Page {
    pub points: Vec<Point>,
    /// Pass back as `after` to get only newer points.
    pub cursor: u64,
}

/// The first `limit` matching points stored after `after`, in the order
/// they were stored.
pub fn page(store: &dyn Points, filter: &XlogFilter, after: u64, limit: usize) -> io::Result<Page> {
    store.page(filter, after, limit)
}

/// Calls `each` for every point matching `filter`.
pub fn for_each(
    store: &dyn Points,
    filter: &XlogFilter,
    mut each: impl FnMut(&Point),
) -> io::Result<()> {
    store.scan(filter, &mut each)
}

/// Per-endpoint statistics of `[from_ms, to_ms]`: from the live meters when
/// they hold the whole range (and saw every point), else computed by the
/// store. TPS is over the part of the range the points cover (see
/// [`Accumulator::finish`]).
pub fn stats(
    store: &dyn Points,
    meter: &std::sync::Mutex<Meter>,
    from_ms: u64,
    to_ms: u64,
    now_ms: u64,
    cancel: &Cancel,
) -> io::Result<Vec<EndpointStats>> {
    let from_meter = store.metered_here().then(|| {
        let meter = crate::lock(meter);
        meter
            .covers(from_ms, now_ms)
            .then(|| meter.window(from_ms, to_ms))
    });
    let acc = match from_meter.flatten() {
        Some(acc) => acc,
        None => store.accumulate((from_ms, to_ms), 0, cancel)?,
    };
    Ok(acc.finish(store.strings()))
}
