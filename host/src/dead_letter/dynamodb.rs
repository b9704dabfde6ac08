//! `dead_letter: {type: dynamodb, table, endpoint?, region?}`: one item per entry in a DynamoDB
//! table that every worker shares, created with on-demand billing when missing.
//!
//! Item: `id` (the hash key, [`Entry::id`]), `entry` (the entry as JSON text, the same object as a
//! line of the file destination), and `time`, `shard_id`, `stage`, `route`, `name` as plain
//! attributes for the console and for queries. Keyed by the entry's identity, a batch read again
//! after a crash rewrites the same items instead of adding copies.
//!
//! A DynamoDB item holds at most 400 KB: an entry larger than that (a record whose two images
//! come near the limit) cannot be stored here, and the write fails, so its shard stops advancing
//! with an error that says so. Use the file destination for tables with items that large.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue as Av, DeleteRequest, KeyType, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use eddy_sink_api::{RetryPolicy, Timeouts};
use serde::Deserialize;

use super::{DeadLetterStore, Entry, Stored};
use crate::aws::sdk_call::{attempt, retried};

/// `dead_letter: {type: dynamodb, table, endpoint?, region?}`: the table is created with
/// on-demand billing if missing; `endpoint` and `region` default to the source's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterTable {
    /// The table's name.
    pub table: String,
    /// A DynamoDB-compatible endpoint; default: the source's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region; default: the source's.
    #[serde(default)]
    pub region: Option<String>,
}

/// DynamoDB's item size limit, less room for the other attributes.
const MAX_ENTRY_BYTES: usize = 400 * 1024 - 4 * 1024;
/// BatchWriteItem takes at most 25 requests.
const BATCH: usize = 25;

/// The dead-letter table.
pub struct DynamoDeadLetter {
    client: Client,
    table: String,
    retry: RetryPolicy,
}

impl DynamoDeadLetter {
    /// Connects to the table, creating it if missing when `access` is [`crate::access::Access::Work`].
    ///
    /// # Errors
    /// When the table cannot be described or created, or (to inspect) does not exist.
    pub async fn open(
        config: &DeadLetterTable,
        timeouts: &Timeouts,
        retry: RetryPolicy,
        access: crate::access::Access,
    ) -> anyhow::Result<Self> {
        let target = crate::aws::Target { region: config.region.as_deref(), endpoint: config.endpoint.as_deref() };
        let client = crate::aws::dynamodb(&target, timeouts).await;
        let role = "dead-letter table";
        match access {
            crate::access::Access::Work => {
                crate::aws::sdk_call::ensure_table(&client, &config.table, &[("id", KeyType::Hash)], &retry, role)
                    .await?
            }
            crate::access::Access::Inspect => {
                crate::aws::sdk_call::require_table(&client, &config.table, &retry, role).await?
            }
        }
        Ok(Self { client, table: config.table.clone(), retry })
    }

