//! The live-tail order of points in ClickHouse, where several analyzers
//! write at once and none can count for the others.
//!
//! A point's `seq` is `(ms since 2024 << 22) | (analyzer << 12) | index`:
//! the millisecond its analyzer sent the insert that carries it, a number
//! drawn by each analyzer at start, and its place among that analyzer's
//! points of that millisecond. Each analyzer's numbers only grow, and all
//! analyzers' numbers of one millisecond sort after those of the one
//! before. A reader shows only the points whose millisecond is
//! [`SETTLE_MS`] old (the [`watermark`]): by then every insert stamped in it
//! has been answered, so a cursor never passes a point that becomes visible
//! later, whichever analyzer wrote it and whichever one is asked.

use jvmapm_contract::clock::unix_ms;

/// 2024-01-01T00:00:00Z: 42 bits of milliseconds from here last 139 years.
const EPOCH_MS: u64 = 1_704_067_200_000;
const ANALYZER_BITS: u32 = 10;
const INDEX_BITS: u32 = 12;
/// Points one analyzer numbers in one millisecond (then it takes the next).
pub const PER_MS: u64 = 1 << INDEX_BITS;
/// How old a millisecond must be before its points are shown: longer than
/// an insert may take (the writer gives up on one after
/// [`INSERT_TIMEOUT`](super::writer::INSERT_TIMEOUT), which is shorter),
/// plus the clock difference between analyzers that NTP leaves.
pub const SETTLE_MS: u64 = 2_000;

/// The first seq of millisecond `ms`.
pub fn first_of(ms: u64) -> u64 {
    ms.saturating_sub(EPOCH_MS) << (ANALYZER_BITS + INDEX_BITS)
}

/// The millisecond a seq was stamped in.
pub fn ms_of(seq: u64) -> u64 {
    (seq >> (ANALYZER_BITS + INDEX_BITS)) + EPOCH_MS
}

/// The highest seq a reader may show now.
pub fn watermark() -> u64 {
    first_of(unix_ms().saturating_sub(SETTLE_MS) + 1).saturating_sub(1)
}

/// One analyzer's numbering.
pub struct Stamper {
    analyzer: u64,
    /// The millisecond of the last point numbered, and how many it has.
    last_ms: u64,
    used: u64,
}

impl Stamper {
    /// `analyzer` is this process's number (its low 10 bits are used).
    pub fn new(analyzer: u64) -> Stamper {
        Stamper {
            analyzer: analyzer & ((1 << ANALYZER_BITS) - 1),
            last_ms: 0,
            used: 0,
        }
    }

    /// Numbers for `count` points sent now, in order.
    pub fn take(&mut self, count: usize, now_ms: u64) -> Vec<u64> {
        if now_ms > self.last_ms {
            (self.last_ms, self.used) = (now_ms, 0);
        }
        (0..count)
            .map(|_| {
                if self.used == PER_MS {
                    (self.last_ms, self.used) = (self.last_ms + 1, 0);
                }
                self.used += 1;
                first_of(self.last_ms) | (self.analyzer << INDEX_BITS) | (self.used - 1)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_grow_per_analyzer_and_order_milliseconds_across_analyzers() {
        let now = EPOCH_MS + 1_000;
        let (mut a, mut b) = (Stamper::new(1), Stamper::new(2));
        let first = a.take(3, now);
        let more = a.take(PER_MS as usize, now);
        assert!(first.windows(2).all(|w| w[0] < w[1]));
        assert!(more[0] > first[2] && more.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            ms_of(*more.last().unwrap()),
            now + 1,
            "a full millisecond goes on in the next"
        );
        let other = b.take(1, now + 2);
        assert!(other[0] > *more.last().unwrap());
        let late = a.take(1, now);
        assert!(
            late[0] > *more.last().unwrap(),
            "a clock that steps back does not reuse numbers"
        );
        assert_ne!(Stamper::new(1).take(1, now), Stamper::new(2).take(1, now));
        assert_eq!(ms_of(first_of(now)), now);
    }
}
