//! Transactions in flight: the natives behind `jvmapm.agent.Hooks`, which
//! instrumented methods reach through the helper. `begin` takes the clocks
//! and ids into a slot of a fixed table (claimed with one compare-and-swap,
//! never a lock); `end` reads the slot back, frees it and writes the
//! transaction's record into its thread's ring (`ended`, `ring`): no lock,
//! no allocation, no system call beyond the clocks. Calls inside an open
//! transaction (JDBC statements, outgoing HTTP calls, steps: hooked
//! methods) write records of their own, as its child spans. An outgoing
//! call carries its transaction's ids by value, as the helper had them when
//! it began, so it ends as a child also on another thread, and after its
//! transaction (an asynchronous call that outlives it). What each site is (its kind and method)
//! lives in a registry written at class load.

use std::cell::Cell;
use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::clock;
use crate::ended::{self, CallEnd, TransactionEnd};
use crate::guard;
use crate::interned::STRING_IDS;
use crate::jni::{JObject, Jni, RawJniEnv};
use crate::ring;

/// What kind of transaction a site makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    /// An HTTP request: a servlet, a filter, or the JDK's HTTP server (a SERVER span).
    Http,
    /// A method named by the `hook=` option: an application transaction,
    /// or a step of the transaction open on its thread.
    Method,
    /// A JDBC statement's execute method (a CLIENT span inside a transaction).
    Sql,
    /// An outgoing HTTP call of a client library (a CLIENT span inside a
    /// transaction).
    Outgoing,
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

/// A slot's claim while `begin` writes its fields (generations are odd).
const WRITING: u32 = 2;

struct Slot {
    /// 0 when free, [`WRITING`] while claimed and being written, else the
    /// claim's generation (odd): readers trust the fields only then.
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
    /// The generation the sampler reported stuck (a late report about an
    /// earlier occupant names another generation and is ignored).
    stuck: AtomicU32,
    sql_count: AtomicU32,
    sql_ns: AtomicU64,
    http_count: AtomicU32,
    http_ns: AtomicU64,
    /// 1 when this transaction is sent with full detail (`sample=`).
    detailed: AtomicU32,
}

struct InFlight {
    slots: Box<[Slot]>,
    /// One bit per slot, set while it is claimed: the sampler looks only
    /// at the words with bits set.
    occupied: Box<[AtomicU64]>,
    untracked: AtomicU64,
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
                http_count: AtomicU32::new(0),
                http_ns: AtomicU64::new(0),
                detailed: AtomicU32::new(0),
            })
            .collect(),
        occupied: (0..SLOTS / 64).map(|_| AtomicU64::new(0)).collect(),
        untracked: AtomicU64::new(0),
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
        (generation & 1 == 1 && slot.claim.load(Ordering::Acquire) == generation).then_some(slot)
    }

    fn mark(&self, index: usize, occupied: bool) {
        let word = &self.occupied[index / 64];
        let bit = 1u64 << (index % 64);
        if occupied {
            word.fetch_or(bit, Ordering::Relaxed);
        } else {
            word.fetch_and(!bit, Ordering::Relaxed);
        }
    }
}

/// What each thread keeps for itself: its random generator and the slot it
/// tries first (its last one, free again once its transaction ended).
struct Local {
    random: Cell<u64>,
    slot: Cell<usize>,
}

thread_local! {
    static LOCAL: Local = Local::new();
}

impl Local {
    fn new() -> Local {
        static THREADS: AtomicU64 = AtomicU64::new(0);
        let n = THREADS.fetch_add(1, Ordering::Relaxed) as usize;
        Local {
            random: Cell::new(jvmapm_contract::random::seed()),
            slot: Cell::new(first_slot(n)),
        }
    }

    /// A random, non-zero 64-bit id.
    fn random(&self) -> u64 {
        let mut state = self.random.get();
        let id = jvmapm_contract::random::step(&mut state);
        self.random.set(state);
        id.max(1)
    }
}

