//! [`StreamsApi`] on DynamoDB Streams: the control plane (DescribeStream, GetShardIterator)
//! through the AWS SDK for Rust (`aws-sdk-dynamodbstreams`), GetRecords through eddy's signed
//! JSON client ([`eddy_aws_json`]) and decoded from its bytes (the `wire` module).

pub mod config;

use async_trait::async_trait;
use aws_sdk_dynamodbstreams::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_dynamodbstreams::Client;

use eddy_aws_json::{AwsJsonClient, AwsJsonError, DYNAMODB_STREAMS};

use super::{IteratorPosition, RecordsPage, ShardInfo, StreamDescription, StreamsApi, StreamsError};
use config::DynamodbSource;
use eddy_sink_api::{RetryPolicy, Timeouts};

/// The streams API of one stream, through the AWS SDK.
pub struct AwsStreams {
    client: Client,
    records: AwsJsonClient,
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
                crate::aws::describe_table(&tables, table, retry).await?.latest_stream_arn.ok_or_else(|| {
                    anyhow::anyhow!("table {table} has no stream: enable one (StreamViewType NEW_AND_OLD_IMAGES)")
                })?
            }
            (None, None) => anyhow::bail!("the source names neither `table` nor `stream_arn`"),
        };
        let records = crate::aws::json_client(DYNAMODB_STREAMS, "streams.dynamodb", &target, timeouts).await?;
        Ok(Self { client: Client::new(&shared), records, stream_arn })
    }

    /// The stream being read.
    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
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
    by_code(code.as_deref(), aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())
}

/// Counts a failed call in `eddy_source_errors_total{api="dynamodbstreams"}`, unless it only
/// says the iterator expired (which is how iterators age, not a failure).
fn count(code: Option<&str>, label: &str) {
    if code != Some("ExpiredIteratorException") {
        crate::events::SourceFailed { api: "dynamodbstreams", code: label }.emit();
    }
}

/// Maps a GetRecords error to the reader's policy, as [`classify`] does.
fn classify_records(e: AwsJsonError) -> StreamsError {
    count(e.code(), &crate::aws::json_error_code(&e));
    by_code(e.code(), format!("GetRecords: {e}"))
}

/// The reader's policy for an error `code` (`None`: timeouts, dropped connections and 5xx
/// without a code, which are transient).
fn by_code(code: Option<&str>, text: String) -> StreamsError {
    if crate::aws::is_throttling(code) {
        crate::events::Throttled { api: "dynamodbstreams", n: 1 }.emit();
    }
    match code {
        Some("ExpiredIteratorException") => StreamsError::ExpiredIterator,
        Some("TrimmedDataAccessException") => StreamsError::Trimmed(text),
        _ if crate::aws::is_refused(code) => StreamsError::Fatal(text),
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
                view_type = desc.stream_view_type.as_ref().and_then(|v| super::wire::view_type(v.as_str()));
            }
            for shard in desc.shards.unwrap_or_default() {
                let Some(shard_id) = shard.shard_id else {
                    continue;
                };
                let range = shard.sequence_number_range;
                shards.push(ShardInfo {
                    shard_id,
                    parent_shard_id: shard.parent_shard_id,
                    adjacent_parent_shard_id: None,
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
            IteratorPosition::AtTimestamp(_) => {
                return Err(StreamsError::Fatal("DynamoDB Streams has no AT_TIMESTAMP shard iterator".into()))
            }
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
        let body = format!(
            r#"{{"ShardIterator":{},"Limit":{limit}}}"#,
            serde_json::to_string(iterator).expect("a string serializes")
        );
        let answer = self.records.call("GetRecords", body.into_bytes()).await.map_err(classify_records)?;
        let mut page = super::wire::decode_page(&answer, &self.stream_arn).map_err(|e| {
            count(None, "malformed");
            StreamsError::Transient(e)
        })?;
        page.bytes = answer.len() as u64;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_aws_json::service_error;

    /// GetRecords errors keep the meaning they had through the SDK: the reader's policy is chosen
    /// by the error code of the answer.
    #[test]
    fn get_records_errors_map_to_the_readers_policy_by_code() {
        let error = |status: u16, code: &str| {
            let body = format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"m"}}"#);
            classify_records(service_error(status, body.as_bytes()))
        };
        assert!(matches!(error(400, "ExpiredIteratorException"), StreamsError::ExpiredIterator));
        assert!(matches!(error(400, "TrimmedDataAccessException"), StreamsError::Trimmed(_)));
        assert!(matches!(error(400, "LimitExceededException"), StreamsError::Transient(_)));
        assert!(matches!(error(400, "ThrottlingException"), StreamsError::Transient(_)));
        assert!(matches!(error(500, "InternalServerError"), StreamsError::Transient(_)));
        assert!(matches!(error(400, "ResourceNotFoundException"), StreamsError::Fatal(_)));
        assert!(matches!(error(400, "UnrecognizedClientException"), StreamsError::Fatal(_)));
        assert!(matches!(
            classify_records(service_error(503, b"<html>Service Unavailable</html>")),
            StreamsError::Transient(_)
        ));
        let timeout = classify_records(AwsJsonError::Transport("GetRecords to http://x got no answer".into()));
        assert!(matches!(timeout, StreamsError::Transient(m) if m.contains("no answer")));
    }
}
