//! Stop-the-world GC pauses, from JVMTI's GarbageCollectionStart and
//! GarbageCollectionFinish events. The callbacks run inside the pause, on the
//! VM thread, where JNI is forbidden: they read two clocks and write to a
//! fixed ring of atomics, nothing more. The sampler thread drains the ring.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::clock;
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

/// What `jvm.gc.action` says for a collector, by the names HotSpot gives its
/// collectors; `None` for a name it does not know.
pub fn action(collector: &str) -> Option<&'static str> {
    const MINOR: [&str; 5] = ["Young", "Scavenge", "ParNew", "Copy", "Minor"];
    const MAJOR: [&str; 5] = ["Old", "MarkSweep", "Major", "Full", "MarkCompact"];
    if MINOR.iter().any(|m| collector.contains(m)) {
        Some("end of minor GC")
    } else if MAJOR.iter().any(|m| collector.contains(m)) {
        Some("end of major GC")
    } else {
        None
    }
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
    fn actions_follow_hotspot_collector_names() {
        assert_eq!(action("G1 Young Generation"), Some("end of minor GC"));
        assert_eq!(action("PS Scavenge"), Some("end of minor GC"));
        assert_eq!(action("G1 Old Generation"), Some("end of major GC"));
        assert_eq!(action("MarkSweepCompact"), Some("end of major GC"));
        assert_eq!(action("G1 Concurrent GC"), None);
    }
}
