//! The `kinesis` sink: forwards each change to an Amazon Kinesis data stream, as a Lambda function
//! calling `kinesis.putRecord` would, batched (`PutRecords`: up to 500 records and 5 MiB a
//! request) and in order per key.
//!
//! - **Partition key**: the item's key (its DynamoDB JSON, or its SHA-256 past Kinesis' 256
//!   characters), so all changes of an item go to one shard.
//! - **Order per key**: a request never holds two changes of one key and requests go one after
//!   the other, each once wholly acknowledged (`eddy_sink_api::forward::requests`): within its
//!   shard, a key's changes get rising sequence numbers in the order they were made.
//! - **Data** (`format`): the change record as Lambda receives it (`record`, default) or the item
//!   as plain JSON (`item`).
//! - **Failures**: a record over 1 MiB (data and partition key) goes to the dead letter before it
//!   is sent; records PutRecords fails (`ProvisionedThroughputExceededException`, counted as
//!   throttling, or `InternalFailure`) are sent again, alone, under the pipeline's retry policy;
//!   a missing stream or refused credentials stop the pipeline with the stream named.

#![deny(missing_docs)]

use async_trait::async_trait;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use eddy_record::ChangeRecord;
use eddy_sink_api::forward::{key_id, requests, send_entries, EntryFailure, Format};
use eddy_sink_api::{Rejected, RetryPolicy, Sink, SinkError, WriteOutcome};
use serde::Deserialize;

/// `sinks.NAME` with `type: kinesis`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisSinkConfig {
    /// The stream's name.
    #[serde(default)]
    pub stream_name: Option<String>,
    /// The stream's ARN, instead of `stream_name`.
    #[serde(default)]
    pub stream_arn: Option<String>,
    /// The region; default: the source's, else the AWS chain.
    #[serde(default)]
    pub region: Option<String>,
    /// A Kinesis-compatible endpoint (moto_server, LocalStack); default: AWS's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The record data: `record` (default) or `item`.
    #[serde(default)]
    pub format: Format,
}

impl KinesisSinkConfig {
    /// The options' problems a parser cannot see, as (key, message): one of `stream_name` and
    /// `stream_arn`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        match (&self.stream_name, &self.stream_arn) {
            (None, None) => vec![("", "set `stream_name` or `stream_arn`".to_owned())],
            (Some(_), Some(_)) => vec![("", "set only one of `stream_name` and `stream_arn`".to_owned())],
            _ => Vec::new(),
        }
    }

    /// The stream, as messages name it.
    pub fn stream(&self) -> &str {
        self.stream_name.as_deref().or(self.stream_arn.as_deref()).unwrap_or_default()
    }
}

/// The most records one `PutRecords` holds.
pub const MAX_RECORDS: usize = 500;
/// The most bytes (data and partition keys) one `PutRecords` holds: 5 MiB.
pub const MAX_REQUEST_BYTES: usize = 5 << 20;
/// The most bytes one record holds (data and partition key): 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// The longest partition key: 256 characters.
pub const MAX_PARTITION_KEY: usize = 256;

/// The partition key of `record`: its item's key.
pub fn partition_key(record: &ChangeRecord) -> String {
    key_id(&record.dynamodb.keys, MAX_PARTITION_KEY)
}

/// Whether a Kinesis error code is throttling.
fn throttling(code: Option<&str>) -> bool {
    matches!(code, Some("ProvisionedThroughputExceededException" | "LimitExceededException" | "ThrottlingException"))
}

/// An SDK error as the retry policy sees it: refused requests (a missing stream, bad
/// credentials, an invalid request) are fatal; throttling and the rest transient.
fn classify<E: ProvideErrorMetadata + std::fmt::Debug>(
    what: &str,
    e: aws_sdk_kinesis::error::SdkError<E>,
) -> SinkError {
    use aws_sdk_kinesis::error::SdkError;
    let code = e.code().map(str::to_owned);
    let text = format!("{what}: {}", e.message().map_or_else(|| format!("{e:?}"), str::to_owned));
    match (&e, code.as_deref()) {
        (_, c) if throttling(c) => SinkError::Throttled(text),
        (SdkError::ServiceError(s), _) if s.raw().status().is_server_error() => SinkError::Retryable(text),
        (SdkError::ServiceError(_), c) => SinkError::Fatal(format!("{text} ({})", c.unwrap_or("no code"))),
        _ => SinkError::Retryable(text),
    }
}

