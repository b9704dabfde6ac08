//! The lease store: reads and conditional writes of lease rows, nothing else (KCL's
//! `LeaseRefresher`). Every write is conditioned, so two processes can never both believe they
//! hold a shard: a take on the counter the taker saw, an owner's write on its id and the counter it
//! last wrote. `dynamo::DynamoLeaseStore` keeps the rows in DynamoDB; the logic that
//! decides what to take, renew and hand over is `manager::LeaseManager`.

use async_trait::async_trait;

use crate::checkpoint::Checkpoint;
use crate::source::ShardInfo;

/// One lease row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The shard.
    pub shard_id: String,
    /// The process holding it, if any.
    pub owner: Option<String>,
    /// Bumped by every write of the owner (and by a take).
    pub counter: u64,
    /// How far the shard has been processed.
    pub checkpoint: Option<Checkpoint>,
    /// The shard it was split from.
    pub parent: Option<String>,
    /// A process that asked for this lease.
    pub handoff_to: Option<String>,
}

/// What an owner's fenced write changes, besides bumping the counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing else: a renewal.
    Renew,
    /// Saves the shard's checkpoint.
    Checkpoint(Checkpoint),
    /// Gives the lease up: to `Some(process)` (a handoff it asked for), or to nobody. Clears
    /// `handoff_to`.
    Release(Option<String>),
}

/// Reads and conditional writes of the lease rows of one stream.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Every lease of the stream (a consistent read).
    ///
    /// # Errors
    /// When the store cannot be read.
    async fn list(&self) -> anyhow::Result<Vec<Lease>>;

    /// Adds a lease for a newly found shard (no owner, counter 0); a no-op if it exists.
    ///
    /// # Errors
    /// When the store cannot be written.
    async fn create(&self, shard: &ShardInfo) -> anyhow::Result<()>;

    /// Makes `owner` the owner of `shard` if its counter is still `counter` (bumping it and
    /// clearing `handoff_to`). `Ok(false)` when the condition failed.
    ///
    /// # Errors
    /// When the store cannot be written.
    async fn take(&self, shard: &str, counter: u64, owner: &str) -> anyhow::Result<bool>;

    /// An owner's write: applies `change` and bumps the counter if `owner` still owns `shard` at
    /// `counter`. `Ok(false)` when the condition failed: the lease is not `owner`'s any more.
    ///
    /// # Errors
    /// When the store cannot be written.
    async fn update(&self, shard: &str, owner: &str, counter: u64, change: Change) -> anyhow::Result<bool>;

    /// Asks `owner` of `shard` to hand it to `to` (sets `handoff_to` if `owner` still owns it and
    /// nobody asked yet; otherwise a no-op).
    ///
    /// # Errors
    /// When the store cannot be written.
    async fn request_handoff(&self, shard: &str, owner: &str, to: &str) -> anyhow::Result<()>;
}

/// Lease rows in memory with the same conditions as a real store (tests of the lease logic).
#[cfg(test)]
pub mod memory {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// The rows, keyed by shard.
    #[derive(Default)]
    pub struct MemoryLeaseStore {
        /// The rows.
        pub rows: Mutex<BTreeMap<String, Lease>>,
    }

    #[async_trait]
    impl LeaseStore for MemoryLeaseStore {
        async fn list(&self) -> anyhow::Result<Vec<Lease>> {
            Ok(self.rows.lock().unwrap().values().cloned().collect())
        }

        async fn create(&self, shard: &ShardInfo) -> anyhow::Result<()> {
            self.rows.lock().unwrap().entry(shard.shard_id.clone()).or_insert_with(|| Lease {
                shard_id: shard.shard_id.clone(),
                owner: None,
                counter: 0,
                checkpoint: None,
                parent: shard.parent_shard_id.clone(),
                handoff_to: None,
            });
            Ok(())
        }

        async fn take(&self, shard: &str, counter: u64, owner: &str) -> anyhow::Result<bool> {
            let mut rows = self.rows.lock().unwrap();
            let Some(l) = rows.get_mut(shard).filter(|l| l.counter == counter) else { return Ok(false) };
            l.owner = Some(owner.to_owned());
            l.counter += 1;
            l.handoff_to = None;
            Ok(true)
        }

        async fn update(&self, shard: &str, owner: &str, counter: u64, change: Change) -> anyhow::Result<bool> {
            let mut rows = self.rows.lock().unwrap();
            let Some(l) = rows.get_mut(shard).filter(|l| l.counter == counter && l.owner.as_deref() == Some(owner))
            else {
                return Ok(false);
            };
            l.counter += 1;
            match change {
                Change::Renew => {}
                Change::Checkpoint(c) => l.checkpoint = Some(c),
                Change::Release(to) => {
                    l.owner = to;
                    l.handoff_to = None;
                }
            }
            Ok(true)
        }

        async fn request_handoff(&self, shard: &str, owner: &str, to: &str) -> anyhow::Result<()> {
            let mut rows = self.rows.lock().unwrap();
            if let Some(l) = rows.get_mut(shard) {
                if l.owner.as_deref() == Some(owner) && l.handoff_to.is_none() {
                    l.handoff_to = Some(to.to_owned());
                }
            }
            Ok(())
        }
    }
}