/// The slot the `n`th thread tries first. The first 32 threads each get a
/// cache line of the occupied bits of their own (512 slots apart), the next
/// ones another word of those lines, then another bit, so threads seldom
/// write the same line of the bitmap (or of the table) when they begin and
/// end transactions.
fn first_slot(n: usize) -> usize {
    const LINES: usize = SLOTS / 512;
    let line = n % LINES;
    let word = (n / LINES) % 8;
    let bit = (n / (LINES * 8)) % 64;
    line * 512 + word * 64 + bit
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

/// What the helper keeps of a transaction it opened, so that a call inside
/// it can name it as its parent (and send its ids in a `traceparent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Opened {
    token: u64,
    trace_id: u128,
    span_id: u64,
    detailed: bool,
}

impl Opened {
    /// As `Hooks.begin` hands it to the helper: trace id high and low
    /// words, span id, 1 when detailed.
    fn words(&self) -> [i64; 4] {
        [
            (self.trace_id >> 64) as i64,
            self.trace_id as i64,
            self.span_id as i64,
            i64::from(self.detailed),
        ]
    }
}

/// Starts a transaction of `site`; `None` when the table is full.
fn open(site: i32, thread_id: u64, traceparent: Option<(u128, u64)>) -> Option<Opened> {
    let table = in_flight();
    LOCAL.with(|local| {
        let first = local.slot.get();
        for probe in 0..16 {
            let index = (first + probe * 61) % SLOTS;
            let slot = &table.slots[index];
            if slot
                .claim
                .compare_exchange(0, WRITING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // The claim is seen as WRITING before any field changes.
            fence(Ordering::Release);
            local.slot.set(index);
            let (trace, parent) = traceparent.unwrap_or_else(|| {
                (
                    (u128::from(local.random()) << 64) | u128::from(local.random()),
                    0,
                )
            });
            let generation = (local.random() as u32) | 1;
            slot.site.store(site as u32, Ordering::Relaxed);
            slot.start_wall_ns
                .store(clock::wall_ns(), Ordering::Relaxed);
            slot.start_monotonic_ns
                .store(clock::monotonic_ns(), Ordering::Relaxed);
            slot.start_cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
            slot.trace_high
                .store((trace >> 64) as u64, Ordering::Relaxed);
            slot.trace_low.store(trace as u64, Ordering::Relaxed);
            let span = local.random();
            slot.span.store(span, Ordering::Relaxed);
            slot.parent_span.store(parent, Ordering::Relaxed);
            slot.thread_id.store(thread_id, Ordering::Relaxed);
            slot.sql_count.store(0, Ordering::Relaxed);
            slot.sql_ns.store(0, Ordering::Relaxed);
            slot.http_count.store(0, Ordering::Relaxed);
            slot.http_ns.store(0, Ordering::Relaxed);
            let detailed = local.random() <= DETAIL_THRESHOLD.load(Ordering::Relaxed);
            slot.detailed.store(u32::from(detailed), Ordering::Relaxed);
            table.mark(index, true);
            slot.claim.store(generation, Ordering::Release);
            return Some(Opened {
                token: ((index as u64) << 32) | u64::from(generation),
                trace_id: trace,
                span_id: span,
                detailed,
            });
        }
        table.untracked.fetch_add(1, Ordering::Relaxed);
        None
    })
}

/// An open transaction as `end` takes it out of the table.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Closed {
    site: i32,
    start_ns: u64,
    duration_ns: u64,
    cpu_ns: Option<u64>,
    trace_id: u128,
    span_id: u64,
    parent_span_id: u64,
    thread_id: u64,
    stuck: bool,
    sql_count: u32,
    sql_ns: u64,
    http_count: u32,
    http_ns: u64,
    detailed: bool,
}

