//! The lease store in a DynamoDB table (`checkpoints: {type: dynamodb}`), shared by every eddy
//! process on one stream.
//!
//! One item per shard, keyed by `stream` (`<pipeline>/<stream ARN>`: the pipeline's name and the
//! stream, so one table serves several pipelines on several streams, each with its own rows, as
//! KCL keys leases by application) and `shard_id`, with `owner` (a process id), `counter` (bumped
//! by every write of the owner), `checkpoint` (a sequence number, or `SHARD_END`), `parent` and
//! `handoff_to` (a process that asked for the lease).
//!
//! Rows written before pipelines had names are keyed by the stream ARN alone. The first named
//! pipeline that starts on such a stream adopts them: it claims them with a conditional put (a row
//! `<stream>#adopted` naming the pipeline), then copies each row (checkpoint and parent, without
//! an owner) under its own key, so it resumes where the unnamed pipeline stopped; any other
//! pipeline starts on its own. Conditions are DynamoDB condition expressions, so the
//! fencing holds whatever the processes believe. Every call that fails transiently (throttling,
//! 5xx, a timeout, a dropped connection) is tried again under the pipeline's retry policy; a
//! condition that does not hold is an answer, not a failure.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue as Av, KeyType};
use aws_sdk_dynamodb::Client;
use eddy_sink_api::{RetryPolicy, Timeouts};
use serde::Deserialize;

use super::store::{Change, Lease, LeaseStore};
use crate::aws::sdk_call::{attempt, Attempt};
use crate::checkpoint::Checkpoint;
use crate::source::ShardInfo;

const SHARD_END: &str = "SHARD_END";

/// `checkpoints: {type: dynamodb, table, lease_duration, endpoint?, region?}`: one row per shard
/// with its owner, lease counter, checkpoint and parent, in a DynamoDB table (created with
/// on-demand billing if missing). `endpoint` and `region` default to the source's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseTableConfig {
    /// The lease table's name.
    pub table: String,
    /// How long a lease whose counter does not move stays its owner's, as seen by another worker.
    /// Owners renew every third of it. Default 10s.
    #[serde(default = "lease_duration", deserialize_with = "crate::spec::units::duration")]
    pub lease_duration: std::time::Duration,
    /// A DynamoDB-compatible endpoint; default: the source's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region; default: the source's.
    #[serde(default)]
    pub region: Option<String>,
}

/// `checkpoints.lease_duration`'s default (README shows the same; a test compares them).
pub const LEASE_DURATION: std::time::Duration = std::time::Duration::from_secs(10);

/// The smallest `lease_duration` (owners renew every third of it).
pub const MIN_LEASE_DURATION: std::time::Duration = std::time::Duration::from_secs(1);

fn lease_duration() -> std::time::Duration {
    LEASE_DURATION
}

impl LeaseTableConfig {
    /// What a parser cannot see: a lease duration below the minimum.
    pub fn problems(&self) -> Vec<crate::spec::Problem> {
        crate::spec::at_least("lease_duration", self.lease_duration, MIN_LEASE_DURATION).into_iter().collect()
    }
}

/// The lease rows of one stream in a DynamoDB table.
pub struct DynamoLeaseStore {
    client: Client,
    table: String,
    /// The rows' `stream` key: `<pipeline>/<stream>`.
    stream: String,
    retry: RetryPolicy,
}

use crate::access::Access;

impl DynamoLeaseStore {
    /// Connects to the rows of pipeline `pipeline` on `stream` (a stream ARN, or a table's snapshot
    /// key). With [`Access::Work`] the table is created with on-demand billing if missing (another
    /// process creating it at the same time is fine) and rows written without a pipeline name are
    /// adopted (see the module documentation); with [`Access::Inspect`] nothing is created or
    /// written.
    ///
    /// # Errors
    /// When the table cannot be described or created, does not become ACTIVE within 60s, or (to
    /// inspect) does not exist.
    pub async fn open(
        config: &LeaseTableConfig,
        pipeline: &str,
        stream: &str,
        timeouts: &Timeouts,
        retry: RetryPolicy,
        access: Access,
    ) -> anyhow::Result<Self> {
        let target = crate::aws::Target { region: config.region.as_deref(), endpoint: config.endpoint.as_deref() };
        let client = crate::aws::dynamodb(&target, timeouts).await;
        let store = Self { client, table: config.table.clone(), stream: format!("{pipeline}/{stream}"), retry };
        match access {
            Access::Work => {
                store.ensure_table().await?;
                store.adopt_unnamed(pipeline, stream).await?;
            }
            Access::Inspect => {
                crate::aws::sdk_call::require_table(&store.client, &store.table, &store.retry, "lease table").await?;
            }
        }
        Ok(store)
    }

    /// The same table's rows under another `stream` key (no call is made).
    fn keyed(&self, stream: String) -> Self {
        Self { client: self.client.clone(), table: self.table.clone(), stream, retry: self.retry }
    }

