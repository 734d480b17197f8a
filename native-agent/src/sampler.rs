//! The sampler: every `interval`, on one JVM-attached daemon thread, it
//! drains the GC pauses, reads the JVM's numbers, records them, and writes a
//! heap dump when a threshold trips. Trouble (a bean that throws, a dump that
//! fails) is logged once and never stops the JVM or the other readings.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;

use crate::clock;
use crate::exporter::Queue;
use crate::gc::{self, Collection, Pause, PAUSES};
use crate::guard;
use crate::heapdump::{self, Dumper, Trigger};
use crate::instrument;
use crate::jni::{JValue, Jni, Method, SharedVm};
use crate::log::{self, line};
use crate::management::{Management, MemoryKind};
use crate::metrics::Instruments;
use crate::options::{LogLevel, Settings};
use crate::record::Record;
use crate::transaction;

/// What one round works with; shared between the sampler thread and the
/// final round at VMDeath.
pub struct Sampler {
    management: Option<Management>,
    instruments: Instruments,
    queue: Queue,
    trigger: Trigger,
    dumper: Option<Dumper>,
    dump_dir: PathBuf,
    service: String,
    /// Pauses drained and not yet reported, and whether they already
    /// waited a round for their collection to be told.
    waiting: Vec<(Pause, bool)>,
    /// Collections told and not yet matched to a pause, and whether they
    /// already waited a round for their pause.
    told: Vec<(Collection, bool)>,
    /// Whether the collectors' notifications were asked for.
    watching: bool,
    pauses_lost: u64,
    stuck_after: Duration,
    /// `Hooks.stackOf(long)`, looked up on first need.
    stack_of: Option<Method>,
}