/// Ends the transaction `token` stands for and frees its slot; `None` for a
/// stale or zero token.
fn close(token: u64) -> Option<Closed> {
    let table = in_flight();
    let slot = table.slot_of(token)?;
    let closed = Closed {
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
        thread_id: slot.thread_id.load(Ordering::Relaxed),
        stuck: slot.stuck.load(Ordering::Relaxed) == token as u32,
        sql_count: slot.sql_count.load(Ordering::Relaxed),
        sql_ns: slot.sql_ns.load(Ordering::Relaxed),
        http_count: slot.http_count.load(Ordering::Relaxed),
        http_ns: slot.http_ns.load(Ordering::Relaxed),
        detailed: slot.detailed.load(Ordering::Relaxed) != 0,
    };
    table.mark((token >> 32) as usize, false);
    slot.claim.store(0, Ordering::Release);
    Some(closed)
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
    let mut active = Active::default();
    let now = clock::monotonic_ns();
    each_open(
        |slot| Stuck {
            site: slot.site.load(Ordering::Relaxed) as i32,
            thread_id: slot.thread_id.load(Ordering::Relaxed),
            trace_id: slot.trace_id(),
            span_id: slot.span.load(Ordering::Relaxed),
            start_ns: slot.start_wall_ns.load(Ordering::Relaxed),
            open_ns: now.saturating_sub(slot.start_monotonic_ns.load(Ordering::Relaxed)),
        },
        |_, slot, claim, stuck| {
            let bucket = match stuck.open_ns / 1_000_000_000 {
                0..=2 => 0,
                3..=7 => 1,
                _ => 2,
            };
            active.by_age[bucket] += 1;
            if stuck.open_ns >= stuck_after_ns && slot.stuck.load(Ordering::Relaxed) != claim {
                slot.stuck.store(claim, Ordering::Relaxed);
                active.newly_stuck.push(stuck);
            }
        },
    );
    active
}

/// Reads every open transaction with `read`, and hands what it read to
/// `found` with its slot's index, the slot and its claim. A slot is read like a sequence lock:
/// its claim before and after `read` must be the same generation, or the
/// slot is passed by.
fn each_open<T>(mut read: impl FnMut(&Slot) -> T, mut found: impl FnMut(usize, &Slot, u32, T)) {
    let table = in_flight();
    for (word_index, word) in table.occupied.iter().enumerate() {
        let mut bits = word.load(Ordering::Relaxed);
        while bits != 0 {
            let index = word_index * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let slot = &table.slots[index];
            let claim = slot.claim.load(Ordering::Acquire);
            if claim & 1 == 0 {
                continue; // free, or being written
            }
            let value = read(slot);
            fence(Ordering::Acquire);
            if slot.claim.load(Ordering::Relaxed) != claim {
                continue; // it ended (and maybe another began) meanwhile
            }
            found(index, slot, claim, value);
        }
    }
}

/// A transaction open long enough to have its stack sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slow {
    /// Its slot and claim: [`still_open`] tells whether it still runs.
    pub slot: usize,
    pub generation: u32,
    /// `Thread.getId()` of its thread.
    pub thread_id: u64,
    pub span_id: u64,
}

/// The transactions open for at least `after_ns`, into `slow` (cleared
/// first), in slot order. Returns the nanoseconds until the next of the
/// others is open that long, `after_ns` when none is open: no transaction
/// becomes slow sooner.
pub fn open_longer_than(after_ns: u64, slow: &mut Vec<Slow>) -> u64 {
    slow.clear();
    let mut next_ns = after_ns;
    let now = clock::monotonic_ns();
    each_open(
        |slot| {
            (
                now.saturating_sub(slot.start_monotonic_ns.load(Ordering::Relaxed)),
                slot.thread_id.load(Ordering::Relaxed),
                slot.span.load(Ordering::Relaxed),
            )
        },
        |index, _, generation, (open_ns, thread_id, span_id)| {
            if open_ns >= after_ns {
                slow.push(Slow {
                    slot: index,
                    generation,
                    thread_id,
                    span_id,
                });
            } else {
                next_ns = next_ns.min(after_ns - open_ns);
            }
        },
    );
    next_ns
}

