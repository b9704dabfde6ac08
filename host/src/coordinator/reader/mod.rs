//! One shard's reader: poll, hand each batch to the pipeline, checkpoint after the sinks
//! acknowledge, and repeat until the shard ends or stopping is asked.
//!
//! - A poll that returned a full page, or records older than `pacing::TIP_AGE`, is followed by another
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
//!
//! The reader is a state machine (after the KCL's `ShardConsumerState`): [`State::Positioning`]
//! (GetShardIterator at the checkpoint), [`State::Polling`] (GetRecords), [`State::Processing`]
//! (a page in the pipeline, the next one fetched meanwhile, then the checkpoint), and
//! [`State::Draining`] (the shard ended: what batching routes hold is delivered, then
//! SHARD_END). [`ShardReader::step`] is its one transition; what a batch's outcome leads to is
//! decided in one place ([`ShardReader::settle`]). The pieces: [`pacing`] (when to poll),
//! [`page`] (what a page means before the pipeline), [`failure`] (backoff, rewind, trimmed
//! data, fenced checkpoints), [`writer`] (one worker, or lanes).

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
    /// The pages budget shared by every reader of the process (`source.max_inflight_bytes`).
    pub memory: Option<Arc<MemoryBudget>>,
    /// The most bytes one answer of the source holds ([`crate::memory::page_bytes`]), reserved
    /// before each call: [`DYNAMODB_PAGE_BYTES`] unless the source says otherwise.
    pub page_bytes_hint: u64,
}

/// What a DynamoDB Streams GetRecords (or a Scan) page holds at most: the APIs stop a page at
/// 1 MB of data; its JSON, with a few hundred bytes a record of eddy's own, stays under 2 MiB.
pub const DYNAMODB_PAGE_BYTES: u64 = 2 << 20;

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
            memory: Some(MemoryBudget::new(polling.max_inflight_bytes)),
            page_bytes_hint: DYNAMODB_PAGE_BYTES,
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

mod failure;
mod pacing;
mod page;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use eddy_sink_api::RetryPolicy;

pub use pacing::{at_tip, idle_wait, RecordBudget, CAUGHT_UP_WAIT};

use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::health::{Trouble, Watch};
use crate::memory::MemoryBudget;
use crate::pipeline::lanes::{Lanes, PageWork};
use crate::pipeline::{Batch, Held, PipelineError, Worker};
use crate::source::polling::OnTrimmed;
use crate::source::{IteratorPosition, StreamsApi, StreamsError};
use crate::stop::Stop;
use failure::{after_failure, backoff, save, trimmed, Failed, Step};
use pacing::{fetch, Fetched, Pacer};
use page::{iterator_age, last_position, read_any, skip_older, take_expired, Lag, LeaseGauge};
use writer::{release, Writer};

/// Where a reader is.
enum State {
    /// Needs an iterator at [`Cursor::resume`].
    Positioning,
    /// Has an iterator: the next GetRecords.
    Polling(String),
    /// Has a GetRecords answer (polled now, or fetched ahead while the last page was in the
    /// pipeline) to take in.
    Processing(Fetched),
    /// The shard ended: deliver what is held, then save SHARD_END.
    Draining,
    /// Done.
    Done(ReaderExit),
}

/// What a reader keeps between its states: where it resumes, and its counts.
struct Cursor {
    /// Where a new iterator starts: after the last checkpoint, or the configured start.
    resume: IteratorPosition,
    /// Failed streams calls in a row.
    errors: u32,
    /// Failed batches in a row.
    sink_failures: u32,
    /// Empty polls in a row, for [`idle_wait`]; a shard starts as if idle, so that an empty shard
    /// is polled every `poll_interval` from the first poll.
    empty_polls: u32,
    pacer: Pacer,
    lag: Lag,
    /// The bytes of the last page read, to reserve for the next one if more than the source's
    /// hint.
    last_page_bytes: u64,
}

