//! Checkpoints: per shard, the position up to which every sink of every route acknowledged.
//!
//! [`CheckpointStore`] is the seam; [`local::LocalStore`] keeps crash-safe files for one process.
//! A reader saves a checkpoint only after the sinks acknowledged the batch, so a restart resumes
//! after the last acknowledged record and replays at most the batch that was in flight.

pub mod local;

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// How far a shard has been processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checkpoint {
    /// Every record up to and including this sequence number was acknowledged; resume after it
    /// (GetShardIterator `AFTER_SEQUENCE_NUMBER`).
    After(String),
    /// The shard is closed and every record in it was acknowledged (SHARD_END): its children may
    /// start.
    ShardEnd,
}

/// Why a checkpoint was not saved.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The lease on the shard is no longer this process's: another process took it (the lease
    /// expired) or this one handed it over. The reader stops without checkpointing; the new owner
    /// resumes from the last checkpoint.
    #[error("the lease on shard {shard} is no longer held by this process")]
    LeaseLost {
        /// The shard.
        shard: String,
    },
    /// The store could not be written; the reader stops rather than run ahead of its
    /// checkpoints.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Where checkpoints are kept.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Every shard's checkpoint for this stream.
    ///
    /// # Errors
    /// When the store cannot be read; starting without checkpoints would replay or skip.
    async fn load(&self) -> anyhow::Result<HashMap<String, Checkpoint>>;

    /// Saves `checkpoint` for `shard_id`, durably, replacing the previous one.
    ///
    /// # Errors
    /// [`CheckpointError::LeaseLost`] when a lease store no longer gives this process the shard;
    /// [`CheckpointError::Store`] when it could not be saved.
    async fn save(&self, shard_id: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError>;
}

/// A document kept beside the checkpoints, written once and then only read: the snapshot's plan
/// (when its scan began, and which stream shards were open then). The first writer wins, so every
/// process sharing a lease table works to the same plan.
#[async_trait]
pub trait PlanStore: Send + Sync {
    /// The recorded plan's text, if any.
    ///
    /// # Errors
    /// When the store cannot be read.
    async fn plan(&self) -> anyhow::Result<Option<String>>;

    /// Records `text` unless a plan is recorded already; returns the recorded plan (`text`, or
    /// the one another process wrote first).
    ///
    /// # Errors
    /// When the store cannot be written or read.
    async fn record_plan(&self, text: &str) -> anyhow::Result<String>;
}
