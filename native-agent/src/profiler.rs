//! The profiler thread: stack samples of slow transactions. Every
//! `profile_interval` it looks for transactions open longer than
//! `profile_after` (`transaction::open_longer_than`), reads each one's
//! thread stack with JVMTI `GetThreadListStackTraces` on that one thread
//! (a handshake with it, never a safepoint of all threads; a thread that
//! waits is not woken), and counts the stack. A global budget of samples a
//! second and one of the profiler's own CPU (`profile_budget`) bound the
//! cost when many transactions are slow at once or the machine is
//! saturated; the samples due beyond them are dropped and counted. While
//! no transaction is slow, it wakes only when the next open one can become
//! slow. When a transaction ends,
//! its samples are named (`methods`), folded (`stacks`) and handed to the
//! exporter, which puts the profile on the transaction's span.
//!
//! Why JVMTI rather than `AsyncGetCallTrace` from a signal: measured side
//! by side (`bench/agent-profile.py`, with the probe of `agct.rs`), a
//! signal to the sampled thread cost the profiler as much as the handshake
//! on this project's machines, so the speed that would justify a signal
//! handler in someone else's JVM is not there. JVMTI is a
//! specified API, needs no signal handler in someone else's JVM (ASGCT
//! still crashes on some builds and needs the JVM's crash signals taken
//! over to survive that), no jmethodID pre-pass at class load, and tells
//! the thread's state with its stack; a sample taken while the slot's
//! generation changed is discarded, so a sample never lands on the next
//! transaction of that thread. Its cost is a safepoint bias in the leaf of
//! running threads, which a profile of where time goes tolerates.
//!
//! Everything here runs on the profiler thread, attached to the JVM as a
//! daemon; application threads are never touched beyond the handshake.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock;
use crate::exporter::Queue;
use crate::guard;
use crate::jni::{Jni, SharedVm};
use crate::jvmti::{FrameInfo, Jvmti};
use crate::log::{self, line};
use crate::methods::Methods;
use crate::options::{LogLevel, ProfileSettings};
use crate::profile_budget::{self, Budget};
use crate::record::Record;
use crate::stacks::{self, Profile, State, Tally};
use crate::threads::Threads;
use crate::transaction::{self, Slow};

/// The deepest stack kept; deeper ones keep their leaf-most frames under a
/// `[truncated]` root.
const MAX_DEPTH: usize = 128;
/// The most transactions profiled at once; others are not sampled.
const MAX_OPEN: usize = 1024;
/// The most distinct stacks kept of one transaction.
const MAX_STACKS: usize = 4096;
/// The most sampling intervals one late sample stands for.
const MAX_WEIGHT: u64 = 50;

/// A sampled stack before its frames are named: (method, bytecode index)
/// leaf first, the state, and whether it was cut.
#[derive(Clone, PartialEq, Eq, Hash)]
struct RawStack {
    frames: Box<[(usize, i64)]>,
    state: State,
    cut: bool,
}

/// The samples of one open transaction.
struct Open {
    transaction: Slow,
    tally: Tally<RawStack>,
    dropped: u64,
    /// When it was last sampled, monotonic ns.
    last_ns: u64,
}

struct Profiler {
    jvmti: Jvmti,
    settings: ProfileSettings,
    queue: Queue,
    threads: Threads,
    methods: Methods,
    open: HashMap<usize, Open>,
    /// The samples and the CPU the profiler may spend.
    budget: Budget,
    /// Whether the log said that the CPU budget was reached.
    said_over_cpu: bool,
    /// Where the next tick starts taking samples, so that over budget no
    /// transaction always comes last.
    cursor: usize,
    slow: Vec<Slow>,
    frames: Vec<FrameInfo>,
    /// Samples through `AsyncGetCallTrace` instead, to measure it.
    #[cfg(feature = "agct-probe")]
    agct: Option<crate::agct::Agct>,
}

