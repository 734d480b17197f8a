//! Transactions in flight and finished: the natives behind
//! `jvmapm.agent.Hooks.begin/end`, which instrumented methods reach through
//! the helper. `begin` takes the clocks and ids into a slot of a fixed table
//! (claimed with one compare-and-swap, never a lock); `end` reads the slot
//! back, frees it and queues a `Record::Transaction` for the exporter. What
//! each site is (its kind and method) lives in a registry written at class
//! load.

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use crate::clock;
use crate::exporter::Queue;
use crate::interned::StringTable;
use crate::jni::{JObject, RawJniEnv};

/// What kind of transaction a site makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    /// An HTTP request: a servlet, a filter, or the JDK's HTTP server (a SERVER span).
    Http,
    /// A method named by the `hook=` option (an application transaction).
    Method,
    /// A JDBC statement's execute method (a CLIENT span inside a transaction).
    Sql,
}

/// One instrumented method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub kind: SiteKind,
    /// `com.acme.Batch`
    pub class: String,
    pub method: String,
}

/// Shared, so that the exporter reads a site's names without copying them.
static SITES: Mutex<Vec<Arc<Site>>> = Mutex::new(Vec::new());

/// Registers a site and returns its number (what the wrapper passes to `enter`).
pub fn register(site: Site) -> Option<i32> {
    let mut sites = SITES.lock().ok()?;
    if let Some(n) = sites.iter().position(|s| **s == site) {
        return i32::try_from(n).ok();
    }
    sites.push(Arc::new(site));
    i32::try_from(sites.len() - 1).ok()
}

/// The site with this number.
pub fn site(n: i32) -> Option<Arc<Site>> {
    SITES.lock().ok()?.get(usize::try_from(n).ok()?).cloned()
}

/// A transaction gets full detail when a random u64 is at most this
/// (`sample=` times u64::MAX; all of them by default).
static DETAIL_THRESHOLD: AtomicU64 = AtomicU64::new(u64::MAX);

/// Sets the share of transactions sent with full detail (`sample=`): the
/// others still make their point (errors keep their detail), but without
/// their SQL spans and the attributes only a detail view needs.
pub fn set_sample(ratio: f64) {
    let threshold = if ratio >= 1.0 {
        u64::MAX
    } else {
        (ratio.max(0.0) * u64::MAX as f64) as u64
    };
    DETAIL_THRESHOLD.store(threshold, Ordering::Relaxed);
}

/// Whether transactions read their thread's CPU clock (`cpu=`).
static CPU_TIME: AtomicBool = AtomicBool::new(true);

/// Sets whether transactions measure their thread's CPU time (`cpu=`).
pub fn set_cpu_time(on: bool) {
    CPU_TIME.store(on, Ordering::Relaxed);
}

/// The thread's CPU clock, or 0 when `cpu=off`.
fn thread_cpu_ns() -> u64 {
    if CPU_TIME.load(Ordering::Relaxed) {
        clock::thread_cpu_ns()
    } else {
        0
    }
}

/// Slots of the in-flight table: more transactions open at once than this
/// are not measured (and counted).
const SLOTS: usize = 1 << 14;

struct Slot {
    /// 0 when free; else the claim's generation (odd numbers, never 0).
    claim: AtomicU32,
    site: AtomicU32,
    start_wall_ns: AtomicU64,
    start_monotonic_ns: AtomicU64,
    start_cpu_ns: AtomicU64,
    trace_high: AtomicU64,
    trace_low: AtomicU64,
    span: AtomicU64,
    parent_span: AtomicU64,
    /// `Thread.getId()` of the thread that opened it.
    thread_id: AtomicU64,
    /// 1 once the sampler has reported it stuck.
    stuck: AtomicU32,
    sql_count: AtomicU32,
    sql_ns: AtomicU64,
    /// 1 when this transaction is sent with full detail (`sample=`).
    detailed: AtomicU32,
}

