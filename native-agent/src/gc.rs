//! Stop-the-world GC pauses, from JVMTI's GarbageCollectionStart and
//! GarbageCollectionFinish events. The callbacks run inside the pause, on the
//! VM thread, where JNI is forbidden: they read two clocks and write to a
//! fixed ring of atomics, nothing more. The sampler thread drains the ring.
//!
//! JVMTI does not say which collector paused. The collectors' beans do, once
//! per collection, through notifications the helper class listens to
//! (`Hooks.watchCollections`): each arrives here as a [`Collection`], and the
//! sampler names a pause by the collection that began when it began.

use std::collections::VecDeque;
use std::ffi::{c_void, CStr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::clock;
use crate::guard;
use crate::jni::{JObject, Jni, RawJniEnv};
use crate::jvmti::RawEnv;

/// Pauses the ring holds between two drains; more are counted as lost.
const CAPACITY: usize = 1024;

/// One finished pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pause {
    /// Start, in nanoseconds since the Unix epoch.
    pub start_ns: u64,
    pub duration_ns: u64,
}

struct Slot {
    start_ns: AtomicU64,
    duration_ns: AtomicU64,
}

/// A single-producer, single-consumer ring of pauses. The producer is the
/// GC callback (the JVM posts GC events from one thread, inside a
/// safepoint); the consumer is whoever holds the sampler.
pub struct PauseRing {
    slots: [Slot; CAPACITY],
    /// Pauses written (only the producer stores it).
    head: AtomicUsize,
    /// Pauses read (only the consumer stores it).
    tail: AtomicUsize,
    started_wall_ns: AtomicU64,
    started_monotonic_ns: AtomicU64,
    lost: AtomicU64,
}

