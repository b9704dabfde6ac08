//! Taking, renewing, balancing and handing over leases, after KCL's lease coordinator
//! (`LeaseTaker`, `LeaseRenewer`), on any [`LeaseStore`] and with the time taken from a
//! [`Clock`], so the rules are unit-tested without a table and without sleeping.
//!
//! The rules:
//! - Every renewal, checkpoint and release is a write conditioned on `owner = me AND counter =
//!   what I last wrote`, so a process that lost its lease can never write over the new owner's
//!   checkpoint.
//! - A lease is expired when its counter has not moved for `lease_duration` as seen by the
//!   process looking at it (no clocks are compared between processes); taking it is a write
//!   conditioned on the counter it saw.
//! - Owners renew every third of `lease_duration`. An owner that cannot renew for a whole
//!   `lease_duration` stops reading the shard, since another process may have taken it.
//! - Shards spread evenly: a process below its share (ready shards / live processes, rounded up)
//!   takes free or expired leases, and if there are none, asks the busiest process for one
//!   (`handoff_to`). That process stops the shard's reader after its batch in flight, which
//!   checkpoints, and then hands the lease over: no two readers ever overlap on a shard.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::store::{Change, Lease, LeaseStore};
use super::{Assignment, Leases, Lineage};
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::source::ShardInfo;

/// Where the lease logic reads the time.
pub trait Clock: Send + Sync {
    /// Now, on a monotonic clock.
    fn now(&self) -> Instant;
}

/// The process's monotonic clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A lease this process holds: the counter it last wrote, and when.
struct Held {
    counter: u64,
    renewed: Instant,
}

/// One process's leases on one stream.
pub struct LeaseManager {
    store: Arc<dyn LeaseStore>,
    clock: Arc<dyn Clock>,
    me: String,
    lease_duration: Duration,
    /// Leases held, each behind its own lock so that a renewal and a checkpoint of the same shard
    /// never race on the counter.
    held: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Held>>>>>,
    /// For every lease: the counter last seen and when it was first seen at that value.
    seen: Mutex<HashMap<String, (u64, Instant)>>,
    /// The most unfinished leases this process holds at once (`snapshot.concurrency`); `None`:
    /// its even share, however many that is.
    max_held: Option<usize>,
}

impl LeaseManager {
    /// A manager for process `me` (an owner id such as `host:pid:random`).
    pub fn new(store: Arc<dyn LeaseStore>, clock: Arc<dyn Clock>, me: String, lease_duration: Duration) -> Self {
        Self { store, clock, me, lease_duration, held: Mutex::default(), seen: Mutex::default(), max_held: None }
    }

    /// Holds at most `max` unfinished leases at once (a snapshot's segments in flight): the even
    /// share is capped there, and no lease is asked for beyond it.
    #[must_use]
    pub fn with_max_held(mut self, max: usize) -> Self {
        self.max_held = Some(max.max(1));
        self
    }

    /// An owner id for this process: `$HOSTNAME:pid:random`.
    pub fn process_id() -> String {
        format!(
            "{}:{}:{:08x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "eddy".into()),
            std::process::id(),
            rand::random::<u32>()
        )
    }

    /// This process's owner id.
    pub fn worker_id(&self) -> &str {
        &self.me
    }

    fn slot(&self, shard: &str) -> Arc<tokio::sync::Mutex<Option<Held>>> {
        Arc::clone(self.held.lock().unwrap_or_else(|p| p.into_inner()).entry(shard.to_owned()).or_default())
    }

