//! Puts each profile on its transaction's span, in the exporter. The two
//! arrive apart: the transaction through its thread's ring, the profile
//! through the queue from the profiler, which finishes it within a tick
//! of the end. A transaction that ran longer than `profile_after` waits
//! here a little for its profile (it may have none: ended before a tick,
//! or not sampled); a profile that comes first waits for its transaction.
//! Both waits are bounded in time and in number, so memory stays bounded
//! and a lost profile delays its transaction by at most [`WAIT`] and two
//! sampling intervals.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::ended::Finished;
use crate::record::Record;
use crate::stacks::Profile;

/// How long a slow transaction waits for its profile, besides two
/// sampling intervals (the profiler sees the end at its next tick).
pub const WAIT: Duration = Duration::from_millis(200);
/// How long a profile waits for its transaction (held in a full ring).
const PROFILE_WAIT: Duration = Duration::from_secs(5);
/// The most transactions, and the most profiles, waiting.
const MAX_WAITING: usize = 1024;

/// Transactions and profiles waiting for each other.
pub struct Join {
    /// Transactions at least this long may have a profile; `None` when
    /// profiling is off.
    after: Option<Duration>,
    /// How long such a transaction waits for its profile.
    wait: Duration,
    transactions: VecDeque<(Instant, Box<Finished>)>,
    profiles: HashMap<u64, (Instant, Box<Profile>)>,
}

impl Join {
    /// Joins for profiles of transactions open longer than `after`,
    /// sampled every `interval`; `None` when profiling is off.
    pub fn new(profiles: Option<(Duration, Duration)>) -> Join {
        Join {
            after: profiles.map(|(after, _)| after),
            wait: WAIT + 2 * profiles.map_or(Duration::ZERO, |(_, interval)| interval),
            transactions: VecDeque::new(),
            profiles: HashMap::new(),
        }
    }

    /// A record to send now, or `None` while it waits for its other half.
    pub fn take(&mut self, record: Record, now: Instant) -> Option<Record> {
        match record {
            Record::Transaction(finished) => self.transaction(finished, now),
            Record::Profile(profile) => self.profile(profile, now),
            other => Some(other),
        }
    }

    fn transaction(&mut self, finished: Box<Finished>, now: Instant) -> Option<Record> {
        let slow = self
            .after
            .is_some_and(|after| finished.duration_ns >= after.as_nanos() as u64);
        if let Some((_, profile)) = self.profiles.remove(&finished.span_id) {
            return Some(Record::Profiled(finished, profile));
        }
        if !slow || self.transactions.len() >= MAX_WAITING {
            return Some(Record::Transaction(finished));
        }
        self.transactions.push_back((now, finished));
        None
    }

    fn profile(&mut self, profile: Box<Profile>, now: Instant) -> Option<Record> {
        let waiting = self
            .transactions
            .iter()
            .position(|(_, t)| t.span_id == profile.span_id);
        if let Some((_, finished)) = waiting.and_then(|i| self.transactions.remove(i)) {
            return Some(Record::Profiled(finished, profile));
        }
        if self.profiles.len() < MAX_WAITING {
            self.profiles.insert(profile.span_id, (now, profile));
        }
        None
    }

    /// The transactions that waited long enough (sent without a profile),
    /// or all of them when `all`; profiles that waited too long are dropped.
    pub fn due(&mut self, now: Instant, all: bool, send: &mut impl FnMut(Record)) {
        while let Some((since, _)) = self.transactions.front() {
            if !all && now.duration_since(*since) < self.wait {
                break;
            }
            if let Some((_, finished)) = self.transactions.pop_front() {
                send(Record::Transaction(finished));
            }
        }
        self.profiles
            .retain(|_, (since, _)| now.duration_since(*since) < PROFILE_WAIT);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ended::Ending;

    /// A transaction of 500 ms, for tests elsewhere.
    pub(crate) fn slow_transaction() -> Record {
        Record::Transaction(finished(9, 500))
    }

    fn finished(span_id: u64, duration_ms: u64) -> Box<Finished> {
        Box::new(Finished {
            site: 0,
            start_ns: 1,
            duration_ns: duration_ms * 1_000_000,
            cpu_ns: None,
            trace_id: 1,
            span_id,
            parent_span_id: 0,
            ending: Ending {
                method: None,
                path: None,
                route: None,
                status: -1,
                error_type: None,
                thread: None,
            },
            stuck: false,
            sql_count: 0,
            sql_ns: 0,
            http_count: 0,
            http_ns: 0,
            detailed: true,
            steps_truncated: 0,
        })
    }

    fn profile(span_id: u64) -> Box<Profile> {
        Box::new(Profile {
            span_id,
            text: "a;[running] 1\n".into(),
            samples: 1,
            dropped: 0,
            truncated: 0,
            interval_us: 10_000,
        })
    }

    fn span_of(record: &Record) -> (u64, bool) {
        match record {
            Record::Transaction(t) => (t.span_id, false),
            Record::Profiled(t, p) => {
                assert_eq!(t.span_id, p.span_id);
                (t.span_id, true)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fast_transaction_goes_at_once_and_a_slow_one_meets_its_profile() {
        let mut join = Join::new(Some((
            Duration::from_millis(100),
            Duration::from_millis(10),
        )));
        let now = Instant::now();
        let fast = join.take(Record::Transaction(finished(1, 5)), now).unwrap();
        assert_eq!(span_of(&fast), (1, false));
        assert!(join
            .take(Record::Transaction(finished(2, 500)), now)
            .is_none());
        let met = join.take(Record::Profile(profile(2)), now).unwrap();
        assert_eq!(span_of(&met), (2, true));
        // The profile first, then its transaction.
        assert!(join.take(Record::Profile(profile(3)), now).is_none());
        let met = join
            .take(Record::Transaction(finished(3, 500)), now)
            .unwrap();
        assert_eq!(span_of(&met), (3, true));
    }

    #[test]
    fn a_slow_transaction_without_a_profile_goes_after_the_wait() {
        let mut join = Join::new(Some((
            Duration::from_millis(100),
            Duration::from_millis(10),
        )));
        let now = Instant::now();
        assert!(join
            .take(Record::Transaction(finished(4, 500)), now)
            .is_none());
        let mut sent = Vec::new();
        join.due(now, false, &mut |r| sent.push(r));
        assert!(sent.is_empty(), "it still waits");
        join.due(now + WAIT / 2, false, &mut |r| sent.push(r));
        assert!(sent.is_empty(), "it still waits");
        join.due(now + WAIT + Duration::from_millis(20), false, &mut |r| {
            sent.push(r)
        });
        assert_eq!(sent.iter().map(span_of).collect::<Vec<_>>(), [(4, false)]);
    }

    #[test]
    fn with_profiling_off_nothing_waits() {
        let mut join = Join::new(None);
        let now = Instant::now();
        let sent = join.take(Record::Transaction(finished(5, 5_000)), now);
        assert_eq!(span_of(&sent.unwrap()), (5, false));
    }
}