impl PauseRing {
    pub const fn new() -> PauseRing {
        PauseRing {
            slots: [const {
                Slot {
                    start_ns: AtomicU64::new(0),
                    duration_ns: AtomicU64::new(0),
                }
            }; CAPACITY],
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            started_wall_ns: AtomicU64::new(0),
            started_monotonic_ns: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    /// A pause begins at these clock readings.
    pub fn start(&self, wall_ns: u64, monotonic_ns: u64) {
        self.started_wall_ns.store(wall_ns, Ordering::Relaxed);
        self.started_monotonic_ns
            .store(monotonic_ns, Ordering::Relaxed);
    }

    /// The pause that began last ends at `monotonic_ns`.
    pub fn finish(&self, monotonic_ns: u64) {
        let started = self.started_monotonic_ns.swap(0, Ordering::Relaxed);
        if started == 0 {
            return; // a finish without a start: the agent came in mid-pause
        }
        let head = self.head.load(Ordering::Relaxed);
        if head.wrapping_sub(self.tail.load(Ordering::Acquire)) >= CAPACITY {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let slot = &self.slots[head % CAPACITY];
        slot.start_ns.store(
            self.started_wall_ns.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        slot.duration_ns
            .store(monotonic_ns.saturating_sub(started), Ordering::Relaxed);
        self.head.store(head.wrapping_add(1), Ordering::Release);
    }

    /// Takes every pause written so far. Only one thread may drain at a time.
    pub fn drain(&self, into: &mut Vec<Pause>) {
        let head = self.head.load(Ordering::Acquire);
        let mut tail = self.tail.load(Ordering::Relaxed);
        while tail != head {
            let slot = &self.slots[tail % CAPACITY];
            into.push(Pause {
                start_ns: slot.start_ns.load(Ordering::Relaxed),
                duration_ns: slot.duration_ns.load(Ordering::Relaxed),
            });
            tail = tail.wrapping_add(1);
        }
        self.tail.store(tail, Ordering::Release);
    }

    /// Pauses that found the ring full since the JVM started.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// The pauses of this JVM.
pub static PAUSES: PauseRing = PauseRing::new();

/// JVMTI GarbageCollectionStart. Nothing here may panic or call JNI.
pub unsafe extern "system" fn on_gc_start(_env: *mut RawEnv) {
    PAUSES.start(clock::wall_ns(), clock::monotonic_ns());
}

/// JVMTI GarbageCollectionFinish. Nothing here may panic or call JNI.
pub unsafe extern "system" fn on_gc_finish(_env: *mut RawEnv) {
    PAUSES.finish(clock::monotonic_ns());
}

/// One collection as its collector's bean told it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    /// `G1 Young Generation`, ...: `jvm.gc.name`.
    pub collector: String,
    /// `end of minor GC`, ...: `jvm.gc.action`.
    pub action: String,
    /// Start and end, Unix ms.
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Collections told and not yet taken by the sampler; the oldest go first
/// when it falls this far behind.
const COLLECTIONS_KEPT: usize = 4096;

static COLLECTIONS: Mutex<VecDeque<Collection>> = Mutex::new(VecDeque::new());

/// Moves the collections told so far into `into`.
pub fn take_collections(into: &mut Vec<Collection>) {
    if let Ok(mut told) = COLLECTIONS.lock() {
        into.extend(told.drain(..));
    }
}

/// `Hooks.collection(String collector, String action, long startMillis,
/// long endMillis)`: called on the JVM's notification thread, never on an
/// application thread.
unsafe extern "system" fn native_collection(
    env: *mut RawJniEnv,
    _class: JObject,
    collector: JObject,
    action: JObject,
    start_ms: i64,
    end_ms: i64,
) {
    guard::guarded("Hooks.collection", || {
        // SAFETY: the JVM passes this thread's JNIEnv to a native method.
        let jni = unsafe { Jni::from_raw(env) };
        let text = |s: JObject| {
            (!s.is_null())
                .then(|| jni.string(s).ok())
                .flatten()
                .unwrap_or_default()
        };
        let collection = Collection {
            collector: text(collector),
            action: text(action),
            start_ms,
            end_ms,
        };
        if let Ok(mut told) = COLLECTIONS.lock() {
            if told.len() == COLLECTIONS_KEPT {
                told.pop_front();
            }
            told.push_back(collection);
        }
    });
}

/// The native behind `Hooks.collection`, for RegisterNatives.
pub fn natives() -> [(&'static CStr, &'static CStr, *mut c_void); 1] {
    [(
        c"collection",
        c"(Ljava/lang/String;Ljava/lang/String;JJ)V",
        native_collection as *mut c_void,
    )]
}

/// How far (ms) a collection as its bean reports it may stick out of its
/// pause: the bean counts whole milliseconds.
const ROUNDING_MS: i64 = 2;

/// How far apart (ms) the beans' clock and the agent's may be: the beans
/// count from a moment near the JVM's start that the JVM reports only
/// roughly (a few ms off, more on a busy machine).
const CLOCK_SKEW_MS: i64 = 15;

/// For each pause, the index of the collection (start and end, Unix ms by
/// the beans' clock) that ran inside it, or `None`. The skew between the
/// two clocks is the one that matches the most pauses (the least skew and
/// the closest pairs among equals). A collection lies inside its pause: the
/// JVMTI events come first and last, and the VM thread can lose the CPU in
/// between. Pairs are taken closest first (at both ends), each pause and
/// collection once: a full collection right after a short young one may
/// start within the same millisecond, and only its end tells them apart.
pub fn match_collections(pauses: &[Pause], collections_ms: &[(i64, i64)]) -> Vec<Option<usize>> {
    (-CLOCK_SKEW_MS..=CLOCK_SKEW_MS)
        .map(|skew| match_with_skew(pauses, collections_ms, skew))
        .min_by_key(|(owners, skew, distance)| {
            let matched = owners.iter().flatten().count();
            (usize::MAX - matched, skew.abs(), *distance)
        })
        .map(|(owners, _, _)| owners)
        .unwrap_or_default()
}

/// The matches when the beans' clock runs `skew` ms behind the agent's,
/// with the skew and the summed distance of the pairs.
fn match_with_skew(
    pauses: &[Pause],
    collections_ms: &[(i64, i64)],
    skew: i64,
) -> (Vec<Option<usize>>, i64, i64) {
    // The collections by start, so each pause looks only at those that
    // start within it.
    let mut by_start: Vec<usize> = (0..collections_ms.len()).collect();
    by_start.sort_unstable_by_key(|&c| collections_ms[c].0);
    let mut candidates = Vec::new();
    for (p, pause) in pauses.iter().enumerate() {
        let start_ms = (pause.start_ns / 1_000_000) as i64;
        let end_ms = ((pause.start_ns + pause.duration_ns) / 1_000_000) as i64;
        let first =
            by_start.partition_point(|&c| collections_ms[c].0 + skew < start_ms - ROUNDING_MS);
        for &c in &by_start[first..] {
            let (start, end) = (collections_ms[c].0 + skew, collections_ms[c].1 + skew);
            if start > end_ms + ROUNDING_MS {
                break;
            }
            if end <= end_ms + ROUNDING_MS && start <= end {
                candidates.push(((start - start_ms).abs() + (end_ms - end).abs(), p, c));
            }
        }
    }
    candidates.sort_unstable();
    let mut owners = vec![None; pauses.len()];
    let mut used = vec![false; collections_ms.len()];
    let mut distance = 0;
    for (d, p, c) in candidates {
        if owners[p].is_none() && !used[c] {
            owners[p] = Some(c);
            used[c] = true;
            distance += d;
        }
    }
    (owners, skew, distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_come_out_in_order_with_their_durations() {
        let ring = PauseRing::new();
        ring.start(1_000, 50);
        ring.finish(80);
        ring.start(2_000, 100);
        ring.finish(175);
        let mut out = Vec::new();
        ring.drain(&mut out);
        assert_eq!(
            out,
            [
                Pause {
                    start_ns: 1_000,
                    duration_ns: 30
                },
                Pause {
                    start_ns: 2_000,
                    duration_ns: 75
                }
            ]
        );
        out.clear();
        ring.drain(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_full_ring_counts_what_it_cannot_hold() {
        let ring = PauseRing::new();
        for i in 0..CAPACITY as u64 + 5 {
            ring.start(i, i + 1);
            ring.finish(i + 2);
        }
        assert_eq!(ring.lost(), 5);
        let mut out = Vec::new();
        ring.drain(&mut out);
        assert_eq!(out.len(), CAPACITY);
        ring.start(7, 1);
        ring.finish(3);
        out.clear();
        ring.drain(&mut out);
        assert_eq!(
            out,
            [Pause {
                start_ns: 7,
                duration_ns: 2
            }]
        );
    }

    #[test]
    fn a_finish_without_a_start_is_ignored() {
        let ring = PauseRing::new();
        ring.finish(10);
        let mut out = Vec::new();
        ring.drain(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_busy_round_of_pauses_finds_each_its_own_collection_whatever_the_skew() {
        // 200 young pauses 3 ms apart, the beans' clock 4 ms behind, the
        // collections told out of order.
        let pauses: Vec<Pause> = (0..200u64)
            .map(|i| Pause {
                start_ns: (10_000 + 3 * i) * 1_000_000 + 100_000,
                duration_ns: 1_500_000,
            })
            .collect();
        let mut collections: Vec<(i64, i64)> = (0..200i64)
            .map(|i| (10_000 + 3 * i - 4, 10_000 + 3 * i + 1 - 4))
            .collect();
        collections.reverse();
        let owners = match_collections(&pauses, &collections);
        let expected: Vec<Option<usize>> = (0..200).map(|i| Some(199 - i)).collect();
        assert_eq!(owners, expected);
    }

    #[test]
    fn each_pause_is_named_by_the_collection_that_ran_inside_it() {
        let pause = |start_ms: u64, duration_ms: u64| Pause {
            start_ns: start_ms * 1_000_000 + 300_000,
            duration_ns: duration_ms * 1_000_000 + 200_000,
        };
        // A short young pause and a full one right after it, whose
        // collection starts in the same millisecond as the young one's; a
        // pause no bean counted (JDK 17's G1 pauses around a System.gc());
        // a young pause that lost the CPU (its collection lies well inside
        // it); and a collection told for a pause the ring has not given yet.
        let pauses = [
            pause(1_000, 0),
            pause(1_001, 3),
            pause(1_500, 1),
            pause(2_000, 6),
        ];
        let collections = [
            (1_000, 1_004),
            (1_000, 1_000),
            (2_003, 2_004),
            (3_000, 3_001),
        ];
        assert_eq!(
            match_collections(&pauses, &collections),
            [Some(1), Some(0), None, Some(2)]
        );
        assert_eq!(match_collections(&pauses, &[]), [None; 4]);
        // The same with the beans' clock 5 ms behind.
        let behind: Vec<(i64, i64)> = collections.iter().map(|&(s, e)| (s - 5, e - 5)).collect();
        assert_eq!(
            match_collections(&pauses, &behind),
            [Some(1), Some(0), None, Some(2)]
        );
    }
}