    /// Takes `lease` (free, expired, or handed to us) if its counter is still the one seen.
    async fn take(&self, lease: &Lease) -> anyhow::Result<bool> {
        let slot = self.slot(&lease.shard_id);
        let mut held = slot.lock().await;
        if self.store.take(&lease.shard_id, lease.counter, &self.me).await? {
            *held = Some(Held { counter: lease.counter + 1, renewed: self.clock.now() });
            tracing::info!(shard = lease.shard_id, from = lease.owner.as_deref(), "took the lease");
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Renews a held lease; drops it when it was lost or could not be renewed for a whole
    /// `lease_duration`.
    async fn renew(&self, shard: &str) {
        let slot = self.slot(shard);
        let mut guard = slot.lock().await;
        let Some(held) = guard.as_mut() else { return };
        match self.store.update(shard, &self.me, held.counter, Change::Renew).await {
            Ok(true) => {
                held.counter += 1;
                held.renewed = self.clock.now();
            }
            Ok(false) => {
                tracing::warn!(shard, "lost the lease to another process");
                *guard = None;
            }
            Err(e) if self.clock.now().duration_since(held.renewed) >= self.lease_duration => {
                tracing::warn!(shard, "could not renew the lease for {:?}; giving it up: {e:#}", self.lease_duration);
                *guard = None;
            }
            Err(e) => tracing::warn!(shard, "lease renewal failed, retrying: {e:#}"),
        }
    }

    /// Releases a held lease: to `to` (a handoff) or to nobody.
    async fn release(&self, shard: &str, to: Option<&str>) {
        let slot = self.slot(shard);
        let mut guard = slot.lock().await;
        let Some(held) = guard.take() else { return };
        match self.store.update(shard, &self.me, held.counter, Change::Release(to.map(str::to_owned))).await {
            Ok(true) => tracing::info!(shard, to, "released the lease"),
            Ok(false) => {}
            Err(e) => tracing::warn!(shard, "could not release the lease (it will expire): {e:#}"),
        }
    }

    fn holds(&self, shard: &str) -> bool {
        let slot = self.held.lock().unwrap_or_else(|p| p.into_inner()).get(shard).cloned();
        slot.is_some_and(|s| s.try_lock().map(|h| h.is_some()).unwrap_or(true))
    }

    /// Whether `lease` is free to take: no owner, or an owner whose counter has not moved for
    /// `lease_duration` as this process has watched it.
    fn available(&self, lease: &Lease, now: Instant) -> bool {
        match &lease.owner {
            None => true,
            Some(owner) if *owner == self.me => false,
            Some(_) => self.expired(lease, now),
        }
    }

    fn expired(&self, lease: &Lease, now: Instant) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&lease.shard_id).is_some_and(|(_, since)| now.duration_since(*since) >= self.lease_duration)
    }

    /// Every lease row (for `eddy leases`).
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn list(&self) -> anyhow::Result<Vec<Lease>> {
        self.store.list().await
    }
}

#[async_trait]
impl CheckpointStore for LeaseManager {
    async fn load(&self) -> anyhow::Result<HashMap<String, Checkpoint>> {
        Ok(self.store.list().await?.into_iter().filter_map(|l| Some((l.shard_id, l.checkpoint?))).collect())
    }

    async fn save(&self, shard_id: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let slot = self.slot(shard_id);
        let mut guard = slot.lock().await;
        let lost = || CheckpointError::LeaseLost { shard: shard_id.to_owned() };
        let Some(held) = guard.as_mut() else { return Err(lost()) };
        if self.store.update(shard_id, &self.me, held.counter, Change::Checkpoint(checkpoint.clone())).await? {
            held.counter += 1;
            held.renewed = self.clock.now();
            Ok(())
        } else {
            *guard = None;
            Err(lost())
        }
    }
}

#[async_trait]
impl Leases for Arc<LeaseManager> {
    async fn lineage(&self) -> anyhow::Result<Lineage> {
        let leases = self.store.list().await?;
        Ok(Lineage {
            finished: leases
                .iter()
                .filter(|l| l.checkpoint == Some(Checkpoint::ShardEnd))
                .map(|l| l.shard_id.clone())
                .collect(),
            known: leases.into_iter().map(|l| l.shard_id).collect(),
        })
    }

