//! One shard's reader: poll, hand each batch to the pipeline, checkpoint after the sinks
//! acknowledge, and repeat until the shard ends or stopping is asked.
//!
//! - A poll that returned a full page, or records older than [`TIP_AGE`], is followed by another
//!   at once; one that read to the shard's tip ([`at_tip`]) by another after [`CAUGHT_UP_WAIT`];
//!   an empty one waits [`idle_wait`]: [`CAUGHT_UP_WAIT`] when the poll before it returned
//!   records, `poll_interval` when the shard stays empty.
//! - Pipelining: while a batch is in the pipeline, the next GetRecords (on the batch's
//!   `NextShardIterator`) is already in flight, at most one page ahead. It is used only once the
//!   batch is acknowledged and checkpointed; after a failed batch it is thrown away and the shard
//!   rewinds to its checkpoint as before.
//! - The iterator advances only after the batch is checkpointed: a failure never skips records
//!   (scylla-migrator's poller moves its iterator before writing, and loses the batch on a
//!   failed write).
//! - An expired iterator is replaced by one `AFTER_SEQUENCE_NUMBER` of the last checkpoint.
//! - Trimmed data (the checkpoint is older than the trim horizon) stops the reader with an error
//!   naming the shard and the gap, unless `on_trimmed: skip`.
//! - Throttling and other transient errors back off with full jitter; after
//!   `max_consecutive_errors` in a row the reader stops with the last error.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use eddy_sink_api::RetryPolicy;

use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::health::{Trouble, Watch};
use crate::pipeline::lanes::{Lanes, PageWork};
use crate::pipeline::{Batch, Held, PipelineError, Worker};
use crate::source::polling::OnTrimmed;
use crate::source::{IteratorPosition, Resume, StreamsApi, StreamsError};
use crate::stop::Stop;

/// Polling settings, from `source:`.
#[derive(Debug, Clone)]
pub struct ReaderSettings {
    /// Wait after an empty poll.
    pub poll_interval: Duration,
    /// GetRecords `Limit`.
    pub max_records_per_poll: u32,
    /// Consecutive failures before giving up.
    pub max_consecutive_errors: u32,
    /// Policy for trimmed data.
    pub on_trimmed: OnTrimmed,
    /// The records-per-second budget shared by every reader of the process, if any.
    pub budget: Option<Arc<RecordBudget>>,
    /// The waits between failed calls and between rewinds (`retry:`).
    pub retry: RetryPolicy,
    /// Records whose `ApproximateCreationDateTime` (epoch seconds) is below this are skipped and
    /// counted (still checkpointed past): after a snapshot, the changes its scan already saw.
    pub skip_created_before: Option<i64>,
    /// The least time between two GetRecords calls on one shard (Kinesis allows 5 a second);
    /// zero: no spacing.
    pub min_poll_spacing: Duration,
    /// Records older than this when read go to the dead letter instead of the routes
    /// (`source.maximum_record_age`).
    pub maximum_record_age: Option<Duration>,
    /// Lanes writing one page at once (`source.parallelization_factor`), 1 to 10.
    pub parallelization_factor: u32,
}

impl ReaderSettings {
    /// Settings with a source's polling keys; no snapshot cut-off, no poll spacing.
    pub fn new(polling: &crate::source::polling::StreamPolling, retry: RetryPolicy) -> Self {
        Self {
            poll_interval: polling.poll_interval,
            max_records_per_poll: polling.max_records_per_poll,
            max_consecutive_errors: polling.max_consecutive_errors,
            on_trimmed: polling.on_trimmed,
            budget: polling.max_records_per_second.map(|n| Arc::new(RecordBudget::new(n))),
            retry,
            skip_created_before: None,
            min_poll_spacing: Duration::ZERO,
            maximum_record_age: polling.maximum_record_age,
            parallelization_factor: polling.parallelization_factor,
        }
    }
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

/// How a reader ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderExit {
    /// The shard is closed and fully processed; its checkpoint is SHARD_END.
    ShardEnd,
    /// Stopping was asked; the last acknowledged batch is checkpointed.
    Stopped,
}

