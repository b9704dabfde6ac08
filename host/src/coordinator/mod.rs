//! The coordinator: shard discovery and lineage (which shards to read, from where, and when),
//! the leases that say which of them this process reads, and one [`reader`] per shard.
//!
//! The walk of one record goes one way through the folders: `source` (GetRecords, decode) →
//! `coordinator::reader` → `pipeline` (routes, processors, sinks, dead letter) → `checkpoint`
//! (through `lease` when several processes share the stream). The coordinator owns both leases
//! and readers; readers and leases never import each other.
//!
//! Every `shard_discovery_interval` (and at once when a shard ends) the coordinator describes the
//! stream and starts a [`ShardReader`] for each shard that is neither finished nor running and
//! whose parents are drained: each parent's checkpoint is SHARD_END, or the parent is no longer
//! in the stream. Records of one key stay in order across a split (one parent) and a Kinesis merge
//! (two parents) because a child starts only after every parent has been read to the end.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use eddy_record::StreamRecord;
use tokio::task::JoinSet;

pub mod reader;

use crate::checkpoint::Checkpoint;
use crate::lease::Leases;
use crate::pipeline::Pipeline;
use crate::source::polling::StartPosition;
use crate::source::{IteratorPosition, ShardInfo, StreamsApi, StreamsError};
use crate::stop::{Stop, StopHandle};
use reader::{ReaderExit, ReaderSettings, ShardReader};

