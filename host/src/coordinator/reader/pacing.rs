//! How often one shard is polled: at once in a backlog, after a short wait at the shard's tip,
//! every `poll_interval` when idle, never more often than the source allows (Kinesis: 5 calls a
//! second), and within the process's records-per-second budget.

use std::time::Duration;

use crate::source::{StreamsApi, StreamsError};
use crate::stop::Stop;

/// One GetRecords call: the iterator it used, its answer, and how long it took.
pub(super) struct Fetched {
    pub(super) iterator: String,
    pub(super) page: Result<crate::source::RecordsPage, StreamsError>,
    pub(super) took: Duration,
    /// The page's room in the memory budget, set to its measured size.
    pub(super) memory: Option<crate::memory::MemoryPermit>,
}

/// How long a shard that was just read to its tip waits before polling again, at most: a shard
/// with a steady trickle of changes would otherwise wait a whole `poll_interval` after each poll
/// that happened to find nothing new, which puts that interval into the replication lag (p99 of
/// ~250 ms at the default 250ms, 10,000 records/s over 16 shards).
pub const CAUGHT_UP_WAIT: Duration = Duration::from_millis(50);

/// Whether a page of `read` records (of at most `limit`) whose newest record is `age` old was read
/// at the shard's tip: it was not full and its newest record is at most [`TIP_AGE`] old. The next
/// poll then waits [`CAUGHT_UP_WAIT`] instead of going at once, so that a shard with a steady
/// trickle of changes brings them in pages, not a few records a call (at 10,000 records/s over 16
/// shards, polling at once cost most of a core). The age keeps a backlog read at full speed even
/// when DynamoDB Streams cuts its pages short at 1 MB.
pub fn at_tip(read: usize, limit: u32, age: Duration) -> bool {
    read < limit as usize && age <= TIP_AGE
}

/// How old the newest record of a page may be for the page to be at the shard's tip (DynamoDB
/// Streams gives creation times in whole seconds).
pub const TIP_AGE: Duration = Duration::from_secs(2);

/// The wait after the `empty_polls`-th empty poll in a row (1 for the first): [`CAUGHT_UP_WAIT`]
/// (or `poll_interval`, if smaller) after the first, when the poll before it returned records;
/// `poll_interval` after the next ones, so an idle shard is polled every `poll_interval` as
/// Lambda polls one (4 times a second by default).
pub fn idle_wait(empty_polls: u32, poll_interval: Duration) -> Duration {
    if empty_polls <= 1 {
        poll_interval.min(CAUGHT_UP_WAIT)
    } else {
        poll_interval
    }
}

/// Spaces one shard's GetRecords calls by at least `spacing`.
pub(super) struct Pacer {
    spacing: Duration,
    last: Option<tokio::time::Instant>,
}

impl Pacer {
    /// A pacer of calls at least `spacing` apart.
    pub(super) fn new(spacing: Duration) -> Self {
        Self { spacing, last: None }
    }

    /// Waits until the next call may go; `false` when stopping was asked first.
    pub(super) async fn ready(&mut self, stop: &Stop) -> bool {
        if let Some(due) = self.last.map(|last| last + self.spacing) {
            let now = tokio::time::Instant::now();
            if due > now && stop.sleep(due - now).await {
                return false;
            }
        }
        self.last = Some(tokio::time::Instant::now());
        true
    }
}

/// Calls GetRecords on `iterator` once `pacer` allows, holding `memory` (room reserved for the
/// page), which it sets to the page's size; `None` when stopping was asked first.
pub(super) async fn fetch(
    api: &dyn StreamsApi,
    iterator: String,
    limit: u32,
    stop: &Stop,
    pacer: &mut Pacer,
    mut memory: Option<crate::memory::MemoryPermit>,
) -> Option<Fetched> {
    if !pacer.ready(stop).await {
        return None;
    }
    let started = std::time::Instant::now();
    let page = tokio::select! {
        page = api.get_records(&iterator, limit) => page,
        () = stop.wait() => return None,
    };
    match (&page, &mut memory) {
        (Ok(page), Some(permit)) => permit.resize(crate::memory::page_bytes(page)),
        (Err(_), Some(_)) => memory = None,
        _ => {}
    }
    Some(Fetched { iterator, page, took: started.elapsed(), memory })
}

/// `source.max_records_per_second`: a token bucket (governor) shared by all shard readers. A
/// reader takes one token per record before its batch enters the pipeline, so the rate holds
/// across shards; the bucket holds one second's worth, so a burst never exceeds that.
#[derive(Debug)]
pub struct RecordBudget {
    limiter: governor::DefaultDirectRateLimiter,
    per_second: std::num::NonZeroU32,
}

impl RecordBudget {
    /// A budget of `per_second` records per second.
    pub fn new(per_second: std::num::NonZeroU32) -> Self {
        Self { limiter: governor::RateLimiter::direct(governor::Quota::per_second(per_second)), per_second }
    }

    /// Waits until `n` records may go.
    pub async fn take(&self, mut n: u32) {
        while n > 0 {
            let chunk = n.min(self.per_second.get());
            let chunk_nz = std::num::NonZeroU32::new(chunk).expect("chunk > 0");
            // Never more than the bucket's capacity, so this cannot fail.
            let _ = self.limiter.until_n_ready(chunk_nz).await;
            n -= chunk;
        }
    }
}
