//! A transaction's stack samples as the contract's folded stacks
//! (`jvmapm.profile`): one line a distinct stack, `root;...;leaf;[state]
//! count`, hottest first, the whole at most 64 KiB. Pure code, so the
//! bounds are tested without a JVM: a sample tally holds a bounded number
//! of distinct stacks, a stack cut at the depth limit gets a `[truncated]`
//! root, and the text keeps the hottest lines that fit, counting the
//! samples of those it leaves out.

use std::collections::HashMap;
use std::hash::Hash;

use jvmapm_contract::names::profile;

/// The most bytes of a profile's text (the contract's bound).
pub const MAX_BYTES: usize = 64 * 1024;

/// A transaction's profile on its way to the exporter, which puts it on
/// the transaction's span as the contract's `jvmapm.profile*` attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The span of its transaction.
    pub span_id: u64,
    /// Folded stacks (see [`fold`]).
    pub text: String,
    /// Samples taken.
    pub samples: u64,
    /// Samples due but not taken (over the budget, or unreadable).
    pub dropped: u64,
    /// Samples taken but left out of `text` by its bounds.
    pub truncated: u64,
    /// The sampling interval, microseconds.
    pub interval_us: u64,
}

/// What a thread was doing when it was sampled: the last frame of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Running,
    Blocked,
    Waiting,
    Sleeping,
    Native,
}

impl State {
    /// The state of a thread from its JVMTI state bits; `None` for a
    /// thread that is not alive (not started, or ended).
    pub fn from_jvmti(bits: u32) -> Option<State> {
        use crate::jvmti::thread_state as bit;
        Some(if bits & bit::BLOCKED_ON_MONITOR_ENTER != 0 {
            State::Blocked
        } else if bits & bit::SLEEPING != 0 {
            State::Sleeping
        } else if bits & bit::WAITING != 0 {
            State::Waiting
        } else if bits & bit::RUNNABLE == 0 {
            return None;
        } else if bits & bit::IN_NATIVE != 0 {
            // JDK 17 tells a blocking socket read as runnable, in native.
            State::Native
        } else {
            State::Running
        })
    }

    /// The state as the last frame of a folded stack, `[running]` and so on.
    pub fn leaf(self) -> &'static str {
        match self {
            State::Running => profile::RUNNING,
            State::Blocked => profile::BLOCKED,
            State::Waiting => profile::WAITING,
            State::Sleeping => profile::SLEEPING,
            State::Native => profile::NATIVE,
        }
    }
}

/// Counts samples by distinct stack, at most `max_stacks` of them: a
/// sample of yet another stack is counted as left out.
#[derive(Debug)]
pub struct Tally<K> {
    counts: HashMap<K, u64>,
    max_stacks: usize,
    left_out: u64,
}

impl<K: Eq + Hash> Tally<K> {
    pub fn new(max_stacks: usize) -> Tally<K> {
        Tally {
            counts: HashMap::new(),
            max_stacks,
            left_out: 0,
        }
    }

    /// Counts a sample of `stack` that stands for `weight` sampling
    /// intervals.
    pub fn add(&mut self, stack: K, weight: u64) {
        if let Some(count) = self.counts.get_mut(&stack) {
            *count += weight;
        } else if self.counts.len() < self.max_stacks {
            self.counts.insert(stack, weight);
        } else {
            self.left_out += weight;
        }
    }

    /// Samples counted, kept or left out.
    pub fn samples(&self) -> u64 {
        self.counts.values().sum::<u64>() + self.left_out
    }

    /// The distinct stacks and their counts, and the samples left out.
    pub fn into_parts(self) -> (HashMap<K, u64>, u64) {
        (self.counts, self.left_out)
    }
}

/// The folded line of one stack without its count: frames given leaf
/// first (as JVMTI gives them) are written root first, then the state.
/// A stack `cut` at the depth limit starts with `[truncated]`. Characters
/// that would break the format (`;`, spaces, line ends) become `_`.
pub fn line<S: AsRef<str>>(frames_leaf_first: &[S], state: State, cut: bool) -> String {
    let mut line = String::new();
    if cut {
        line.push_str(profile::TRUNCATED);
        line.push(';');
    }
    for frame in frames_leaf_first.iter().rev() {
        line.extend(frame.as_ref().chars().map(|c| match c {
            ';' | ' ' | '\t' | '\n' | '\r' => '_',
            c => c,
        }));
        line.push(';');
    }
    line.push_str(state.leaf());
    line
}