struct InFlight {
    slots: Box<[Slot]>,
    cursor: AtomicUsize,
    generation: AtomicU32,
    random: AtomicU64,
    untracked: AtomicU64,
    /// Claimed slots, so an idle JVM's sampler need not scan the table.
    open: AtomicUsize,
}

fn in_flight() -> &'static InFlight {
    static TABLE: OnceLock<InFlight> = OnceLock::new();
    TABLE.get_or_init(|| InFlight {
        slots: (0..SLOTS)
            .map(|_| Slot {
                claim: AtomicU32::new(0),
                site: AtomicU32::new(0),
                start_wall_ns: AtomicU64::new(0),
                start_monotonic_ns: AtomicU64::new(0),
                start_cpu_ns: AtomicU64::new(0),
                trace_high: AtomicU64::new(0),
                trace_low: AtomicU64::new(0),
                span: AtomicU64::new(0),
                parent_span: AtomicU64::new(0),
                thread_id: AtomicU64::new(0),
                stuck: AtomicU32::new(0),
                sql_count: AtomicU32::new(0),
                sql_ns: AtomicU64::new(0),
                detailed: AtomicU32::new(0),
            })
            .collect(),
        cursor: AtomicUsize::new(0),
        generation: AtomicU32::new(1),
        random: AtomicU64::new(clock::wall_ns() ^ u64::from(std::process::id()) << 32),
        untracked: AtomicU64::new(0),
        open: AtomicUsize::new(0),
    })
}

impl Slot {
    fn trace_id(&self) -> u128 {
        (u128::from(self.trace_high.load(Ordering::Relaxed)) << 64)
            | u128::from(self.trace_low.load(Ordering::Relaxed))
    }
}

impl InFlight {
    /// The slot `token` claimed, if it still holds that transaction.
    fn slot_of(&self, token: u64) -> Option<&Slot> {
        let slot = self.slots.get((token >> 32) as usize)?;
        let generation = token as u32;
        (generation != 0 && slot.claim.load(Ordering::Acquire) == generation).then_some(slot)
    }

    /// A random, non-zero 64-bit id (splitmix64 over a shared counter).
    fn random(&self) -> u64 {
        let mut z = self
            .random
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).max(1)
    }
}

/// An incoming W3C `traceparent`: trace id and parent span id.
pub fn parse_traceparent(header: &str) -> Option<(u128, u64)> {
    let mut parts = header.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let _flags = parts.next()?;
    if version.len() != 2 || version == "ff" || trace.len() != 32 || parent.len() != 16 {
        return None;
    }
    let trace = u128::from_str_radix(trace, 16).ok()?;
    let parent = u64::from_str_radix(parent, 16).ok()?;
    (trace != 0 && parent != 0).then_some((trace, parent))
}

/// Starts a transaction of `site`; the token is 0 when the table is full.
fn begin(site: i32, thread_id: u64, traceparent: Option<(u128, u64)>) -> u64 {
    let table = in_flight();
    for _ in 0..8 {
        let index = table.cursor.fetch_add(1, Ordering::Relaxed) % SLOTS;
        let slot = &table.slots[index];
        let generation = table.generation.fetch_add(2, Ordering::Relaxed) | 1;
        if slot
            .claim
            .compare_exchange(0, generation, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        let (trace, parent) = traceparent.unwrap_or_else(|| {
            (
                (u128::from(table.random()) << 64) | u128::from(table.random()),
                0,
            )
        });
        slot.site.store(site as u32, Ordering::Relaxed);
        slot.start_wall_ns
            .store(clock::wall_ns(), Ordering::Relaxed);
        slot.start_monotonic_ns
            .store(clock::monotonic_ns(), Ordering::Relaxed);
        slot.start_cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
        slot.trace_high
            .store((trace >> 64) as u64, Ordering::Relaxed);
        slot.trace_low.store(trace as u64, Ordering::Relaxed);
        slot.span.store(table.random(), Ordering::Relaxed);
        slot.parent_span.store(parent, Ordering::Relaxed);
        slot.thread_id.store(thread_id, Ordering::Relaxed);
        slot.stuck.store(0, Ordering::Relaxed);
        slot.sql_count.store(0, Ordering::Relaxed);
        slot.sql_ns.store(0, Ordering::Relaxed);
        let detailed = table.random() <= DETAIL_THRESHOLD.load(Ordering::Relaxed);
        slot.detailed.store(u32::from(detailed), Ordering::Relaxed);
        table.open.fetch_add(1, Ordering::Relaxed);
        return ((index as u64) << 32) | u64::from(generation);
    }
    table.untracked.fetch_add(1, Ordering::Relaxed);
    0
}

/// A finished transaction, as the exporter turns it into a span.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub site: i32,
    pub start_ns: u64,
    pub duration_ns: u64,
    /// The thread's CPU time, unless `cpu=off`.
    pub cpu_ns: Option<u64>,
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_span_id: u64,
    /// What the helper said of it at its end.
    pub ending: Ending,
    /// The sampler reported it stuck while it ran.
    pub stuck: bool,
    /// JDBC statements it ran and their total time.
    pub sql_count: u32,
    pub sql_ns: u64,
    /// Sent with full detail (`sample=`).
    pub detailed: bool,
}

