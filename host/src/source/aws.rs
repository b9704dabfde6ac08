//! [`StreamsApi`] on the AWS SDK for Rust (`aws-sdk-dynamodbstreams`).

use async_trait::async_trait;
use aws_sdk_dynamodbstreams::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_dynamodbstreams::Client;

use super::decode::decode_record;
use super::{IteratorPosition, RecordsPage, ShardInfo, StreamDescription, StreamsApi, StreamsError};
use crate::config::DynamodbSource;
use eddy_sink_api::{RetryPolicy, Timeouts};

/// The streams API of one stream, through the AWS SDK.
pub struct AwsStreams {
    client: Client,
    stream_arn: String,
}

impl AwsStreams {
    /// Connects to the stream the source names: `stream_arn` as given, or the latest stream of
    /// `table` (DescribeTable's `LatestStreamArn`, tried under `retry`). Every call has
    /// `timeouts`; the SDK does not retry (the coordinator and the readers do, under the same
    /// policy).
    ///
    /// # Errors
    /// When the table does not exist, has no stream enabled, or cannot be reached in time.
    pub async fn connect(source: &DynamodbSource, timeouts: &Timeouts, retry: &RetryPolicy) -> anyhow::Result<Self> {
        let target = crate::aws::Target { region: source.region.as_deref(), endpoint: source.endpoint.as_deref() };
        let shared = crate::aws::sdk_config(&target, timeouts).await;
        let stream_arn = match (&source.stream_arn, &source.table) {
            (Some(arn), _) => arn.clone(),
            (None, Some(table)) => {
                let tables = aws_sdk_dynamodb::Client::new(&shared);
                let fatal = |e: &SdkError<_, _>| {
                    matches!(
                        ProvideErrorMetadata::code(e),
                        Some("ResourceNotFoundException" | "AccessDeniedException" | "UnrecognizedClientException")
                    )
                };
                let out = retry
                    .retry(|| tables.describe_table().table_name(table).send(), |e| !fatal(e))
                    .await
                    .map_err(|(e, tries)| {
                        anyhow::anyhow!(
                            "cannot describe table {table} (tried {tries} times): {}",
                            aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                        )
                    })?;
                out.table.and_then(|t| t.latest_stream_arn).ok_or_else(|| {
                    anyhow::anyhow!("table {table} has no stream: enable one (StreamViewType NEW_AND_OLD_IMAGES)")
                })?
            }
            (None, None) => anyhow::bail!("the source names neither `table` nor `stream_arn`"),
        };
        Ok(Self { client: Client::new(&shared), stream_arn })
    }

    /// The stream being read.
    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }
}

/// Maps an SDK error to the reader's policy by its error code. Timeouts, dropped connections
/// and 5xx have no code: they are transient.
fn classify<E, R>(e: SdkError<E, R>) -> StreamsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().map(str::to_owned);
    let text = aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string();
    if crate::aws::is_throttling(code.as_deref()) {
        crate::aws::count_throttled("dynamodbstreams", 1);
    }
    match code.as_deref() {
        Some("ExpiredIteratorException") => StreamsError::ExpiredIterator,
        Some("TrimmedDataAccessException") => StreamsError::Trimmed(text),
        Some(
            "ResourceNotFoundException"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "ValidationException",
        ) => StreamsError::Fatal(text),
        _ => StreamsError::Transient(text),
    }
}

#[async_trait]
impl StreamsApi for AwsStreams {
    async fn describe_stream(&self) -> Result<StreamDescription, StreamsError> {
        let mut shards = Vec::new();
        let mut view_type = None;
        let mut disabled = false;
        let mut start: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(classify)?;
            let Some(desc) = out.stream_description else {
                break;
            };
            disabled = desc.stream_status.as_ref().is_some_and(|s| s.as_str() == "DISABLED");
            if view_type.is_none() {
                view_type = desc.stream_view_type.as_ref().and_then(|v| super::decode::view_type(v.as_str()));
            }
            for shard in desc.shards.unwrap_or_default() {
                let Some(shard_id) = shard.shard_id else {
                    continue;
                };
                let range = shard.sequence_number_range;
                shards.push(ShardInfo {
                    shard_id,
                    parent_shard_id: shard.parent_shard_id,
                    starting_sequence_number: range.as_ref().and_then(|r| r.starting_sequence_number.clone()),
                    ending_sequence_number: range.and_then(|r| r.ending_sequence_number),
                });
            }
            match desc.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        // A disabled stream gets no new shards; it has ended once its shards are all closed.
        let ended = disabled && shards.iter().all(|s| s.ending_sequence_number.is_some());
        Ok(StreamDescription { stream_arn: self.stream_arn.clone(), view_type, shards, ended })
    }

    async fn get_shard_iterator(&self, shard_id: &str, position: &IteratorPosition) -> Result<String, StreamsError> {
        let (kind, seq) = match position {
            IteratorPosition::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
            IteratorPosition::Latest => (ShardIteratorType::Latest, None),
            IteratorPosition::AtSequence(s) => (ShardIteratorType::AtSequenceNumber, Some(s.clone())),
            IteratorPosition::AfterSequence(s) => (ShardIteratorType::AfterSequenceNumber, Some(s.clone())),
        };
        let out = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_sequence_number(seq)
            .send()
            .await
            .map_err(classify)?;
        out.shard_iterator
            .ok_or_else(|| StreamsError::Transient(format!("GetShardIterator for {shard_id} returned no iterator")))
    }

    async fn get_records(&self, iterator: &str, limit: u32) -> Result<RecordsPage, StreamsError> {
        let out =
            self.client.get_records().shard_iterator(iterator).limit(limit as i32).send().await.map_err(classify)?;
        let mut page = RecordsPage { next_iterator: out.next_shard_iterator, ..RecordsPage::default() };
        let raw = out.records.unwrap_or_default();
        page.records.reserve(raw.len());
        for record in raw {
            match decode_record(record, &self.stream_arn) {
                Ok(r) => page.records.push(r),
                Err(u) => page.undecodable.push(u),
            }
        }
        Ok(page)
    }
}
