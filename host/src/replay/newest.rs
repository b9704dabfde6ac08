//! Whether a dead-letter entry's change is still its key's newest, so that `eddy dead-letter
//! replay` never takes an item back to an older version: a change refused at v1 and replayed
//! after v2 was delivered, or a `maximum_record_age` backlog (v2) replayed after v3, would
//! otherwise undo the newer change.
//!
//! - **A DynamoDB stream source** ([`SourceTable`]): the source table holds every key's newest
//!   state. The entry is replayed only when the table's current item is what the change made (its
//!   `NewImage`, compared by DynamoDB's rules: numbers by value, sets unordered), or, for a
//!   REMOVE, when the item is still absent. Otherwise a newer change of the key exists: either the
//!   pipeline delivered it already (a replay would regress the sink) or the stream will (a replay
//!   would regress it until then), so the entry is skipped and reported.
//! - **Other sources** (Kinesis, a file): nothing eddy can read tells a key's newest change. An
//!   entry whose sinks only append (file, stdout, null) is replayed, since appending an older
//!   change regresses nothing; an entry bound for a sink that keeps items by key (Alternator,
//!   CrateDB) is skipped, with the reason, unless the replay is forced.
//!
//! `--force` replays every entry as it is.

use async_trait::async_trait;
use eddy_aws_json::AwsJsonClient;
use eddy_record::{ChangeRecord, EventName, Item};
use eddy_sink_api::RetryPolicy;

/// What a check found about one entry's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// It is the key's newest change: replay it.
    Newest,
    /// A newer change of the key exists (the reason says how eddy knows): skip it.
    Superseded(String),
    /// eddy cannot tell (the reason says why): skip it unless forced.
    Unknown(String),
}

/// Tells whether a change is still its key's newest.
#[async_trait]
pub trait NewestCheck: Send + Sync {
    /// The check of `record`, whose entry would be delivered to sinks of the kinds `sinks`
    /// (`alternator`, `file`, ...).
    ///
    /// # Errors
    /// When the place it reads cannot be read (after retries).
    async fn check(&self, record: &ChangeRecord, sinks: &[&str]) -> anyhow::Result<Freshness>;
}

/// The sink types that only append what they are given: replaying an older change into them
/// regresses no item.
const APPEND_ONLY: &[&str] = &["file", "stdout", "null"];

/// A check against the source table's current items (a DynamoDB stream source).
pub struct SourceTable {
    client: AwsJsonClient,
    table: String,
    retry: RetryPolicy,
}

impl SourceTable {
    /// Reads `table` through `client` (DynamoDB's JSON API), each GetItem under `retry`.
    pub fn new(client: AwsJsonClient, table: String, retry: RetryPolicy) -> Self {
        Self { client, table, retry }
    }

    /// The table's current item of `keys` (a consistent read); `None` when it has none.
    async fn current(&self, keys: &Item) -> anyhow::Result<Option<Item>> {
        let body = serde_json::to_vec(&serde_json::json!({
            "TableName": self.table, "Key": keys, "ConsistentRead": true
        }))?;
        let answer =
            self.retry.retry(|| self.client.call("GetItem", body.clone()), transient).await.map_err(|(e, tries)| {
                anyhow::anyhow!("cannot read the source table {} (GetItem, tried {tries} times): {e}", self.table)
            })?;
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(rename = "Item")]
            item: Option<Item>,
        }
        let answer: Answer = serde_json::from_slice(&answer)
            .map_err(|e| anyhow::anyhow!("GetItem on {} answered something unexpected: {e}", self.table))?;
        Ok(answer.item)
    }
}

#[async_trait]
impl NewestCheck for SourceTable {
    async fn check(&self, record: &ChangeRecord, _sinks: &[&str]) -> anyhow::Result<Freshness> {
        let current = self.current(&record.dynamodb.keys).await?;
        let table = &self.table;
        Ok(match (record.event_name, current) {
            (EventName::Remove, None) => Freshness::Newest,
            (EventName::Remove, Some(_)) => {
                Freshness::Superseded(format!("the item exists again in {table}: a newer change put it back"))
            }
            (_, None) => Freshness::Superseded(format!("the item was deleted from {table} since")),
            (_, Some(item)) => match &record.dynamodb.new_image {
                None => Freshness::Unknown("the change has no NewImage (a KEYS_ONLY or OLD_IMAGE stream)".into()),
                Some(image) if eddy_record::compare::equal_items(image.item(), &item) => Freshness::Newest,
                Some(image) => {
                    let paths = eddy_record::compare::differences(image.item(), &item);
                    Freshness::Superseded(format!("the item in {table} changed since ({})", paths.join(", ")))
                }
            },
        })
    }
}

/// Whether a failed call is worth trying again: no answer, a 5xx, or throttling.
fn transient(e: &eddy_aws_json::AwsJsonError) -> bool {
    use eddy_aws_json::AwsJsonError;
    match e {
        AwsJsonError::Transport(_) => true,
        AwsJsonError::Service { status, code, .. } => *status >= 500 || crate::aws::is_throttling(Some(code)),
        AwsJsonError::Credentials(_) => false,
    }
}

/// The check when the source cannot be read for a key's newest state (Kinesis, a file).
pub struct Unreadable;

#[async_trait]
impl NewestCheck for Unreadable {
    async fn check(&self, _record: &ChangeRecord, sinks: &[&str]) -> anyhow::Result<Freshness> {
        Ok(match sinks.iter().find(|kind| !APPEND_ONLY.contains(kind)) {
            None => Freshness::Newest,
            Some(kind) => Freshness::Unknown(format!(
                "the source cannot be read for the key's newest change, and the {kind} sink keeps items by key \
                 (replaying an older change could undo a newer one): use --force to replay it anyway"
            )),
        })
    }
}
