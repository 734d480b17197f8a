//! What bounds the profiler's cost, whatever the JVM and the machine do: a
//! budget of samples a second over all transactions (`profile_budget`), and
//! a budget of the profiler thread's own CPU, [`CPU_SHARE`] of one core.
//!
//! The second one matters on a saturated machine. A JVMTI stack sample of a
//! thread that runs Java code waits until that thread reaches a safepoint
//! poll, and HotSpot's requesting thread spins, naps and yields meanwhile;
//! when the sampled thread itself waits for a CPU, one sample can cost the
//! profiler hundreds of microseconds instead of tens (measured with
//! `bench/agent-http.py` on `/compute` while builds loaded both cores).
//! Past the CPU budget, samples are dropped and counted like those over the
//! sample budget.
//!
//! Both are token buckets filled by the monotonic clock. Pure arithmetic on
//! the times its caller reads, so it is tested without a JVM.

use std::time::Duration;

/// The most CPU the profiler thread uses, as a share of one core.
pub const CPU_SHARE: f64 = 0.01;
/// The most CPU time a quiet spell saves up for a burst of samples.
const CPU_BURST_NS: f64 = 20_000_000.0;

/// The profiler's two budgets.
#[derive(Debug)]
pub struct Budget {
    samples_per_second: f64,
    /// Samples allowed now; at most one tick's worth are kept.
    samples: f64,
    samples_per_tick: f64,
    /// CPU nanoseconds the profiler may still use; negative after a
    /// costly sample, until time pays it back.
    cpu_ns: f64,
    refilled_ns: u64,
    /// The profiler thread's CPU clock when last charged.
    cpu_seen_ns: u64,
}

impl Budget {
    /// A budget of `samples_per_second` taken every `interval`, starting at
    /// `now_ns` (monotonic) with the thread's CPU clock at `cpu_ns`.
    pub fn new(samples_per_second: u32, interval: Duration, now_ns: u64, cpu_ns: u64) -> Budget {
        let samples_per_second = f64::from(samples_per_second);
        Budget {
            samples_per_second,
            samples: 0.0,
            samples_per_tick: (samples_per_second * interval.as_secs_f64()).max(1.0),
            cpu_ns: CPU_BURST_NS,
            refilled_ns: now_ns,
            cpu_seen_ns: cpu_ns,
        }
    }

    /// Adds what the time since the last refill earned and charges the CPU
    /// the thread used since it was last charged.
    pub fn refill(&mut self, now_ns: u64, cpu_ns: u64) {
        let elapsed_ns = now_ns.saturating_sub(self.refilled_ns) as f64;
        self.refilled_ns = now_ns.max(self.refilled_ns);
        self.samples =
            (self.samples + self.samples_per_second * elapsed_ns / 1e9).min(self.samples_per_tick);
        self.cpu_ns = (self.cpu_ns + elapsed_ns * CPU_SHARE).min(CPU_BURST_NS);
        self.charge(cpu_ns);
    }

    /// Whether one more sample may be taken now, with the thread's CPU
    /// clock at `cpu_ns`; if so, its sample token is spent.
    pub fn take(&mut self, cpu_ns: u64) -> bool {
        self.charge(cpu_ns);
        if self.samples >= 1.0 && !self.over_cpu() {
            self.samples -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the CPU budget is spent (samples are refused for it).
    pub fn over_cpu(&self) -> bool {
        self.cpu_ns <= 0.0
    }

    fn charge(&mut self, cpu_ns: u64) {
        self.cpu_ns -= cpu_ns.saturating_sub(self.cpu_seen_ns) as f64;
        self.cpu_seen_ns = cpu_ns.max(self.cpu_seen_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn samples_are_refused_past_the_rate_and_a_tick_saves_no_more_than_its_share() {
        // 200 a second, ticks of 10 ms: two samples a tick.
        let mut budget = Budget::new(200, Duration::from_millis(10), 0, 0);
        budget.refill(10 * MS, 0);
        assert!(budget.take(0) && budget.take(0));
        assert!(!budget.take(0), "a third in the same tick");
        // A second idle: still two, not 200.
        budget.refill(1_010 * MS, 0);
        assert!(budget.take(0) && budget.take(0) && !budget.take(0));
    }

    #[test]
    fn costly_samples_stop_sampling_until_the_cpu_share_has_paid_them_back() {
        let mut budget = Budget::new(100_000, Duration::from_millis(10), 0, 0);
        budget.refill(10 * MS, 0);
        // Samples of 3 ms of CPU each: the 20 ms saved up allow seven, the
        // last one leaving a debt of 1 ms.
        let mut cpu = 0;
        let mut taken = 0;
        while budget.take(cpu) {
            taken += 1;
            cpu += 3 * MS;
        }
        assert_eq!(taken, 7);
        assert!(budget.over_cpu());
        // 1% of a core pays 1 ms back in 100 ms.
        budget.refill(60 * MS, cpu);
        assert!(!budget.take(cpu), "half paid back");
        budget.refill(120 * MS, cpu);
        assert!(budget.take(cpu), "paid back");
    }

    #[test]
    fn over_time_the_profiler_uses_at_most_its_share_of_a_core() {
        // Samples of 300 us every 10 ms tick for a minute, with the CPU of
        // every sample charged: about 1% of the minute, never much more.
        let mut budget = Budget::new(200, Duration::from_millis(10), 0, 0);
        let mut cpu = 0;
        for tick in 1..=6_000u64 {
            budget.refill(tick * 10 * MS, cpu);
            while budget.take(cpu) {
                cpu += 300_000;
            }
        }
        let share = cpu as f64 / (60_000.0 * MS as f64);
        assert!(share <= CPU_SHARE * 1.05, "{share}");
        assert!(
            share >= CPU_SHARE * 0.9,
            "the budget is used, not wasted: {share}"
        );
    }
}
