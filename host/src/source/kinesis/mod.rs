//! [`StreamsApi`] on a Kinesis data stream that DynamoDB writes its changes to (a "Kinesis Data
//! Streams for DynamoDB" destination, or a relay writing the same JSON).
//!
//! - The control plane goes through the AWS SDK for Rust (`aws-sdk-kinesis`): ListShards (every
//!   page), DescribeStreamSummary (a stream named by `stream_name`), GetShardIterator
//!   (`TRIM_HORIZON`, `LATEST`, `AT_SEQUENCE_NUMBER`, `AFTER_SEQUENCE_NUMBER`, `AT_TIMESTAMP`).
//! - GetRecords goes through eddy's signed JSON client, and its bytes are decoded by [`decode`]
//!   into the same change records a DynamoDB stream gives.
//! - Shards merge as well as split: a shard made by MergeShards has two parents, and the
//!   coordinator starts it only when both are drained.
//! - Kinesis allows 5 GetRecords calls a second per shard; readers space their calls by
//!   [`MIN_POLL_SPACING`], and `ProvisionedThroughputExceededException` backs off.
//! - Newest wins per key ([`recency`]): a change older than one already passed on for its key, or
//!   the same change again, is dropped and counted in `eddy_kinesis_superseded_total{reason}`.
//!   The checkpoint still moves past it.
//!
//! Iterators handed to the reader carry their shard (`SHARD/ITERATOR`), so that each page is
//! checked against its shard's memory.

mod change;
pub mod config;
pub mod decode;
mod one_pass;
pub mod recency;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;

use eddy_aws_json::{AwsJsonClient, AwsJsonError, KINESIS};
use eddy_record::StreamViewType;
use eddy_sink_api::{RetryPolicy, Timeouts};

use super::{IteratorPosition, RecordsPage, Resume, ShardInfo, StreamDescription, StreamsApi, StreamsError};
use config::KinesisSource;
use recency::{Recency, Verdict};

/// Kinesis allows 5 GetRecords calls per second per shard (Kinesis quotas): readers wait this
/// long between two calls on one shard.
pub const MIN_POLL_SPACING: Duration = Duration::from_millis(200);

/// The room reserved in `source.max_inflight_bytes` before each GetRecords: 4 MiB. Kinesis
/// answers up to 10 MiB, but a page of DynamoDB change records (1-2 KB each, `Limit` records)
/// rarely comes near; reserving 10 MiB would let only 25 calls be in flight at the default
/// budget. A larger page takes the excess if the budget has it free and otherwise goes on over
/// the budget, counted in `eddy_inflight_bytes`; a shard's next reservation is then its last
/// page's size.
pub const MAX_PAGE_BYTES: u64 = 4 << 20;

/// The streams API of one Kinesis data stream.
pub struct KinesisStreams {
    client: Client,
    records: AwsJsonClient,
    stream_arn: String,
    table: Option<String>,
    recent_keys_per_shard: usize,
    /// Newest-wins memory by shard.
    recency: Mutex<HashMap<String, Recency>>,
}

impl KinesisStreams {
    /// Connects to the stream the source names (`stream_arn`, or `stream_name` resolved with
    /// DescribeStreamSummary, tried under `retry`). Every call has `timeouts`; the SDK does not
    /// retry (the coordinator and the readers do).
    ///
    /// # Errors
    /// When the stream does not exist or cannot be reached in time.
    pub async fn connect(source: &KinesisSource, timeouts: &Timeouts, retry: &RetryPolicy) -> anyhow::Result<Self> {
        let target = crate::aws::Target { region: source.region.as_deref(), endpoint: source.endpoint.as_deref() };
        let shared = crate::aws::sdk_config(&target, timeouts).await;
        let client = Client::new(&shared);
        let stream_arn = match (&source.stream_arn, &source.stream_name) {
            (Some(arn), _) => arn.clone(),
            (None, Some(name)) => describe_arn(&client, name, retry).await?,
            (None, None) => anyhow::bail!("the source names neither `stream_name` nor `stream_arn`"),
        };
        let records = crate::aws::json_client(KINESIS, "kinesis", &target, timeouts).await?;
        Ok(Self {
            client,
            records,
            stream_arn,
            table: source.table.clone(),
            recent_keys_per_shard: source.recent_keys_per_shard,
            recency: Mutex::new(HashMap::new()),
        })
    }