    async fn sync(
        &self,
        shards: &[ShardInfo],
        ready: &[&ShardInfo],
        running: &HashSet<String>,
    ) -> anyhow::Result<Assignment> {
        let mut leases = self.store.list().await?;
        let listed: HashSet<String> = leases.iter().map(|l| l.shard_id.clone()).collect();
        let new: Vec<&ShardInfo> = shards.iter().filter(|s| !listed.contains(&s.shard_id)).collect();
        if !new.is_empty() {
            for shard in new {
                self.store.create(shard).await?;
            }
            leases = self.store.list().await?;
        }
        let now = self.clock.now();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            for l in &leases {
                match seen.get(&l.shard_id) {
                    Some((counter, _)) if *counter == l.counter => {}
                    _ => {
                        seen.insert(l.shard_id.clone(), (l.counter, now));
                    }
                }
            }
        }

        // Keep what we hold; hand over what was asked for once its reader has stopped; let go of
        // finished shards (their SHARD_END checkpoint stays for the children's lineage).
        for l in leases.iter().filter(|l| l.owner.as_deref() == Some(&self.me)) {
            let stopped = !running.contains(&l.shard_id);
            match &l.handoff_to {
                _ if stopped && l.checkpoint == Some(Checkpoint::ShardEnd) => self.release(&l.shard_id, None).await,
                Some(to) if stopped => self.release(&l.shard_id, Some(to)).await,
                _ => self.renew(&l.shard_id).await,
            }
        }
        // A row that names us but we do not hold (a handoff to us, or a lease from before a
        // restart of this id): take it properly.
        for l in leases.iter().filter(|l| {
            l.owner.as_deref() == Some(&self.me)
                && !self.holds(&l.shard_id)
                && l.checkpoint != Some(Checkpoint::ShardEnd)
        }) {
            self.take(l).await?;
        }

        // Even spread over the ready shards.
        let ready_ids: HashSet<&str> = ready.iter().map(|s| s.shard_id.as_str()).collect();
        let candidates: Vec<&Lease> = leases
            .iter()
            .filter(|l| ready_ids.contains(l.shard_id.as_str()) && l.checkpoint != Some(Checkpoint::ShardEnd))
            .collect();
        let mut per_owner: HashMap<&str, Vec<&Lease>> = HashMap::new();
        for l in &candidates {
            if let Some(owner) = &l.owner {
                if *owner != self.me && !self.expired(l, now) {
                    per_owner.entry(owner).or_default().push(l);
                }
            }
        }
        let workers = per_owner.len() + 1;
        let share = candidates.len().div_ceil(workers);
        let target = self.max_held.map_or(share, |max| share.min(max));
        let mut mine = candidates.iter().filter(|l| self.holds(&l.shard_id)).count();
        for l in candidates.iter().filter(|l| self.available(l, now)) {
            if mine >= target {
                break;
            }
            if self.take(l).await? {
                mine += 1;
            }
        }
        if mine < target {
            // Nothing free: ask the busiest process for one, if it has more than its share.
            let already_asked = candidates.iter().any(|l| l.handoff_to.as_deref() == Some(&self.me));
            let busiest = per_owner.values().max_by_key(|ls| ls.len());
            if let Some(ls) = busiest.filter(|ls| ls.len() > target && !already_asked) {
                if let Some(l) = ls.iter().find(|l| l.handoff_to.is_none()) {
                    let owner = l.owner.as_deref().unwrap_or_default();
                    self.store.request_handoff(&l.shard_id, owner, &self.me).await?;
                    tracing::info!(shard = l.shard_id, from = owner, "asked for the lease");
                }
            }
        }