impl Profiler {
    /// Samples the slow transactions and finishes the profiles of those
    /// that ended. Returns how long to wait until the next tick: the
    /// interval while any transaction is slow, else until the next open
    /// one becomes slow (`profile_after` when none is open), so a JVM with
    /// no slow transaction wakes the profiler rarely.
    fn tick(&mut self, jni: &Jni) -> Duration {
        let interval = self.settings.interval;
        let next_slow_ns =
            transaction::open_longer_than(self.settings.after.as_nanos() as u64, &mut self.slow);
        self.finish_ended(jni);
        if self.slow.is_empty() {
            return interval.max(Duration::from_nanos(next_slow_ns));
        }
        let interval_ns = self.settings.interval.as_nanos() as u64;
        let now = clock::monotonic_ns();
        for slow in &self.slow {
            if self.open.len() < MAX_OPEN {
                self.open.entry(slow.slot).or_insert_with(|| Open {
                    transaction: *slow,
                    tally: Tally::new(MAX_STACKS),
                    dropped: 0,
                    last_ns: now.saturating_sub(interval_ns),
                });
            }
        }
        self.budget.refill(now, clock::thread_cpu_ns());
        let count = self.slow.len();
        let first = self.cursor;
        for n in 0..count {
            let slow = self.slow[(first + n) % count];
            if !self.open.contains_key(&slow.slot) {
                continue;
            }
            if self.budget.take(clock::thread_cpu_ns()) {
                self.cursor = self.cursor.wrapping_add(1);
                let sample = self.timed_sample(jni, &slow);
                if let Some(open) = self.open.get_mut(&slow.slot) {
                    match sample {
                        // A sample stands for every interval since the
                        // last one: after a tick that came late (this
                        // thread waited for a CPU: on a busy machine, most
                        // while the sampled thread itself runs), and after
                        // samples dropped over a budget (which cost more
                        // for a running thread). So no state is
                        // undercounted for keeping the CPU busy, and in an
                        // area's merged profile each transaction weighs
                        // as much as it lasted, however many were slow.
                        Some(stack) => {
                            let weight = (now.saturating_sub(open.last_ns) + interval_ns / 2)
                                / interval_ns.max(1);
                            open.tally.add(stack, weight.clamp(1, MAX_WEIGHT));
                        }
                        None => open.dropped += 1,
                    }
                    open.last_ns = now;
                }
            } else {
                self.say_once_if_over_cpu();
                if let Some(open) = self.open.get_mut(&slow.slot) {
                    open.dropped += 1;
                }
            }
        }
        interval
    }

    /// [`Profiler::sample`], saying in a debug line what it cost the
    /// profiler thread's CPU (the benchmark reads these).
    fn timed_sample(&mut self, jni: &Jni, slow: &Slow) -> Option<RawStack> {
        if !log::debugging() {
            return self.sample(jni, slow);
        }
        let started = clock::thread_cpu_ns();
        let sample = self.sample(jni, slow);
        let cpu_ns = clock::thread_cpu_ns().saturating_sub(started);
        let state = sample.as_ref().map_or("not taken", |s| s.state.leaf());
        log::debug(|| format!("profile sample took {cpu_ns} ns CPU ({state})"));
        #[cfg(feature = "agct-probe")]
        if let Some(agct) = &self.agct {
            log::debug(|| format!("agct handler took {} ns CPU", agct.handler_ns()));
        }
        sample
    }

    fn say_once_if_over_cpu(&mut self) {
        if self.budget.over_cpu() && !self.said_over_cpu {
            self.said_over_cpu = true;
            line(
                LogLevel::Info,
                &format!(
                    "the profiler reached its CPU budget ({}% of one core): while the machine is this busy, \
                     samples are dropped and counted in jvmapm.profile.dropped",
                    profile_budget::CPU_SHARE * 100.0
                ),
            );
        }
    }

    /// One sample of the thread of `slow`, if it still runs that
    /// transaction when the stack has been read.
    fn sample(&mut self, jni: &Jni, slow: &Slow) -> Option<RawStack> {
        let state = jni
            .with_local_frame(4, |jni| {
                let Some(thread) = self.threads.find(jni, slow.thread_id) else {
                    return Ok(None);
                };
                #[cfg(feature = "agct-probe")]
                if let Some(agct) = &mut self.agct {
                    return Ok(agct.stack_of(
                        jni,
                        thread,
                        slow.thread_id,
                        MAX_DEPTH + 1,
                        &mut self.frames,
                    ));
                }
                Ok(self
                    .jvmti
                    .stack_of(thread, MAX_DEPTH + 1, &mut self.frames)
                    .ok())
            })
            .ok()??;
        // Read while the transaction ran throughout: it held its slot
        // before (`open_longer_than`) and still does.
        if !transaction::still_open(slow) {
            return None;
        }
        let state = State::from_jvmti(state)?;
        let cut = self.frames.len() > MAX_DEPTH;
        self.frames.truncate(MAX_DEPTH);
        Some(RawStack {
            frames: self
                .frames
                .iter()
                .map(|f| (f.method as usize, f.location))
                .collect(),
            state,
            cut,
        })
    }

    /// Hands the profiles of the transactions that ended to the exporter.
    fn finish_ended(&mut self, jni: &Jni) {
        let ended: Vec<usize> = self
            .open
            .iter()
            .filter(|(_, open)| !transaction::still_open(&open.transaction))
            .map(|(&slot, _)| slot)
            .collect();
        for slot in ended {
            if let Some(open) = self.open.remove(&slot) {
                let profile = self.fold(jni, open);
                log::debug(|| {
                    format!(
                        "profile of {} samples: {} bytes of folded stacks",
                        profile.samples,
                        profile.text.len()
                    )
                });
                self.queue.push(Record::Profile(Box::new(profile)));
            }
        }
    }

