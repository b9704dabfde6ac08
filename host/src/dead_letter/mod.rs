//! The dead letter (Lambda's on-failure destination): records that cannot be delivered, persisted
//! with the reason, never dropped silently.
//!
//! A batch's entries are written, and acknowledged by the destination, before its shard
//! checkpoints past them; if the destination fails, the shard does not advance (the batch is
//! read again). Destinations (`dead_letter: {type: ...}`):
//!
//! - [`file::FileDeadLetter`]: JSON lines on local disk, fsynced (the default).
//! - [`dynamodb::DynamoDeadLetter`]: one item per entry in a DynamoDB table eddy creates if
//!   missing, shared by every worker (a file is lost with the container that wrote it).
//! - [`s3::S3DeadLetter`]: one object of JSON lines per failed batch in an S3 bucket (no item
//!   size limit).
//! - [`sqs::SqsDeadLetter`]: one message per entry in an SQS queue, entries over the queue's
//!   message size in S3 behind a pointer (the SQS Extended Client Library's format).
//!
//! `eddy dead-letter list` shows the entries and `eddy dead-letter replay` sends their records
//! through the pipeline again, removing those delivered (the `replay` module).

pub mod dynamodb;
pub mod file;
pub mod s3;
pub mod sqs;

use std::time::SystemTime;

use async_trait::async_trait;
use eddy_record::ChangeRecord;
use serde::{Deserialize, Serialize};

use crate::access::Access;
use crate::spec::{Inherited, Problem};
use crate::stop::Stop;

/// `dead_letter:`: where records that cannot be delivered are persisted (Lambda's on-failure
/// destination), one variant per destination type.
#[derive(Debug, Clone)]
pub enum DeadLetterConfig {
    /// `type: file`: JSONL, appended and flushed to disk before the shard checkpoints past them.
    File(file::FileDestination),
    /// `type: dynamodb`: one item per entry in a table shared by every worker.
    Dynamodb(dynamodb::DeadLetterTable),
    /// `type: s3`: one object of JSON lines per failed batch, in a bucket every worker shares.
    S3(s3::DeadLetterBucket),
    /// `type: sqs`: one message per entry in a queue every worker shares.
    Sqs(sqs::DeadLetterQueue),
}

/// The destination types: each `type:` name and how its section is read. Adding one is a file
/// of its own, a variant of [`DeadLetterConfig`] and a line here.
pub const TYPES: &[(&str, crate::spec::Parse<DeadLetterConfig>)] = &[
    ("file", |v| crate::spec::deserialize(v).map(DeadLetterConfig::File)),
    ("dynamodb", |v| crate::spec::deserialize(v).map(DeadLetterConfig::Dynamodb)),
    ("s3", |v| crate::spec::deserialize(v).map(DeadLetterConfig::S3)),
    ("sqs", |v| crate::spec::deserialize(v).map(DeadLetterConfig::Sqs)),
];

impl Default for DeadLetterConfig {
    /// `.eddy/dead-letter.jsonl` (resolved against the pipeline file's folder).
    fn default() -> Self {
        DeadLetterConfig::File(file::FileDestination { path: ".eddy/dead-letter.jsonl".into() })
    }
}

impl DeadLetterConfig {
    /// What the section's parser cannot see.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            DeadLetterConfig::Sqs(q) => q.problems(),
            _ => Vec::new(),
        }
    }

    /// Resolves a relative file path against `base`, and fills the endpoint and region a table,
    /// bucket or queue inherits from the source.
    pub fn complete(&mut self, base: &std::path::Path, inherited: &Inherited<'_>) {
        match self {
            DeadLetterConfig::File(f) => {
                if f.path.is_relative() {
                    f.path = base.join(&f.path);
                }
            }
            DeadLetterConfig::Dynamodb(t) => inherited.fill(&mut t.endpoint, &mut t.region),
            DeadLetterConfig::S3(b) => inherited.fill(&mut b.endpoint, &mut b.region),
            DeadLetterConfig::Sqs(q) => inherited.fill(&mut q.endpoint, &mut q.region),
        }
    }

    /// The file it writes, if it is a file (no sink may write the same one).
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            DeadLetterConfig::File(f) => Some(&f.path),
            _ => None,
        }
    }
}

/// Where the dead letter's overflow objects and the S3 destination put their keys by default.
fn default_prefix() -> String {
    "eddy-dead-letter/".to_owned()
}

