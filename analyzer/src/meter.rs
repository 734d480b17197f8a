//! Live statistics: every stored point is metered here, into per-second TPS
//! and per service+endpoint HDR histograms (one-minute windows for the recent
//! past and one since the analyzer started), with error counts.
//!
//! Minute windows are kept for [`MINUTE_HORIZON`] minutes; older ranges are
//! answered from the store instead (see `query`).
//!
//! The TPS of a statistics answer is over the time its points cover (first
//! to last end time), not over the range asked for: `from=0` is not a rate
//! since 1970, nor is the time since start one while nothing was sent.

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::store::Strings;

/// Minutes of per-endpoint windows kept in memory.
pub const MINUTE_HORIZON: u64 = 15;
/// Seconds of TPS kept in memory.
pub const TPS_HORIZON: u64 = 3600;
/// Largest elapsed time told apart, in microseconds (one day); longer ones count as this.
pub const HIGHEST_US: u64 = 86_400_000_000;

/// (service id, endpoint id) in the store's string table.
pub type EndpointKey = (u32, u32);

/// A new histogram of elapsed microseconds with `digits` significant digits.
pub fn histogram(digits: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, digits).expect("bounds are valid")
}

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub count: u64,
    pub errors: u64,
}

impl Counts {
    fn add(&mut self, error: bool) {
        self.count += 1;
        self.errors += u64::from(error);
    }
}

/// The first and last end time of the points counted: the time they cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EndTimes {
    first_ms: u64,
    last_ms: u64,
}

impl Default for EndTimes {
    /// No point yet.
    fn default() -> Self {
        EndTimes {
            first_ms: u64::MAX,
            last_ms: 0,
        }
    }
}

impl EndTimes {
    fn add(&mut self, end_ms: u64) {
        self.merge(EndTimes {
            first_ms: end_ms,
            last_ms: end_ms,
        });
    }

    fn merge(&mut self, other: EndTimes) {
        self.first_ms = self.first_ms.min(other.first_ms);
        self.last_ms = self.last_ms.max(other.last_ms);
    }

    /// Seconds from the first to the last end time; at least one, so a
    /// single point (or points within one second) is a rate per second,
    /// never a division by zero.
    fn seconds(self) -> f64 {
        (self.last_ms.saturating_sub(self.first_ms) as f64 / 1000.0).max(1.0)
    }
}

struct MinuteWindow {
    counts: Counts,
    ends: EndTimes,
    elapsed: Histogram<u32>,
}

struct EndpointMeter {
    since_start: Histogram<u64>,
    counts: Counts,
    ends: EndTimes,
    minutes: BTreeMap<u64, MinuteWindow>,
}

pub struct Meter {
    started_ms: u64,
    seconds: BTreeMap<u64, Counts>,
    endpoints: HashMap<EndpointKey, EndpointMeter>,
}

impl Meter {
    pub fn new(started_ms: u64) -> Self {
        Meter {
            started_ms,
            seconds: BTreeMap::new(),
            endpoints: HashMap::new(),
        }
    }

    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// Counts one finished transaction. `now_ms` bounds what windows are kept.
    pub fn record(
        &mut self,
        key: EndpointKey,
        end_ms: u64,
        elapsed_us: u64,
        error: bool,
        now_ms: u64,
    ) {
        let second = end_ms / 1000;
        if second + TPS_HORIZON >= now_ms / 1000 {
            self.seconds.entry(second).or_default().add(error);
        }
        let meter = self.endpoints.entry(key).or_insert_with(|| EndpointMeter {
            since_start: histogram(3),
            counts: Counts::default(),
            ends: EndTimes::default(),
            minutes: BTreeMap::new(),
        });
        let value = elapsed_us.clamp(1, HIGHEST_US);
        meter.since_start.saturating_record(value);
        meter.counts.add(error);
        meter.ends.add(end_ms);
        let minute = end_ms / 60_000;
        if minute + MINUTE_HORIZON >= now_ms / 60_000 {
            let window = meter.minutes.entry(minute).or_insert_with(|| MinuteWindow {
                counts: Counts::default(),
                ends: EndTimes::default(),
                elapsed: Histogram::new_with_bounds(1, HIGHEST_US, 2).expect("bounds are valid"),
            });
            window.counts.add(error);
            window.ends.add(end_ms);
            window.elapsed.saturating_record(value);
        }
    }

