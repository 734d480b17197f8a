//! The spans inside transactions (SQL calls, outgoing requests, internal
//! steps) waiting for the transaction they belong to.
//!
//! A child span ends before its transaction, so it usually arrives in the same
//! export or an earlier one. The writer stores each child at once in its
//! segment's details file and remembers where, under its parent's ids; when
//! the transaction's point is written, its record lists the children of its
//! whole subtree (a SQL call under an internal step under the transaction).
//! What waits is bounded in count and age: a child whose transaction never
//! comes, or comes after [`MAX_WAIT_MS`], stays on disk but is listed nowhere.

use std::collections::{HashMap, VecDeque};

use crate::point::DetailRef;

/// How long children wait for their transaction.
pub const MAX_WAIT_MS: u64 = 10 * 60_000;
/// Most children waiting at once (about 40 bytes each); the oldest go first.
const MAX_WAITING: usize = 500_000;
/// Most children listed with one transaction.
pub const MAX_PER_TRANSACTION: usize = 1_000;

/// A trace id and the span id of the parent.
pub type ParentKey = ([u8; 16], [u8; 8]);

/// Where one stored child span lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildRef {
    pub span_id: [u8; 8],
    /// The hour of the segment whose details file holds it.
    pub hour: u64,
    pub detail: DetailRef,
}

/// Children by parent, with their arrival order for eviction.
#[derive(Default)]
pub struct WaitingChildren {
    by_parent: HashMap<ParentKey, Waiting>,
    /// Parents in the order their first child arrived; entries whose parent
    /// was taken meanwhile are skipped when they come up.
    arrivals: VecDeque<(u64, ParentKey)>,
    count: usize,
}

struct Waiting {
    since_ms: u64,
    refs: Vec<ChildRef>,
}

impl WaitingChildren {
    /// Children of `key` staged in this commit first, then those that
    /// arrived before, and so down the subtree, at most
    /// [`MAX_PER_TRANSACTION`], in no particular order. Nothing is removed:
    /// see [`WaitingChildren::settle`].
    pub fn subtree(
        &self,
        staged: &HashMap<ParentKey, Vec<ChildRef>>,
        key: ParentKey,
        claimed: &mut Vec<ParentKey>,
    ) -> Vec<ChildRef> {
        let mut found = Vec::new();
        let mut parents = vec![key.1];
        while let Some(parent) = parents.pop() {
            let key = (key.0, parent);
            let here = staged.get(&key).into_iter().flatten();
            let earlier = self.by_parent.get(&key).into_iter().flat_map(|w| &w.refs);
            let mut any = false;
            for child in here.chain(earlier) {
                if found.len() == MAX_PER_TRANSACTION {
                    break;
                }
                any = true;
                found.push(*child);
                parents.push(child.span_id);
            }
            if any {
                claimed.push(key);
            }
        }
        found
    }

    /// After a commit is durable: forgets the parents whose transaction was
    /// written and keeps the rest of what was staged waiting.
    pub fn settle(
        &mut self,
        claimed: &[ParentKey],
        mut staged: HashMap<ParentKey, Vec<ChildRef>>,
        now_ms: u64,
    ) {
        for key in claimed {
            staged.remove(key);
            if let Some(w) = self.by_parent.remove(key) {
                self.count -= w.refs.len();
            }
        }
        for (key, refs) in staged {
            self.count += refs.len();
            let waiting = self.by_parent.entry(key).or_insert_with(|| {
                self.arrivals.push_back((now_ms, key));
                Waiting {
                    since_ms: now_ms,
                    refs: Vec::new(),
                }
            });
            waiting.refs.extend(refs);
        }
        self.evict(now_ms);
    }

    /// Drops parents waiting longer than [`MAX_WAIT_MS`], and the oldest
    /// while more than [`MAX_WAITING`] children wait.
    pub fn evict(&mut self, now_ms: u64) {
        while let Some(&(since, key)) = self.arrivals.front() {
            let expired = now_ms.saturating_sub(since) > MAX_WAIT_MS;
            if !expired && self.count <= MAX_WAITING {
                break;
            }
            self.arrivals.pop_front();
            if self
                .by_parent
                .get(&key)
                .is_some_and(|w| w.since_ms == since)
            {
                let w = self.by_parent.remove(&key).expect("just seen");
                self.count -= w.refs.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(span: u8) -> ChildRef {
        ChildRef {
            span_id: [span; 8],
            hour: 1,
            detail: DetailRef {
                offset: u64::from(span),
                len: 1,
            },
        }
    }

    const TRACE: [u8; 16] = [7; 16];

    #[test]
    fn a_transaction_gets_its_whole_subtree_from_this_commit_and_earlier_ones() {
        let mut waiting = WaitingChildren::default();
        // Earlier: an internal step (2) under the transaction (1), and a SQL
        // call (3) under the step.
        let mut earlier = HashMap::new();
        earlier.insert((TRACE, [1; 8]), vec![child(2)]);
        earlier.insert((TRACE, [2; 8]), vec![child(3)]);
        earlier.insert((TRACE, [9; 8]), vec![child(10)]);
        waiting.settle(&[], earlier, 0);
        assert_eq!(waiting.count, 3);

        let mut staged = HashMap::new();
        staged.insert((TRACE, [1; 8]), vec![child(4)]);
        let mut claimed = Vec::new();
        let mut found = waiting.subtree(&staged, (TRACE, [1; 8]), &mut claimed);
        found.sort_by_key(|c| c.span_id);
        assert_eq!(found, vec![child(2), child(3), child(4)]);
        assert_eq!(
            waiting.count, 3,
            "nothing is taken before the commit is durable"
        );

        waiting.settle(&claimed, staged, 1);
        assert_eq!(waiting.count, 1, "only the other transaction's child waits");
        assert!(waiting
            .subtree(&HashMap::new(), (TRACE, [1; 8]), &mut Vec::new())
            .is_empty());
    }

    #[test]
    fn children_wait_a_bounded_time() {
        let mut waiting = WaitingChildren::default();
        let mut staged = HashMap::new();
        staged.insert((TRACE, [1; 8]), vec![child(2)]);
        waiting.settle(&[], staged, 0);
        waiting.evict(MAX_WAIT_MS);
        assert_eq!(waiting.count, 1);
        waiting.evict(MAX_WAIT_MS + 1);
        assert_eq!(waiting.count, 0);
        assert!(waiting
            .subtree(&HashMap::new(), (TRACE, [1; 8]), &mut Vec::new())
            .is_empty());
    }

    #[test]
    fn one_transaction_lists_a_bounded_number_of_children() {
        let waiting = WaitingChildren::default();
        let mut staged = HashMap::new();
        let many = (0..MAX_PER_TRANSACTION + 50)
            .map(|i| ChildRef {
                span_id: (i as u64 + 100).to_le_bytes(),
                ..child(0)
            })
            .collect();
        staged.insert((TRACE, [1; 8]), many);
        let found = waiting.subtree(&staged, (TRACE, [1; 8]), &mut Vec::new());
        assert_eq!(found.len(), MAX_PER_TRANSACTION);
    }
}