/// Whether the transaction `slow` names still holds its slot.
pub fn still_open(slow: &Slow) -> bool {
    in_flight()
        .slots
        .get(slow.slot)
        .is_some_and(|slot| slot.claim.load(Ordering::Acquire) == slow.generation)
}

/// A call of `site` that lasted `duration_ns` until now, as a child span of
/// the transaction in `slot`; `error` is a number from `interned`.
fn call_end(slot: &Slot, site: i32, error: i32, duration_ns: u64) -> CallEnd {
    CallEnd {
        site,
        trace_id: slot.trace_id(),
        parent_span_id: slot.span.load(Ordering::Relaxed),
        span_id: LOCAL.with(Local::random),
        start_ns: clock::wall_ns().saturating_sub(duration_ns),
        duration_ns,
        error: error as u32,
    }
}

/// Adds a JDBC call that began at `start_monotonic_ns` to the transaction
/// `token`; its child span, unless that transaction is gone or not
/// detailed.
fn sql_call(token: u64, site: i32, start_monotonic_ns: u64, error: i32) -> Option<CallEnd> {
    let table = in_flight();
    let slot = table.slot_of(token)?;
    let duration_ns = clock::monotonic_ns().saturating_sub(start_monotonic_ns);
    slot.sql_count.fetch_add(1, Ordering::Relaxed);
    slot.sql_ns.fetch_add(duration_ns, Ordering::Relaxed);
    if slot.detailed.load(Ordering::Relaxed) == 0 {
        return None;
    }
    Some(call_end(slot, site, error, duration_ns))
}

/// An outgoing call the helper began at `start_monotonic_ns` inside the
/// transaction `parent` (its ids as the helper had them): added to that
/// transaction's count and time while it is open, and its child span
/// unless the helper sent no span id (a transaction not detailed, whose
/// callee then names the transaction itself as its parent).
fn outgoing_call(
    token: u64,
    parent: (u128, u64),
    span_id: u64,
    site: i32,
    start_monotonic_ns: u64,
    error: i32,
) -> Option<CallEnd> {
    let duration_ns = clock::monotonic_ns().saturating_sub(start_monotonic_ns);
    if let Some(slot) = in_flight().slot_of(token) {
        slot.http_count.fetch_add(1, Ordering::Relaxed);
        slot.http_ns.fetch_add(duration_ns, Ordering::Relaxed);
    }
    (span_id != 0).then(|| CallEnd {
        site,
        trace_id: parent.0,
        parent_span_id: parent.1,
        span_id,
        start_ns: clock::wall_ns().saturating_sub(duration_ns),
        duration_ns,
        error: error as u32,
    })
}

/// A step (a hooked method of `site` that began at `start_monotonic_ns`)
/// of the transaction `token`: its child span, unless that transaction is
/// gone or not detailed. (The helper stops handing steps over past its
/// bound of steps per transaction, and counts the rest itself.)
fn step(token: u64, site: i32, start_monotonic_ns: u64, error: i32) -> Option<CallEnd> {
    let table = in_flight();
    let slot = table.slot_of(token)?;
    if slot.detailed.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let duration_ns = clock::monotonic_ns().saturating_sub(start_monotonic_ns);
    Some(call_end(slot, site, error, duration_ns))
}

/// Counts what could not be handed to the exporter (set when the agent
/// starts; the same count as the exporter's own drops).
pub static DROPPED: OnceLock<Arc<AtomicU64>> = OnceLock::new();

