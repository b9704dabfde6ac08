//! `source.parallelization_factor` (Lambda's ParallelizationFactor): up to N batches of one shard
//! in the pipeline at once, with per-key order kept.
//!
//! Each page's records are split by a hash of their full key into N lanes, keeping their order,
//! so every change of one item goes through the same lane in sequence-number order. Each lane is
//! a task with its own [`Worker`] (its own Wasm instances) that takes the sub-batches queued for
//! it, merges them up to `max_records_per_poll` records (as Lambda fills a batch), and runs them
//! through the pipeline; the lanes run concurrently, and the reader goes on reading while they
//! write, as long as at most N + 1 pages wait to be processed (memory stays bounded: the pages
//! a batching route holds records of are bounded by its `batch_size`).
//!
//! Batching routes (`batch_size`, `batching_window`) gather per lane: a lane's worker holds its
//! records, and delivers them when its batch is full or its window ends (the lane wakes up for
//! that by itself, so a quiet shard's windows end on time too).
//!
//! A page is finished when every lane that got records of it acknowledged them (and holds none
//! of them for a batching route). The shard
//! checkpoints the last sequence number of the newest page before which every page is finished:
//! the checkpoint never passes a record some lane has not delivered. When a lane fails, the
//! reader [`Lanes::reset`]s them (queued work is dropped, the batches being written finish) and
//! rewinds to its checkpoint, so records other lanes had delivered are written again: at least
//! once, as everywhere in eddy.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eddy_record::{ChangeRecord, Item};
use tokio::sync::mpsc;

use super::{Batch, Held, PipelineError, Worker};
use crate::source::Undecodable;
use crate::stop::Stop;

/// One page for the lanes.
#[derive(Default)]
pub struct PageWork {
    /// Decoded records, in sequence order.
    pub records: Vec<ChangeRecord>,
    /// Records that could not be decoded (to the dead letter).
    pub undecodable: Vec<Undecodable>,
    /// Records over `maximum_record_age` (to the dead letter).
    pub expired: Vec<ChangeRecord>,
    /// `source.maximum_record_age`, for the entries' reason.
    pub maximum_record_age: Option<Duration>,
    /// The sequence number to checkpoint once this page and every page before it are finished.
    pub last: Option<String>,
    /// The page's room in the memory budget (`source.max_inflight_bytes`), given back once the
    /// page is finished.
    pub memory: Option<crate::memory::MemoryPermit>,
}

/// The lanes of one shard reader.
pub struct Lanes {
    shard: String,
    lanes: Vec<Lane>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    /// Work of an older generation (before a reset) is dropped by the lanes.
    generation: Arc<AtomicU64>,
    /// Pages handed out and not yet checkpointable, oldest first.
    pending: VecDeque<Pending>,
    next_page: u64,
    max_pages: usize,
    max_records: usize,
    /// A lane's failure, reported by the next call.
    failed: Option<PipelineError>,
    stop: Stop,
}

struct Lane {
    jobs: mpsc::UnboundedSender<Job>,
    task: tokio::task::JoinHandle<Worker>,
}

struct Pending {
    page: u64,
    last: Option<String>,
    /// Lanes that have not yet run their records of this page through the pipeline.
    unprocessed: usize,
    /// Lanes still writing or holding records of this page.
    remaining: usize,
    /// The page's room in the memory budget, held until the page is finished.
    _memory: Option<crate::memory::MemoryPermit>,
}

struct Job {
    generation: u64,
    /// The page the work is of; `None` for a flush.
    page: Option<u64>,
    work: PageWork,
    /// Deliver what batching routes hold (the shard ended).
    flush: bool,
}

/// A lane ran a merged batch of the pages `processed`; the pages `released` (some of them, or
/// earlier ones) are now wholly acknowledged by it.
struct Done {
    processed: Vec<u64>,
    released: Vec<u64>,
    result: Result<(), PipelineError>,
}

impl Lanes {
    /// One lane per worker, reading shard `shard_id`; each lane merges queued sub-batches up to
    /// `max_records` records.
    ///
    /// # Panics
    /// When `workers` is empty.
    pub fn new(workers: Vec<Worker>, shard_id: &str, max_records: usize, stop: Stop) -> Self {
        assert!(!workers.is_empty(), "at least one lane");
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let mut lanes = Self {
            shard: shard_id.to_owned(),
            lanes: Vec::new(),
            done_tx,
            done_rx,
            generation: Arc::new(AtomicU64::new(0)),
            pending: VecDeque::new(),
            next_page: 0,
            max_pages: workers.len() + 1,
            max_records: max_records.max(1),
            failed: None,
            stop,
        };
        lanes.lanes = workers.into_iter().map(|w| lanes.spawn(w)).collect();
        lanes
    }