/// What `end` receives, its strings already copied out of the JVM (shared
/// copies: see `interned`).
#[derive(Clone, Debug, PartialEq)]
pub struct Ending {
    pub method: Option<Arc<str>>,
    pub path: Option<Arc<str>>,
    pub route: Option<Arc<str>>,
    /// Negative when there is none.
    pub status: i32,
    pub error_type: Option<Arc<str>>,
    pub thread: Option<Arc<str>>,
}

/// Ends the transaction `token` stands for; `None` for a stale or zero token.
fn end(token: u64, ending: Ending) -> Option<Finished> {
    let table = in_flight();
    let slot = table.slot_of(token)?;
    let finished = Finished {
        site: slot.site.load(Ordering::Relaxed) as i32,
        start_ns: slot.start_wall_ns.load(Ordering::Relaxed),
        duration_ns: clock::monotonic_ns()
            .saturating_sub(slot.start_monotonic_ns.load(Ordering::Relaxed)),
        cpu_ns: CPU_TIME.load(Ordering::Relaxed).then(|| {
            clock::thread_cpu_ns().saturating_sub(slot.start_cpu_ns.load(Ordering::Relaxed))
        }),
        trace_id: slot.trace_id(),
        span_id: slot.span.load(Ordering::Relaxed),
        parent_span_id: slot.parent_span.load(Ordering::Relaxed),
        ending,
        stuck: slot.stuck.load(Ordering::Relaxed) != 0,
        sql_count: slot.sql_count.load(Ordering::Relaxed),
        sql_ns: slot.sql_ns.load(Ordering::Relaxed),
        detailed: slot.detailed.load(Ordering::Relaxed) != 0,
    };
    slot.claim.store(0, Ordering::Release);
    table.open.fetch_sub(1, Ordering::Relaxed);
    Some(finished)
}

/// A transaction open longer than the `stuck` threshold, reported once.
#[derive(Clone, Debug, PartialEq)]
pub struct Stuck {
    pub site: i32,
    pub thread_id: u64,
    pub trace_id: u128,
    pub span_id: u64,
    pub start_ns: u64,
    pub open_ns: u64,
}

/// Open transactions by age: under 3 s, 3 to 8 s, over 8 s (Scouter's
/// active-service equalizer), and those that just became stuck.
#[derive(Debug, Default, PartialEq)]
pub struct Active {
    pub by_age: [u64; 3],
    pub newly_stuck: Vec<Stuck>,
}