    /// The stream being read.
    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// How long the stream keeps records (DescribeStreamSummary's `RetentionPeriodHours`: 24 to
    /// 8,760 hours), tried under `retry`.
    ///
    /// # Errors
    /// When DescribeStreamSummary fails for good or leaves the retention out.
    pub async fn retention(&self, retry: &RetryPolicy) -> anyhow::Result<Duration> {
        let mut attempt = 0;
        loop {
            match self.client.describe_stream_summary().stream_arn(&self.stream_arn).send().await {
                Ok(out) => {
                    let hours = out.stream_description_summary.map(|s| s.retention_period_hours).ok_or_else(|| {
                        anyhow::anyhow!("DescribeStreamSummary of {} returned no stream", self.stream_arn)
                    })?;
                    return Ok(Duration::from_secs(u64::try_from(hours).unwrap_or(24) * 3600));
                }
                Err(e) => match classify(e) {
                    StreamsError::Fatal(message) => anyhow::bail!("Kinesis stream {}: {message}", self.stream_arn),
                    e if attempt + 1 >= retry.attempts => anyhow::bail!(
                        "Kinesis stream {}: DescribeStreamSummary failed {} times: {e}",
                        self.stream_arn,
                        attempt + 1
                    ),
                    _ => {
                        tokio::time::sleep(retry.backoff.wait(attempt)).await;
                        attempt += 1;
                    }
                },
            }
        }
    }

    /// Drops the page's stale and duplicate changes (newest wins per key in `shard`). At the
    /// shard's end its memory passes to its children.
    fn newest_wins(
        &self,
        shard: &str,
        decoded: Vec<decode::Decoded>,
        children: &[decode::ChildShard],
    ) -> (Vec<eddy_record::ChangeRecord>, usize) {
        let mut memories = self.recency.lock().expect("not poisoned");
        let memory = memories.entry(shard.to_owned()).or_insert_with(|| Recency::new(self.recent_keys_per_shard));
        let mut kept = Vec::with_capacity(decoded.len());
        let mut dropped = 0;
        for d in decoded {
            let r = &d.record;
            match memory.admit(&d.key, d.created_micros, &r.dynamodb.sequence_number, &r.event_id) {
                Verdict::Keep => kept.push(d.record),
                verdict => {
                    dropped += 1;
                    let sequence = &r.dynamodb.sequence_number;
                    crate::events::Superseded { shard, sequence, reason: verdict.label() }.emit();
                }
            }
        }
        if !children.is_empty() {
            if let Some(parent) = memories.remove(shard) {
                for child in children {
                    memories
                        .entry(child.shard_id.clone())
                        .or_insert_with(|| Recency::new(self.recent_keys_per_shard))
                        .inherit(&parent);
                }
            }
        }
        (kept, dropped)
    }
}

/// The ARN of the stream called `name`.
async fn describe_arn(client: &Client, name: &str, retry: &RetryPolicy) -> anyhow::Result<String> {
    let mut attempt = 0;
    loop {
        match client.describe_stream_summary().stream_name(name).send().await {
            Ok(out) => {
                return out
                    .stream_description_summary
                    .map(|s| s.stream_arn)
                    .ok_or_else(|| anyhow::anyhow!("DescribeStreamSummary of {name} returned no stream"))
            }
            Err(e) => match classify(e) {
                StreamsError::Fatal(message) => anyhow::bail!("Kinesis stream {name}: {message}"),
                e if attempt + 1 >= retry.attempts => {
                    anyhow::bail!("Kinesis stream {name}: DescribeStreamSummary failed {} times: {e}", attempt + 1)
                }
                _ => {
                    tokio::time::sleep(retry.backoff.wait(attempt)).await;
                    attempt += 1;
                }
            },
        }
    }
}

/// Maps an SDK error to the reader's policy by its error code.
fn classify<E, R>(e: SdkError<E, R>) -> StreamsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().map(str::to_owned);
    let label = crate::aws::sdk_error_code(&e);
    count(code.as_deref(), &label);
    by_code(code.as_deref(), aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string())
}