fn dropped() {
    if let Some(dropped) = DROPPED.get() {
        dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// `Hooks.begin(int site, long threadId, String traceparent, long[] ids)`:
/// the token, and the transaction's ids written into `ids` (see
/// [`Opened::words`]).
pub unsafe extern "system" fn native_begin(
    env: *mut RawJniEnv,
    _class: JObject,
    site: i32,
    thread_id: i64,
    traceparent: JObject,
    ids: JObject,
) -> i64 {
    // SAFETY: the JVM passes the calling thread's JNIEnv to a native method.
    let jni = unsafe { Jni::from_raw(env) };
    let mut token = 0u64;
    guard::guarded("Hooks.begin", || {
        let parent = if traceparent.is_null() {
            None
        } else {
            jni.string(traceparent)
                .ok()
                .and_then(|t| parse_traceparent(&t))
        };
        if let Some(opened) = open(site, thread_id as u64, parent) {
            token = opened.token;
            if jni.set_longs(ids, &opened.words()).is_err() {
                // The helper cannot name it: end it unseen.
                close(token);
                token = 0;
            }
        }
    });
    token as i64
}

/// `Hooks.end(long token, int status, int method, int route, int error,
/// int stepsTruncated, boolean pathIsRoute, String path)`: method, route
/// and error are numbers from `Hooks.intern`; `stepsTruncated` the steps
/// the helper counted past its bound; the path is read only when the
/// transaction is sent with full detail.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn native_end(
    env: *mut RawJniEnv,
    _class: JObject,
    token: i64,
    status: i32,
    method: i32,
    route: i32,
    error: i32,
    steps_truncated: i32,
    path_is_route: u8,
    path: JObject,
) {
    // SAFETY: the JVM passes the calling thread's JNIEnv to a native method.
    let jni = unsafe { Jni::from_raw(env) };
    guard::guarded("Hooks.end", || {
        let Some(t) = close(token as u64) else {
            return;
        };
        let full = t.detailed || error != 0 || status >= 500;
        let mut buf = [MaybeUninit::<u8>::uninit(); ended::MAX_PATH + 1];
        let path = if full && !path.is_null() {
            read_string(&jni, path, &mut buf)
        } else {
            &[]
        };
        let written = ended::write_transaction(
            ring::mine(),
            &TransactionEnd {
                site: t.site,
                status,
                start_ns: t.start_ns,
                duration_ns: t.duration_ns,
                cpu_ns: t.cpu_ns,
                trace_id: t.trace_id,
                span_id: t.span_id,
                parent_span_id: t.parent_span_id,
                thread_id: t.thread_id,
                stuck: t.stuck,
                detailed: t.detailed,
                sql_count: t.sql_count,
                sql_ns: t.sql_ns,
                http_count: t.http_count,
                http_ns: t.http_ns,
                // Only a detailed transaction sends its steps.
                steps_truncated: if t.detailed {
                    steps_truncated as u32
                } else {
                    0
                },
                method: method as u32,
                route: route as u32,
                error: error as u32,
                path,
                path_is_route: full && path_is_route != 0,
            },
        );
        if !written {
            dropped();
        }
    });
}

/// Reads a Java string into `buf` (a prefix when it does not fit).
fn read_string<'b>(jni: &Jni, string: JObject, buf: &'b mut [MaybeUninit<u8>]) -> &'b [u8] {
    let length = jni.string_prefix(string, buf).unwrap_or(0);
    // SAFETY: string_prefix wrote the first `length` bytes of `buf`.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), length) }
}

/// `Hooks.endSql(long transaction, int site, String sql, long startNanos,
/// int error)`; `startNanos` is `System.nanoTime()`, which on Linux reads
/// the same clock as `clock::monotonic_ns`.
pub unsafe extern "system" fn native_end_sql(
    env: *mut RawJniEnv,
    _class: JObject,
    transaction: i64,
    site: i32,
    sql: JObject,
    start_nanos: i64,
    error: i32,
) {
    // SAFETY: the JVM passes the calling thread's JNIEnv to a native method.
    let jni = unsafe { Jni::from_raw(env) };
    guard::guarded("Hooks.endSql", || {
        let Some(call) = sql_call(transaction as u64, site, start_nanos as u64, error) else {
            return;
        };
        let mut buf = [MaybeUninit::<u8>::uninit(); ended::MAX_STATEMENT + 1];
        let statement = if sql.is_null() {
            &[]
        } else {
            read_string(&jni, sql, &mut buf)
        };
        if !ended::write_sql(ring::mine(), &call, statement) {
            dropped();
        }
    });
}