/// A profile's text and what it holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Folded {
    pub text: String,
    /// Samples whose lines did not fit in the bound.
    pub left_out: u64,
}

/// Folds counted lines into the profile's text: equal lines merged, the
/// hottest first (equal counts in the order of their text), and only the
/// lines that fit in `max_bytes`; the samples of the others are counted.
pub fn fold(lines: impl IntoIterator<Item = (String, u64)>, max_bytes: usize) -> Folded {
    let mut merged: HashMap<String, u64> = HashMap::new();
    for (line, count) in lines {
        *merged.entry(line).or_default() += count;
    }
    let mut sorted: Vec<(String, u64)> = merged.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut folded = Folded {
        text: String::new(),
        left_out: 0,
    };
    for (line, count) in sorted {
        let digits = count.to_string();
        if folded.text.len() + line.len() + digits.len() + 2 <= max_bytes {
            folded.text.push_str(&line);
            folded.text.push(' ');
            folded.text.push_str(&digits);
            folded.text.push('\n');
        } else {
            folded.left_out += count;
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jvmti::thread_state as bit;

    #[test]
    fn a_line_is_root_first_and_ends_with_the_state() {
        let frames = ["Orders.total:42", "Orders.place:17", "Thread.run"];
        assert_eq!(
            line(&frames, State::Running, false),
            "Thread.run;Orders.place:17;Orders.total:42;[running]"
        );
        assert_eq!(
            line(&frames[..1], State::Native, true),
            "[truncated];Orders.total:42;[native]"
        );
        assert_eq!(line::<&str>(&[], State::Waiting, false), "[waiting]");
        assert_eq!(
            line(&["odd name;x"], State::Sleeping, false),
            "odd_name_x;[sleeping]"
        );
    }

    #[test]
    fn the_state_comes_from_the_jvmti_bits() {
        let alive = 0x1;
        let terminated = 0x2;
        assert_eq!(
            State::from_jvmti(alive | bit::RUNNABLE),
            Some(State::Running)
        );
        assert_eq!(
            State::from_jvmti(alive | bit::RUNNABLE | bit::IN_NATIVE),
            Some(State::Native)
        );
        assert_eq!(
            State::from_jvmti(alive | bit::WAITING | bit::SLEEPING | 0x20),
            Some(State::Sleeping)
        );
        assert_eq!(
            State::from_jvmti(alive | bit::WAITING | 0x200),
            Some(State::Waiting)
        );
        assert_eq!(
            State::from_jvmti(alive | bit::BLOCKED_ON_MONITOR_ENTER),
            Some(State::Blocked)
        );
        assert_eq!(State::from_jvmti(terminated), None);
        assert_eq!(State::from_jvmti(0), None, "not started");
    }

    #[test]
    fn equal_lines_merge_and_the_hottest_come_first() {
        let folded = fold(
            [
                ("a;[running]".to_string(), 2),
                ("b;[sleeping]".to_string(), 5),
                ("a;[running]".to_string(), 4),
                ("c;[running]".to_string(), 5),
            ],
            MAX_BYTES,
        );
        assert_eq!(
            folded.text,
            "a;[running] 6\nb;[sleeping] 5\nc;[running] 5\n"
        );
        assert_eq!(folded.left_out, 0);
    }

    #[test]
    fn the_text_keeps_the_hottest_lines_within_the_bound() {
        let lines = (0..10_000u64).map(|n| (format!("com.acme.Deep.method{n};[running]"), n));
        let folded = fold(lines, MAX_BYTES);
        assert!(folded.text.len() <= MAX_BYTES);
        assert!(folded.text.len() > MAX_BYTES - 64, "fills the bound");
        assert!(folded
            .text
            .starts_with("com.acme.Deep.method9999;[running] 9999\n"));
        let kept: u64 = folded
            .text
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(kept + folded.left_out, (0..10_000u64).sum::<u64>());
    }

    #[test]
    fn a_tally_counts_a_bounded_number_of_stacks() {
        let mut tally = Tally::new(2);
        for stack in ["a", "b", "a", "c", "c", "b"] {
            tally.add(stack, 1);
        }
        assert_eq!(tally.samples(), 6);
        let (counts, left_out) = tally.into_parts();
        assert_eq!(counts.len(), 2);
        assert_eq!(counts["a"], 2);
        assert_eq!(counts["b"], 2);
        assert_eq!(left_out, 2, "the samples of a third stack");
    }
}