/// What a settled outcome leads to, decided once for a page, a quiet tick and the drain.
enum Settled {
    /// Acknowledged: go on.
    Went,
    /// Leave the current state for this one (a stop, or a rewind to the checkpoint).
    Leave(State),
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
        let mut cursor = Cursor {
            resume: self.start.clone(),
            errors: 0,
            sink_failures: 0,
            empty_polls: 1,
            pacer: Pacer::new(self.settings.min_poll_spacing),
            lag: Lag::default(),
            last_page_bytes: 0,
        };
        tracing::info!(shard = self.shard_id, start = ?cursor.resume, "reading shard");
        let _lease = LeaseGauge::held();
        let metrics = crate::metrics::ShardMetrics::new(&self.shard_id);
        let watch = crate::health::watch(&self.shard_id);
        let mut state = State::Positioning;
        loop {
            if self.stop.is_set() {
                return Ok(ReaderExit::Stopped);
            }
            state = match self.step(state, &mut cursor, writer, &metrics, &watch).await? {
                State::Done(exit) => return Ok(exit),
                next => next,
            };
        }
    }

    /// The one transition: from `state` to the next.
    async fn step(
        &mut self,
        state: State,
        cursor: &mut Cursor,
        writer: &mut Writer,
        metrics: &crate::metrics::ShardMetrics,
        watch: &Watch,
    ) -> anyhow::Result<State> {
        let shard = self.shard_id.clone();
        Ok(match state {
            State::Positioning => {
                let position = tokio::select! {
                    it = self.api.get_shard_iterator(&shard, &cursor.resume) => it,
                    () = self.stop.wait() => return Ok(State::Done(ReaderExit::Stopped)),
                };
                match position {
                    Ok(it) => State::Polling(it),
                    Err(StreamsError::Trimmed(detail)) => {
                        cursor.resume = trimmed(&shard, &self.settings, &cursor.resume, &detail)?;
                        State::Positioning
                    }
                    Err(e) => {
                        metrics.age(cursor.lag.now());
                        let failed = Failed { call: "GetShardIterator", watch };
                        backoff(&shard, &self.settings, &self.stop, &mut cursor.errors, failed, e).await?;
                        State::Positioning
                    }
                }
            }
            State::Polling(iterator) => {
                let limit = self.settings.max_records_per_poll;
                // Room for the page first (the module `memory`). Only pages in lanes can be held
                // meanwhile: each one the lanes finish is settled (its checkpoint saved, its room
                // given back) while waiting, so readers never wait for each other.
                let memory = match self.settings.memory.clone() {
                    Some(budget) => {
                        let expected = self.expected_bytes(cursor);
                        let room = tokio::select! {
                            permit = budget.reserve(expected) => Some(permit),
                            () = writer.finished_one() => None,
                            () = self.stop.wait() => return Ok(State::Done(ReaderExit::Stopped)),
                        };
                        if room.is_none() {
                            let outcome = match &mut *writer {
                                Writer::Lanes(lanes) => lanes.settled(),
                                Writer::Direct { .. } => Ok(None),
                            };
                            if let Settled::Leave(next) = self.settle(outcome, cursor, writer, watch).await? {
                                return Ok(next);
                            }
                            return Ok(State::Polling(iterator));
                        }
                        room
                    }
                    None => None,
                };
                match fetch(self.api.as_ref(), iterator, limit, &self.stop, &mut cursor.pacer, memory).await {
                    Some(fetched) => State::Processing(fetched),
                    None => State::Done(ReaderExit::Stopped),
                }
            }
            State::Processing(fetched) => self.process(fetched, cursor, writer, metrics, watch).await?,
            State::Draining => {
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
                if let Settled::Leave(next) = self.settle(drained, cursor, writer, watch).await? {
                    return Ok(next);
                }
                if !save(self.checkpoints.as_ref(), &shard, &Checkpoint::ShardEnd, &self.stop).await? {
                    return Ok(State::Done(ReaderExit::Stopped));
                }
                tracing::info!(shard, "shard ended (SHARD_END)");
                State::Done(ReaderExit::ShardEnd)
            }
            State::Done(exit) => State::Done(exit),
        })
    }

    /// Takes in a GetRecords answer: a page goes through the pipeline (while the next one is
    /// fetched) and is checkpointed; a failed call backs off; an empty page waits.
    async fn process(
        &mut self,
        fetched: Fetched,
        cursor: &mut Cursor,
        writer: &mut Writer,
        metrics: &crate::metrics::ShardMetrics,
        watch: &Watch,
    ) -> anyhow::Result<State> {
        let shard = self.shard_id.clone();
        // The page's room in the memory budget is held until it is acknowledged (with lanes, until
        // the lanes finish it).
        let Fetched { iterator: it, page, took, mut memory } = fetched;
        let mut age = Duration::MAX;
        if let Ok(page) = &page {
            cursor.last_page_bytes = crate::memory::page_bytes(page);
            age = iterator_age(page);
            metrics.poll(took, age);
            cursor.lag.read(page);
        }
        let mut page = match page {
            Ok(p) => p,
            Err(StreamsError::ExpiredIterator) => {
                tracing::debug!(shard, "iterator expired; fetching a new one after the checkpoint");
                return Ok(State::Positioning);
            }
            Err(StreamsError::Trimmed(detail)) => {
                cursor.resume = trimmed(&shard, &self.settings, &cursor.resume, &detail)?;
                return Ok(State::Positioning);
            }
            Err(e) => {
                metrics.age(cursor.lag.now());
                let failed = Failed { call: "GetRecords", watch };
                backoff(&shard, &self.settings, &self.stop, &mut cursor.errors, failed, e).await?;
                return Ok(State::Polling(it));
            }
        };
        cursor.errors = 0;
        let last = last_position(&page);
        // Every record read reaches a sink or the dead letter.
        let read_any = read_any(&page);
        let read = page.records.len() + page.undecodable.len();
        let at_tip = read_any && at_tip(read, self.settings.max_records_per_poll, age);
        if read_any {
            watch.behind();
        } else {
            watch.caught_up();
        }
        if let Some(cutoff) = self.settings.skip_created_before {
            skip_older(&shard, &mut page.records, cutoff);
        }
        let expired = match self.settings.maximum_record_age {
            Some(age) => take_expired(&mut page.records, age),
            None => Vec::new(),
        };
        let mut ahead: Option<Fetched> = None;
        if read_any {
            if let Some(budget) = &self.settings.budget {
                let n = (page.records.len() + page.undecodable.len()) as u32;
                tokio::select! {
                    () = budget.take(n) => {}
                    () = self.stop.wait() => return Ok(State::Done(ReaderExit::Stopped)),
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
                            memory: memory.take(),
                        };
                        lanes.submit(work).await
                    }
                }
            };
            let (processed, next) = match next_iterator {
                Some(next) => {
                    let limit = self.settings.max_records_per_poll;
                    let expected = self.expected_bytes(cursor);
                    let budget = self.settings.memory.as_ref();
                    let pacer = &mut cursor.pacer;
                    let ahead = async move {
                        // At the tip: let changes gather instead of polling again at once.
                        if at_tip && stop.sleep(CAUGHT_UP_WAIT).await {
                            return None;
                        }
                        // Ahead only with room free now: a reader holding a page never waits
                        // for room (it fetches the next page once this one is acknowledged).
                        let memory = match budget {
                            Some(budget) => Some(budget.try_reserve(expected)?),
                            None => None,
                        };
                        fetch(api, next, limit, stop, pacer, memory).await
                    };
                    tokio::join!(process, ahead)
                }
                None => (process.await, None),
            };
            if let Settled::Leave(state) = self.settle(processed, cursor, writer, watch).await? {
                return Ok(state);
            }
            ahead = next;
            tracing::debug!(shard, records, "batch acknowledged");
        }
        let Some(next) = page.next_iterator else { return Ok(State::Draining) };
        if !read_any {
            // A quiet shard: deliver what batching routes held past their windows (lanes do that
            // by themselves), and checkpoint it.
            let quiet = match &mut *writer {
                Writer::Direct { worker, held } if worker.holding() => {
                    let tick = worker.process(&shard, Batch::default(), &self.stop).await;
                    Some(tick.map(|p| release(held, p.page, None, p.oldest_held)))
                }
                Writer::Direct { .. } => None,
                Writer::Lanes(lanes) => Some(lanes.settled()),
            };
            if let Some(outcome) = quiet {
                if let Settled::Leave(state) = self.settle(outcome, cursor, writer, watch).await? {
                    return Ok(state);
                }
            }
        }
        cursor.empty_polls = if read_any { 0 } else { cursor.empty_polls.saturating_add(1) };
        if !read_any && self.stop.sleep(idle_wait(cursor.empty_polls, self.settings.poll_interval)).await {
            return Ok(State::Done(ReaderExit::Stopped));
        }
        Ok(match ahead {
            Some(fetched) => State::Processing(fetched),
            None => State::Polling(next),
        })
    }

    /// The room to reserve for the next page: the source's most, or the last page if larger.
    fn expected_bytes(&self, cursor: &Cursor) -> u64 {
        self.settings.page_bytes_hint.max(cursor.last_page_bytes)
    }

    /// Settles what the pipeline made of a page, a flush or a tick: saves the checkpoint it
    /// allows (and resumes after it from then on), or decides after a failure
    /// ([`after_failure`]): a stop, or a rewind to the checkpoint.
    ///
    /// # Errors
    /// When the checkpoint cannot be saved, or the failure is not one to read again after.
    async fn settle(
        &mut self,
        outcome: Result<Option<String>, PipelineError>,
        cursor: &mut Cursor,
        writer: &mut Writer,
        watch: &Watch,
    ) -> anyhow::Result<Settled> {
        let step = match outcome {
            Ok(Some(last)) => {
                if save(self.checkpoints.as_ref(), &self.shard_id, &Checkpoint::After(last.clone()), &self.stop).await?
                {
                    watch.moved();
                    Step::Went(Some(last))
                } else {
                    Step::Stopped
                }
            }
            Ok(None) => Step::Went(None),
            Err(e) => {
                watch.trouble(match &e {
                    PipelineError::DeadLetter(e) => Trouble::DeadLetter(format!("{e:#}")),
                    e => Trouble::Sink(e.to_string()),
                });
                after_failure(&self.shard_id, &self.settings, &self.stop, e, writer, &mut cursor.sink_failures).await?
            }
        };
        Ok(match step {
            Step::Went(checkpoint) => {
                cursor.sink_failures = 0;
                if let Some(last) = checkpoint {
                    tracing::debug!(shard = self.shard_id, checkpoint = last.as_str(), "checkpointed");
                    cursor.resume = IteratorPosition::AfterSequence(last);
                }
                Settled::Went
            }
            Step::Stopped => Settled::Leave(State::Done(ReaderExit::Stopped)),
            Step::Rewind => Settled::Leave(State::Positioning),
        })
    }
}

#[cfg(test)]
mod tests;