/// `Hooks.endStep(long transaction, int site, long startNanos, int error)`:
/// a hooked method that ran inside the transaction; `startNanos` is
/// `System.nanoTime()`, as for `endSql`.
pub unsafe extern "system" fn native_end_step(
    _env: *mut RawJniEnv,
    _class: JObject,
    transaction: i64,
    site: i32,
    start_nanos: i64,
    error: i32,
) {
    guard::guarded("Hooks.endStep", || {
        if let Some(call) = step(transaction as u64, site, start_nanos as u64, error) {
            if !ended::write_step(ring::mine(), &call) {
                dropped();
            }
        }
    });
}

/// `Hooks.endCall(long transaction, long traceHigh, long traceLow, long
/// parentSpan, long span, int site, long startNanos, int status, int
/// method, int error, String url)`: an outgoing HTTP call that ended; the
/// ids are those of its transaction and its own span (0: none), `status`
/// the response's (negative: none), `method` and `error` numbers from
/// `Hooks.intern`, `url` as the client had it (read only for a span).
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn native_end_call(
    env: *mut RawJniEnv,
    _class: JObject,
    transaction: i64,
    trace_high: i64,
    trace_low: i64,
    parent_span: i64,
    span: i64,
    site: i32,
    start_nanos: i64,
    status: i32,
    method: i32,
    error: i32,
    url: JObject,
) {
    // SAFETY: the JVM passes the calling thread's JNIEnv to a native method.
    let jni = unsafe { Jni::from_raw(env) };
    guard::guarded("Hooks.endCall", || {
        let trace = (u128::from(trace_high as u64) << 64) | u128::from(trace_low as u64);
        let Some(call) = outgoing_call(
            transaction as u64,
            (trace, parent_span as u64),
            span as u64,
            site,
            start_nanos as u64,
            error,
        ) else {
            return;
        };
        let mut buf = [MaybeUninit::<u8>::uninit(); ended::MAX_URL + 1];
        let url = if url.is_null() {
            &[]
        } else {
            read_string(&jni, url, &mut buf)
        };
        if !ended::write_http(ring::mine(), &call, status, method as u32, url) {
            dropped();
        }
    });
}

/// `Hooks.threadName(long threadId, String name)`: the thread's name, once
/// per thread (and again after a rename); false when it could not be kept.
pub unsafe extern "system" fn native_thread_name(
    env: *mut RawJniEnv,
    _class: JObject,
    thread_id: i64,
    name: JObject,
) -> u8 {
    // SAFETY: the JVM passes the calling thread's JNIEnv to a native method.
    let jni = unsafe { Jni::from_raw(env) };
    let mut written = false;
    guard::guarded("Hooks.threadName", || {
        let mut buf = [MaybeUninit::<u8>::uninit(); ended::MAX_THREAD_NAME + 1];
        let name = if name.is_null() {
            &[]
        } else {
            read_string(&jni, name, &mut buf)
        };
        written = ended::write_thread_name(ring::mine(), thread_id as u64, name);
    });
    u8::from(written)
}

/// `Hooks.intern(String)`: the string's number for `end` (0 when the table
/// is full).
pub unsafe extern "system" fn native_intern(
    env: *mut RawJniEnv,
    _class: JObject,
    text: JObject,
) -> i32 {
    // SAFETY: the JVM passes the calling thread's JNIEnv to a native method.
    let jni = unsafe { Jni::from_raw(env) };
    let mut id = 0;
    guard::guarded("Hooks.intern", || {
        if !text.is_null() {
            id = jni
                .string_bytes(text, |bytes| STRING_IDS.intern(bytes))
                .unwrap_or(0);
        }
    });
    id as i32
}

