//! What the reader makes of a page before the pipeline: where it resumes after it, the records
//! older than the snapshot or `maximum_record_age`, how far behind the shard is.

use std::time::Duration;

use crate::source::{RecordsPage, Resume};

/// Drops the records created before `cutoff` (epoch seconds), counting them in
/// [`crate::metrics::SNAPSHOT_SKIPPED`]. A record without a creation time is kept.
pub(super) fn skip_older(shard: &str, records: &mut Vec<eddy_record::ChangeRecord>, cutoff: i64) {
    let before = records.len();
    records.retain(|r| r.dynamodb.approximate_creation_date_time.is_none_or(|t| t >= cutoff));
    let skipped = before - records.len();
    crate::events::SnapshotSkipped { shard, n: skipped as u64 }.emit();
}

/// Takes the records older than `max_age` (by `ApproximateCreationDateTime`, whole seconds) out
/// of `records`, keeping the order of both. A record without a creation time is kept.
pub(super) fn take_expired(
    records: &mut Vec<eddy_record::ChangeRecord>,
    max_age: Duration,
) -> Vec<eddy_record::ChangeRecord> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let oldest_allowed = now - max_age.as_secs() as i64;
    if records.iter().all(|r| r.dynamodb.approximate_creation_date_time.is_none_or(|t| t >= oldest_allowed)) {
        return Vec::new();
    }
    let (expired, fresh) = std::mem::take(records)
        .into_iter()
        .partition(|r| r.dynamodb.approximate_creation_date_time.is_some_and(|t| t < oldest_allowed));
    *records = fresh;
    expired
}

/// Counts this reader in [`crate::metrics::LEASES_HELD`] while it lives.
pub(super) struct LeaseGauge;

impl LeaseGauge {
    pub(super) fn held() -> Self {
        metrics::gauge!(crate::metrics::LEASES_HELD).increment(1.0);
        Self
    }
}

impl Drop for LeaseGauge {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::LEASES_HELD).decrement(1.0);
    }
}

/// How far behind the shard's newest record `page` is: the API's own figure when it gives one
/// (Kinesis' `MillisBehindLatest`), else the age of the page's newest record (by
/// `ApproximateCreationDateTime`); zero for an empty page, which means the reader has caught up.
pub(super) fn iterator_age(page: &crate::source::RecordsPage) -> std::time::Duration {
    if let Some(millis) = page.millis_behind_latest {
        return std::time::Duration::from_millis(millis);
    }
    let newest = page.records.iter().filter_map(|r| r.dynamodb.approximate_creation_date_time).max();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    match newest {
        Some(secs) => now.saturating_sub(std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0))),
        None => std::time::Duration::ZERO,
    }
}

/// What the reader last knew of how far behind its shard is, for the iterator age while polls
/// fail: it keeps growing from the last record read (or from when the shard was last caught up),
/// as it would if the records were there to be read.
#[derive(Default)]
pub(super) struct Lag {
    /// When a poll last found the shard's tip, if the last poll did.
    caught_up_at: Option<std::time::Instant>,
    /// The newest creation time read (epoch seconds).
    newest: Option<i64>,
}

impl Lag {
    /// Takes in a page read.
    pub(super) fn read(&mut self, page: &crate::source::RecordsPage) {
        let newest = page.records.iter().filter_map(|r| r.dynamodb.approximate_creation_date_time).max();
        self.newest = newest.max(self.newest);
        let at_tip = page.records.is_empty() || page.millis_behind_latest == Some(0);
        self.caught_up_at = at_tip.then(std::time::Instant::now);
    }

    /// The iterator age now, without a poll.
    pub(super) fn now(&self) -> Duration {
        if let Some(at) = self.caught_up_at {
            return at.elapsed();
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.newest.map_or(Duration::ZERO, |secs| now.saturating_sub(Duration::from_secs(secs.max(0) as u64)))
    }
}

/// Where the reader resumes once `page` is acknowledged: its last sequence number (also of
/// records that did not decode), the position the source gives, or a snapshot segment's Scan key.
pub(super) fn last_position(page: &RecordsPage) -> Option<String> {
    match &page.resume {
        Resume::AfterLastSequence => page
            .records
            .iter()
            .map(|r| r.dynamodb.sequence_number.as_str())
            .chain(page.undecodable.iter().filter_map(|u| u.sequence_number.as_deref()))
            .max_by(|a, b| eddy_record::StreamRecord::sequence_cmp(a, b))
            .map(str::to_owned),
        Resume::AfterSequence(seq) => Some(seq.clone()),
        Resume::AfterKey(key) => key.clone(),
    }
}

/// Whether the poll read anything to deliver: records, undecodable records (they go to the dead
/// letter, even a page of them without sequence numbers, which cannot move the checkpoint), or a
/// position past records the source dropped (Kinesis newest-wins).
pub(super) fn read_any(page: &RecordsPage) -> bool {
    !page.records.is_empty() || !page.undecodable.is_empty() || matches!(page.resume, Resume::AfterSequence(_))
}