    /// Adopts the rows of `stream` written without a pipeline name, if there are any and no other
    /// pipeline claimed them: claims them for `pipeline`, then copies each (and the plan) under
    /// this pipeline's key where it has no row yet. Idempotent, so every process of the pipeline
    /// may run it; a process killed half-way is finished by the next start.
    async fn adopt_unnamed(&self, pipeline: &str, stream: &str) -> anyhow::Result<()> {
        let unnamed = self.keyed(stream.to_owned());
        let rows = unnamed.list().await?;
        let plan = crate::checkpoint::PlanStore::plan(&unnamed).await?;
        if rows.is_empty() && plan.is_none() {
            return Ok(());
        }
        let claim = HashMap::from([
            ("stream".to_owned(), Av::S(format!("{stream}#adopted"))),
            ("shard_id".to_owned(), Av::S("adopted".to_owned())),
        ]);
        let mut item = claim.clone();
        item.insert("pipeline".to_owned(), Av::S(pipeline.to_owned()));
        let what = format!("cannot claim the unnamed rows of {stream} in the lease table {}", self.table);
        self.conditional(&what, || {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(shard_id)")
                .send()
        })
        .await?;
        let owner = self
            .retried(&what, || {
                let sent = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(claim.clone()))
                    .consistent_read(true)
                    .send();
                async move { sent.await.map_err(attempt) }
            })
            .await?
            .item()
            .and_then(|i| i.get("pipeline"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        if owner.as_deref() != Some(pipeline) {
            tracing::info!(
                table = self.table,
                "the rows of {stream} written without a pipeline name were adopted by pipeline {:?}; pipeline {pipeline:?} starts on its own",
                owner.unwrap_or_default()
            );
            return Ok(());
        }
        let mut copied = 0;
        for row in &rows {
            let mut item = self.key(&row.shard_id);
            item.insert("counter".into(), Av::N("0".into()));
            if let Some(parent) = &row.parent {
                item.insert("parent".into(), Av::S(parent.clone()));
            }
            if let Some(checkpoint) = &row.checkpoint {
                item.insert("checkpoint".into(), Av::S(checkpoint_text(checkpoint)));
            }
            let added = self
                .conditional("cannot copy an adopted lease", || {
                    self.client
                        .put_item()
                        .table_name(&self.table)
                        .set_item(Some(item.clone()))
                        .condition_expression("attribute_not_exists(shard_id)")
                        .send()
                })
                .await?;
            copied += usize::from(added);
        }
        if let Some(plan) = plan {
            crate::checkpoint::PlanStore::record_plan(self, &plan).await?;
        }
        if copied > 0 {
            tracing::info!(
                table = self.table,
                copied,
                "pipeline {pipeline:?} adopted the lease rows of {stream} written without a pipeline name"
            );
        }
        Ok(())
    }

    /// The rows of the stream written without a pipeline name, and the pipeline that adopted
    /// them (if one did): what `eddy leases` notes under the pipeline's own rows.
    ///
    /// # Errors
    /// When the table cannot be read.
    pub async fn unnamed_rows(&self) -> anyhow::Result<(usize, Option<String>)> {
        let Some((_, stream)) = self.stream.split_once('/') else { return Ok((0, None)) };
        let rows = self.keyed(stream.to_owned()).list().await?.len();
        let claim = HashMap::from([
            ("stream".to_owned(), Av::S(format!("{stream}#adopted"))),
            ("shard_id".to_owned(), Av::S("adopted".to_owned())),
        ]);
        let what = format!("cannot read the lease table {}", self.table);
        let out = self
            .retried(&what, || {
                let sent = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(claim.clone()))
                    .consistent_read(true)
                    .send();
                async move { sent.await.map_err(attempt) }
            })
            .await?;
        Ok((rows, out.item().and_then(|i| i.get("pipeline")).and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn ensure_table(&self) -> anyhow::Result<()> {
        let keys = [("stream", KeyType::Hash), ("shard_id", KeyType::Range)];
        crate::aws::sdk_call::ensure_table(&self.client, &self.table, &keys, &self.retry, "lease table").await
    }

    /// Runs `call` under the retry policy: transient failures are tried again.
    async fn retried<T, F, Fut>(&self, what: &str, call: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Attempt>>,
    {
        crate::aws::sdk_call::retried(&self.retry, what, call).await
    }

    /// An update or put conditioned by `condition`: `Ok(false)` when the condition did not hold.
    async fn conditional<F, Fut, O, E, R>(&self, what: &str, mut call: F) -> anyhow::Result<bool>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<O, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        self.retried(what, || {
            let sent = call();
            async move {
                match sent.await {
                    Ok(_) => Ok(true),
                    Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
                    Err(e) => Err(attempt(e)),
                }
            }
        })
        .await
    }

    fn key(&self, shard: &str) -> HashMap<String, Av> {
        HashMap::from([
            ("stream".to_owned(), Av::S(self.stream.clone())),
            ("shard_id".to_owned(), Av::S(shard.to_owned())),
        ])
    }
}

/// The plan is one item beside the leases: key `stream` = `<stream>#plan`, `shard_id` = `plan`
/// (outside the stream's lease rows, which [`LeaseStore::list`] queries by `stream`).
#[async_trait]
impl crate::checkpoint::PlanStore for DynamoLeaseStore {
    async fn plan(&self) -> anyhow::Result<Option<String>> {
        let what = format!("cannot read the plan in the lease table {}", self.table);
        let key = self.plan_key();
        let out = self
            .retried(&what, || {
                let sent = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(key.clone()))
                    .consistent_read(true)
                    .send();
                async move { sent.await.map_err(attempt) }
            })
            .await?;
        Ok(out.item().and_then(|i| i.get("plan")).and_then(|v| v.as_s().ok()).cloned())
    }

    async fn record_plan(&self, text: &str) -> anyhow::Result<String> {
        let mut item = self.plan_key();
        item.insert("plan".to_owned(), Av::S(text.to_owned()));
        let what = format!("cannot record the plan in the lease table {}", self.table);
        self.conditional(&what, || {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(shard_id)")
                .send()
        })
        .await?;
        self.plan().await?.ok_or_else(|| anyhow::anyhow!("{what}: it is missing after being written"))
    }
}

impl DynamoLeaseStore {
    fn plan_key(&self) -> HashMap<String, Av> {
        HashMap::from([
            ("stream".to_owned(), Av::S(format!("{}#plan", self.stream))),
            ("shard_id".to_owned(), Av::S("plan".to_owned())),
        ])
    }
}

/// A checkpoint as the `checkpoint` attribute holds it.
fn checkpoint_text(checkpoint: &Checkpoint) -> String {
    match checkpoint {
        Checkpoint::After(seq) => seq.clone(),
        Checkpoint::ShardEnd => SHARD_END.to_owned(),
    }
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
impl LeaseStore for DynamoLeaseStore {
    async fn list(&self) -> anyhow::Result<Vec<Lease>> {
        let mut leases = Vec::new();
        let mut start = None;
        loop {
            let what = format!("cannot read the lease table {}", self.table);
            let page = self
                .retried(&what, || {
                    let sent = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .key_condition_expression("#s = :s")
                        .expression_attribute_names("#s", "stream")
                        .expression_attribute_values(":s", Av::S(self.stream.clone()))
                        .consistent_read(true)
                        .set_exclusive_start_key(start.clone())
                        .send();
                    async move { sent.await.map_err(attempt) }
                })
                .await?;
            leases.extend(page.items().iter().filter_map(parse));
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(leases)
    }

    async fn create(&self, shard: &ShardInfo) -> anyhow::Result<()> {
        let mut item = self.key(&shard.shard_id);
        item.insert("counter".into(), Av::N("0".into()));
        // One parent, or both of a Kinesis merge (`a,b`); shown by `eddy leases`.
        let parents: Vec<&str> = shard.parents().collect();
        if !parents.is_empty() {
            item.insert("parent".into(), Av::S(parents.join(",")));
        }
        self.conditional("cannot add a lease", || {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(shard_id)")
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn take(&self, shard: &str, counter: u64, owner: &str) -> anyhow::Result<bool> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(shard)))
            .update_expression("SET #o = :me, #c = :next REMOVE handoff_to")
            .condition_expression("#c = :c")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#c", "counter")
            .expression_attribute_values(":me", Av::S(owner.to_owned()))
            .expression_attribute_values(":c", Av::N(counter.to_string()))
            .expression_attribute_values(":next", Av::N((counter + 1).to_string()));
        self.conditional("cannot take a lease", || request.clone().send()).await
    }

    async fn update(&self, shard: &str, owner: &str, counter: u64, change: Change) -> anyhow::Result<bool> {
        let (update, value) = match change {
            Change::Renew => ("SET #c = :next", None),
            Change::Checkpoint(c) => ("SET #c = :next, checkpoint = :cp", Some((":cp", checkpoint_text(&c)))),
            Change::Release(Some(to)) => ("SET #o = :to, #c = :next REMOVE handoff_to", Some((":to", to))),
            Change::Release(None) => ("SET #c = :next REMOVE #o, handoff_to", None),
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(shard)))
            .update_expression(update)
            .condition_expression("#o = :me AND #c = :c")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#c", "counter")
            .expression_attribute_values(":me", Av::S(owner.to_owned()))
            .expression_attribute_values(":c", Av::N(counter.to_string()))
            .expression_attribute_values(":next", Av::N((counter + 1).to_string()));
        if let Some((name, v)) = value {
            request = request.expression_attribute_values(name, Av::S(v));
        }
        self.conditional(&format!("lease table write for shard {shard} failed"), || request.clone().send()).await
    }

    async fn request_handoff(&self, shard: &str, owner: &str, to: &str) -> anyhow::Result<()> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(shard)))
            .update_expression("SET handoff_to = :me")
            .condition_expression("#o = :owner AND attribute_not_exists(handoff_to)")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", Av::S(to.to_owned()))
            .expression_attribute_values(":owner", Av::S(owner.to_owned()));
        self.conditional("cannot ask for a lease", || request.clone().send()).await.map(|_| ())
    }
}