impl Sampler {
    pub fn new(settings: &Settings, instruments: Instruments, queue: Queue) -> Sampler {
        Sampler {
            management: None,
            instruments,
            queue,
            trigger: Trigger::new(&settings.heapdump),
            dumper: None,
            // Absolute, so the log and the event name the file wherever they are read.
            dump_dir: std::path::absolute(
                settings
                    .heapdump
                    .dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(".")),
            )
            .unwrap_or_else(|_| PathBuf::from(".")),
            service: settings.service.clone(),
            waiting: Vec::new(),
            told: Vec::new(),
            watching: false,
            pauses_lost: 0,
            stuck_after: settings.stuck,
            stack_of: None,
        }
    }

    /// One round: open transactions, pauses, readings, the heap-dump check.
    /// The `last` round (at VMDeath) reports every pause it has.
    pub fn round(&mut self, jni: &Jni, last: bool) {
        self.report_active(jni);
        self.report_pauses(jni, last);
        if self.management.is_none() {
            match Management::look_up(jni) {
                Ok(management) => {
                    line(
                        LogLevel::Info,
                        &format!(
                            "reading {} memory pools and {} collectors; Finalizer pending count from {}",
                            management.pools(),
                            management.collectors(),
                            management.finalizer_source()
                        ),
                    );
                    self.management = Some(management);
                }
                Err(e) => log::once(
                    "management-lookup",
                    LogLevel::Warn,
                    &format!(
                        "JVM numbers are unavailable for now ({e}); trying again each interval"
                    ),
                ),
            }
        }
        let reading = match &self.management {
            Some(management) => match management.read(jni) {
                Ok(reading) => Some(reading),
                Err(e) => {
                    log::once(
                        "management-read",
                        LogLevel::Warn,
                        &format!("reading JVM numbers failed: {e}; trying again each interval"),
                    );
                    None
                }
            },
            None => None,
        };
        let Some(reading) = reading else { return };
        self.instruments.record(&reading, clock::process_cpu_ns());
        if self.trigger.armed() {
            let heap_used: i64 = reading
                .pools
                .iter()
                .filter(|p| p.kind == MemoryKind::Heap)
                .map(|p| p.usage.used)
                .sum();
            let heap = reading.heap.limit.map(|limit| (heap_used, limit));
            if let Some(reason) =
                self.trigger
                    .check(Instant::now(), reading.finalizer_pending, heap)
            {
                self.dump_heap(jni, reason);
            }
        }
    }

    /// Counts the open transactions by age and reports each newly stuck one
    /// with its thread's stack.
    fn report_active(&mut self, jni: &Jni) {
        let active = transaction::active(self.stuck_after.as_nanos() as u64);
        self.instruments.record_active(active.by_age);
        for stuck in active.newly_stuck {
            let stack = self.stack_of(jni, stuck.thread_id);
            line(
                LogLevel::Info,
                &format!(
                    "a transaction of thread {} has run for {} ms (stuck={:?}); its stack is reported",
                    stuck.thread_id,
                    stuck.open_ns / 1_000_000,
                    self.stuck_after
                ),
            );
            self.queue.push(Record::Stuck(Box::new(stuck), stack));
        }
    }

    /// The stack of a platform thread, through `Hooks.stackOf`.
    fn stack_of(&mut self, jni: &Jni, thread_id: u64) -> Option<String> {
        let hooks = instrument::hooks_class()?;
        if self.stack_of.is_none() {
            self.stack_of = jni
                .static_method(hooks, c"stackOf", c"(J)Ljava/lang/String;", "Hooks.stackOf")
                .ok();
        }
        let method = self.stack_of?;
        let stack = jni.with_local_frame(4, |jni| {
            let text = jni.call_static_object(
                hooks,
                method,
                &[JValue {
                    j: thread_id as i64,
                }],
            )?;
            jni.string(text)
        });
        match stack {
            Ok(stack) => Some(stack),
            Err(e) => {
                log::once(
                    "stack-of",
                    LogLevel::Debug,
                    &format!("no stack for a stuck transaction: {e}"),
                );
                None
            }
        }
    }

    /// Asks the collectors' beans, once, to tell each collection (see
    /// `Hooks.watchCollections`).
    fn watch_collections(&mut self, jni: &Jni) {
        let Some(hooks) = instrument::hooks_class().filter(|_| !self.watching) else {
            return;
        };
        self.watching = true;
        let watched = jni
            .static_method(hooks, c"watchCollections", c"()I", "Hooks.watchCollections")
            .and_then(|m| jni.call_static_int(hooks, m, &[]));
        match watched {
            Ok(n) => line(
                LogLevel::Debug,
                &format!("{n} collectors tell their collections"),
            ),
            Err(e) => line(
                LogLevel::Warn,
                &format!("GC pauses are not named by their collector: {e}"),
            ),
        }
    }

    /// Names each pause drained by the collection that ran inside it, and
    /// records it. A pause whose collection is not told yet waits one
    /// round; then (or in the last round) it is recorded without a name
    /// (a pause no collector counts, such as G1's remark on JDK 17).
    fn report_pauses(&mut self, jni: &Jni, last: bool) {
        self.watch_collections(jni);
        let mut drained = Vec::new();
        PAUSES.drain(&mut drained);
        self.waiting
            .extend(drained.into_iter().map(|pause| (pause, false)));
        let mut collections = Vec::new();
        gc::take_collections(&mut collections);
        self.told.extend(
            collections
                .into_iter()
                .map(|collection| (collection, false)),
        );
        let pauses: Vec<Pause> = self.waiting.iter().map(|(pause, _)| *pause).collect();
        let times: Vec<(i64, i64)> = self
            .told
            .iter()
            .map(|(c, _)| (c.start_ms, c.end_ms))
            .collect();
        let owners = gc::match_collections(&pauses, &times);
        let mut matched = vec![false; times.len()];
        for ((pause, waited), owner) in std::mem::take(&mut self.waiting).into_iter().zip(owners) {
            match owner {
                Some(c) => {
                    matched[c] = true;
                    let collection = self.told[c].0.clone();
                    self.record_pause(pause, Some(collection));
                }
                None if waited || last => self.record_pause(pause, None),
                None => self.waiting.push((pause, true)),
            }
        }
        let mut matched = matched.into_iter();
        self.told.retain_mut(|(_, waited)| {
            let keep = matched.next() == Some(false) && !*waited;
            *waited = true;
            keep
        });
        let lost = PAUSES.lost();
        if lost > self.pauses_lost {
            self.pauses_lost = lost;
            log::once(
                "pauses-lost",
                LogLevel::Warn,
                "GC pauses came faster than the sampler drained them; some are not reported",
            );
        }
    }

    fn record_pause(&mut self, pause: Pause, collection: Option<Collection>) {
        let mut attributes = Vec::new();
        if let Some(collection) = &collection {
            use jvmapm_contract::names::metric::{GC_ACTION, GC_NAME};
            attributes.push(KeyValue::new(GC_ACTION, collection.action.clone()));
            attributes.push(KeyValue::new(GC_NAME, collection.collector.clone()));
        }
        self.instruments
            .record_pause(pause.duration_ns, &attributes);
        self.queue.push(Record::GcPause {
            start_ns: pause.start_ns,
            duration_ns: pause.duration_ns,
            collection,
        });
    }

    fn dump_heap(&mut self, jni: &Jni, reason: String) {
        if self.dumper.is_none() {
            match Dumper::look_up(jni) {
                Ok(dumper) => self.dumper = Some(dumper),
                Err(e) => {
                    line(
                        LogLevel::Warn,
                        &format!("cannot write a heap dump ({reason}): {e}"),
                    );
                    return;
                }
            }
        }
        let Some(dumper) = &self.dumper else { return };
        let start_ns = clock::wall_ns();
        let path = heapdump::file_name(
            &self.dump_dir,
            &self.service,
            std::process::id(),
            start_ns / 1_000_000_000,
        );
        line(
            LogLevel::Info,
            &format!("writing heap dump {} because {reason}", path.display()),
        );
        let started = Instant::now();
        match dumper.dump(jni, &path) {
            Ok(()) => {
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                line(
                    LogLevel::Info,
                    &format!(
                        "heap dump {} written: {bytes} bytes in {} ms",
                        path.display(),
                        started.elapsed().as_millis()
                    ),
                );
                self.queue.push(Record::HeapDump {
                    start_ns,
                    duration_ns: started.elapsed().as_nanos() as u64,
                    path: path.to_string_lossy().into_owned(),
                    reason,
                });
            }
            Err(e) => line(
                LogLevel::Warn,
                &format!(
                    "heap dump to {} failed: {e} (is the directory there, writable, with room?); the next try is after heapdump_min_interval",
                    path.display()
                ),
            ),
        }
    }
}