/// The `kinesis` sink.
pub struct KinesisSink {
    client: Client,
    config: KinesisSinkConfig,
    retry: RetryPolicy,
}

impl KinesisSink {
    /// The sink of `config`, sending through `client` (built by the host with the pipeline's
    /// timeouts and no retries of its own) under `retry`. Nothing connects yet.
    pub fn new(client: Client, config: KinesisSinkConfig, retry: RetryPolicy) -> Self {
        Self { client, config, retry }
    }

    /// Sends the records `indexes` (data `bodies`, partition keys `keys`) ([`send_entries`]: the
    /// records PutRecords failed again, alone; it refuses none for good).
    async fn send(
        &self,
        bodies: &[String],
        keys: &[String],
        indexes: &[usize],
        throttled: &mut u32,
    ) -> Result<(), SinkError> {
        let what = &format!("stream {}", self.config.stream());
        send_entries(&self.retry, throttled, what, indexes, |left| async move {
            let entries = left.iter().map(|&i| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(bodies[i].as_bytes()))
                    .partition_key(&keys[i])
                    .build()
                    .expect("data and partition key are set")
            });
            let sent = self
                .client
                .put_records()
                .set_stream_name(self.config.stream_name.clone())
                .set_stream_arn(self.config.stream_arn.clone())
                .set_records(Some(entries.collect()))
                .send();
            let out = sent.await.map_err(|e| classify(&format!("{what}: PutRecords"), e))?;
            // The answer's records are in request order: the failed ones carry an ErrorCode.
            Ok(left
                .iter()
                .zip(out.records())
                .filter_map(|(&index, result)| {
                    let code = result.error_code()?;
                    Some(EntryFailure {
                        index,
                        transient: true,
                        throttled: throttling(Some(code)),
                        reason: format!("{code}: {}", result.error_message().unwrap_or_default()),
                    })
                })
                .collect())
        })
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl Sink for KinesisSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        let mut outcome = WriteOutcome::default();
        let bodies: Vec<String> = batch.iter().map(|r| self.config.format.body(r)).collect();
        let keys: Vec<String> = batch.iter().map(|r| partition_key(r)).collect();
        let mut sizes = Vec::with_capacity(batch.len());
        for (i, (body, key)) in bodies.iter().zip(&keys).enumerate() {
            let size = body.len() + key.len();
            if size > MAX_RECORD_BYTES {
                outcome.rejected.push(Rejected {
                    index: i,
                    reason: format!("the record is {size} bytes, over Kinesis' 1 MiB a record"),
                });
                sizes.push(None);
            } else {
                sizes.push(Some(size));
            }
        }
        for request in requests(batch, &sizes, MAX_RECORDS, MAX_REQUEST_BYTES) {
            self.send(&bodies, &keys, &request, &mut outcome.throttled).await?;
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stream_is_named_and_a_key_is_its_partition_key() {
        let config = |name: Option<&str>, arn: Option<&str>| KinesisSinkConfig {
            stream_name: name.map(str::to_owned),
            stream_arn: arn.map(str::to_owned),
            region: None,
            endpoint: None,
            format: Format::Item,
        };
        assert!(config(Some("out"), None).problems().is_empty());
        assert!(config(None, None).problems()[0].1.contains("set `stream_name` or `stream_arn`"));
        assert!(config(Some("a"), Some("b")).problems()[0].1.contains("only one"));
        let record: ChangeRecord = serde_json::from_value(serde_json::json!({
            "eventID": "e1", "eventName": "REMOVE", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "eventSourceARN": "arn",
            "dynamodb": {"Keys": {"pk": {"S": "a"}, "sk": {"N": "1"}}, "SequenceNumber": "1", "SizeBytes": 1,
                         "StreamViewType": "KEYS_ONLY"}
        }))
        .unwrap();
        assert_eq!(partition_key(&record), r#"{"pk":{"S":"a"},"sk":{"N":"1"}}"#);
    }
}
