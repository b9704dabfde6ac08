//! `checkpoints: {type: dynamodb}`: a lease table shared by every eddy process on one stream.
//!
//! One item per shard, keyed by `stream` (the stream ARN, so one table can serve several
//! pipelines) and `shard_id`, with `owner` (a process id), `counter` (bumped by every write of
//! the owner), `checkpoint` (a sequence number, or `SHARD_END`), `parent` and `handoff_to` (a
//! process that asked for the lease to even out the spread).
//!
//! The rules, after KCL's lease coordinator:
//! - Every renewal, checkpoint and release is an `UpdateItem` conditioned on `owner = me AND
//!   counter = what I last wrote`, so a process that lost its lease can never write over the
//!   new owner's checkpoint.
//! - A lease is expired when its counter has not moved for `lease_duration` as seen by the
//!   process looking at it (no clocks are compared between processes); taking it is an
//!   `UpdateItem` conditioned on the counter it saw.
//! - Owners renew every third of `lease_duration`. An owner that cannot renew for a whole
//!   `lease_duration` stops reading the shard, since another process may have taken it.
//! - Shards spread evenly: a process below its share (ready shards / live processes, rounded up)
//!   takes free or expired leases, and if there are none, asks the busiest process for one
//!   (`handoff_to`). That process stops the shard's reader after its batch in flight, which
//!   checkpoints, and then hands the lease over: no two readers ever overlap on a shard.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as Av, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;

use super::{Assignment, LeaseLost, Leases, Lineage};
use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::config::LeaseTableConfig;
use crate::source::ShardInfo;

const SHARD_END: &str = "SHARD_END";

/// One row of the lease table.
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

/// A lease this process holds: the counter it last wrote, and when.
struct Held {
    counter: u64,
    renewed: Instant,
}

/// A lease table for one stream, as one process sees it.
pub struct LeaseTable {
    client: Client,
    table: String,
    stream: String,
    me: String,
    lease_duration: Duration,
    /// Leases held, each behind its own lock so that a renewal and a checkpoint of the same shard
    /// never race on the counter.
    held: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Held>>>>>,
    /// For every lease: the counter last seen and when it was first seen at that value.
    seen: Mutex<HashMap<String, (u64, Instant)>>,
}

impl LeaseTable {
    /// Connects to the table (creating it with on-demand billing if missing) as a new process
    /// `owner`-id (`host:pid:random`).
    ///
    /// # Errors
    /// When the table cannot be described or created.
    pub async fn open(config: &LeaseTableConfig, stream: &str) -> anyhow::Result<Self> {
        let client = client(config).await;
        let me = format!(
            "{}:{}:{:08x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "eddy".into()),
            std::process::id(),
            rand::random::<u32>()
        );
        let table = Self {
            client,
            table: config.table.clone(),
            stream: stream.to_owned(),
            me,
            lease_duration: config.lease_duration,
            held: Mutex::default(),
            seen: Mutex::default(),
        };
        table.ensure_table().await?;
        tracing::info!(table = %table.table, worker = %table.me, "using the lease table");
        Ok(table)
    }

    /// This process's owner id.
    pub fn worker_id(&self) -> &str {
        &self.me
    }

    async fn ensure_table(&self) -> anyhow::Result<()> {
        match self.client.describe_table().table_name(&self.table).send().await {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => {}
            Err(e) => {
                return Err(anyhow::Error::new(e.into_service_error()))
                    .with_context(|| format!("cannot describe the lease table {}", self.table))
            }
        }
        let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("stream", KeyType::Hash)?)
            .key_schema(key("shard_id", KeyType::Range)?)
            .attribute_definitions(attr("stream")?)
            .attribute_definitions(attr("shard_id")?)
            .send()
            .await;
        match created {
            Ok(_) => tracing::info!(table = self.table, "created the lease table (on-demand billing)"),
            // Another process created it at the same time.
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => {
                return Err(anyhow::Error::new(e.into_service_error()))
                    .with_context(|| format!("cannot create the lease table {}", self.table))
            }
        }
        for _ in 0..60 {
            let status = self.client.describe_table().table_name(&self.table).send().await?;
            if status.table().and_then(|t| t.table_status()).is_some_and(|s| s.as_str() == "ACTIVE") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        anyhow::bail!("the lease table {} did not become ACTIVE within 60s", self.table)
    }