/// Reads one shard.
pub struct ShardReader {
    /// The streams API.
    pub api: Arc<dyn StreamsApi>,
    /// The shard.
    pub shard_id: String,
    /// Where to start: after the checkpoint, or the configured start.
    pub start: IteratorPosition,
    /// This reader's pipeline workers: one, or one per lane (`parallelization_factor`).
    pub workers: Vec<Worker>,
    /// Where to checkpoint.
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// Polling settings.
    pub settings: ReaderSettings,
    /// The shutdown signal.
    pub stop: Stop,
}

impl ShardReader {
    /// Runs until the shard ends or stopping is asked.
    ///
    /// # Errors
    /// Fatal streams errors, trimmed data (unless skipped), a sink that fails for good, a
    /// checkpoint that cannot be saved, or too many consecutive errors.
    pub async fn run(mut self) -> anyhow::Result<ReaderExit> {
        let workers = std::mem::take(&mut self.workers);
        let mut writer = match workers.len() {
            0 | 1 => Writer::Direct { worker: workers.into_iter().next().expect("a worker"), held: Held::default() },
            _ => Writer::Lanes(Lanes::new(
                workers,
                &self.shard_id,
                self.settings.max_records_per_poll as usize,
                self.stop.clone(),
            )),
        };
        let exit = self.read(&mut writer).await;
        if let (Ok(ReaderExit::Stopped), Writer::Lanes(lanes)) = (&exit, &mut writer) {
            // Checkpoint what the lanes finish before the stop grace ends.
            if let Ok(Some(last)) = lanes.drain(false).await {
                save(self.checkpoints.as_ref(), &self.shard_id, &Checkpoint::After(last), &self.stop).await?;
            }
        }
        exit
    }

