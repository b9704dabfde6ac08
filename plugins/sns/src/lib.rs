//! The `sns` sink: publishes each change to an Amazon SNS topic, as a Lambda function calling
//! `sns.publish` would, batched (`PublishBatch`: up to 10 messages and 256 KiB a request) and in
//! order per key.
//!
//! - **Message**: the change in `format` (`record` or `item`, `eddy_sink_api::forward::Format`),
//!   with the String message attributes `eventName` (`INSERT`, `MODIFY`, `REMOVE`) and
//!   `tableName` (from the record's `eventSourceARN`), so subscriptions can filter on them.
//! - **Order per key**: a request never holds two changes of one key and requests go one after
//!   the other (`eddy_sink_api::forward::requests`). A FIFO topic (its ARN ends in `.fifo`) keeps
//!   the order for its subscribers: `MessageGroupId` is the item's key, `MessageDeduplicationId`
//!   the change's `eventID`.
//! - **Failures**: a message over 256 KiB goes to the dead letter before sending; entries SNS
//!   fails as the sender's fault go to the dead letter with SNS's code and message, others are
//!   sent again under the pipeline's retry policy; a missing topic or refused credentials stop
//!   the pipeline with the topic named.

#![deny(missing_docs)]

use async_trait::async_trait;
use aws_sdk_sns::error::ProvideErrorMetadata;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use aws_sdk_sns::Client;
use eddy_record::ChangeRecord;
use eddy_sink_api::forward::{deduplication_id, group_id, requests, send_entries, EntryFailure, Format};
use eddy_sink_api::{Rejected, RetryPolicy, Sink, SinkError, WriteOutcome};
use serde::Deserialize;

/// `sinks.NAME` with `type: sns`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsConfig {
    /// The topic's ARN (`arn:aws:sns:REGION:ACCOUNT:NAME`, `.fifo` for a FIFO topic).
    pub topic_arn: String,
    /// The region; default: the source's, else the AWS chain.
    #[serde(default)]
    pub region: Option<String>,
    /// An SNS-compatible endpoint (moto_server, LocalStack); default: AWS's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The message: `record` (default) or `item`.
    #[serde(default)]
    pub format: Format,
}

impl SnsConfig {
    /// The options' problems a parser cannot see, as (key, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        if self.topic_arn.starts_with("arn:") && self.topic_arn.split(':').count() == 6 {
            Vec::new()
        } else {
            vec![("topic_arn", format!("{:?} is not a topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", self.topic_arn))]
        }
    }

    /// Whether the topic is a FIFO topic (its name ends in `.fifo`).
    pub fn fifo(&self) -> bool {
        self.topic_arn.ends_with(".fifo")
    }
}

/// The most messages one `PublishBatch` holds.
pub const MAX_ENTRIES: usize = 10;
/// The most bytes one `PublishBatch` holds (messages and attributes): 256 KiB.
pub const MAX_REQUEST_BYTES: usize = 262_144;

/// The table a change comes from: the `NAME` of its `eventSourceARN`
/// (`arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL`); empty when the ARN names none.
pub fn table_name(record: &ChangeRecord) -> &str {
    record.event_source_arn.split_once(":table/").map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""))
}