/// Looks at every open transaction (the sampler does, once a round).
pub fn active(stuck_after_ns: u64) -> Active {
    let table = in_flight();
    let mut active = Active::default();
    if table.open.load(Ordering::Relaxed) == 0 {
        return active;
    }
    let now = clock::monotonic_ns();
    for slot in table.slots.iter() {
        let claim = slot.claim.load(Ordering::Acquire);
        if claim == 0 {
            continue;
        }
        let open_ns = now.saturating_sub(slot.start_monotonic_ns.load(Ordering::Relaxed));
        let bucket = match open_ns / 1_000_000_000 {
            0..=2 => 0,
            3..=7 => 1,
            _ => 2,
        };
        active.by_age[bucket] += 1;
        if open_ns < stuck_after_ns || slot.stuck.load(Ordering::Relaxed) != 0 {
            continue;
        }
        let stuck = Stuck {
            site: slot.site.load(Ordering::Relaxed) as i32,
            thread_id: slot.thread_id.load(Ordering::Relaxed),
            trace_id: slot.trace_id(),
            span_id: slot.span.load(Ordering::Relaxed),
            start_ns: slot.start_wall_ns.load(Ordering::Relaxed),
            open_ns,
        };
        // Only if the slot still holds the same transaction.
        if slot.claim.load(Ordering::Acquire) == claim {
            slot.stuck.store(1, Ordering::Relaxed);
            active.newly_stuck.push(stuck);
        }
    }
    active
}

/// A JDBC call that ended inside a transaction, as a child span.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlCall {
    pub site: i32,
    pub trace_id: u128,
    pub parent_span_id: u64,
    pub span_id: u64,
    pub start_ns: u64,
    pub duration_ns: u64,
    /// The statement with its literals replaced by `?`.
    pub statement: Option<String>,
    pub error_type: Option<String>,
}

/// Adds a JDBC call that began at `start_monotonic_ns` to the transaction
/// `token`; its span, unless that transaction is gone or not detailed.
fn sql_call(
    token: u64,
    site: i32,
    start_monotonic_ns: u64,
    statement: Option<String>,
    error_type: Option<String>,
) -> Option<SqlCall> {
    let table = in_flight();
    let slot = table.slot_of(token)?;
    let now_monotonic = clock::monotonic_ns();
    let duration_ns = now_monotonic.saturating_sub(start_monotonic_ns);
    slot.sql_count.fetch_add(1, Ordering::Relaxed);
    slot.sql_ns.fetch_add(duration_ns, Ordering::Relaxed);
    if slot.detailed.load(Ordering::Relaxed) == 0 {
        return None;
    }
    Some(SqlCall {
        site,
        trace_id: slot.trace_id(),
        parent_span_id: slot.span.load(Ordering::Relaxed),
        span_id: table.random(),
        start_ns: clock::wall_ns().saturating_sub(duration_ns),
        duration_ns,
        statement: statement.map(|s| crate::sql::normalize(&s)),
        error_type,
    })
}

/// Where finished transactions go (set when the agent starts).
pub static QUEUE: OnceLock<Queue> = OnceLock::new();

/// The strings transactions end with.
static STRINGS: LazyLock<StringTable> = LazyLock::new(StringTable::default);

/// Reads a Java string argument (null stays `None`).
unsafe fn string(env: *mut RawJniEnv, s: JObject) -> Option<String> {
    if s.is_null() {
        return None;
    }
    crate::jni::Jni::from_raw(env).string(s).ok()
}

/// Reads a Java string argument that transactions repeat, as its shared copy.
unsafe fn repeated_string(env: *mut RawJniEnv, s: JObject) -> Option<Arc<str>> {
    if s.is_null() {
        return None;
    }
    crate::jni::Jni::from_raw(env)
        .string_bytes(s, |bytes| STRINGS.get(bytes))
        .ok()
}

/// `Hooks.begin(int site, long threadId, String traceparent)`.
pub unsafe extern "system" fn native_begin(
    env: *mut RawJniEnv,
    _class: JObject,
    site: i32,
    thread_id: i64,
    traceparent: JObject,
) -> i64 {
    let mut token = 0u64;
    crate::agent::guarded("Hooks.begin", || {
        let parent = string(env, traceparent).and_then(|t| parse_traceparent(&t));
        token = begin(site, thread_id as u64, parent);
    });
    token as i64
}