    async fn read(&mut self, writer: &mut Writer) -> anyhow::Result<ReaderExit> {
        let shard = self.shard_id.clone();
        // The position to resume from when an iterator has to be fetched again.
        let mut resume = self.start.clone();
        let mut iterator: Option<String> = None;
        // The next page, fetched while the previous batch was in the pipeline.
        let mut ahead: Option<Fetched> = None;
        let mut errors = 0u32;
        let mut sink_failures = 0u32;
        let mut pacer = Pacer { spacing: self.settings.min_poll_spacing, last: None };
        // Empty polls in a row, for `idle_wait`; a shard starts as if idle, so that an empty
        // shard is polled every `poll_interval` from the first poll.
        let mut empty_polls = 1u32;
        tracing::info!(shard, start = ?resume, "reading shard");
        let _lease = LeaseGauge::held();
        let metrics = crate::metrics::ShardMetrics::new(&shard);
        let watch = crate::health::watch(&shard);
        let mut lag = Lag::default();
        loop {
            if self.stop.is_set() {
                return Ok(ReaderExit::Stopped);
            }
            let fetched = match ahead.take() {
                Some(fetched) => fetched,
                None => {
                    let it = match iterator.take() {
                        Some(it) => it,
                        None => match tokio::select! {
                            it = self.api.get_shard_iterator(&shard, &resume) => it,
                            () = self.stop.wait() => return Ok(ReaderExit::Stopped),
                        } {
                            Ok(it) => it,
                            Err(StreamsError::Trimmed(detail)) => {
                                resume = trimmed(&shard, &self.settings, &resume, &detail)?;
                                continue;
                            }
                            Err(e) => {
                                metrics.age(lag.now());
                                let failed = Failed { call: "GetShardIterator", watch: &watch };
                                backoff(&shard, &self.settings, &self.stop, &mut errors, failed, e).await?;
                                continue;
                            }
                        },
                    };
                    match fetch(self.api.as_ref(), it, self.settings.max_records_per_poll, &self.stop, &mut pacer).await
                    {
                        Some(fetched) => fetched,
                        None => return Ok(ReaderExit::Stopped),
                    }
                }
            };
            let Fetched { iterator: it, page, took } = fetched;
            let mut age = Duration::MAX;
            if let Ok(page) = &page {
                age = iterator_age(page);
                metrics.poll(took, age);
                lag.read(page);
            }
            let page = match page {
                Ok(p) => p,
                Err(StreamsError::ExpiredIterator) => {
                    tracing::debug!(shard, "iterator expired; fetching a new one after the checkpoint");
                    continue;
                }
                Err(StreamsError::Trimmed(detail)) => {
                    resume = trimmed(&shard, &self.settings, &resume, &detail)?;
                    continue;
                }
                Err(e) => {
                    iterator = Some(it);
                    metrics.age(lag.now());
                    let failed = Failed { call: "GetRecords", watch: &watch };
                    backoff(&shard, &self.settings, &self.stop, &mut errors, failed, e).await?;
                    continue;
                }
            };
            errors = 0;
            let last = match &page.resume {
                Resume::AfterLastSequence => page
                    .records
                    .iter()
                    .map(|r| r.dynamodb.sequence_number.as_str())
                    .chain(page.undecodable.iter().filter_map(|u| u.sequence_number.as_deref()))
                    .max_by(|a, b| eddy_record::StreamRecord::sequence_cmp(a, b))
                    .map(str::to_owned),
                Resume::AfterSequence(seq) => Some(seq.clone()),
                Resume::AfterKey(key) => key.clone(),
            };
            // Every record read reaches a sink or the dead letter, even a page of undecodable
            // records without sequence numbers (it cannot move the checkpoint, so a restart may
            // dead-letter it again: at least once).
            let read_any = !page.records.is_empty()
                || !page.undecodable.is_empty()
                || matches!(page.resume, Resume::AfterSequence(_));
            let read = page.records.len() + page.undecodable.len();
            let at_tip = read_any && at_tip(read, self.settings.max_records_per_poll, age);
            if read_any {
                watch.behind();
            } else {
                watch.caught_up();
            }
            let mut page = page;
            if let Some(cutoff) = self.settings.skip_created_before {
                skip_older(&shard, &mut page.records, cutoff);
            }
            let expired = match self.settings.maximum_record_age {
                Some(age) => take_expired(&mut page.records, age),
                None => Vec::new(),
            };
            if read_any {
                if let Some(budget) = &self.settings.budget {
                    let n = (page.records.len() + page.undecodable.len()) as u32;
                    tokio::select! {
                        () = budget.take(n) => {}
                        () = self.stop.wait() => return Ok(ReaderExit::Stopped),
                    }
                }
                let records = page.records.len();
                let max_age = self.settings.maximum_record_age;
                let next_iterator = page.next_iterator.clone();
                let (stop, api) = (&self.stop, self.api.as_ref());
                let process = async {
                    match &mut *writer {
                        Writer::Direct { worker, held } => {
                            let batch = Batch {
                                records: &page.records,
                                undecodable: &page.undecodable,
                                expired: &expired,
                                maximum_record_age: max_age,
                                flush: false,
                            };
                            let processed = worker.process(&shard, batch, stop).await?;
                            Ok(release(held, processed.page, last.clone(), processed.oldest_held))
                        }
                        Writer::Lanes(lanes) => {
                            let work = PageWork {
                                records: std::mem::take(&mut page.records),
                                undecodable: std::mem::take(&mut page.undecodable),
                                expired,
                                maximum_record_age: max_age,
                                last: last.clone(),
                            };
                            lanes.submit(work).await
                        }
                    }
                };
                let (processed, next) = match next_iterator {
                    Some(next) => {
                        let limit = self.settings.max_records_per_poll;
                        let pacer = &mut pacer;
                        let ahead = async move {
                            // At the tip: let changes gather instead of polling again at once.
                            if at_tip && stop.sleep(CAUGHT_UP_WAIT).await {
                                return None;
                            }
                            fetch(api, next, limit, stop, pacer).await
                        };
                        tokio::join!(process, ahead)
                    }
                    None => (process.await, None),
                };
                match self.settle(processed, writer, &mut sink_failures, &watch).await? {
                    Step::Went(checkpoint) => {
                        ahead = next;
                        sink_failures = 0;
                        if let Some(last) = checkpoint {
                            tracing::debug!(
                                shard,
                                records,
                                checkpoint = last.as_str(),
                                "batch acknowledged and checkpointed"
                            );
                            resume = IteratorPosition::AfterSequence(last);
                        }
                    }
                    Step::Stopped => return Ok(ReaderExit::Stopped),
                    Step::Rewind => {
                        iterator = None;
                        continue;
                    }
                }
            }
            match page.next_iterator {
                None => {
                    let drained = match &mut *writer {
                        Writer::Lanes(lanes) => lanes.drain(true).await,
                        Writer::Direct { worker, held } if worker.holding() => {
                            // The shard ended: deliver what batching routes hold.
                            let flush = Batch { flush: true, ..Batch::default() };
                            match worker.process(&shard, flush, &self.stop).await {
                                Ok(p) => Ok(release(held, p.page, None, p.oldest_held)),
                                Err(e) => Err(e),
                            }
                        }
                        Writer::Direct { .. } => Ok(None),
                    };
                    match self.settle(drained, writer, &mut sink_failures, &watch).await? {
                        Step::Went(_) => {}
                        Step::Stopped => return Ok(ReaderExit::Stopped),
                        Step::Rewind => {
                            iterator = None;
                            continue;
                        }
                    }
                    if !save(self.checkpoints.as_ref(), &shard, &Checkpoint::ShardEnd, &self.stop).await? {
                        return Ok(ReaderExit::Stopped);
                    }
                    tracing::info!(shard, "shard ended (SHARD_END)");
                    return Ok(ReaderExit::ShardEnd);
                }
                Some(next) => iterator = Some(next),
            }
            if !read_any {
                // A quiet shard: deliver what batching routes held past their windows (lanes do
                // that by themselves), and checkpoint it.
                let quiet = match &mut *writer {
                    Writer::Direct { worker, held } if worker.holding() => {
                        let tick = worker.process(&shard, Batch::default(), &self.stop).await;
                        Some(tick.map(|p| release(held, p.page, None, p.oldest_held)))
                    }
                    Writer::Direct { .. } => None,
                    Writer::Lanes(lanes) => Some(lanes.settled()),
                };
                if let Some(outcome) = quiet {
                    match self.settle(outcome, writer, &mut sink_failures, &watch).await? {
                        Step::Went(checkpoint) => {
                            if let Some(last) = checkpoint {
                                resume = IteratorPosition::AfterSequence(last);
                            }
                        }
                        Step::Stopped => return Ok(ReaderExit::Stopped),
                        Step::Rewind => {
                            iterator = None;
                            continue;
                        }
                    }
                }
            }
            empty_polls = if read_any { 0 } else { empty_polls.saturating_add(1) };
            if !read_any && self.stop.sleep(idle_wait(empty_polls, self.settings.poll_interval)).await {
                return Ok(ReaderExit::Stopped);
            }
        }
    }