    /// Every lease of the stream (consistent read).
    ///
    /// # Errors
    /// When the table cannot be queried.
    pub async fn list(&self) -> anyhow::Result<Vec<Lease>> {
        let mut leases = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#s = :s")
                .expression_attribute_names("#s", "stream")
                .expression_attribute_values(":s", Av::S(self.stream.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| anyhow::Error::new(e.into_service_error()))
                .with_context(|| format!("cannot read the lease table {}", self.table))?;
            leases.extend(page.items().iter().filter_map(parse));
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(leases)
    }

    fn key(&self, shard: &str) -> HashMap<String, Av> {
        HashMap::from([
            ("stream".to_owned(), Av::S(self.stream.clone())),
            ("shard_id".to_owned(), Av::S(shard.to_owned())),
        ])
    }

    /// Adds a lease for a newly found shard (no owner); a no-op if it exists.
    async fn create(&self, shard: &ShardInfo) -> anyhow::Result<()> {
        let mut item = self.key(&shard.shard_id);
        item.insert("counter".into(), Av::N("0".into()));
        if let Some(p) = &shard.parent_shard_id {
            item.insert("parent".into(), Av::S(p.clone()));
        }
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(shard_id)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) if is_conditional(&e) => Ok(()),
            Err(e) => Err(anyhow::Error::new(e.into_service_error()).context("cannot add a lease")),
        }
    }

    /// An owner's fenced write: `set` (an update expression's SET/REMOVE clauses, with `:next`
    /// bound to the new counter) on `shard`, if this process still owns it at `counter`.
    /// Returns `Ok(false)` when the condition failed: the lease is not ours any more.
    async fn fenced(&self, shard: &str, counter: u64, update: &str, values: Vec<(&str, Av)>) -> anyhow::Result<bool> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(shard)))
            .update_expression(update)
            .condition_expression("#o = :me AND #c = :c")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#c", "counter")
            .expression_attribute_values(":me", Av::S(self.me.clone()))
            .expression_attribute_values(":c", Av::N(counter.to_string()))
            .expression_attribute_values(":next", Av::N((counter + 1).to_string()));
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(anyhow::Error::new(e.into_service_error()))
                .with_context(|| format!("lease table write for shard {shard} failed")),
        }
    }

    fn slot(&self, shard: &str) -> Arc<tokio::sync::Mutex<Option<Held>>> {
        Arc::clone(self.held.lock().unwrap_or_else(|p| p.into_inner()).entry(shard.to_owned()).or_default())
    }

    /// Takes `lease` (free, expired, or handed to us) if its counter is still the one seen.
    async fn take(&self, lease: &Lease) -> anyhow::Result<bool> {
        let slot = self.slot(&lease.shard_id);
        let mut held = slot.lock().await;
        let next = lease.counter + 1;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&lease.shard_id)))
            .update_expression("SET #o = :me, #c = :next REMOVE handoff_to")
            .condition_expression("#c = :c")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#c", "counter")
            .expression_attribute_values(":me", Av::S(self.me.clone()))
            .expression_attribute_values(":c", Av::N(lease.counter.to_string()))
            .expression_attribute_values(":next", Av::N(next.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => {
                *held = Some(Held { counter: next, renewed: Instant::now() });
                tracing::info!(shard = lease.shard_id, from = lease.owner.as_deref(), "took the lease");
                Ok(true)
            }
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(anyhow::Error::new(e.into_service_error()).context("cannot take a lease")),
        }
    }

    /// Renews a held lease; drops it when it was lost or could not be renewed for a whole
    /// `lease_duration`.
    async fn renew(&self, shard: &str) {
        let slot = self.slot(shard);
        let mut guard = slot.lock().await;
        let Some(held) = guard.as_mut() else { return };
        match self.fenced(shard, held.counter, "SET #c = :next", vec![]).await {
            Ok(true) => {
                held.counter += 1;
                held.renewed = Instant::now();
            }
            Ok(false) => {
                tracing::warn!(shard, "lost the lease to another process");
                *guard = None;
            }
            Err(e) if held.renewed.elapsed() >= self.lease_duration => {
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
        let (update, values) = match to {
            Some(to) => ("SET #o = :to, #c = :next REMOVE handoff_to", vec![(":to", Av::S(to.to_owned()))]),
            None => ("SET #c = :next REMOVE #o, handoff_to", vec![]),
        };
        match self.fenced(shard, held.counter, update, values).await {
            Ok(true) => tracing::info!(shard, to, "released the lease"),
            Ok(false) => {}
            Err(e) => tracing::warn!(shard, "could not release the lease (it will expire): {e:#}"),
        }
    }

    /// Asks `lease`'s owner to hand it over.
    async fn request_handoff(&self, lease: &Lease) -> anyhow::Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&lease.shard_id)))
            .update_expression("SET handoff_to = :me")
            .condition_expression("#o = :owner AND attribute_not_exists(handoff_to)")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", Av::S(self.me.clone()))
            .expression_attribute_values(":owner", Av::S(lease.owner.clone().unwrap_or_default()))
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(shard = lease.shard_id, from = lease.owner.as_deref(), "asked for the lease");
                Ok(())
            }
            Err(e) if is_conditional(&e) => Ok(()),
            Err(e) => Err(anyhow::Error::new(e.into_service_error()).context("cannot ask for a lease")),
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
}

