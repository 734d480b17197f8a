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
//! [`export`] prints points offline for `jvmapm export`.

pub mod answers;
pub mod api;
pub mod call_tree;
pub mod export;
pub mod jvm;
pub mod profile;
mod reply;
pub mod service_map;
pub mod trace;
pub mod transaction;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::glob::Glob;
use crate::meter::{Accumulator, EndpointStats, Meter};
use crate::point::Point;
use crate::store::{Segment, Store};

/// Points read from a segment at a time.
const CHUNK: u64 = 8192;

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
            cancel: Cancel::default(),
        }
    }
}

/// Applies a filter, caching glob results per string id.
struct Matcher<'a> {
    filter: &'a XlogFilter,
    store: &'a Store,
    services: HashMap<u32, bool>,
    endpoints: HashMap<u32, bool>,
}

impl<'a> Matcher<'a> {
    fn new(filter: &'a XlogFilter, store: &'a Store) -> Self {
        Matcher {
            filter,
            store,
            services: HashMap::new(),
            endpoints: HashMap::new(),
        }
    }

    fn matches(&mut self, p: &Point) -> bool {
        let f = self.filter;
        if p.end_ms < f.from_ms || p.end_ms > f.to_ms || (f.errors_only && !p.error) {
            return false;
        }
        if f.min_us.is_some_and(|min| p.elapsed_us < min)
            || f.max_us.is_some_and(|max| p.elapsed_us > max)
        {
            return false;
        }
        let store = self.store;
        let glob_ok = |cache: &mut HashMap<u32, bool>, glob: &Option<Glob>, id: u32| match glob {
            None => true,
            Some(g) => *cache
                .entry(id)
                .or_insert_with(|| g.matches(&store.strings.get(id))),
        };
        glob_ok(&mut self.services, &f.service, p.service)
            && glob_ok(&mut self.endpoints, &f.endpoint, p.endpoint)
    }
}

/// Calls `each` for the committed points of `seg` from index `start` on, in
/// seq order, until it returns false.
fn walk(
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

/// The first `limit` matching points stored after `after`, in the order they
/// were stored.
pub fn page(store: &Store, filter: &XlogFilter, after: u64, limit: usize) -> io::Result<Page> {
    let committed = store.committed_seq();
    let mut matcher = Matcher::new(filter, store);
    let mut points = Vec::new();
    for seg in store.segments_in(filter.from_ms, filter.to_ms) {
        let mut found = 0;
        walk(
            &seg,
            seg.first_after(after)?,
            committed,
            &filter.cancel,
            |p| {
                if matcher.matches(&p) {
                    points.push(p);
                    found += 1;
                }
                found < limit
            },
        )?;
    }
    points.sort_unstable_by_key(|p| p.seq);
    let cursor = if points.len() >= limit {
        points.truncate(limit);
        points.last().map_or(after, |p| p.seq)
    } else {
        committed.max(after)
    };
    Ok(Page { points, cursor })
}

/// Calls `each` for every committed point matching `filter`, hour by hour.
pub fn for_each(
    store: &Store,
    filter: &XlogFilter,
    mut each: impl FnMut(&Point),
) -> io::Result<()> {
    for_each_with_segment(store, filter, |_, p| each(p))
}

/// [`for_each`] with the segment each point is in, whose details hold its
/// span.
pub fn for_each_with_segment(
    store: &Store,
    filter: &XlogFilter,
    mut each: impl FnMut(&Segment, &Point),
) -> io::Result<()> {
    let committed = store.committed_seq();
    let mut matcher = Matcher::new(filter, store);
    for seg in store.segments_in(filter.from_ms, filter.to_ms) {
        walk(&seg, 0, committed, &filter.cancel, |p| {
            if matcher.matches(&p) {
                each(&seg, &p);
            }
            true
        })?;
    }
    Ok(())
}

/// Per-endpoint statistics of `[from_ms, to_ms]`: from the live meters when
/// they hold the whole range, else computed from the stored points. TPS is
/// over the part of the range the points cover (see [`Accumulator::finish`]).
pub fn stats(
    store: &Store,
    meter: &std::sync::Mutex<Meter>,
    from_ms: u64,
    to_ms: u64,
    now_ms: u64,
    cancel: &Cancel,
) -> io::Result<Vec<EndpointStats>> {
    let from_meter = {
        let meter = crate::lock(meter);
        meter
            .covers(from_ms, now_ms)
            .then(|| meter.window(from_ms, to_ms))
    };
    let acc = match from_meter {
        Some(acc) => acc,
        None => {
            let mut acc = Accumulator::default();
            let filter = XlogFilter {
                cancel: cancel.clone(),
                ..XlogFilter::range(from_ms, to_ms)
            };
            for_each(store, &filter, |p| {
                acc.record((p.service, p.endpoint), p.end_ms, p.elapsed_us, p.error)
            })?;
            acc
        }
    };
    Ok(acc.finish(&store.strings))
}