    /// Settles what the pipeline made of a page, a flush or a tick: saves the checkpoint it
    /// allows (`Ok(Some(last))`), or decides after a failure ([`after_failure`]).
    ///
    /// # Errors
    /// When the checkpoint cannot be saved, or the failure is not one to read again after.
    async fn settle(
        &mut self,
        outcome: Result<Option<String>, PipelineError>,
        writer: &mut Writer,
        sink_failures: &mut u32,
        watch: &Watch,
    ) -> anyhow::Result<Step> {
        match outcome {
            Ok(Some(last)) => {
                if save(self.checkpoints.as_ref(), &self.shard_id, &Checkpoint::After(last.clone()), &self.stop).await?
                {
                    watch.moved();
                    Ok(Step::Went(Some(last)))
                } else {
                    Ok(Step::Stopped)
                }
            }
            Ok(None) => Ok(Step::Went(None)),
            Err(e) => {
                watch.trouble(match &e {
                    PipelineError::DeadLetter(e) => Trouble::DeadLetter(format!("{e:#}")),
                    e => Trouble::Sink(e.to_string()),
                });
                after_failure(&self.shard_id, &self.settings, &self.stop, e, writer, sink_failures).await
            }
        }
    }
}

/// What a failed batch of `shard` leads to: a stop, a rewind to the checkpoint after a backoff (a
/// transient sink failure, or a dead letter that could not be written: never read past
/// unwritten records), or an error (a sink that fails for good, or too many failed batches in a
/// row).
async fn after_failure(
    shard: &str,
    settings: &ReaderSettings,
    stop: &Stop,
    e: PipelineError,
    writer: &mut Writer,
    sink_failures: &mut u32,
) -> anyhow::Result<Step> {
    match e {
        PipelineError::Interrupted { sink } => {
            tracing::info!(shard, sink, "stopping with a batch unacknowledged; it will be read again");
            Ok(Step::Stopped)
        }
        e @ (PipelineError::SinkFailed { fatal: false, .. } | PipelineError::DeadLetter(_)) => {
            *sink_failures += 1;
            if *sink_failures >= settings.max_consecutive_errors {
                return Err(anyhow::Error::new(e).context(format!(
                    "shard {shard}: {sink_failures} batches in a row could not be written \
                         (source.max_consecutive_errors)"
                )));
            }
            match writer {
                Writer::Lanes(lanes) => lanes.reset().await,
                Writer::Direct { worker, held } => {
                    worker.discard_held();
                    held.clear();
                }
            }
            let wait = settings.retry.backoff.wait(*sink_failures - 1);
            tracing::warn!(shard, "{e}; rewinding to the checkpoint and reading again in {wait:?}");
            if stop.sleep(wait).await {
                return Ok(Step::Stopped);
            }
            Ok(Step::Rewind)
        }
        e => Err(anyhow::Error::new(e).context(format!("shard {shard}"))),
    }
}

