//! The source: the streams API and the records it yields.
//!
//! [`StreamsApi`] is the seam between eddy and a sharded change stream (DescribeStream,
//! GetShardIterator, GetRecords). Each source type is a folder of its own, with its section of
//! the pipeline file beside it: [`dynamodb`] (DynamoDB Streams: the AWS SDK for the control
//! plane, eddy's signed client and the `wire` decoder for GetRecords), [`kinesis`] (a Kinesis
//! data stream that DynamoDB writes its changes to), [`file`](mod@file) (a JSONL file); tests implement it
//! with a scripted shard topology. [`TYPES`] is the registry of `type:` names. This module
//! depends on nothing else of eddy's but `spec` and `aws`: the coordinator drives it, the lease
//! store and the pipeline use its types.

pub mod dynamodb;
pub(crate) mod fields;
pub mod file;
pub mod kinesis;
pub mod polling;
#[cfg(test)]
mod sdk_reference;
mod wire;

pub use wire::decode_page as decode_get_records;

use async_trait::async_trait;
use eddy_record::{ChangeRecord, StreamViewType};

use crate::spec::Problem;
use polling::StreamPolling;

/// `source:`, the stream to read: one variant per source type.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// `type: dynamodb`
    Dynamodb(dynamodb::config::DynamodbSource),
    /// `type: kinesis`
    Kinesis(kinesis::config::KinesisSource),
    /// `type: file`
    File(file::FileSource),
}

/// The source types: each `type:` name and how its section is read. Adding a source type is a
/// folder of its own, a variant of [`SourceConfig`] and a line here.
pub const TYPES: &[(&str, crate::spec::Parse<SourceConfig>)] = &[
    ("dynamodb", |v| crate::spec::deserialize(v).map(SourceConfig::Dynamodb)),
    ("kinesis", |v| crate::spec::deserialize(v).map(SourceConfig::Kinesis)),
    ("file", |v| crate::spec::deserialize(v).map(SourceConfig::File)),
];

impl SourceConfig {
    /// The polling keys of a stream source; `None` for the file source.
    pub fn polling(&self) -> Option<StreamPolling> {
        match self {
            SourceConfig::Dynamodb(s) => Some(s.polling()),
            SourceConfig::Kinesis(s) => Some(s.polling()),
            SourceConfig::File(_) => None,
        }
    }

    /// The source's `endpoint` and `region` (AWS sources only): what the lease table, the dead
    /// letter and Alternator sinks inherit.
    pub fn inherited(&self) -> crate::spec::Inherited<'_> {
        let (endpoint, region) = match self {
            SourceConfig::Dynamodb(s) => (s.endpoint.as_deref(), s.region.as_deref()),
            SourceConfig::Kinesis(s) => (s.endpoint.as_deref(), s.region.as_deref()),
            SourceConfig::File(_) => (None, None),
        };
        crate::spec::Inherited { endpoint, region }
    }

    /// What the section's parser cannot see.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            SourceConfig::Dynamodb(s) => s.problems(),
            SourceConfig::Kinesis(s) => s.problems(),
            SourceConfig::File(f) => f.problems(),
        }
    }

    /// Resolves relative paths against `base` (the pipeline file's folder).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        if let SourceConfig::File(f) = self {
            if f.path.is_relative() {
                f.path = base.join(&f.path);
            }
        }
    }
}

/// One shard as DescribeStream (or Kinesis' ListShards) reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardInfo {
    /// `shardId-...`
    pub shard_id: String,
    /// The shard this one was split from (or the first of two merged into it), if any. A child
    /// is read only after its parents are drained, so that per-key order holds across the split.
    pub parent_shard_id: Option<String>,
    /// The second parent of a Kinesis shard made by MergeShards (`AdjacentParentShardId`);
    /// DynamoDB Streams shards never have one.
    pub adjacent_parent_shard_id: Option<String>,
    /// The first sequence number in the shard.
    pub starting_sequence_number: Option<String>,
    /// The last sequence number, once the shard is closed (no more records will be added).
    pub ending_sequence_number: Option<String>,
}

impl ShardInfo {
    /// The shard's parents: none, one (a split, or any DynamoDB Streams child) or two (a Kinesis
    /// merge).
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        self.parent_shard_id.iter().chain(self.adjacent_parent_shard_id.iter()).map(String::as_str)
    }
}

/// The stream as DescribeStream reports it (all pages).
#[derive(Debug, Clone)]
pub struct StreamDescription {
    /// The stream's ARN.
    pub stream_arn: String,
    /// Which images its records carry.
    pub view_type: Option<StreamViewType>,
    /// Every shard still in the stream (the last 24 hours); parents before children is not
    /// guaranteed.
    pub shards: Vec<ShardInfo>,
    /// No shard will ever be added (a disabled stream, a file): once every shard is drained, the
    /// run is complete.
    pub ended: bool,
}