    fn fold(&mut self, jni: &Jni, open: Open) -> Profile {
        let samples = open.tally.samples();
        let (counts, left_out) = open.tally.into_parts();
        let lines: Vec<(String, u64)> = counts
            .into_iter()
            .map(|(stack, count)| {
                let names: Vec<String> = stack
                    .frames
                    .iter()
                    .map(|&(method, location)| {
                        self.methods.frame(
                            jni,
                            FrameInfo {
                                method: method as _,
                                location,
                            },
                        )
                    })
                    .collect();
                (stacks::line(&names, stack.state, stack.cut), count)
            })
            .collect();
        let folded = stacks::fold(lines, stacks::MAX_BYTES);
        Profile {
            span_id: open.transaction.span_id,
            text: folded.text,
            samples,
            dropped: open.dropped,
            truncated: left_out + folded.left_out,
            interval_us: self.settings.interval.as_micros() as u64,
        }
    }
}

/// Starts the profiler thread: it attaches to the JVM as a daemon and
/// samples every `settings.interval` until `stop` is set.
pub fn start(
    vm: SharedVm,
    jvmti: Jvmti,
    settings: ProfileSettings,
    queue: Queue,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Handle> {
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let thread = std::thread::Builder::new()
        .name("jvmapm-profiler".into())
        .spawn(move || {
            let set_up = guard::caught(|| set_up(vm, jvmti, settings, queue)).flatten();
            if let Some((jni, mut profiler)) = set_up {
                run(&jni, &mut profiler, &stop);
            }
            done.store(true, Ordering::Release);
        })?;
    Ok(Handle {
        thread: thread.thread().clone(),
        finished,
    })
}

/// The profiler thread as the agent's end sees it.
pub struct Handle {
    thread: std::thread::Thread,
    /// Set when the thread has handed over its last profiles and ended.
    finished: Arc<AtomicBool>,
}

impl Handle {
    /// Wakes the profiler (its `stop` is set) and waits at most `limit`
    /// until it has handed over the profiles of the transactions that
    /// ended, so that the exporter's last flush sends them with their
    /// spans (the JVM often exits right after its last transaction).
    pub fn finish_within(&self, limit: Duration) {
        self.thread.unpark();
        let deadline = Instant::now() + limit;
        while !self.finished.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Attaches the thread to the JVM and makes the profiler; `None`, said
/// in the log, when it cannot.
fn set_up(
    vm: SharedVm,
    jvmti: Jvmti,
    settings: ProfileSettings,
    queue: Queue,
) -> Option<(Jni, Profiler)> {
    // SAFETY: `vm` is the JVM's JavaVM and the JVM is live (VMInit has
    // happened or we attached to it).
    let jni = match unsafe { Jni::attach_daemon(vm.get(), c"jvmapm profiler") } {
        Ok(jni) => jni,
        Err(code) => {
            line(
                LogLevel::Error,
                &format!("the profiler cannot attach to the JVM (error {code}); no profiles"),
            );
            return None;
        }
    };
    let threads = match Threads::new(&jni, jvmti, settings.interval) {
        Ok(threads) => threads,
        Err(e) => {
            line(
                LogLevel::Error,
                &format!("the profiler cannot find threads ({e}); no profiles"),
            );
            return None;
        }
    };
    let budget = Budget::new(
        settings.budget,
        settings.interval,
        clock::monotonic_ns(),
        clock::thread_cpu_ns(),
    );
    let profiler = Profiler {
        jvmti,
        settings,
        queue,
        threads,
        methods: Methods::new(jvmti),
        open: HashMap::new(),
        budget,
        said_over_cpu: false,
        cursor: 0,
        slow: Vec::new(),
        frames: Vec::with_capacity(MAX_DEPTH + 1),
        #[cfg(feature = "agct-probe")]
        agct: crate::agct::Agct::new(vm.get(), &jni, jvmti),
    };
    Some((jni, profiler))
}

/// Ticks against absolute deadlines (a slow tick is not made up for),
/// until `stop`: then it finishes the profiles of the transactions that
/// ended and returns.
fn run(jni: &Jni, profiler: &mut Profiler, stop: &AtomicBool) {
    let mut next = Instant::now() + profiler.settings.interval;
    loop {
        // Parked, not asleep: `Handle::finish_within` wakes it at the end.
        loop {
            if stop.load(Ordering::Acquire) {
                let _ = guard::caught(|| profiler.finish_ended(jni));
                return;
            }
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::park_timeout(next - now);
        }
        let Some(wait) = guard::caught(|| profiler.tick(jni)) else {
            line(LogLevel::Error, "the profiler failed; no more profiles");
            return;
        };
        next = (next + wait).max(Instant::now());
    }
}