    fn spawn(&self, worker: Worker) -> Lane {
        let (jobs, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_lane(
            worker,
            self.shard.clone(),
            rx,
            self.done_tx.clone(),
            Arc::clone(&self.generation),
            self.max_records,
            self.stop.clone(),
        ));
        Lane { jobs, task }
    }

    /// Hands `page` to the lanes and returns once at most N + 1 pages wait to be processed (or
    /// stopping was asked), with the sequence number the shard may now checkpoint (the newest
    /// page before which every page is finished), if that moved.
    ///
    /// # Errors
    /// A lane's failure (of this page or an earlier one): [`Lanes::reset`], then rewind.
    pub async fn submit(&mut self, page: PageWork) -> Result<Option<String>, PipelineError> {
        self.collect();
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let n = self.lanes.len();
        let number = self.next_page;
        self.next_page += 1;
        let PageWork { records, undecodable, expired, maximum_record_age, last, memory } = page;
        let mut parts: Vec<PageWork> = (0..n).map(|_| PageWork { maximum_record_age, ..PageWork::default() }).collect();
        for r in records {
            parts[lane_of(&r.dynamodb.keys, n)].records.push(r);
        }
        parts[0].undecodable = undecodable;
        parts[0].expired = expired;
        let generation = self.generation.load(Ordering::SeqCst);
        let mut remaining = 0;
        for (lane, work) in self.lanes.iter().zip(parts) {
            if work.records.is_empty() && work.undecodable.is_empty() && work.expired.is_empty() {
                continue;
            }
            remaining += 1;
            // A lane's task only ends when its sender is dropped (in `reset`).
            let _ = lane.jobs.send(Job { generation, page: Some(number), work, flush: false });
        }
        self.pending.push_back(Pending { page: number, last, unprocessed: remaining, remaining, _memory: memory });
        let mut checkpoint = self.advance();
        // Only pages still to be processed count: pages whose records a batching route holds
        // are bounded by its `batch_size`, and wait for its window.
        while self.pending.iter().filter(|p| p.unprocessed > 0).count() > self.max_pages
            && self.failed.is_none()
            && !self.stop.is_set()
        {
            let stop = self.stop.clone();
            tokio::select! {
                () = self.wait_one() => {}
                () = stop.wait() => {}
            }
            checkpoint = self.advance().or(checkpoint);
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        Ok(checkpoint)
    }

    /// Waits until every page handed out went through the lanes; with `flush` (the shard
    /// ended), batching routes deliver what they hold and every page is finished. Returns the
    /// checkpoint, as [`Lanes::submit`]. Without `flush` (stopping), records held for a batching
    /// window stay unacknowledged and are read again.
    ///
    /// # Errors
    /// A lane's failure.
    pub async fn drain(&mut self, flush: bool) -> Result<Option<String>, PipelineError> {
        self.collect();
        if flush {
            let generation = self.generation.load(Ordering::SeqCst);
            for lane in &self.lanes {
                let _ = lane.jobs.send(Job { generation, page: None, work: PageWork::default(), flush: true });
            }
        }
        let busy = |p: &Pending| if flush { p.remaining > 0 } else { p.unprocessed > 0 };
        while self.pending.iter().any(busy) && self.failed.is_none() {
            self.wait_one().await;
        }
        self.settled()
    }

    /// The checkpoint the pages finished so far allow, if it moved (a quiet shard's lanes
    /// deliver held records when their windows end, without a new page).
    ///
    /// # Errors
    /// A lane's failure.
    pub fn settled(&mut self) -> Result<Option<String>, PipelineError> {
        self.collect();
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        Ok(self.advance())
    }

    /// After a failure, before the reader rewinds: drops the queued work, waits for the batches
    /// being written (each ends, or is abandoned when stopping), and starts the lanes afresh.
    pub async fn reset(&mut self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let lanes = std::mem::take(&mut self.lanes);
        let mut workers = Vec::with_capacity(lanes.len());
        for lane in lanes {
            drop(lane.jobs);
            let mut worker = lane.task.await.expect("a lane task panicked");
            // The shard rewinds to its checkpoint, before anything held.
            worker.discard_held();
            workers.push(worker);
        }
        self.lanes = workers.into_iter().map(|w| self.spawn(w)).collect();
        while self.done_rx.try_recv().is_ok() {}
        self.pending.clear();
        self.failed = None;
    }

    /// Waits for the next completion a lane reports (forever when no page is out); the pages
    /// it finishes are popped, and their memory given back, by the next [`Lanes::settled`].
    pub async fn finished_one(&mut self) {
        self.wait_one().await;
    }

    /// Takes every completion already reported.
    fn collect(&mut self) {
        while let Ok(done) = self.done_rx.try_recv() {
            self.record(done);
        }
    }

    async fn wait_one(&mut self) {
        // `self` holds a sender, so this never ends with `None`.
        if let Some(done) = self.done_rx.recv().await {
            self.record(done);
        }
    }

    fn record(&mut self, done: Done) {
        if let Err(e) = done.result {
            self.failed.get_or_insert(e);
            return;
        }
        for page in done.processed {
            if let Some(p) = self.pending.iter_mut().find(|p| p.page == page) {
                p.unprocessed -= 1;
            }
        }
        for page in done.released {
            if let Some(p) = self.pending.iter_mut().find(|p| p.page == page) {
                p.remaining -= 1;
            }
        }
    }

    /// Pops the finished pages at the front; the newest one's checkpoint, if any.
    fn advance(&mut self) -> Option<String> {
        let mut checkpoint = None;
        while self.pending.front().is_some_and(|p| p.remaining == 0) {
            if let Some(last) = self.pending.pop_front().and_then(|p| p.last) {
                checkpoint = Some(last);
            }
        }
        checkpoint
    }
}

impl Drop for Lanes {
    /// A reader that ends without draining (a lost lease, an error) leaves nothing writing
    /// behind it: what was not acknowledged is not checkpointed and is read again.
    fn drop(&mut self) {
        for lane in &self.lanes {
            lane.task.abort();
        }
    }
}

/// One lane: takes its queued sub-batches, merged up to `max_records` records, through its
/// worker, and reports each merged batch; wakes up by itself when a batching window of what it
/// holds ends; returns the worker when its queue is closed.
async fn run_lane(
    mut worker: Worker,
    shard: String,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    done: mpsc::UnboundedSender<Done>,
    generation: Arc<AtomicU64>,
    max_records: usize,
    stop: Stop,
) -> Worker {
    let mut next: Option<Job> = None;
    // The lane's pages each batch of the worker carried, until no batching route holds them.
    let mut held: Held<Vec<u64>> = Held::default();
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => {
                let job = match worker.next_due() {
                    Some(due) => {
                        match tokio::time::timeout_at(tokio::time::Instant::from_std(due), jobs.recv()).await {
                            Ok(job) => job,
                            // A window ended: an empty batch delivers what it held.
                            Err(_) => Some(Job {
                                generation: generation.load(Ordering::SeqCst),
                                page: None,
                                work: PageWork::default(),
                                flush: false,
                            }),
                        }
                    }
                    None => jobs.recv().await,
                };
                match job {
                    Some(job) => job,
                    None => return worker,
                }
            }
        };
        let current = generation.load(Ordering::SeqCst);
        if first.generation != current {
            continue;
        }
        let mut pages: Vec<u64> = first.page.into_iter().collect();
        let mut merged = first.work;
        let mut flush = first.flush;
        while !flush && merged.records.len() < max_records {
            match jobs.try_recv() {
                Ok(job) if job.generation != current => {}
                Ok(job) if merged.records.len() + job.work.records.len() > max_records => {
                    next = Some(job);
                    break;
                }
                Ok(job) => {
                    pages.extend(job.page);
                    merged.records.extend(job.work.records);
                    merged.undecodable.extend(job.work.undecodable);
                    merged.expired.extend(job.work.expired);
                    flush |= job.flush;
                }
                Err(_) => break,
            }
        }
        let batch = Batch {
            records: &merged.records,
            undecodable: &merged.undecodable,
            expired: &merged.expired,
            maximum_record_age: merged.maximum_record_age,
            flush,
        };
        let report = match worker.process(&shard, batch, &stop).await {
            Ok(p) => Done {
                released: held.release(p.page, pages.clone(), p.oldest_held).into_iter().flatten().collect(),
                processed: pages,
                result: Ok(()),
            },
            Err(e) => Done { processed: pages, released: Vec::new(), result: Err(e) },
        };
        if done.send(report).is_err() {
            return worker;
        }
    }
}

/// The lane of an item's key among `n`: the same key always gets the same lane.
fn lane_of(keys: &Item, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let mut hasher = std::hash::DefaultHasher::new();
    keys.hash(&mut hasher);
    (hasher.finish() % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_gets_the_same_lane_and_keys_spread() {
        let key = |k: u32| -> Item { [("pk".to_owned(), eddy_record::AttributeValue::S(format!("k{k}")))].into() };
        for k in 0..100 {
            assert_eq!(lane_of(&key(k), 4), lane_of(&key(k), 4));
        }
        let mut counts = [0usize; 4];
        for k in 0..1000 {
            counts[lane_of(&key(k), 4)] += 1;
        }
        assert!(counts.iter().all(|c| (150..350).contains(c)), "{counts:?}");
    }
}