/// The message attributes of `record`: `eventName` and `tableName`, and their size as SNS counts
/// it (names, types and values).
pub fn attributes(record: &ChangeRecord) -> (Vec<(&'static str, String)>, usize) {
    let event =
        serde_json::to_value(record.event_name).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let mut out = vec![("eventName", event)];
    let table = table_name(record);
    if !table.is_empty() {
        out.push(("tableName", table.to_owned()));
    }
    let size = out.iter().map(|(name, value)| name.len() + "String".len() + value.len()).sum();
    (out, size)
}

/// Whether an SNS error code is throttling.
fn throttling(code: Option<&str>) -> bool {
    matches!(code, Some("Throttled" | "ThrottlingException" | "Throttling" | "KMSThrottling"))
}

/// An SDK error as the retry policy sees it.
fn classify<E: ProvideErrorMetadata + std::fmt::Debug>(what: &str, e: aws_sdk_sns::error::SdkError<E>) -> SinkError {
    use aws_sdk_sns::error::SdkError;
    let code = e.code().map(str::to_owned);
    let text = format!("{what}: {}", e.message().map_or_else(|| format!("{e:?}"), str::to_owned));
    match (&e, code.as_deref()) {
        (_, c) if throttling(c) => SinkError::Throttled(text),
        (SdkError::ServiceError(s), _) if s.raw().status().is_server_error() => SinkError::Retryable(text),
        (SdkError::ServiceError(_), c) => SinkError::Fatal(format!("{text} ({})", c.unwrap_or("no code"))),
        _ => SinkError::Retryable(text),
    }
}

/// The `sns` sink.
pub struct SnsSink {
    client: Client,
    config: SnsConfig,
    retry: RetryPolicy,
}

impl SnsSink {
    /// The sink of `config`, publishing through `client` (built by the host with the pipeline's
    /// timeouts and no retries of its own) under `retry`. Nothing connects yet.
    pub fn new(client: Client, config: SnsConfig, retry: RetryPolicy) -> Self {
        Self { client, config, retry }
    }

    fn entry(&self, i: usize, record: &ChangeRecord, body: &str) -> PublishBatchRequestEntry {
        let mut entry = PublishBatchRequestEntry::builder().id(i.to_string()).message(body);
        for (name, value) in attributes(record).0 {
            let value = MessageAttributeValue::builder().data_type("String").string_value(value).build();
            entry = entry.message_attributes(name, value.expect("data type is set"));
        }
        if self.config.fifo() {
            entry = entry
                .message_group_id(group_id(&record.dynamodb.keys))
                .message_deduplication_id(deduplication_id(record));
        }
        entry.build().expect("id and message are set")
    }

    /// Publishes the entries `indexes` ([`send_entries`]: failed entries again, alone); returns
    /// those refused for good (SNS's `SenderFault`).
    async fn send(
        &self,
        batch: &[&ChangeRecord],
        bodies: &[String],
        indexes: &[usize],
        throttled: &mut u32,
    ) -> Result<Vec<Rejected>, SinkError> {
        let what = &format!("topic {}", self.config.topic_arn);
        send_entries(&self.retry, throttled, what, indexes, |left| async move {
            let entries = left.iter().map(|&i| self.entry(i, batch[i], &bodies[i])).collect();
            let sent = self
                .client
                .publish_batch()
                .topic_arn(&self.config.topic_arn)
                .set_publish_batch_request_entries(Some(entries))
                .send();
            let out = sent.await.map_err(|e| classify(&format!("{what}: PublishBatch"), e))?;
            Ok(out
                .failed()
                .iter()
                .filter_map(|f| {
                    Some(EntryFailure {
                        index: f.id().parse().ok()?,
                        transient: !f.sender_fault(),
                        throttled: throttling(Some(f.code())),
                        reason: format!("SNS refused the message: {} ({})", f.message().unwrap_or_default(), f.code()),
                    })
                })
                .collect())
        })
        .await
    }
}

#[async_trait]
impl Sink for SnsSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        let mut outcome = WriteOutcome::default();
        let bodies: Vec<String> = batch.iter().map(|r| self.config.format.body(r)).collect();
        let mut sizes = Vec::with_capacity(batch.len());
        for (i, (record, body)) in batch.iter().zip(&bodies).enumerate() {
            let size = body.len() + attributes(record).1;
            if size > MAX_REQUEST_BYTES {
                outcome.rejected.push(Rejected {
                    index: i,
                    reason: format!("the message is {size} bytes with its attributes, over SNS's 256 KiB"),
                });
                sizes.push(None);
            } else {
                sizes.push(Some(size));
            }
        }
        for request in requests(batch, &sizes, MAX_ENTRIES, MAX_REQUEST_BYTES) {
            let refused = self.send(batch, &bodies, &request, &mut outcome.throttled).await?;
            outcome.rejected.extend(refused);
        }
        outcome.rejected.sort_by_key(|r| r.index);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_name_the_event_and_the_table() {
        let record: ChangeRecord = serde_json::from_value(serde_json::json!({
            "eventID": "e1", "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/Pets/stream/2026-01-01T00:00:00.000",
            "dynamodb": {"Keys": {"pk": {"S": "a"}}, "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "KEYS_ONLY"}
        }))
        .unwrap();
        let (attrs, size) = attributes(&record);
        assert_eq!(attrs, vec![("eventName", "MODIFY".to_owned()), ("tableName", "Pets".to_owned())]);
        assert_eq!(size, "eventName".len() + 6 + 6 + "tableName".len() + 6 + 4);
        let config =
            |arn: &str| SnsConfig { topic_arn: arn.into(), region: None, endpoint: None, format: Format::Record };
        assert!(config("arn:aws:sns:us-east-1:123456789012:pets.fifo").fifo());
        assert!(config("arn:aws:sns:us-east-1:123456789012:pets").problems().is_empty());
        assert_eq!(config("pets").problems().len(), 1);
    }
}
