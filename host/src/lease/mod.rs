//! Leases: which shards this process reads, and where it checkpoints them.
//!
//! [`Leases`] is the seam between the coordinator and the lease store:
//! - [`LocalLeases`] (`checkpoints: {type: local}`): one process holds every shard, checkpoints
//!   in local files.
//! - [`manager::LeaseManager`] (`checkpoints: {type: dynamodb}`): processes share the shards
//!   through a lease table, KCL-style: every renewal and checkpoint is a write conditioned on the
//!   owner and the lease counter, a lease whose counter stands still for `lease_duration` (as the
//!   taker sees it) is expired, shards spread evenly, and a graceful stop releases its leases at
//!   once. The rows live in a [`store::LeaseStore`] ([`dynamo::DynamoLeaseStore`] in DynamoDB).

pub mod dynamo;
pub mod manager;
pub mod report;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::source::ShardInfo;
use crate::spec::Problem;

/// `checkpoints:`: where each shard's progress is kept, one variant per type.
#[derive(Debug, Clone)]
pub enum CheckpointConfig {
    /// `type: local`: crash-safe files under `path`, for one process.
    Local(crate::checkpoint::local::LocalCheckpoints),
    /// `type: dynamodb`: a lease table shared by every eddy process reading the stream.
    Dynamodb(dynamo::LeaseTableConfig),
}

/// The checkpoint store types: each `type:` name and how its section is read.
pub const TYPES: &[(&str, crate::spec::Parse<CheckpointConfig>)] = &[
    ("local", |v| crate::spec::deserialize(v).map(CheckpointConfig::Local)),
    ("dynamodb", |v| crate::spec::deserialize(v).map(CheckpointConfig::Dynamodb)),
];

impl Default for CheckpointConfig {
    /// Local checkpoints in `.eddy/state` (resolved against the pipeline file's folder).
    fn default() -> Self {
        CheckpointConfig::Local(crate::checkpoint::local::LocalCheckpoints::default())
    }
}

impl CheckpointConfig {
    /// What the section's parser cannot see.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            CheckpointConfig::Local(_) => Vec::new(),
            CheckpointConfig::Dynamodb(t) => t.problems(),
        }
    }

    /// Resolves relative paths against `base`, and fills what the lease table inherits from
    /// the source.
    pub fn complete(&mut self, base: &std::path::Path, inherited: &crate::spec::Inherited<'_>) {
        match self {
            CheckpointConfig::Local(l) => {
                if l.path.is_relative() {
                    l.path = base.join(&l.path);
                }
            }
            CheckpointConfig::Dynamodb(t) => inherited.fill(&mut t.endpoint, &mut t.region),
        }
    }
}

/// What the lease store says after a [`Leases::sync`].
#[derive(Debug, Default)]
pub struct Assignment {
    /// Shards this process holds and should be reading, with their checkpoints (`None`: never
    /// checkpointed). A running reader whose shard is missing here must stop.
    pub held: HashMap<String, Option<Checkpoint>>,
}

/// The store's view for lineage: which shards are finished and which it knows.
#[derive(Debug, Default)]
pub struct Lineage {
    /// Shards read to their end (SHARD_END) by any process.
    pub finished: HashSet<String>,
    /// Shards the store has a row for. A parent that is neither in the stream nor here counts as
    /// drained.
    pub known: HashSet<String>,
}

/// Decides which shards this process reads.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Which shards are finished and which the store knows (a read; nothing is renewed or taken).
    ///
    /// # Errors
    /// When the store cannot be read.
    async fn lineage(&self) -> anyhow::Result<Lineage>;

    /// Registers the stream's `shards`, renews the leases held, takes (or asks for) leases of
    /// `ready` shards (unfinished, parents drained) for an even spread, and hands over leases
    /// another process asked for once their reader stopped. `running`: shards with a live reader
    /// in this process.
    ///
    /// # Errors
    /// When the store cannot be read; the coordinator retries on its next tick.
    async fn sync(
        &self,
        shards: &[ShardInfo],
        ready: &[&ShardInfo],
        running: &HashSet<String>,
    ) -> anyhow::Result<Assignment>;

    /// Where readers save checkpoints (fenced by the lease for lease tables).
    fn checkpoints(&self) -> Arc<dyn CheckpointStore>;

    /// How often [`Leases::sync`] must run for held leases to stay held; `None`: no renewal.
    fn tick(&self) -> Option<Duration>;

    /// Gives up every lease held (a graceful stop, after the readers checkpointed), so that other
    /// processes take the shards at once instead of waiting for the leases to expire.
    async fn release_all(&self);
}

/// `checkpoints: {type: local}`: this process reads every shard.
pub struct LocalLeases {
    store: Arc<dyn CheckpointStore>,
}

impl LocalLeases {
    /// Leases over a local checkpoint store.
    pub fn new(store: Arc<dyn CheckpointStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl Leases for LocalLeases {
    async fn lineage(&self) -> anyhow::Result<Lineage> {
        let saved = self.store.load().await?;
        Ok(Lineage {
            finished: saved.iter().filter(|(_, c)| **c == Checkpoint::ShardEnd).map(|(s, _)| s.clone()).collect(),
            known: saved.keys().cloned().collect(),
        })
    }

    async fn sync(
        &self,
        _shards: &[ShardInfo],
        ready: &[&ShardInfo],
        _running: &HashSet<String>,
    ) -> anyhow::Result<Assignment> {
        let saved = self.store.load().await?;
        Ok(Assignment { held: ready.iter().map(|s| (s.shard_id.clone(), saved.get(&s.shard_id).cloned())).collect() })
    }

    fn checkpoints(&self) -> Arc<dyn CheckpointStore> {
        Arc::clone(&self.store)
    }

    fn tick(&self) -> Option<Duration> {
        None
    }

    async fn release_all(&self) {}
}