/// Starts the sampler thread: it attaches to the JVM as a daemon and runs a
/// round every `interval` until `stop` is set.
pub fn start(
    vm: SharedVm,
    sampler: Arc<Mutex<Sampler>>,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("jvmapm-sampler".into())
        .spawn(move || {
            // SAFETY: `vm` is the JVM's JavaVM and the JVM is live (VMInit
            // has happened or we attached to it).
            let jni = match unsafe { Jni::attach_daemon(vm.get(), c"jvmapm sampler") } {
                Ok(jni) => jni,
                Err(code) => {
                    line(
                        LogLevel::Error,
                        &format!(
                            "the sampler cannot attach to the JVM (error {code}); no JVM numbers"
                        ),
                    );
                    return;
                }
            };
            // The collectors tell their collections from now on, so that
            // even the first pauses are named (this reads no management
            // numbers and leaves the MBean server and logging alone).
            guard::guarded("Hooks.watchCollections", || {
                if let Ok(mut sampler) = sampler.lock() {
                    sampler.watch_collections(&jni);
                }
            });
            loop {
                std::thread::sleep(interval);
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let outcome = guard::caught(|| {
                    if let Ok(mut sampler) = sampler.lock() {
                        let started = Instant::now();
                        sampler.round(&jni, false);
                        log::debug(|| {
                            format!("sampling round took {} us", started.elapsed().as_micros())
                        });
                    }
                });
                if outcome.is_none() {
                    line(LogLevel::Error, "the sampler failed; no more JVM numbers");
                    return;
                }
            }
        })?;
    Ok(())
}