/// Counts a failed call in `eddy_source_errors_total{api="kinesis"}`, unless it only says the
/// iterator expired.
fn count(code: Option<&str>, label: &str) {
    if code != Some("ExpiredIteratorException") {
        crate::events::SourceFailed { api: "kinesis", code: label }.emit();
    }
}

/// The reader's policy for a Kinesis error `code` (`None`: timeouts, dropped connections and
/// 5xx without a code, which are transient).
fn by_code(code: Option<&str>, text: String) -> StreamsError {
    let throttled = matches!(
        code,
        Some("ProvisionedThroughputExceededException" | "LimitExceededException" | "KMSThrottlingException")
    );
    if throttled || crate::aws::is_throttling(code) {
        crate::events::Throttled { api: "kinesis", n: 1 }.emit();
    }
    match code {
        Some("ExpiredIteratorException") => StreamsError::ExpiredIterator,
        Some(
            "InvalidArgumentException" | "KMSAccessDeniedException" | "KMSDisabledException" | "KMSNotFoundException",
        ) => StreamsError::Fatal(text),
        _ if crate::aws::is_refused(code) => StreamsError::Fatal(text),
        _ => StreamsError::Transient(text),
    }
}

/// Whether a GetShardIterator error says the sequence number asked for is no longer in the shard
/// (a checkpoint older than the stream's retention period): Kinesis answers
/// `InvalidArgumentException` naming the `StartingSequenceNumber`, where DynamoDB Streams answers
/// TrimmedDataAccessException. The reader then applies `on_trimmed`.
fn is_gone_sequence(code: Option<&str>, message: Option<&str>) -> bool {
    let message = message.unwrap_or_default().to_ascii_lowercase();
    code == Some("InvalidArgumentException")
        && (message.contains("startingsequencenumber") || message.contains("starting sequence number"))
}

/// Splits an iterator handed out by [`KinesisStreams`] into its shard and Kinesis' iterator.
fn untag(iterator: &str) -> Result<(&str, &str), StreamsError> {
    iterator
        .split_once('/')
        .ok_or_else(|| StreamsError::Fatal(format!("not an iterator eddy handed out: {iterator:?}")))
}