/// Where a shard's batches go: one worker, or lanes (`parallelization_factor` > 1).
enum Writer {
    /// One worker; `held` lists the pages (worker page number, last sequence number) not yet
    /// checkpointed because a batching route holds records of them or of an earlier page.
    Direct {
        worker: Worker,
        held: Held<Option<String>>,
    },
    Lanes(Lanes),
}

/// Records page `page` (with its last sequence number) as processed, and returns the newest
/// last sequence number of the pages now checkpointable: those before `oldest_held` (every page
/// when nothing is held).
fn release(
    held: &mut Held<Option<String>>,
    page: u64,
    last: Option<String>,
    oldest_held: Option<u64>,
) -> Option<String> {
    held.release(page, last, oldest_held).into_iter().flatten().next_back()
}

/// What the reader does after a batch, a flush or a tick went through the pipeline.
enum Step {
    /// It was acknowledged; carries the checkpoint saved, when it moved.
    Went(Option<String>),
    /// Stopping was asked (or the lease was lost while saving).
    Stopped,
    /// It failed transiently: read again from the checkpoint.
    Rewind,
}

/// One GetRecords call: the iterator it used, its answer, and how long it took.
struct Fetched {
    iterator: String,
    page: Result<crate::source::RecordsPage, StreamsError>,
    took: Duration,
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
struct Pacer {
    spacing: Duration,
    last: Option<std::time::Instant>,
}

impl Pacer {
    /// Waits until the next call may go; `false` when stopping was asked first.
    async fn ready(&mut self, stop: &Stop) -> bool {
        if let Some(due) = self.last.map(|last| last + self.spacing) {
            let now = std::time::Instant::now();
            if due > now && stop.sleep(due - now).await {
                return false;
            }
        }
        self.last = Some(std::time::Instant::now());
        true
    }
}

/// Calls GetRecords on `iterator` once `pacer` allows; `None` when stopping was asked first.
async fn fetch(api: &dyn StreamsApi, iterator: String, limit: u32, stop: &Stop, pacer: &mut Pacer) -> Option<Fetched> {
    if !pacer.ready(stop).await {
        return None;
    }
    let started = std::time::Instant::now();
    tokio::select! {
        page = api.get_records(&iterator, limit) => Some(Fetched { iterator, page, took: started.elapsed() }),
        () = stop.wait() => None,
    }
}

/// Saves a checkpoint; `Ok(false)` when the lease was lost, so the reader must stop without
/// reading further (the new owner resumes from the last checkpoint), or when stopping was asked
/// and the store did not answer within [`crate::stop::GRACE`] (the batch is read again next
/// time).
async fn save(
    checkpoints: &dyn CheckpointStore,
    shard: &str,
    checkpoint: &Checkpoint,
    stop: &Stop,
) -> anyhow::Result<bool> {
    let Some(saved) = stop.within_grace(checkpoints.save(shard, checkpoint)).await else {
        tracing::warn!(shard, "stopping without the last checkpoint: the checkpoint store did not answer in time; the batch will be read again");
        return Ok(false);
    };
    match saved {
        Ok(()) => Ok(true),
        Err(e @ CheckpointError::LeaseLost { .. }) => {
            tracing::info!(shard, "stopping: {e}");
            Ok(false)
        }
        Err(CheckpointError::Store(e)) => Err(e),
    }
}

/// Drops the records created before `cutoff` (epoch seconds), counting them in
/// [`crate::metrics::SNAPSHOT_SKIPPED`]. A record without a creation time is kept.
fn skip_older(shard: &str, records: &mut Vec<eddy_record::ChangeRecord>, cutoff: i64) {
    let before = records.len();
    records.retain(|r| r.dynamodb.approximate_creation_date_time.is_none_or(|t| t >= cutoff));
    let skipped = before - records.len();
    crate::events::SnapshotSkipped { shard, n: skipped as u64 }.emit();
}

/// Takes the records older than `max_age` (by `ApproximateCreationDateTime`, whole seconds) out
/// of `records`, keeping the order of both. A record without a creation time is kept.
fn take_expired(records: &mut Vec<eddy_record::ChangeRecord>, max_age: Duration) -> Vec<eddy_record::ChangeRecord> {
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
struct LeaseGauge;

impl LeaseGauge {
    fn held() -> Self {
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
fn iterator_age(page: &crate::source::RecordsPage) -> std::time::Duration {
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

/// Applies `on_trimmed` when `position` is no longer in the stream.
fn trimmed(
    shard: &str,
    settings: &ReaderSettings,
    position: &IteratorPosition,
    detail: &str,
) -> anyhow::Result<IteratorPosition> {
    let gap = match position {
        IteratorPosition::AfterSequence(s) => format!("records after sequence number {s}"),
        IteratorPosition::AtSequence(s) => format!("records from sequence number {s}"),
        _ => "records before the trim horizon".to_owned(),
    };
    match settings.on_trimmed {
            OnTrimmed::Fail => bail!(
                "shard {shard}: {gap} were trimmed from the stream (older than 24 hours) before eddy read them: \
                 those changes are lost. Set `source.on_trimmed: skip` to continue from the oldest record still there. ({detail})"
            ),
            OnTrimmed::Skip => {
                crate::events::TrimmedSkipped { shard, gap: &gap }.emit();
                Ok(IteratorPosition::TrimHorizon)
            }
        }
}

/// A failed streams call: which, and the shard's watch to tell.
struct Failed<'a> {
    call: &'static str,
    watch: &'a Watch,
}

/// Counts a failure and waits, or gives up when there were too many in a row.
async fn backoff(
    shard: &str,
    settings: &ReaderSettings,
    stop: &Stop,
    errors: &mut u32,
    failed: Failed<'_>,
    e: StreamsError,
) -> anyhow::Result<()> {
    let call = failed.call;
    if let StreamsError::Fatal(message) = &e {
        bail!("shard {shard}: {call} failed: {message}");
    }
    let text = e.to_string();
    let throttled = ["Throttl", "LimitExceeded", "ProvisionedThroughputExceeded"].iter().any(|t| text.contains(t));
    failed.watch.trouble(if throttled {
        Trouble::Throttled(format!("{call}: {text}"))
    } else {
        Trouble::Source(format!("{call}: {text}"))
    });
    *errors += 1;
    if *errors >= settings.max_consecutive_errors {
        bail!("shard {shard}: {call} failed {errors} times in a row (source.max_consecutive_errors); last error: {e}");
    }
    let wait = settings.retry.backoff.wait(*errors - 1);
    tracing::warn!(shard, attempt = *errors, "{call} failed, retrying in {wait:?}: {e}");
    stop.sleep(wait).await;
    Ok(())
}

/// What the reader last knew of how far behind its shard is, for the iterator age while polls
/// fail: it keeps growing from the last record read (or from when the shard was last caught up),
/// as it would if the records were there to be read.
#[derive(Default)]
struct Lag {
    /// When a poll last found the shard's tip, if the last poll did.
    caught_up_at: Option<std::time::Instant>,
    /// The newest creation time read (epoch seconds).
    newest: Option<i64>,
}

impl Lag {
    /// Takes in a page read.
    fn read(&mut self, page: &crate::source::RecordsPage) {
        let newest = page.records.iter().filter_map(|r| r.dynamodb.approximate_creation_date_time).max();
        self.newest = newest.max(self.newest);
        let at_tip = page.records.is_empty() || page.millis_behind_latest == Some(0);
        self.caught_up_at = at_tip.then(std::time::Instant::now);
    }

    /// The iterator age now, without a poll.
    fn now(&self) -> Duration {
        if let Some(at) = self.caught_up_at {
            return at.elapsed();
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.newest.map_or(Duration::ZERO, |secs| now.saturating_sub(Duration::from_secs(secs.max(0) as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_that_just_caught_up_is_polled_again_soon_and_an_idle_one_every_poll_interval() {
        let interval = Duration::from_millis(250);
        assert_eq!(idle_wait(1, interval), CAUGHT_UP_WAIT);
        assert_eq!(idle_wait(2, interval), interval);
        assert_eq!(idle_wait(u32::MAX, interval), interval);
        let short = Duration::from_millis(20);
        assert_eq!(idle_wait(1, short), short, "never longer than poll_interval");
    }

    #[test]
    fn a_page_is_at_the_tip_when_it_is_not_full_and_its_records_are_recent() {
        let recent = Duration::from_millis(800);
        assert!(at_tip(10, 1000, recent));
        assert!(at_tip(0, 1000, Duration::ZERO));
        assert!(!at_tip(1000, 1000, recent), "a full page: more may be waiting");
        assert!(!at_tip(480, 1000, Duration::from_secs(60)), "a page cut short at 1 MB in a backlog");
        assert!(!at_tip(10, 1000, Duration::MAX), "unknown age");
    }

    #[test]
    fn records_over_the_maximum_age_are_taken_out_in_order() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let record = |seq: &str, created: Option<i64>| {
            let mut r: eddy_record::ChangeRecord = serde_json::from_value(serde_json::json!({
                "eventID": seq, "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1", "eventSourceARN": "arn",
                "dynamodb": {"Keys": {"id": {"S": seq}}, "SequenceNumber": seq, "SizeBytes": 1,
                             "StreamViewType": "KEYS_ONLY"}
            }))
            .unwrap();
            r.dynamodb.approximate_creation_date_time = created;
            r
        };
        let mut records = vec![
            record("1", Some(now - 7200)),
            record("2", Some(now - 10)),
            record("3", None),
            record("4", Some(now - 3601)),
            record("5", Some(now)),
        ];
        let expired = take_expired(&mut records, Duration::from_secs(3600));
        let seqs = |rs: &[eddy_record::ChangeRecord]| {
            rs.iter().map(|r| r.dynamodb.sequence_number.clone()).collect::<Vec<_>>()
        };
        assert_eq!(seqs(&expired), ["1", "4"]);
        assert_eq!(seqs(&records), ["2", "3", "5"]);
        assert!(take_expired(&mut records, Duration::from_secs(3600)).is_empty());
    }
}