    /// Drops windows that fell out of the horizons.
    pub fn prune(&mut self, now_ms: u64) {
        let first_second = (now_ms / 1000).saturating_sub(TPS_HORIZON);
        self.seconds = self.seconds.split_off(&first_second);
        let first_minute = (now_ms / 60_000).saturating_sub(MINUTE_HORIZON);
        for meter in self.endpoints.values_mut() {
            meter.minutes = meter.minutes.split_off(&first_minute);
        }
    }

    /// Whether every point ending in `[from_ms, ..]` was metered by this process
    /// and its minute windows are still held.
    pub fn covers(&self, from_ms: u64, now_ms: u64) -> bool {
        from_ms >= self.started_ms && from_ms / 60_000 + MINUTE_HORIZON > now_ms / 60_000
    }

    /// Statistics since the analyzer started.
    pub fn since_start(&self) -> Accumulator {
        let mut acc = Accumulator::default();
        for (key, meter) in &self.endpoints {
            acc.merge(*key, meter.counts, meter.ends, &meter.since_start);
        }
        acc
    }

    /// Statistics from the minute windows overlapping `[from_ms, to_ms]`
    /// (so also of points a little outside it, in its first and last minute).
    pub fn window(&self, from_ms: u64, to_ms: u64) -> Accumulator {
        let mut acc = Accumulator::default();
        if from_ms > to_ms {
            return acc;
        }
        for (key, meter) in &self.endpoints {
            for window in meter
                .minutes
                .range(from_ms / 60_000..=to_ms / 60_000)
                .map(|(_, w)| w)
            {
                acc.merge(*key, window.counts, window.ends, &window.elapsed);
            }
        }
        acc
    }

    /// Transactions per second, by end second, within `[from_ms, to_ms]`.
    pub fn tps(&self, from_ms: u64, to_ms: u64) -> Vec<(u64, Counts)> {
        if from_ms > to_ms {
            return Vec::new();
        }
        self.seconds
            .range(from_ms / 1000..=to_ms / 1000)
            .map(|(s, c)| (*s, *c))
            .collect()
    }
}

/// Histograms and counts per endpoint, being summed up for one answer, and
/// the end times of all its points.
#[derive(Default)]
pub struct Accumulator {
    endpoints: HashMap<EndpointKey, (Counts, Histogram<u64>)>,
    ends: EndTimes,
}

impl Accumulator {
    fn entry(&mut self, key: EndpointKey) -> &mut (Counts, Histogram<u64>) {
        self.endpoints
            .entry(key)
            .or_insert_with(|| (Counts::default(), histogram(3)))
    }

    /// Adds one point (used when statistics are computed from the store).
    pub fn record(&mut self, key: EndpointKey, end_ms: u64, elapsed_us: u64, error: bool) {
        self.ends.add(end_ms);
        let (counts, hist) = self.entry(key);
        counts.add(error);
        hist.saturating_record(elapsed_us.clamp(1, HIGHEST_US));
    }

    /// Adds `count` points of one endpoint whose elapsed times all fall in
    /// the histogram bucket of `elapsed_us`, `errors` of them failed, ending
    /// from `first_ms` to `last_ms` (statistics a store counted in groups).
    pub fn record_bucket(
        &mut self,
        key: EndpointKey,
        elapsed_us: u64,
        count: u64,
        errors: u64,
        first_ms: u64,
        last_ms: u64,
    ) {
        self.ends.merge(EndTimes { first_ms, last_ms });
        let (counts, hist) = self.entry(key);
        counts.count += count;
        counts.errors += errors;
        hist.saturating_record_n(elapsed_us.clamp(1, HIGHEST_US), count);
    }

    fn merge<C: hdrhistogram::Counter>(
        &mut self,
        key: EndpointKey,
        add: Counts,
        ends: EndTimes,
        elapsed: &Histogram<C>,
    ) {
        self.ends.merge(ends);
        let (counts, hist) = self.entry(key);
        counts.count += add.count;
        counts.errors += add.errors;
        for v in elapsed.iter_recorded() {
            hist.saturating_record_n(v.value_iterated_to(), v.count_at_value().as_u64());
        }
    }