/// Why one discovery round failed.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    /// DescribeStream failed.
    #[error("{0}")]
    Streams(#[from] StreamsError),
    /// The lease store (or checkpoint store) failed.
    #[error("{0:#}")]
    Leases(#[from] anyhow::Error),
}

/// Runs the readers of one stream.
pub struct Coordinator {
    /// The streams API.
    pub api: Arc<dyn StreamsApi>,
    /// Which shards this process reads, and where it checkpoints.
    pub leases: Arc<dyn Leases>,
    /// The pipeline every reader feeds.
    pub pipeline: Arc<Pipeline>,
    /// Where shards without a checkpoint start.
    pub start: StartPosition,
    /// How often to look for new shards.
    pub discovery_interval: Duration,
    /// Reader settings.
    pub settings: ReaderSettings,
    /// The most readers this process runs at once (`snapshot.concurrency` for a snapshot's
    /// segments); `None`: one per shard held. Further ready shards wait until a reader ends.
    pub max_readers: Option<usize>,
    /// Observes shutdown.
    pub stop: Stop,
    /// Triggers shutdown when a reader fails.
    pub stop_handle: StopHandle,
}

impl Coordinator {
    /// Reads the stream until stopping is asked or a reader fails; then waits for every reader
    /// to finish its batch in flight and checkpoint, and releases the leases.
    ///
    /// # Errors
    /// The first reader failure, or a fatal DescribeStream error.
    pub async fn run(self) -> anyhow::Result<()> {
        let checkpoints = self.leases.checkpoints();
        let first_start = checkpoints.load().await.context("cannot load checkpoints")?.is_empty();
        let mut finished: HashSet<String> = HashSet::new();
        // Running readers, each with the handle that stops it.
        let mut running: HashMap<String, StopHandle> = HashMap::new();
        let mut readers: JoinSet<(String, anyhow::Result<ReaderExit>)> = JoinSet::new();
        let mut failure: Option<anyhow::Error> = None;
        let mut errors = 0u32;
        let mut first_discovery = true;
        let mut shards: Vec<ShardInfo> = Vec::new();
        let mut ended = false;
        let mut described: Option<Instant> = None;
        let tick = self.leases.tick().map_or(self.discovery_interval, |t| t.min(self.discovery_interval));

        while !self.stop.is_set() {
            let round = async {
                if described.is_none_or(|at| at.elapsed() >= self.discovery_interval) {
                    let desc = self.api.describe_stream().await?;
                    described = Some(Instant::now());
                    shards = desc.shards;
                    ended = desc.ended;
                }
                let running_ids: HashSet<String> = running.keys().cloned().collect();
                // Readiness needs the store's view of finished and known shards (a read, no writes).
                let view = self.leases.lineage().await?;
                finished.extend(view.finished.iter().cloned());
                let present: HashSet<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
                let ready: Vec<&ShardInfo> = shards
                    .iter()
                    .filter(|s| !finished.contains(&s.shard_id))
                    .filter(|s| {
                        s.parents().all(|p| finished.contains(p) || (!present.contains(p) && !view.known.contains(p)))
                    })
                    .collect();
                let assignment = self.leases.sync(&shards, &ready, &running_ids).await?;
                // Readers of shards no longer held (lost, or asked for by another process) stop.
                for (id, handle) in &running {
                    if !assignment.held.contains_key(id) {
                        tracing::info!(shard = id, "stopping the reader: the lease is no longer held here");
                        handle.stop();
                    }
                }
                for shard in ready {
                    let id = &shard.shard_id;
                    let Some(saved) = assignment.held.get(id) else { continue };
                    if running.contains_key(id) {
                        continue;
                    }
                    if self.max_readers.is_some_and(|max| running.len() >= max) {
                        break;
                    }
                    let start = match saved {
                        Some(Checkpoint::After(seq)) => IteratorPosition::AfterSequence(seq.clone()),
                        Some(Checkpoint::ShardEnd) => continue,
                        None => match self.initial_position(shard, first_start && first_discovery) {
                            Some(p) => p,
                            None => {
                                tracing::info!(shard = id, "skipping closed shard older than the start position");
                                checkpoints.save(id, &Checkpoint::ShardEnd).await.map_err(anyhow::Error::from)?;
                                finished.insert(id.clone());
                                continue;
                            }
                        },
                    };
                    let (handle, stop) = crate::stop::channel();
                    running.insert(id.clone(), handle);
                    let reader = ShardReader {
                        api: Arc::clone(&self.api),
                        shard_id: id.clone(),
                        start,
                        workers: (0..self.settings.parallelization_factor.max(1))
                            .map(|_| self.pipeline.worker())
                            .collect(),
                        checkpoints: Arc::clone(&checkpoints),
                        settings: self.settings.clone(),
                        stop,
                    };
                    let id = id.clone();
                    readers.spawn(async move { (id, reader.run().await) });
                }
                first_discovery = false;
                Ok::<(), RoundError>(())
            };
            // A call that hangs must not hold up a stop (the readers are stopped below).
            let round: Result<(), RoundError> = tokio::select! {
                r = round => r,
                () = self.stop.wait() => break,
            };
            match round {
                Ok(()) => {
                    errors = 0;
                    // Connected, and (with a lease table) joined: ready for `GET /ready`.
                    crate::metrics::set_ready();
                }
                Err(RoundError::Streams(StreamsError::Fatal(message))) => {
                    failure = Some(anyhow::anyhow!("DescribeStream failed: {message}"));
                    self.stop_handle.stop();
                    break;
                }
                Err(e) => {
                    errors += 1;
                    if errors >= self.settings.max_consecutive_errors {
                        failure = Some(anyhow::anyhow!("shard discovery failed {errors} times in a row: {e}"));
                        self.stop_handle.stop();
                        break;
                    }
                    tracing::warn!("shard discovery failed, retrying: {e}");
                }
            }
            if ended && !shards.is_empty() && shards.iter().all(|s| finished.contains(&s.shard_id)) {
                tracing::info!("the stream has ended and every shard is drained");
                break;
            }
            // Wait for the next tick, a reader to end (its children may start now), or stop.
            let deadline = tokio::time::sleep(tick);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    _ = self.stop.wait() => break,
                    Some(joined) = readers.join_next(), if !readers.is_empty() => {
                        let (id, result) = joined.context("a shard reader panicked")?;
                        running.remove(&id);
                        match result {
                            Ok(ReaderExit::ShardEnd) => {
                                finished.insert(id);
                                described = None;
                                break;
                            }
                            Ok(ReaderExit::Stopped) => break,
                            Err(e) => {
                                tracing::error!("{e:#}");
                                failure.get_or_insert(e);
                                self.stop_handle.stop();
                            }
                        }
                    }
                }
            }
        }
        for handle in running.values() {
            handle.stop();
        }
        while let Some(joined) = readers.join_next().await {
            let (_, result) = joined.context("a shard reader panicked")?;
            if let Err(e) = result {
                tracing::error!("{e:#}");
                failure.get_or_insert(e);
            }
        }
        // A lease table that does not answer must not hold up a stop: the leases then expire.
        if self.stop.within_grace(self.leases.release_all()).await.is_none() {
            tracing::warn!("the lease table did not answer in time; the leases not released will expire");
        }
        failure.map_or(Ok(()), Err)
    }

    /// Where a shard without a checkpoint starts; `None` to skip it (a closed shard that lies
    /// entirely before the start position).
    fn initial_position(&self, shard: &ShardInfo, first_look: bool) -> Option<IteratorPosition> {
        match &self.start {
            StartPosition::TrimHorizon => Some(IteratorPosition::TrimHorizon),
            // Every shard, closed ones too: the API positions the iterator (a closed shard that
            // ended before the time is read empty to SHARD_END).
            StartPosition::AtTimestamp(millis) => Some(IteratorPosition::AtTimestamp(*millis)),
            // `latest` means "from now on": only for shards seen at the very first start. Closed
            // ones hold only older records; shards found later start at their beginning so that
            // nothing written after the start is missed.
            StartPosition::Latest if first_look => match shard.ending_sequence_number {
                Some(_) => None,
                None => Some(IteratorPosition::Latest),
            },
            StartPosition::Latest => Some(IteratorPosition::TrimHorizon),
            StartPosition::AfterSequence(seq) | StartPosition::AtSequence(seq) => {
                let after_start = shard
                    .starting_sequence_number
                    .as_deref()
                    .is_none_or(|s| StreamRecord::sequence_cmp(s, seq).is_le());
                let before_end =
                    shard.ending_sequence_number.as_deref().is_none_or(|e| StreamRecord::sequence_cmp(seq, e).is_le());
                if after_start && before_end {
                    Some(match &self.start {
                        StartPosition::AfterSequence(_) => IteratorPosition::AfterSequence(seq.clone()),
                        _ => IteratorPosition::AtSequence(seq.clone()),
                    })
                } else if !before_end {
                    None
                } else {
                    Some(IteratorPosition::TrimHorizon)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