/// Where a shard iterator starts (GetShardIterator's `ShardIteratorType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorPosition {
    /// The oldest record in the shard.
    TrimHorizon,
    /// Just after the newest record.
    Latest,
    /// At the record with this sequence number.
    AtSequence(String),
    /// Just after the record with this sequence number (how a checkpoint resumes).
    AfterSequence(String),
    /// At the first record that arrived at or after this time, in epoch milliseconds (Kinesis'
    /// `AT_TIMESTAMP`; DynamoDB Streams has no such iterator).
    AtTimestamp(i64),
}

/// One GetRecords answer.
#[derive(Debug, Default)]
pub struct RecordsPage {
    /// The records, in sequence order.
    pub records: Vec<ChangeRecord>,
    /// Records that could not be decoded; they go to the dead letter.
    pub undecodable: Vec<Undecodable>,
    /// The iterator for the next call; `None` once a closed shard is fully read (SHARD_END).
    pub next_iterator: Option<String>,
    /// Where a reader resumes once this page is acknowledged.
    pub resume: Resume,
    /// How far the page is behind the shard's newest record, when the API says so (Kinesis'
    /// `MillisBehindLatest`); otherwise the age of the page's newest record is used.
    pub millis_behind_latest: Option<u64>,
    /// The size in bytes of the answer the page was read from (its records keep slices of it in
    /// memory), for `source.max_inflight_bytes`; 0 when the source does not say.
    pub bytes: u64,
}

/// Where a reader resumes after an acknowledged page: the checkpoint it saves.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Resume {
    /// After the largest sequence number in the page (stream shards).
    #[default]
    AfterLastSequence,
    /// After this sequence number, which may belong to a record the source dropped (a Kinesis
    /// change superseded by a newer one): the checkpoint moves past it even when no record of the
    /// page is left.
    AfterSequence(String),
    /// After this position, which is not a sequence number: a snapshot segment's Scan
    /// `LastEvaluatedKey` (DynamoDB JSON text). `None` on a segment's last page, where only
    /// SHARD_END is saved.
    AfterKey(Option<String>),
}

/// A stream record eddy could not turn into a [`ChangeRecord`].
#[derive(Debug, Clone)]
pub struct Undecodable {
    /// Its sequence number, when it had one.
    pub sequence_number: Option<String>,
    /// Why it could not be decoded.
    pub reason: String,
    /// The record's text as it was read (its JSON, or the file's line).
    pub raw: String,
}

/// How a streams call failed, as far as the reader's policy is concerned.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// The iterator is older than 15 minutes (ExpiredIteratorException): get a new one after the
    /// last processed record.
    #[error("shard iterator expired")]
    ExpiredIterator,
    /// The requested position is older than the trim horizon (TrimmedDataAccessException).
    #[error("data trimmed: {0}")]
    Trimmed(String),
    /// Throttling, 5xx, network errors: back off and retry.
    #[error("{0}")]
    Transient(String),
    /// Missing stream or shard, refused credentials: stop.
    #[error("{0}")]
    Fatal(String),
}

/// DescribeStream under `retry`: a transient failure (throttling, 5xx, no answer) is tried again
/// with the policy's waits; a fatal one (a missing stream, refused credentials) at once.
///
/// # Errors
/// The last failure, saying how often it was tried.
pub async fn describe_with_retry(
    api: &dyn StreamsApi,
    retry: &eddy_sink_api::RetryPolicy,
) -> anyhow::Result<StreamDescription> {
    retry
        .retry(|| api.describe_stream(), |e| matches!(e, StreamsError::Transient(_)))
        .await
        .map_err(|(e, tries)| anyhow::anyhow!("DescribeStream failed (tried {tries} times): {e}"))
}

/// The DynamoDB Streams API, as eddy uses it.
#[async_trait]
pub trait StreamsApi: Send + Sync {
    /// DescribeStream, following `LastEvaluatedShardId` through every page.
    async fn describe_stream(&self) -> Result<StreamDescription, StreamsError>;

    /// GetShardIterator for `shard_id` at `position`.
    async fn get_shard_iterator(&self, shard_id: &str, position: &IteratorPosition) -> Result<String, StreamsError>;

    /// GetRecords with `Limit` = `limit` (1..=1000).
    async fn get_records(&self, iterator: &str, limit: u32) -> Result<RecordsPage, StreamsError>;
}
