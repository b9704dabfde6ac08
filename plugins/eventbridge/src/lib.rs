//! The `eventbridge` sink: forwards each change to an Amazon EventBridge event bus as an event,
//! as a Lambda function calling `eventbridge.putEvents` would, batched and in order per key.
//!
//! - **The event**: `Source` is `source`, `DetailType` is `detail_type` (a text, or `{field:
//!   PATH}`: a field of the change record as Lambda receives it, e.g. `eventName` or
//!   `dynamodb.NewImage.species.S`), `Detail` is the change in `format` (`record` or `item`),
//!   `EventBusName` is `event_bus` (a name or an ARN; default `default`).
//! - **Requests**: `PutEvents` of up to 10 entries and 256 KB ([`MAX_REQUEST_BYTES`], counted as
//!   EventBridge counts an entry), in sequence, never two changes of one key in one request
//!   (`eddy_sink_api::forward::requests`), so rules see a key's changes in order.
//! - **Failures**: an entry over 256 KB, or whose `detail_type` field is missing, goes to the
//!   dead letter before sending; entries PutEvents fails with `ThrottlingException` or
//!   `InternalFailure` are sent again under the pipeline's retry policy, others (a malformed
//!   entry) go to the dead letter with EventBridge's code and message; a missing bus or refused
//!   credentials stop the pipeline with the bus named.

#![deny(missing_docs)]

use async_trait::async_trait;
use eddy_aws_json::{AwsJsonClient, AwsJsonError};
use eddy_record::ChangeRecord;
use eddy_sink_api::forward::{requests, send_entries, EntryFailure, Format};
use eddy_sink_api::{Rejected, RetryPolicy, Sink, SinkError, WriteOutcome};
use serde::Deserialize;
use serde_json::{json, Value};

/// `sinks.NAME` with `type: eventbridge`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBridgeConfig {
    /// The bus's name or ARN. Default `default`.
    #[serde(default = "default_bus")]
    pub event_bus: String,
    /// Each event's `Source`, e.g. `pets.dynamodb`.
    pub source: String,
    /// Each event's `DetailType`. Default `DynamoDB change`.
    #[serde(default)]
    pub detail_type: DetailType,
    /// The `Detail`: `record` (default) or `item`.
    #[serde(default)]
    pub format: Format,
    /// The region; default: the source's, else the AWS chain.
    #[serde(default)]
    pub region: Option<String>,
    /// An EventBridge-compatible endpoint (moto_server, LocalStack); default: AWS's.
    #[serde(default)]
    pub endpoint: Option<String>,
}

fn default_bus() -> String {
    "default".to_owned()
}

/// `detail_type:`: a text, or a field of the change record.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DetailType {
    /// The same text for every event.
    Text(String),
    /// `{field: "eventName"}`: a string field of the change record as Lambda receives it, by its
    /// dot path.
    Field {
        /// The dot path, e.g. `eventName` or `dynamodb.NewImage.species.S`.
        field: String,
    },
}

impl Default for DetailType {
    fn default() -> Self {
        DetailType::Text("DynamoDB change".to_owned())
    }
}

impl DetailType {
    /// The detail type of `record` (as JSON), or why it has none.
    ///
    /// # Errors
    /// The field is missing or not a string.
    pub fn of(&self, record: &Value) -> Result<String, String> {
        match self {
            DetailType::Text(t) => Ok(t.clone()),
            DetailType::Field { field } => {
                let pointer = format!("/{}", field.replace('.', "/"));
                match record.pointer(&pointer) {
                    Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                    _ => Err(format!("the record has no string field {field} for the event's DetailType")),
                }
            }
        }
    }
}

/// The most entries one `PutEvents` holds.
pub const MAX_ENTRIES: usize = 10;
/// The most bytes one `PutEvents` holds (and so one entry): 256 KB.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

impl EventBridgeConfig {
    /// The options' problems a parser cannot see, as (key, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.source.trim().is_empty() {
            out.push(("source", "must not be empty".to_owned()));
        }
        if let DetailType::Field { field } = &self.detail_type {
            if field.is_empty() || field.split('.').any(str::is_empty) {
                out.push(("detail_type.field", format!("{field:?} is not a dot path such as eventName")));
            }
        }
        out
    }

    /// The `PutEvents` entry of `record`, and its size as EventBridge counts it (the UTF-8 bytes
    /// of Source, DetailType, Detail and EventBusName, plus 14 for the time).
    ///
    /// # Errors
    /// The detail type cannot be found.
    pub fn entry(&self, record: &ChangeRecord) -> Result<(Value, usize), String> {
        // The record as JSON only when a field of it is asked for.
        let detail_type = match &self.detail_type {
            DetailType::Text(text) => text.clone(),
            field => field.of(&serde_json::to_value(record).expect("records serialize"))?,
        };
        let detail = self.format.body(record);
        let size = self.source.len() + detail_type.len() + detail.len() + self.event_bus.len() + 14;
        let entry =
            json!({"Source": self.source, "DetailType": detail_type, "Detail": detail, "EventBusName": self.event_bus});
        Ok((entry, size))
    }
}

/// Whether an EventBridge error code is throttling.
fn throttling(code: Option<&str>) -> bool {
    matches!(code, Some("ThrottlingException" | "Throttling" | "LimitExceededException"))
}