        Ok(Assignment {
            held: leases
                .iter()
                // A lease someone else asked for is handed over once its reader stops; a row
                // read before we took it may still name us as the asker.
                .filter(|l| self.holds(&l.shard_id) && l.handoff_to.as_deref().is_none_or(|to| to == self.me))
                .map(|l| (l.shard_id.clone(), l.checkpoint.clone()))
                .collect(),
        })
    }

    fn checkpoints(&self) -> Arc<dyn CheckpointStore> {
        Arc::clone(self) as Arc<dyn CheckpointStore>
    }

    fn tick(&self) -> Option<Duration> {
        Some(self.lease_duration / 3)
    }

    async fn release_all(&self) {
        let shards: Vec<String> = self.held.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        for shard in shards {
            self.release(&shard, None).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::memory::MemoryLeaseStore;
    use super::*;

    /// A clock that moves only when told.
    struct ManualClock(Mutex<Instant>);

    impl ManualClock {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    const LEASE: Duration = Duration::from_secs(10);

    fn shards(n: usize) -> Vec<ShardInfo> {
        (0..n).map(|i| ShardInfo { shard_id: format!("shard-{i}"), ..ShardInfo::default() }).collect()
    }

    fn setup(workers: &[&str]) -> (Arc<MemoryLeaseStore>, Arc<ManualClock>, Vec<Arc<LeaseManager>>) {
        let store = Arc::new(MemoryLeaseStore::default());
        let clock = Arc::new(ManualClock(Mutex::new(Instant::now())));
        let managers = workers
            .iter()
            .map(|w| {
                Arc::new(LeaseManager::new(
                    store.clone() as Arc<dyn LeaseStore>,
                    clock.clone() as Arc<dyn Clock>,
                    (*w).to_owned(),
                    LEASE,
                ))
            })
            .collect();
        (store, clock, managers)
    }

    /// One coordinator tick of `m` over `all`, as the coordinator does it: a reader runs on
    /// exactly the shards the previous tick assigned (`running`, updated here).
    async fn tick_with(m: &Arc<LeaseManager>, all: &[ShardInfo], running: &mut HashSet<String>) -> Vec<String> {
        let ready: Vec<&ShardInfo> = all.iter().collect();
        let mut held: Vec<String> = m.sync(all, &ready, running).await.unwrap().held.into_keys().collect();
        held.sort();
        *running = held.iter().cloned().collect();
        held
    }

    /// A tick where every shard held is running.
    async fn tick(m: &Arc<LeaseManager>, all: &[ShardInfo]) -> Vec<String> {
        let mut running: HashSet<String> =
            all.iter().filter(|s| m.holds(&s.shard_id)).map(|s| s.shard_id.clone()).collect();
        tick_with(m, all, &mut running).await
    }

    #[tokio::test]
    async fn a_lone_worker_takes_every_shard_and_renewals_keep_them() {
        let (store, clock, m) = setup(&["a"]);
        let all = shards(4);
        assert_eq!(tick(&m[0], &all).await.len(), 4);
        for _ in 0..5 {
            clock.advance(LEASE / 3);
            assert_eq!(tick(&m[0], &all).await.len(), 4);
        }
        // Every renewal moved the counter: 1 take + 5 renewals.
        assert!(store.rows.lock().unwrap().values().all(|l| l.counter == 6 && l.owner.as_deref() == Some("a")));
    }

    #[tokio::test]
    async fn two_workers_end_with_an_even_spread_through_a_handoff() {
        let (store, _clock, m) = setup(&["a", "b"]);
        let all = shards(4);
        let (mut run_a, mut run_b) = (HashSet::new(), HashSet::new());
        assert_eq!(tick_with(&m[0], &all, &mut run_a).await.len(), 4);
        // b finds nothing free and asks a for one.
        assert!(tick_with(&m[1], &all, &mut run_b).await.is_empty());
        let asked: Vec<String> = store.rows.lock().unwrap().values().filter_map(|l| l.handoff_to.clone()).collect();
        assert_eq!(asked, ["b"]);
        // a stops that shard's reader (it is no longer assigned), then hands the lease over.
        assert_eq!(tick_with(&m[0], &all, &mut run_a).await.len(), 3);
        for _ in 0..4 {
            tick_with(&m[0], &all, &mut run_a).await;
            tick_with(&m[1], &all, &mut run_b).await;
        }
        assert_eq!((run_a.len(), run_b.len()), (2, 2));
        assert!(run_a.is_disjoint(&run_b), "no shard is read by both: {run_a:?} {run_b:?}");
        let rows = store.rows.lock().unwrap().clone();
        let of = |w: &str| rows.values().filter(|l| l.owner.as_deref() == Some(w)).count();
        assert_eq!((of("a"), of("b")), (2, 2), "{rows:?}");
    }

    #[tokio::test]
    async fn a_cap_on_leases_held_keeps_each_worker_at_it_without_handoffs() {
        let (store, _clock, m) = setup(&["a", "b"]);
        let m: Vec<Arc<LeaseManager>> =
            m.into_iter().map(|m| Arc::new(Arc::into_inner(m).expect("one owner").with_max_held(3))).collect();
        let all = shards(20);
        let (mut run_a, mut run_b) = (HashSet::new(), HashSet::new());
        for _ in 0..3 {
            assert_eq!(tick_with(&m[0], &all, &mut run_a).await.len(), 3);
            assert_eq!(tick_with(&m[1], &all, &mut run_b).await.len(), 3);
        }
        assert!(run_a.is_disjoint(&run_b));
        let rows = store.rows.lock().unwrap().clone();
        assert_eq!(rows.values().filter(|l| l.owner.is_some()).count(), 6, "{rows:?}");
        assert!(rows.values().all(|l| l.handoff_to.is_none()), "nobody asks beyond the cap: {rows:?}");
    }

    #[tokio::test]
    async fn a_lease_expires_only_after_its_counter_stood_still_for_the_lease_duration() {
        let (store, clock, m) = setup(&["a", "b"]);
        let all = shards(2);
        assert_eq!(tick(&m[0], &all).await.len(), 2);
        // b sees a's leases; a stops renewing (a crash).
        tick(&m[1], &all).await;
        clock.advance(LEASE - Duration::from_millis(1));
        assert!(tick(&m[1], &all).await.is_empty(), "not yet expired");
        clock.advance(Duration::from_millis(1));
        assert_eq!(tick(&m[1], &all).await.len(), 2, "expired: b takes both");
        assert!(store.rows.lock().unwrap().values().all(|l| l.owner.as_deref() == Some("b")));
    }

    #[tokio::test]
    async fn a_checkpoint_after_a_takeover_is_refused_as_lease_lost() {
        let (_store, clock, m) = setup(&["a", "b"]);
        let all = shards(1);
        tick(&m[0], &all).await;
        m[0].save("shard-0", &Checkpoint::After("10".into())).await.unwrap();
        tick(&m[1], &all).await;
        clock.advance(LEASE);
        assert_eq!(tick(&m[1], &all).await, ["shard-0"]);
        let err = m[0].save("shard-0", &Checkpoint::After("20".into())).await.unwrap_err();
        assert!(matches!(err, CheckpointError::LeaseLost { .. }), "{err}");
        // The new owner's checkpoints go on from the last one a wrote.
        assert_eq!(m[1].load().await.unwrap()["shard-0"], Checkpoint::After("10".into()));
        m[1].save("shard-0", &Checkpoint::After("30".into())).await.unwrap();
    }

    #[tokio::test]
    async fn release_all_frees_every_lease_at_once() {
        let (store, _clock, m) = setup(&["a", "b"]);
        let all = shards(3);
        tick(&m[0], &all).await;
        m[0].release_all().await;
        assert!(store.rows.lock().unwrap().values().all(|l| l.owner.is_none()));
        assert_eq!(tick(&m[1], &all).await.len(), 3, "free leases are taken without waiting");
    }
}
