//! Newest wins, per key: DynamoDB's Kinesis destination may deliver a change more than once and
//! out of order ("Kinesis Data Streams for DynamoDB", AWS Developer Guide: use
//! `ApproximateCreationDateTime` to order, and expect duplicates). A sink must never regress an
//! item to an older version, so each shard keeps, for its most recent keys, the newest change it
//! passed on, and a later record of the same key is dropped when it is older (stale) or the same
//! change again (duplicate: same `eventID` and creation time).
//!
//! The memory is bounded (`source.recent_keys_per_shard`; the oldest key is forgotten first) and
//! lives in the process: after a restart, or on a shard another process read before, a stale
//! change whose newer version was applied before the checkpoint can still be applied once (until
//! the key changes again). A record read again after a rewind (a sink failure) is recognised by
//! its sequence number and passed on again, so a rewind never loses the batch it re-reads.

use std::collections::{HashMap, VecDeque};

use eddy_record::StreamRecord;

/// What [`Recency::admit`] decided about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it on.
    Keep,
    /// A newer change of the key was already passed on: drop it.
    Stale,
    /// The same change was already passed on: drop it.
    Duplicate,
}

impl Verdict {
    /// The metric label of a dropped record.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Keep => "kept",
            Verdict::Stale => "stale",
            Verdict::Duplicate => "duplicate",
        }
    }
}

/// The newest change passed on for one key.
#[derive(Debug, Clone)]
struct Seen {
    /// Creation time, epoch microseconds.
    micros: i64,
    /// Its sequence number in the shard.
    sequence: String,
    /// Its `eventID`.
    event_id: String,
}

/// One shard's memory of the newest change per key.
#[derive(Debug, Clone)]
pub struct Recency {
    capacity: usize,
    newest: HashMap<String, Seen>,
    /// Keys in the order they were first remembered; the front is forgotten first.
    order: VecDeque<String>,
}

impl Recency {
    /// A memory of at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), newest: HashMap::new(), order: VecDeque::new() }
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.newest.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.newest.is_empty()
    }

    /// Decides about the record of `key` (its canonical text) created at `micros` (epoch
    /// microseconds; `None`: unknown, always kept) with `sequence` and `event_id`, and remembers it
    /// when it is kept. Records must be offered in shard order.
    pub fn admit(&mut self, key: &str, micros: Option<i64>, sequence: &str, event_id: &str) -> Verdict {
        let Some(micros) = micros else { return Verdict::Keep };
        if let Some(seen) = self.newest.get_mut(key) {
            // Read again after a rewind (or the record itself): pass it on as the first time.
            if StreamRecord::sequence_cmp(sequence, &seen.sequence).is_le() {
                return Verdict::Keep;
            }
            if micros < seen.micros {
                return Verdict::Stale;
            }
            if micros == seen.micros && !event_id.is_empty() && event_id == seen.event_id {
                return Verdict::Duplicate;
            }
            *seen = Seen { micros, sequence: sequence.to_owned(), event_id: event_id.to_owned() };
            return Verdict::Keep;
        }
        self.remember(key, Seen { micros, sequence: sequence.to_owned(), event_id: event_id.to_owned() });
        Verdict::Keep
    }

    /// Takes over `parent`'s memory (a child shard after a split or merge, read after its
    /// parents): its keys count as passed on before any record of this shard. The parent's
    /// sequence numbers mean nothing here, so they are cleared.
    pub fn inherit(&mut self, parent: &Recency) {
        for key in &parent.order {
            let Some(seen) = parent.newest.get(key) else { continue };
            if self.newest.get(key).is_some_and(|mine| mine.micros >= seen.micros) {
                continue;
            }
            self.remember(key, Seen { micros: seen.micros, sequence: String::new(), event_id: seen.event_id.clone() });
        }
    }

    /// Stores `seen` for `key`, forgetting the oldest key when over capacity.
    fn remember(&mut self, key: &str, seen: Seen) {
        if self.newest.insert(key.to_owned(), seen).is_none() {
            self.order.push_back(key.to_owned());
            if self.newest.len() > self.capacity {
                if let Some(oldest) = self.order.pop_front() {
                    self.newest.remove(&oldest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_change_after_a_newer_one_is_stale() {
        let mut r = Recency::new(10);
        assert_eq!(r.admit("k", Some(5), "10", "e5"), Verdict::Keep);
        assert_eq!(r.admit("k", Some(3), "11", "e3"), Verdict::Stale);
        assert_eq!(r.admit("k", Some(6), "12", "e6"), Verdict::Keep);
        // Another key is not affected.
        assert_eq!(r.admit("j", Some(1), "13", "e1"), Verdict::Keep);
    }

    #[test]
    fn the_same_change_twice_is_a_duplicate() {
        let mut r = Recency::new(10);
        assert_eq!(r.admit("k", Some(5), "10", "e5"), Verdict::Keep);
        assert_eq!(r.admit("k", Some(5), "20", "e5"), Verdict::Duplicate);
        // Two different changes in the same microsecond are both kept, in shard order.
        assert_eq!(r.admit("k", Some(5), "21", "other"), Verdict::Keep);
    }

    #[test]
    fn a_rewind_reads_the_same_records_again_and_keeps_them() {
        let mut r = Recency::new(10);
        assert_eq!(r.admit("k", Some(5), "10", "e5"), Verdict::Keep);
        assert_eq!(r.admit("k", Some(3), "11", "e3"), Verdict::Stale);
        assert_eq!(r.admit("k", Some(7), "12", "e7"), Verdict::Keep);
        // The sink failed; the shard is read again from before sequence 10.
        assert_eq!(r.admit("k", Some(5), "10", "e5"), Verdict::Keep);
        assert_eq!(r.admit("k", Some(3), "11", "e3"), Verdict::Keep);
        assert_eq!(r.admit("k", Some(7), "12", "e7"), Verdict::Keep);
        assert_eq!(r.admit("k", Some(6), "13", "e6"), Verdict::Stale);
    }

    #[test]
    fn records_without_a_time_are_always_kept() {
        let mut r = Recency::new(10);
        assert_eq!(r.admit("k", None, "1", "a"), Verdict::Keep);
        assert_eq!(r.admit("k", None, "2", "a"), Verdict::Keep);
        assert!(r.is_empty());
    }

    #[test]
    fn the_memory_is_bounded_and_forgets_the_oldest_key_first() {
        let mut r = Recency::new(3);
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            r.admit(k, Some(10), &(i + 1).to_string(), k);
        }
        assert_eq!(r.len(), 3);
        // `a` was forgotten: its stale change is kept (the documented limit).
        assert_eq!(r.admit("a", Some(1), "9", "old"), Verdict::Keep);
        assert_eq!(r.len(), 3);
        // `d` is still known.
        assert_eq!(r.admit("d", Some(1), "10", "old"), Verdict::Stale);
    }

    #[test]
    fn a_child_inherits_its_parents_memory() {
        let mut parent = Recency::new(10);
        parent.admit("k", Some(5), "100", "e5");
        let mut child = Recency::new(10);
        child.inherit(&parent);
        assert_eq!(child.admit("k", Some(4), "1", "e4"), Verdict::Stale);
        assert_eq!(child.admit("k", Some(5), "2", "e5"), Verdict::Duplicate);
        assert_eq!(child.admit("k", Some(6), "3", "e6"), Verdict::Keep);
    }
}