/// A request error as the retry policy sees it.
fn classify(bus: &str, e: AwsJsonError) -> SinkError {
    let text = format!("event bus {bus}: PutEvents: {e}");
    match &e {
        e if throttling(e.code()) => SinkError::Throttled(text),
        AwsJsonError::Service { status, .. } if *status >= 500 => SinkError::Retryable(text),
        AwsJsonError::Service { .. } | AwsJsonError::Credentials(_) => SinkError::Fatal(text),
        AwsJsonError::Transport(_) => SinkError::Retryable(text),
    }
}

/// The `eventbridge` sink.
pub struct EventBridgeSink {
    client: AwsJsonClient,
    config: EventBridgeConfig,
    retry: RetryPolicy,
}

impl EventBridgeSink {
    /// The sink of `config`, calling PutEvents through `client` under `retry`.
    pub fn new(client: AwsJsonClient, config: EventBridgeConfig, retry: RetryPolicy) -> Self {
        Self { client, config, retry }
    }

    /// Sends `entries` (batch indexes `indexes`) ([`send_entries`]: entries failed with
    /// throttling or an internal failure again, alone); returns those refused for good.
    async fn send(
        &self,
        entries: &[Value],
        indexes: &[usize],
        throttled: &mut u32,
    ) -> Result<Vec<Rejected>, SinkError> {
        let what = &format!("event bus {}", self.config.event_bus);
        send_entries(&self.retry, throttled, what, indexes, |left| async move {
            let body = json!({"Entries": left.iter().map(|&i| &entries[i]).collect::<Vec<_>>()}).to_string();
            let answer = self.client.call("PutEvents", body).await.map_err(|e| classify(&self.config.event_bus, e))?;
            let answer: Value = serde_json::from_slice(&answer).map_err(|e| {
                SinkError::Retryable(format!("PutEvents answered with something that is not JSON: {e}"))
            })?;
            let results = answer["Entries"].as_array().map(Vec::as_slice).unwrap_or_default();
            // In request order: the failed ones carry an ErrorCode.
            Ok(left
                .iter()
                .zip(results)
                .filter_map(|(&index, result)| {
                    let code = result["ErrorCode"].as_str()?;
                    Some(EntryFailure {
                        index,
                        transient: throttling(Some(code)) || matches!(code, "InternalFailure" | "InternalException"),
                        throttled: throttling(Some(code)),
                        reason: format!(
                            "EventBridge refused the event: {code}: {}",
                            result["ErrorMessage"].as_str().unwrap_or("")
                        ),
                    })
                })
                .collect())
        })
        .await
    }
}

#[async_trait]
impl Sink for EventBridgeSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        let mut outcome = WriteOutcome::default();
        let mut entries = Vec::with_capacity(batch.len());
        let mut sizes = Vec::with_capacity(batch.len());
        for (i, record) in batch.iter().enumerate() {
            match self.config.entry(record) {
                Ok((entry, size)) if size <= MAX_REQUEST_BYTES => {
                    entries.push(entry);
                    sizes.push(Some(size));
                }
                Ok((entry, size)) => {
                    outcome.rejected.push(Rejected {
                        index: i,
                        reason: format!("the event is {size} bytes, over EventBridge's 256 KB"),
                    });
                    entries.push(entry);
                    sizes.push(None);
                }
                Err(reason) => {
                    outcome.rejected.push(Rejected { index: i, reason });
                    entries.push(Value::Null);
                    sizes.push(None);
                }
            }
        }
        for request in requests(batch, &sizes, MAX_ENTRIES, MAX_REQUEST_BYTES) {
            let refused = self.send(&entries, &request, &mut outcome.throttled).await?;
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
    fn entries_take_their_detail_type_from_a_field_or_a_text() {
        let config: EventBridgeConfig = serde_json::from_value(json!({
            "source": "pets.dynamodb", "detail_type": {"field": "dynamodb.NewImage.species.S"}, "format": "item"
        }))
        .unwrap();
        assert!(config.problems().is_empty());
        let record: ChangeRecord = serde_json::from_value(json!({
            "eventID": "e1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "eventSourceARN": "arn",
            "dynamodb": {"Keys": {"pk": {"S": "a"}}, "NewImage": {"pk": {"S": "a"}, "species": {"S": "dog"}},
                         "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"}
        }))
        .unwrap();
        let (entry, size) = config.entry(&record).unwrap();
        assert_eq!(entry["DetailType"], "dog");
        assert_eq!(entry["EventBusName"], "default");
        assert_eq!(entry["Detail"], r#"{"pk":"a","species":"dog"}"#);
        assert_eq!(size, "pets.dynamodb".len() + 3 + entry["Detail"].as_str().unwrap().len() + 7 + 14);
        let mut remove = record.clone();
        remove.dynamodb.new_image = None;
        assert!(config.entry(&remove).unwrap_err().contains("no string field dynamodb.NewImage.species.S"));
        let text: EventBridgeConfig = serde_json::from_value(json!({"source": "s", "detail_type": "Pet"})).unwrap();
        assert_eq!(text.entry(&record).unwrap().0["DetailType"], "Pet");
        let bad: EventBridgeConfig =
            serde_json::from_value(json!({"source": "", "detail_type": {"field": "a..b"}})).unwrap();
        assert_eq!(bad.problems().len(), 2);
    }
}