/// The natives' names and signatures, for RegisterNatives.
pub fn natives() -> [(&'static CStr, &'static CStr, *mut std::ffi::c_void); 7] {
    [
        (
            c"begin",
            c"(IJLjava/lang/String;[J)J",
            native_begin as *mut std::ffi::c_void,
        ),
        (
            c"end",
            c"(JIIIIIZLjava/lang/String;)V",
            native_end as *mut std::ffi::c_void,
        ),
        (
            c"endSql",
            c"(JILjava/lang/String;JI)V",
            native_end_sql as *mut std::ffi::c_void,
        ),
        (
            c"endStep",
            c"(JIJI)V",
            native_end_step as *mut std::ffi::c_void,
        ),
        (
            c"endCall",
            c"(JJJJJIJIIILjava/lang/String;)V",
            native_end_call as *mut std::ffi::c_void,
        ),
        (
            c"threadName",
            c"(JLjava/lang/String;)Z",
            native_thread_name as *mut std::ffi::c_void,
        ),
        (
            c"intern",
            c"(Ljava/lang/String;)I",
            native_intern as *mut std::ffi::c_void,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts a transaction of `site`; the token is 0 when the table is full.
    fn begin(site: i32, thread_id: u64, traceparent: Option<(u128, u64)>) -> u64 {
        open(site, thread_id, traceparent).map_or(0, |opened| opened.token)
    }

    /// Tests that look at the whole table (`active`) run one at a time.
    static WHOLE_TABLE: Mutex<()> = Mutex::new(());

    #[test]
    fn a_token_ends_its_transaction_once() {
        let token = begin(3, 7, None);
        assert_ne!(token, 0);
        let closed = close(token).unwrap();
        assert_eq!(closed.site, 3);
        assert_eq!(closed.thread_id, 7);
        assert_ne!(closed.trace_id, 0);
        assert_ne!(closed.span_id, 0);
        assert_eq!(closed.parent_span_id, 0);
        assert!(close(token).is_none(), "a second end is ignored");
        assert!(close(0).is_none());
    }

    #[test]
    fn an_incoming_traceparent_continues_its_trace() {
        let parent = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(
            parent,
            Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7))
        );
        let closed = close(begin(1, 7, parent)).unwrap();
        assert_eq!(closed.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(closed.parent_span_id, 0x00f067aa0ba902b7);
        assert_eq!(parse_traceparent("00-0000-00f067aa0ba902b7-01"), None);
        assert_eq!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(parse_traceparent("garbage"), None);
    }

    #[test]
    fn an_old_transaction_is_reported_stuck_once() {
        let _alone = WHOLE_TABLE.lock().unwrap_or_else(|e| e.into_inner());
        let token = begin(5, 42, None);
        let first = active(0);
        let mine: Vec<&Stuck> = first.newly_stuck.iter().filter(|s| s.site == 5).collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].thread_id, 42);
        assert!(first.by_age[0] >= 1);
        assert!(active(0).newly_stuck.iter().all(|s| s.site != 5), "once");
        assert!(close(token).unwrap().stuck);
        let next = begin(5, 42, None);
        assert!(
            !close(next).unwrap().stuck,
            "the next occupant starts clean"
        );
    }

    #[test]
    fn only_transactions_open_long_enough_are_slow_until_they_end() {
        let _alone = WHOLE_TABLE.lock().unwrap_or_else(|e| e.into_inner());
        let old = begin(6, 61, None);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let young = begin(6, 62, None);
        let mut slow = Vec::new();
        let next_ns = open_longer_than(10_000_000, &mut slow);
        assert!(next_ns <= 10_000_000 && next_ns > 0, "{next_ns}");
        let mine: Vec<Slow> = slow
            .into_iter()
            .filter(|s| s.thread_id == 61 || s.thread_id == 62)
            .collect();
        assert_eq!(mine.len(), 1, "{mine:?}");
        assert_eq!(mine[0].thread_id, 61);
        assert!(still_open(&mine[0]));
        let closed = close(old).unwrap();
        assert_eq!(mine[0].span_id, closed.span_id);
        assert!(!still_open(&mine[0]), "ended");
        close(young).unwrap();
    }

    /// Many short transactions on several threads while the sampler looks
    /// every millisecond: none younger than the threshold (timed by its
    /// thread, outside the table) is ever marked stuck, and every report
    /// names a thread that ran one.
    #[test]
    fn short_transactions_are_never_reported_stuck() {
        const SITE: i32 = 77;
        const STUCK_NS: u64 = 50_000_000;
        let _alone = WHOLE_TABLE.lock().unwrap_or_else(|e| e.into_inner());
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..4u64)
            .map(|thread| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut ended = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // Timed from outside the table: on a loaded machine a
                        // thread may lose the CPU between the two calls and
                        // then really be stuck; younger, it must not be.
                        let before = clock::monotonic_ns();
                        let token = begin(SITE, 1000 + thread, None);
                        if let Some(closed) = close(token) {
                            let lasted = clock::monotonic_ns() - before;
                            assert_eq!(closed.thread_id, 1000 + thread);
                            assert!(
                                !closed.stuck || lasted >= STUCK_NS,
                                "reported stuck after {lasted} ns"
                            );
                            ended += 1;
                        }
                    }
                    ended
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while std::time::Instant::now() < deadline {
            // Marks what it finds stuck, which the workers' ends then check.
            for stuck in active(STUCK_NS).newly_stuck {
                if stuck.site == SITE {
                    assert!((1000..1004).contains(&stuck.thread_id), "{stuck:?}");
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        stop.store(true, Ordering::Relaxed);
        let ended: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(ended > 10_000, "only {ended} transactions ran");
    }

    #[test]
    fn the_first_threads_start_on_lines_of_their_own_and_all_slots_are_reachable() {
        let lines: std::collections::HashSet<usize> =
            (0..32).map(|n| first_slot(n) / 512).collect();
        assert_eq!(lines.len(), 32);
        let slots: std::collections::HashSet<usize> = (0..SLOTS).map(first_slot).collect();
        assert_eq!(slots.len(), SLOTS, "every slot is some thread's first");
    }

    #[test]
    fn a_step_is_a_child_of_its_open_transaction_only() {
        let token = begin(4, 7, None);
        let start = clock::monotonic_ns();
        let first = step(token, 9, start, 3).unwrap();
        let second = step(token, 9, start, 0).unwrap();
        let closed = close(token).unwrap();
        for s in [&first, &second] {
            assert_eq!(s.trace_id, closed.trace_id);
            assert_eq!(s.parent_span_id, closed.span_id);
            assert_eq!(s.site, 9);
        }
        assert_ne!(first.span_id, second.span_id);
        assert_eq!((first.error, second.error), (3, 0));
        assert!(step(token, 9, start, 0).is_none(), "its transaction ended");
    }

    #[test]
    fn an_outgoing_call_counts_in_its_open_transaction_and_is_a_child_by_the_ids_it_carries() {
        let opened = open(4, 7, None).unwrap();
        assert_eq!(opened.words()[3], 1, "detailed by default");
        let parent = (opened.trace_id, opened.span_id);
        let start = clock::monotonic_ns();
        let call = outgoing_call(opened.token, parent, 99, 8, start, 0).unwrap();
        assert_eq!(
            (call.trace_id, call.parent_span_id, call.span_id, call.site),
            (opened.trace_id, opened.span_id, 99, 8)
        );
        assert!(
            outgoing_call(opened.token, parent, 0, 8, start, 0).is_none(),
            "no span id: counted, no span"
        );
        let closed = close(opened.token).unwrap();
        assert_eq!(closed.http_count, 2);
        assert!(closed.http_ns >= call.duration_ns);
        let late = outgoing_call(opened.token, parent, 100, 8, start, 3).unwrap();
        assert_eq!(
            (late.trace_id, late.parent_span_id, late.error),
            (opened.trace_id, opened.span_id, 3),
            "after its transaction ended, still its child"
        );
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