/// Why [`DeadLetterStore::list`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// To show the entries (`eddy dead-letter list`).
    Look,
    /// To replay them and remove those delivered (`eddy dead-letter replay`).
    Replay,
}

/// Where a record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The stream record could not be decoded.
    Decode,
    /// It was older than `source.maximum_record_age` when read (Lambda's MaximumRecordAgeInSeconds).
    RecordAge,
    /// A processor failed on it (trap, timeout, `fail` verdict, invalid output).
    Processor,
    /// A sink refused it, or (with `on_sink_failure: {then: dead_letter}`) its writes kept failing.
    Sink,
}

impl Stage {
    /// The name used in entries and in the `stage` label of metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::RecordAge => "record_age",
            Stage::Processor => "processor",
            Stage::Sink => "sink",
        }
    }
}

/// One dead-letter entry: the failure's metadata and the full record (a JSON object; one line of
/// the file destination).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// When it was written (RFC 3339, UTC).
    pub time: String,
    /// The shard the record came from.
    pub shard_id: String,
    /// The record's sequence number.
    #[serde(default)]
    pub sequence_number: Option<String>,
    /// The route it was on (absent for decode and record-age failures, which precede routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Where it failed.
    pub stage: Stage,
    /// The processor or sink that failed (absent for decode and record-age failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Why.
    pub error: String,
    /// How many times it was tried.
    pub attempts: u32,
    /// The full record, in Lambda's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<ChangeRecord>,
    /// For undecodable records: the record as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl Entry {
    /// An entry stamped now.
    pub fn new(shard_id: &str, stage: Stage, error: String) -> Self {
        Self {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            shard_id: shard_id.to_owned(),
            sequence_number: None,
            route: None,
            stage,
            name: None,
            error,
            attempts: 1,
            record: None,
            raw: None,
        }
    }

    /// Attaches the record (and its sequence number).
    pub fn with_record(mut self, record: &ChangeRecord) -> Self {
        self.sequence_number = Some(record.dynamodb.sequence_number.clone());
        self.record = Some(record.clone());
        self
    }

    /// The entry's identity, the same every time the same record fails at the same place: shard,
    /// sequence number, stage, route and processor or sink, `/`-separated. A destination keyed
    /// by it (DynamoDB) keeps one entry when a batch is read again after a crash, and a replay
    /// that fails at the same place again replaces the entry instead of adding one. Undecodable
    /// records without a sequence number use a hash of their raw text.
    pub fn id(&self) -> String {
        let position = match (&self.sequence_number, &self.raw) {
            (Some(seq), _) => seq.clone(),
            (None, raw) => {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(raw.as_deref().unwrap_or_default().as_bytes());
                format!("raw-{}", hex(&digest[..12]))
            }
        };
        format!(
            "{}/{}/{}/{}/{}",
            self.shard_id,
            position,
            self.stage.as_str(),
            self.route.as_deref().unwrap_or("-"),
            self.name.as_deref().unwrap_or("-")
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An entry as stored, with the id its destination removes it by.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Opaque to callers: what [`DeadLetterStore::remove`] takes.
    pub id: String,
    /// The entry.
    pub entry: Entry,
}

/// A failure destination. Implementations must make [`DeadLetterStore::write`] durable before
/// returning: the caller checkpoints past the entries right after.
#[async_trait]
pub trait DeadLetterStore: Send + Sync {
    /// Where the entries go, for logs and errors (`file .eddy/dead-letter.jsonl`, ...).
    fn describe(&self) -> String;

    /// Persists `entries` and returns once the destination acknowledged them all.
    ///
    /// # Errors
    /// When any cannot be written (after retries): the shard must not checkpoint past them.
    async fn write(&self, entries: &[Entry]) -> anyhow::Result<()>;

    /// Every entry stored, in the order written where the destination keeps one. `intent` says
    /// whether the caller only looks (`eddy dead-letter list`: a destination whose reads hide
    /// entries from other readers hides them as briefly as it can) or replays (they stay hidden
    /// until released or removed). Stops early, handing back what it holds, when `stop` is set.
    ///
    /// # Errors
    /// When the destination cannot be read, or holds something that is not an entry, or `stop`
    /// was set.
    async fn list(&self, intent: Intent, stop: &Stop) -> anyhow::Result<Vec<Stored>>;

    /// A note on entries other readers hold at the moment (SQS messages in flight: read by
    /// another `eddy dead-letter` command, or by one that was killed), saying when they are
    /// visible again; `None` when there are none or the destination hides nothing.
    ///
    /// # Errors
    /// When the destination cannot be asked.
    async fn in_flight(&self) -> anyhow::Result<Option<String>> {
        Ok(None)
    }

    /// Whether writing an entry replaces a stored one with the same [`Entry::id`] (a table keyed
    /// by it) instead of adding one. Default: no.
    fn keyed(&self) -> bool {
        false
    }

    /// Removes the entries with these ids (a replay delivered their records). Ids no longer
    /// there are ignored.
    ///
    /// # Errors
    /// When the destination cannot be changed.
    async fn remove(&self, ids: &[String]) -> anyhow::Result<()>;

    /// Hands back entries [`DeadLetterStore::list`] returned and the caller did not remove, for
    /// destinations where reading hides an entry from other readers (SQS's visibility timeout):
    /// they are visible again at once. Default: nothing to do.
    ///
    /// # Errors
    /// When the destination cannot be changed.
    async fn release(&self, ids: &[String]) -> anyhow::Result<()> {
        let _ = ids;
        Ok(())
    }
}

/// Parses a `--from` destination: `file:PATH`, `dynamodb:TABLE`, `s3://BUCKET/PREFIX` or
/// `sqs:QUEUE` (a name or URL), at the source's endpoint and region (`inherited`). An SQS queue
/// takes the overflow bucket and visibility timeout of the `configured` dead letter when that is
/// SQS too.
///
/// # Errors
/// When the text is none of these.
pub fn parse_destination(
    text: &str,
    inherited: &Inherited<'_>,
    configured: &DeadLetterConfig,
) -> anyhow::Result<DeadLetterConfig> {
    let (endpoint, region) = (inherited.endpoint.map(str::to_owned), inherited.region.map(str::to_owned));
    if let Some((bucket, prefix)) = text.strip_prefix("s3://").map(|rest| rest.split_once('/').unwrap_or((rest, ""))) {
        if !bucket.is_empty() {
            let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
            return Ok(DeadLetterConfig::S3(s3::DeadLetterBucket { bucket, prefix, endpoint, region }));
        }
    }
    match text.split_once(':') {
        Some(("file", path)) if !path.is_empty() => {
            Ok(DeadLetterConfig::File(file::FileDestination { path: path.into() }))
        }
        Some(("sqs", queue)) if !queue.is_empty() => {
            let mut from = match configured {
                DeadLetterConfig::Sqs(configured) => configured.clone(),
                _ => sqs::DeadLetterQueue::named(queue),
            };
            (from.queue, from.endpoint, from.region) = (queue.to_owned(), endpoint, region);
            Ok(DeadLetterConfig::Sqs(from))
        }
        Some(("dynamodb", table)) if !table.is_empty() => {
            Ok(DeadLetterConfig::Dynamodb(dynamodb::DeadLetterTable { table: table.to_owned(), endpoint, region }))
        }
        _ => anyhow::bail!("--from {text:?}: expected file:PATH, dynamodb:TABLE, s3://BUCKET/PREFIX or sqs:QUEUE"),
    }
}

/// Opens `destination` with these timeouts and retry policy. With [`Access::Work`] a missing
/// file (and its folder) or table is created; with [`Access::Inspect`] it is an error that says
/// it does not exist (buckets and queues are never created).
///
/// # Errors
/// When it cannot be opened or created, or it is missing and is to be inspected.
pub async fn open(
    destination: &DeadLetterConfig,
    timeouts: &eddy_sink_api::Timeouts,
    retry: eddy_sink_api::RetryPolicy,
    access: Access,
) -> anyhow::Result<std::sync::Arc<dyn DeadLetterStore>> {
    Ok(match destination {
        DeadLetterConfig::File(f) => {
            if access == Access::Inspect && !f.path.exists() {
                anyhow::bail!(
                    "the dead letter {} does not exist (nothing was dead-lettered there yet, or the path is wrong)",
                    f.path.display()
                );
            }
            std::sync::Arc::new(file::FileDeadLetter::open(&f.path)?)
        }
        DeadLetterConfig::Dynamodb(table) => {
            std::sync::Arc::new(dynamodb::DynamoDeadLetter::open(table, timeouts, retry, access).await?)
        }
        DeadLetterConfig::S3(bucket) => std::sync::Arc::new(s3::S3DeadLetter::open(bucket, timeouts, retry).await?),
        DeadLetterConfig::Sqs(queue) => std::sync::Arc::new(sqs::SqsDeadLetter::open(queue, timeouts, retry).await?),
    })
}