/// `Hooks.end(long token, String method, String path, String route, int
/// status, String errorType, String thread)`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn native_end(
    env: *mut RawJniEnv,
    _class: JObject,
    token: i64,
    method: JObject,
    path: JObject,
    route: JObject,
    status: i32,
    error_type: JObject,
    thread: JObject,
) {
    crate::agent::guarded("Hooks.end", || {
        let ending = Ending {
            method: repeated_string(env, method),
            path: repeated_string(env, path),
            route: repeated_string(env, route),
            status,
            error_type: repeated_string(env, error_type),
            thread: repeated_string(env, thread),
        };
        if let (Some(finished), Some(queue)) = (end(token as u64, ending), QUEUE.get()) {
            queue.push(crate::record::Record::Transaction(Box::new(finished)));
        }
    });
}

/// `Hooks.endSql(long transaction, int site, String sql, long startNanos,
/// String errorType)`; `startNanos` is `System.nanoTime()`, which on Linux
/// reads the same clock as `clock::monotonic_ns`.
pub unsafe extern "system" fn native_end_sql(
    env: *mut RawJniEnv,
    _class: JObject,
    transaction: i64,
    site: i32,
    sql: JObject,
    start_nanos: i64,
    error_type: JObject,
) {
    crate::agent::guarded("Hooks.endSql", || {
        let call = sql_call(
            transaction as u64,
            site,
            start_nanos as u64,
            string(env, sql),
            string(env, error_type),
        );
        if let (Some(call), Some(queue)) = (call, QUEUE.get()) {
            queue.push(crate::record::Record::Sql(Box::new(call)));
        }
    });
}

/// The natives' names and signatures, for RegisterNatives.
pub fn natives() -> [(&'static CStr, &'static CStr, *mut std::ffi::c_void); 3] {
    [
        (
            c"begin",
            c"(IJLjava/lang/String;)J",
            native_begin as *mut std::ffi::c_void,
        ),
        (
            c"end",
            c"(JLjava/lang/String;Ljava/lang/String;Ljava/lang/String;ILjava/lang/String;Ljava/lang/String;)V",
            native_end as *mut std::ffi::c_void,
        ),
        (
            c"endSql",
            c"(JILjava/lang/String;JLjava/lang/String;)V",
            native_end_sql as *mut std::ffi::c_void,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing() -> Ending {
        Ending {
            method: None,
            path: None,
            route: None,
            status: -1,
            error_type: None,
            thread: None,
        }
    }

    #[test]
    fn a_token_ends_its_transaction_once() {
        let token = begin(3, 7, None);
        assert_ne!(token, 0);
        let finished = end(token, nothing()).unwrap();
        assert_eq!(finished.site, 3);
        assert_ne!(finished.trace_id, 0);
        assert_ne!(finished.span_id, 0);
        assert_eq!(finished.parent_span_id, 0);
        assert!(end(token, nothing()).is_none(), "a second end is ignored");
        assert!(end(0, nothing()).is_none());
    }

    #[test]
    fn an_incoming_traceparent_continues_its_trace() {
        let parent = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(
            parent,
            Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7))
        );
        let finished = end(begin(1, 7, parent), nothing()).unwrap();
        assert_eq!(finished.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(finished.parent_span_id, 0x00f067aa0ba902b7);
        assert_eq!(parse_traceparent("00-0000-00f067aa0ba902b7-01"), None);
        assert_eq!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(parse_traceparent("garbage"), None);
    }

    #[test]
    fn an_old_transaction_is_reported_stuck_once() {
        let token = begin(5, 42, None);
        let first = active(0);
        let mine: Vec<&Stuck> = first.newly_stuck.iter().filter(|s| s.site == 5).collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].thread_id, 42);
        assert!(first.by_age[0] >= 1);
        assert!(active(0).newly_stuck.iter().all(|s| s.site != 5), "once");
        assert!(end(token, nothing()).unwrap().stuck);
    }

    #[test]
    fn sites_are_numbered_once() {
        let a = Site {
            kind: SiteKind::Method,
            class: "com.acme.A".into(),
            method: "run".into(),
        };
        let n = register(a.clone()).unwrap();
        assert_eq!(register(a.clone()), Some(n));
        assert_eq!(site(n).as_deref(), Some(&a));
    }
}
