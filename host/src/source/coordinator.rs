//! Shard discovery and lineage: which shards to read, from where, and when.
//!
//! Every `shard_discovery_interval` (and at once when a shard ends) the coordinator describes the
//! stream and starts a [`ShardReader`] for each shard that is neither finished nor running and
//! whose parent is drained: the parent's checkpoint is SHARD_END, or the parent is no longer in
//! the stream. Records of one key stay in order across a split because a child starts only after
//! its parent has been read to the end.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use eddy_sink_api::StreamRecord;
use tokio::task::JoinSet;

use super::shard::{ReaderExit, ReaderSettings, ShardReader};
use super::{IteratorPosition, ShardInfo, StreamsApi, StreamsError};
use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::config::StartPosition;
use crate::pipeline::Pipeline;
use crate::stop::{Stop, StopHandle};

/// Runs the readers of one stream.
pub struct Coordinator {
    /// The streams API.
    pub api: Arc<dyn StreamsApi>,
    /// Checkpoints.
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// The pipeline every reader feeds.
    pub pipeline: Arc<Pipeline>,
    /// Where shards without a checkpoint start.
    pub start: StartPosition,
    /// How often to look for new shards.
    pub discovery_interval: Duration,
    /// Reader settings.
    pub settings: ReaderSettings,
    /// Observes shutdown.
    pub stop: Stop,
    /// Triggers shutdown when a reader fails.
    pub stop_handle: StopHandle,
}

impl Coordinator {
    /// Reads the stream until stopping is asked or a reader fails; then waits for every reader
    /// to finish its batch in flight and checkpoint.
    ///
    /// # Errors
    /// The first reader failure, or a fatal DescribeStream error.
    pub async fn run(self) -> anyhow::Result<()> {
        let saved = self.checkpoints.load().await.context("cannot load checkpoints")?;
        let first_start = saved.is_empty();
        let mut finished: HashSet<String> =
            saved.iter().filter(|(_, c)| **c == Checkpoint::ShardEnd).map(|(s, _)| s.clone()).collect();
        let mut running: HashSet<String> = HashSet::new();
        let mut readers: JoinSet<(String, anyhow::Result<ReaderExit>)> = JoinSet::new();
        let mut failure: Option<anyhow::Error> = None;
        let mut discovery_errors = 0u32;
        let mut first_discovery = true;

        while !self.stop.is_set() {
            match self.api.describe_stream().await {
                Ok(desc) => {
                    discovery_errors = 0;
                    let present: HashSet<&str> = desc.shards.iter().map(|s| s.shard_id.as_str()).collect();
                    for shard in &desc.shards {
                        let id = &shard.shard_id;
                        if finished.contains(id) || running.contains(id) {
                            continue;
                        }
                        let parent_drained = match &shard.parent_shard_id {
                            None => true,
                            Some(p) => finished.contains(p) || !present.contains(p.as_str()),
                        };
                        if !parent_drained {
                            continue;
                        }
                        let start = match saved.get(id) {
                            Some(Checkpoint::After(seq)) => IteratorPosition::AfterSequence(seq.clone()),
                            Some(Checkpoint::ShardEnd) => continue,
                            None => match self.initial_position(shard, first_start && first_discovery) {
                                Some(p) => p,
                                None => {
                                    tracing::info!(shard = id, "skipping closed shard older than the start position");
                                    self.checkpoints.save(id, &Checkpoint::ShardEnd).await?;
                                    finished.insert(id.clone());
                                    continue;
                                }
                            },
                        };
                        running.insert(id.clone());
                        let reader = ShardReader {
                            api: Arc::clone(&self.api),
                            shard_id: id.clone(),
                            start,
                            worker: self.pipeline.worker(),
                            checkpoints: Arc::clone(&self.checkpoints),
                            settings: self.settings.clone(),
                            stop: self.stop.clone(),
                        };
                        let id = id.clone();
                        readers.spawn(async move { (id, reader.run().await) });
                    }
                    first_discovery = false;
                    if desc.ended && desc.shards.iter().all(|s| finished.contains(&s.shard_id)) {
                        tracing::info!("the stream has ended and every shard is drained");
                        break;
                    }
                }
                Err(StreamsError::Fatal(message)) => {
                    failure = Some(anyhow::anyhow!("DescribeStream failed: {message}"));
                    self.stop_handle.stop();
                    break;
                }
                Err(e) => {
                    discovery_errors += 1;
                    if discovery_errors >= self.settings.max_consecutive_errors {
                        failure = Some(anyhow::anyhow!("DescribeStream failed {discovery_errors} times in a row: {e}"));
                        self.stop_handle.stop();
                        break;
                    }
                    tracing::warn!("DescribeStream failed, retrying: {e}");
                }
            }
            // Wait for the next discovery, a reader to end (its children may start now), or stop.
            let deadline = tokio::time::sleep(self.discovery_interval);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    _ = self.stop.wait() => break,
                    Some(joined) = readers.join_next(), if !readers.is_empty() => {
                        let (id, result) = joined.context("a shard reader panicked")?;
                        running.remove(&id);
                        match result {
                            Ok(ReaderExit::ShardEnd) => { finished.insert(id); break; }
                            Ok(ReaderExit::Stopped) => {}
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
        while let Some(joined) = readers.join_next().await {
            let (_, result) = joined.context("a shard reader panicked")?;
            if let Err(e) = result {
                tracing::error!("{e:#}");
                failure.get_or_insert(e);
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Where a shard without a checkpoint starts; `None` to skip it (a closed shard that lies
    /// entirely before the start position).
    fn initial_position(&self, shard: &ShardInfo, first_look: bool) -> Option<IteratorPosition> {
        match &self.start {
            StartPosition::TrimHorizon => Some(IteratorPosition::TrimHorizon),
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