    /// One row per endpoint, busiest first.
    ///
    /// TPS is an endpoint's count over the time all the answer's points
    /// cover, the same time for every row: an operator comparing endpoints
    /// sees their shares of the load, and the rows add up to the total. Over
    /// each endpoint's own first and last point, one called once would show
    /// 1/s, as high as one called every second of the hour.
    pub fn finish(self, strings: &Strings) -> Vec<EndpointStats> {
        let seconds = self.ends.seconds();
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let mut rows: Vec<EndpointStats> = self
            .endpoints
            .into_iter()
            .map(|((service, endpoint), (counts, h))| EndpointStats {
                service: strings.get(service).to_string(),
                endpoint: strings.get(endpoint).to_string(),
                count: counts.count,
                errors: counts.errors,
                tps: counts.count as f64 / seconds,
                p50_ms: ms(&h, 0.50),
                p90_ms: ms(&h, 0.90),
                p95_ms: ms(&h, 0.95),
                p99_ms: ms(&h, 0.99),
                max_ms: h.max() as f64 / 1000.0,
            })
            .collect();
        rows.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.service, &a.endpoint).cmp(&(&b.service, &b.endpoint)))
        });
        rows
    }
}

/// One row of `/api/v1/stats`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointStats {
    pub service: String,
    pub endpoint: String,
    pub count: u64,
    pub errors: u64,
    pub tps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_since_start_agree_on_recent_points() {
        let now = 10 * 60_000;
        let mut m = Meter::new(0);
        for i in 1..=1000u64 {
            m.record((0, 1), now - (i % 120) * 1000, i * 1000, i % 10 == 0, now);
        }
        let strings = Strings::default();
        let total = m.since_start().finish(&strings);
        let window = m.window(now - 5 * 60_000, now).finish(&strings);
        assert_eq!(total[0].count, 1000);
        assert_eq!(total[0].errors, 100);
        assert_eq!(window[0].count, 1000);
        assert!(
            (total[0].p50_ms - 500.0).abs() <= 500.0 * 0.01,
            "{}",
            total[0].p50_ms
        );
        assert!(
            (window[0].p99_ms - 990.0).abs() <= 990.0 * 0.01,
            "{}",
            window[0].p99_ms
        );
        let tps: u64 = m.tps(0, now).iter().map(|(_, c)| c.count).sum();
        assert_eq!(tps, 1000);
    }

    #[test]
    fn old_windows_are_pruned_but_totals_stay() {
        let mut m = Meter::new(0);
        m.record((0, 1), 0, 5_000, false, 60_000);
        m.prune(MINUTE_HORIZON * 60_000 + 120_000);
        assert!(m.window(0, 60_000).finish(&Strings::default()).is_empty());
        assert_eq!(m.since_start().finish(&Strings::default())[0].count, 1);
        assert!(!m.covers(0, MINUTE_HORIZON * 60_000 + 120_000));
    }

    #[test]
    fn tps_is_over_the_time_the_points_cover() {
        // 101 points over exactly 10 s, long after 1970: 100 on /a, 1 on /b.
        let start = 1_763_780_000_000;
        let now = start + 60_000;
        let mut m = Meter::new(0);
        let mut stored = Accumulator::default();
        for i in 0..=100u64 {
            let endpoint = if i == 50 { 2 } else { 1 };
            let end_ms = start + i * 100;
            m.record((0, endpoint), end_ms, 5_000, false, now);
            stored.record((0, endpoint), end_ms, 5_000, false);
        }
        let strings = Strings::default();
        for rows in [
            m.since_start().finish(&strings),
            m.window(0, now).finish(&strings),
            stored.finish(&strings),
        ] {
            let tps: Vec<f64> = rows.iter().map(|r| r.tps).collect();
            assert_eq!(tps, [10.0, 0.1], "every row over the same 10 s");
        }
        let mut single = Accumulator::default();
        single.record((0, 1), start, 5_000, false);
        assert_eq!(single.finish(&strings)[0].tps, 1.0, "one point, one second");
    }
}