async fn client(config: &LeaseTableConfig) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_dynamodb::config::Builder::from(&shared);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

fn is_conditional<E: ProvideErrorMetadata, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

fn parse(item: &HashMap<String, Av>) -> Option<Lease> {
    let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    Some(Lease {
        shard_id: s("shard_id")?,
        owner: s("owner"),
        counter: item.get("counter").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0),
        checkpoint: s("checkpoint").map(|c| if c == SHARD_END { Checkpoint::ShardEnd } else { Checkpoint::After(c) }),
        parent: s("parent"),
        handoff_to: s("handoff_to"),
    })
}

#[async_trait]
impl CheckpointStore for LeaseTable {
    async fn load(&self) -> anyhow::Result<HashMap<String, Checkpoint>> {
        Ok(self.list().await?.into_iter().filter_map(|l| Some((l.shard_id, l.checkpoint?))).collect())
    }

    async fn save(&self, shard_id: &str, checkpoint: &Checkpoint) -> anyhow::Result<()> {
        let slot = self.slot(shard_id);
        let mut guard = slot.lock().await;
        let Some(held) = guard.as_mut() else {
            return Err(LeaseLost { shard: shard_id.to_owned() }.into());
        };
        let value = match checkpoint {
            Checkpoint::After(seq) => seq.clone(),
            Checkpoint::ShardEnd => SHARD_END.to_owned(),
        };
        if self.fenced(shard_id, held.counter, "SET #c = :next, checkpoint = :cp", vec![(":cp", Av::S(value))]).await? {
            held.counter += 1;
            held.renewed = Instant::now();
            Ok(())
        } else {
            *guard = None;
            Err(LeaseLost { shard: shard_id.to_owned() }.into())
        }
    }
}

#[async_trait]
impl Leases for Arc<LeaseTable> {
    async fn lineage(&self) -> anyhow::Result<Lineage> {
        let leases = self.list().await?;
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
        let mut leases = self.list().await?;
        let listed: HashSet<String> = leases.iter().map(|l| l.shard_id.clone()).collect();
        let new: Vec<&ShardInfo> = shards.iter().filter(|s| !listed.contains(&s.shard_id)).collect();
        if !new.is_empty() {
            for shard in new {
                self.create(shard).await?;
            }
            leases = self.list().await?;
        }
        let now = Instant::now();
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
        let target = candidates.len().div_ceil(workers);
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
                    self.request_handoff(l).await?;
                }
            }
        }

        Ok(Assignment {
            held: leases
                .iter()
                .filter(|l| self.holds(&l.shard_id) && l.handoff_to.is_none())
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