    /// Sends `requests` with BatchWriteItem, 25 at a time, until none is left unprocessed
    /// (unprocessed ones are sent again under the retry policy's waits).
    async fn batch_write(&self, requests: Vec<WriteRequest>, what: &str) -> anyhow::Result<()> {
        for chunk in requests.chunks(BATCH) {
            let mut pending = chunk.to_vec();
            let mut rounds = 0u32;
            while !pending.is_empty() {
                let items = HashMap::from([(self.table.clone(), pending.clone())]);
                let out = retried(&self.retry, what, || {
                    let sent = self.client.batch_write_item().set_request_items(Some(items.clone())).send();
                    async move { sent.await.map_err(attempt) }
                })
                .await?;
                pending = out.unprocessed_items().and_then(|u| u.get(&self.table)).cloned().unwrap_or_default();
                if !pending.is_empty() {
                    rounds += 1;
                    if rounds >= self.retry.attempts {
                        crate::events::Throttled { api: "dynamodb", n: 1 }.emit();
                        anyhow::bail!(
                            "{what}: {} requests still unprocessed after {rounds} tries (the table is throttled)",
                            pending.len()
                        );
                    }
                    crate::events::Throttled { api: "dynamodb", n: 1 }.emit();
                    tokio::time::sleep(self.retry.backoff.wait(rounds - 1)).await;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl DeadLetterStore for DynamoDeadLetter {
    fn describe(&self) -> String {
        format!("DynamoDB table {}", self.table)
    }

    fn keyed(&self) -> bool {
        true
    }

    async fn write(&self, entries: &[Entry]) -> anyhow::Result<()> {
        // One request per id (BatchWriteItem refuses two for one key); the later entry wins.
        let mut by_id: Vec<(String, &Entry)> = Vec::with_capacity(entries.len());
        let mut index: HashMap<String, usize> = HashMap::new();
        for e in entries {
            let id = e.id();
            match index.get(&id) {
                Some(&i) => by_id[i].1 = e,
                None => {
                    index.insert(id.clone(), by_id.len());
                    by_id.push((id, e));
                }
            }
        }
        let mut requests = Vec::with_capacity(by_id.len());
        for (id, e) in by_id {
            let json = serde_json::to_string(e)?;
            if json.len() > MAX_ENTRY_BYTES {
                anyhow::bail!(
                    "the dead-letter entry of {id} is {} bytes, over what a DynamoDB item holds (400 KB); \
                     use `dead_letter: {{type: file}}` for items this large",
                    json.len()
                );
            }
            let mut item = HashMap::from([
                ("id".to_owned(), Av::S(id)),
                ("entry".to_owned(), Av::S(json)),
                ("time".to_owned(), Av::S(e.time.clone())),
                ("shard_id".to_owned(), Av::S(e.shard_id.clone())),
                ("stage".to_owned(), Av::S(e.stage.as_str().to_owned())),
            ]);
            if let Some(route) = &e.route {
                item.insert("route".into(), Av::S(route.clone()));
            }
            if let Some(name) = &e.name {
                item.insert("name".into(), Av::S(name.clone()));
            }
            requests
                .push(WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build()?).build());
        }
        self.batch_write(requests, &format!("cannot write the dead-letter table {}", self.table)).await
    }

    async fn list(&self, _intent: super::Intent, _stop: &crate::stop::Stop) -> anyhow::Result<Vec<Stored>> {
        let mut stored = Vec::new();
        let mut start = None;
        let what = format!("cannot read the dead-letter table {}", self.table);
        loop {
            let page = retried(&self.retry, &what, || {
                let sent = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .consistent_read(true)
                    .set_exclusive_start_key(start.clone())
                    .send();
                async move { sent.await.map_err(attempt) }
            })
            .await?;
            for item in page.items() {
                let (Some(Av::S(id)), Some(Av::S(json))) = (item.get("id"), item.get("entry")) else {
                    anyhow::bail!(
                        "{what}: an item without `id` and `entry` strings (is this eddy's dead-letter table?)"
                    );
                };
                let entry = serde_json::from_str(json)
                    .map_err(|e| anyhow::anyhow!("{what}: item {id} is not a dead-letter entry: {e}"))?;
                stored.push(Stored { id: id.clone(), entry });
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        // Written order, as far as the clock tells; then shard order.
        stored.sort_by(|a, b| (&a.entry.time, &a.id).cmp(&(&b.entry.time, &b.id)));
        Ok(stored)
    }

    async fn remove(&self, ids: &[String]) -> anyhow::Result<()> {
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        let requests = unique
            .into_iter()
            .map(|id| {
                let key = HashMap::from([("id".to_owned(), Av::S(id.clone()))]);
                Ok(WriteRequest::builder().delete_request(DeleteRequest::builder().set_key(Some(key)).build()?).build())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.batch_write(requests, &format!("cannot remove entries from the dead-letter table {}", self.table)).await
    }
}