#[async_trait]
impl StreamsApi for KinesisStreams {
    async fn describe_stream(&self) -> Result<StreamDescription, StreamsError> {
        let mut shards = Vec::new();
        let mut next: Option<String> = None;
        loop {
            // A follow-up page names only its token (ListShards refuses a stream with NextToken).
            let request = match next.take() {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_arn(&self.stream_arn),
            };
            let out = request.send().await.map_err(classify)?;
            for shard in out.shards.unwrap_or_default() {
                let range = shard.sequence_number_range;
                shards.push(ShardInfo {
                    shard_id: shard.shard_id,
                    parent_shard_id: shard.parent_shard_id,
                    adjacent_parent_shard_id: shard.adjacent_parent_shard_id,
                    starting_sequence_number: range.as_ref().map(|r| r.starting_sequence_number.clone()),
                    ending_sequence_number: range.and_then(|r| r.ending_sequence_number),
                });
            }
            match out.next_token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => break,
            }
        }
        Ok(StreamDescription {
            stream_arn: self.stream_arn.clone(),
            view_type: Some(StreamViewType::NewAndOldImages),
            shards,
            ended: false,
        })
    }

    async fn get_shard_iterator(&self, shard_id: &str, position: &IteratorPosition) -> Result<String, StreamsError> {
        let request = self.client.get_shard_iterator().stream_arn(&self.stream_arn).shard_id(shard_id);
        let request = match position {
            IteratorPosition::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            IteratorPosition::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            IteratorPosition::AtSequence(s) => {
                request.shard_iterator_type(ShardIteratorType::AtSequenceNumber).starting_sequence_number(s)
            }
            IteratorPosition::AfterSequence(s) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(s)
            }
            IteratorPosition::AtTimestamp(millis) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(aws_smithy_types::DateTime::from_millis(*millis)),
        };
        let from_sequence = matches!(position, IteratorPosition::AfterSequence(_) | IteratorPosition::AtSequence(_));
        let out = request.send().await.map_err(|e| {
            if from_sequence && is_gone_sequence(e.code(), e.message()) {
                StreamsError::Trimmed(aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string())
            } else {
                classify(e)
            }
        })?;
        let iterator = out
            .shard_iterator
            .ok_or_else(|| StreamsError::Transient(format!("GetShardIterator for {shard_id} returned no iterator")))?;
        Ok(format!("{shard_id}/{iterator}"))
    }

    async fn get_records(&self, iterator: &str, limit: u32) -> Result<RecordsPage, StreamsError> {
        let (shard, iterator) = untag(iterator)?;
        // StreamARN is optional in GetRecords; naming it lets resource policies apply (and moto
        // needs it for iterators of a stream named by ARN).
        let body = format!(
            r#"{{"ShardIterator":{},"Limit":{limit},"StreamARN":{}}}"#,
            serde_json::to_string(iterator).expect("a string serializes"),
            serde_json::to_string(&self.stream_arn).expect("a string serializes")
        );
        let answer = self.records.call("GetRecords", body.into_bytes()).await.map_err(|e: AwsJsonError| {
            count(e.code(), &crate::aws::json_error_code(&e));
            by_code(e.code(), format!("GetRecords: {e}"))
        })?;
        let page = decode::page(&answer).map_err(StreamsError::Transient)?;
        let last_sequence = page.records.last().map(|r| r.sequence_number.clone());
        let mut decoded = Vec::with_capacity(page.records.len());
        let mut undecodable = Vec::new();
        for wire in &page.records {
            match decode::record(wire, self.table.as_deref(), &self.stream_arn) {
                Ok(d) => decoded.push(d),
                Err(u) => undecodable.push(u),
            }
        }
        let ended = page.next_shard_iterator.is_none();
        let children = if ended { page.child_shards.as_slice() } else { &[] };
        let (records, dropped) = self.newest_wins(shard, decoded, children);
        Ok(RecordsPage {
            records,
            undecodable,
            next_iterator: page.next_shard_iterator.map(|next| format!("{shard}/{next}")),
            // Past the dropped records too: a restart must not offer them again.
            resume: match (dropped, last_sequence) {
                (1.., Some(last)) => Resume::AfterSequence(last),
                _ => Resume::AfterLastSequence,
            },
            millis_behind_latest: page.millis_behind_latest,
            bytes: answer.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_aws_json::service_error;

    #[test]
    fn get_records_errors_map_to_the_readers_policy_by_code() {
        let error = |code: &str| {
            let body = format!(r#"{{"__type":"{code}","message":"m"}}"#);
            let e = service_error(400, body.as_bytes());
            by_code(e.code(), e.to_string())
        };
        assert!(matches!(error("ExpiredIteratorException"), StreamsError::ExpiredIterator));
        assert!(matches!(error("ProvisionedThroughputExceededException"), StreamsError::Transient(_)));
        assert!(matches!(error("KMSThrottlingException"), StreamsError::Transient(_)));
        assert!(matches!(error("ResourceNotFoundException"), StreamsError::Fatal(_)));
        assert!(matches!(error("AccessDeniedException"), StreamsError::Fatal(_)));
        assert!(matches!(error("InvalidArgumentException"), StreamsError::Fatal(_)));
        assert!(matches!(by_code(None, "no answer".into()), StreamsError::Transient(_)));
    }

    #[test]
    fn a_sequence_number_past_the_retention_period_counts_as_trimmed() {
        let gone = "StartingSequenceNumber 4959 used in GetShardIterator on shard shardId-000000000000 in stream s \
                    under account 1 is invalid because it did not come from this stream.";
        assert!(is_gone_sequence(Some("InvalidArgumentException"), Some(gone)));
        assert!(!is_gone_sequence(Some("InvalidArgumentException"), Some("Timestamp is in the future")));
        assert!(!is_gone_sequence(Some("ResourceNotFoundException"), Some(gone)));
    }

    #[test]
    fn iterators_carry_their_shard() {
        assert_eq!(untag("shardId-000000000001/AAA/BBB+=").unwrap(), ("shardId-000000000001", "AAA/BBB+="));
        assert!(matches!(untag("nope"), Err(StreamsError::Fatal(_))));
    }
}
