//! The sink itself: dedupe per key, batch by 25, write concurrently, retry what is unprocessed.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use eddy_sink_api::{ChangeRecord, EventName, Item, Rejected, Sink, SinkError, WriteOutcome};
use futures::stream::{self, StreamExt, TryStreamExt};
use rand::Rng;

use crate::convert::to_sdk;
use crate::AlternatorConfig;

/// `BatchWriteItem` takes at most 25 operations.
const MAX_BATCH: usize = 25;
/// How many times one request's `UnprocessedItems` are retried before the write is reported as
/// retryable (the host then retries the whole write after its own backoff).
const UNPROCESSED_ATTEMPTS: u32 = 8;

/// Writes changes into one table through the DynamoDB API.
pub struct AlternatorSink {
    client: Client,
    table: String,
    concurrency: usize,
}

impl AlternatorSink {
    /// Builds the client (credentials from the AWS chain: environment, profile, instance role).
    pub async fn connect(config: &AlternatorConfig) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_dynamodb::config::Builder::from(&shared);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Self::with_client(Client::from_conf(builder.build()), config)
    }

    /// A sink on an existing client.
    pub fn with_client(client: Client, config: &AlternatorConfig) -> Self {
        Self { client, table: config.table.clone(), concurrency: config.concurrency.max(1) }
    }

    /// One write request per key (the last change of each key wins), with the batch index of the
    /// change it came from, in batch order. Changes that cannot be written are rejected.
    fn plan(batch: &[&ChangeRecord], rejected: &mut Vec<Rejected>) -> Vec<(usize, WriteRequest)> {
        let mut last: HashMap<&Item, usize> = HashMap::with_capacity(batch.len());
        for (i, record) in batch.iter().enumerate() {
            last.insert(&record.dynamodb.keys, i);
        }
        let mut keep: Vec<usize> = last.into_values().collect();
        keep.sort_unstable();
        let mut out = Vec::with_capacity(keep.len());
        for i in keep {
            let record = batch[i];
            let request = match record.event_name {
                EventName::Insert | EventName::Modify => match &record.dynamodb.new_image {
                    Some(image) => {
                        let put = PutRequest::builder().set_item(Some(to_sdk(image))).build();
                        WriteRequest::builder().put_request(put.expect("item is set")).build()
                    }
                    None => {
                        rejected.push(Rejected {
                            index: i,
                            reason: format!(
                                "{} without a NewImage (stream view type {:?}): the alternator sink needs NEW_IMAGE or NEW_AND_OLD_IMAGES",
                                record.event_name.as_str(),
                                record.dynamodb.stream_view_type
                            ),
                        });
                        continue;
                    }
                },
                EventName::Remove => {
                    let delete = DeleteRequest::builder().set_key(Some(to_sdk(&record.dynamodb.keys))).build();
                    WriteRequest::builder().delete_request(delete.expect("key is set")).build()
                }
            };
            out.push((i, request));
        }
        out
    }

    /// Sends one `BatchWriteItem` and retries its unprocessed items until none are left.
    async fn write_chunk(&self, chunk: Vec<(usize, WriteRequest)>) -> Result<Vec<Rejected>, SinkError> {
        let requests: Vec<WriteRequest> = chunk.iter().map(|(_, r)| r.clone()).collect();
        let mut pending = requests;
        for attempt in 0..UNPROCESSED_ATTEMPTS {
            let result = self.client.batch_write_item().request_items(&self.table, pending.clone()).send().await;
            match result {
                Ok(out) => {
                    pending = out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
                    if pending.is_empty() {
                        return Ok(Vec::new());
                    }
                    tokio::time::sleep(full_jitter(attempt)).await;
                }
                Err(e) if is_validation(&e) => {
                    // One bad item fails the whole request: write them one by one to find it.
                    return self.write_singly(chunk).await;
                }
                Err(e) => return Err(classify(&self.table, e)),
            }
        }
        Err(SinkError::Retryable(format!(
            "table {}: {} items still unprocessed after {UNPROCESSED_ATTEMPTS} attempts (throttled)",
            self.table,
            pending.len()
        )))
    }

    /// Writes each request on its own; requests the table refuses for good are rejected.
    async fn write_singly(&self, chunk: Vec<(usize, WriteRequest)>) -> Result<Vec<Rejected>, SinkError> {
        let mut rejected = Vec::new();
        for (index, request) in chunk {
            let result = if let Some(put) = request.put_request {
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(put.item))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.into_service_error().meta().clone())
            } else if let Some(delete) = request.delete_request {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(delete.key))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.into_service_error().meta().clone())
            } else {
                Ok(())
            };
            if let Err(meta) = result {
                if meta.code() == Some("ValidationException") {
                    rejected.push(Rejected {
                        index,
                        reason: format!("table {}: {}", self.table, meta.message().unwrap_or("ValidationException")),
                    });
                } else {
                    return Err(SinkError::Retryable(format!("table {}: {}", self.table, meta)));
                }
            }
        }
        Ok(rejected)
    }
}

#[async_trait]
impl Sink for AlternatorSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        let mut rejected = Vec::new();
        let plan = Self::plan(batch, &mut rejected);
        let mut chunks = Vec::with_capacity(plan.len().div_ceil(MAX_BATCH));
        let mut it = plan.into_iter().peekable();
        while it.peek().is_some() {
            chunks.push(it.by_ref().take(MAX_BATCH).collect::<Vec<_>>());
        }
        let refused: Vec<Vec<Rejected>> = stream::iter(chunks.into_iter().map(|c| self.write_chunk(c)))
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        rejected.extend(refused.into_iter().flatten());
        rejected.sort_by_key(|r| r.index);
        Ok(WriteOutcome { rejected })
    }
}

/// Full-jitter backoff: a random wait in [0, min(cap, base · 2^attempt)] (AWS Architecture Blog,
/// "Exponential Backoff And Jitter").
fn full_jitter(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(25).saturating_mul(1 << attempt.min(10)).min(Duration::from_secs(2));
    ceiling.mul_f64(rand::rng().random::<f64>())
}

fn is_validation<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(s) if s.err().code() == Some("ValidationException"))
}

/// Missing tables and refused credentials are fatal; everything else (throttling, 5xx, network,
/// timeouts) is worth retrying.
fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    table: &str,
    e: SdkError<E, R>,
) -> SinkError {
    let code = e.code().map(str::to_owned);
    let message = format!("table {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e));
    match code.as_deref() {
        Some(
            "ResourceNotFoundException"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException",
        ) => SinkError::Fatal(message),
        _ => SinkError::Retryable(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_sink_api::{AttributeValue, Item, StreamRecord, StreamViewType};

    fn record(event: EventName, id: &str, seq: &str, with_image: bool) -> ChangeRecord {
        let keys: Item = [("id".to_owned(), AttributeValue::S(id.to_owned()))].into();
        ChangeRecord {
            event_id: seq.to_owned(),
            event_name: event,
            event_version: "1.1".into(),
            event_source: "aws:dynamodb".into(),
            aws_region: "us-east-1".into(),
            dynamodb: StreamRecord {
                approximate_creation_date_time: None,
                new_image: with_image.then(|| keys.clone()),
                keys,
                old_image: None,
                sequence_number: seq.to_owned(),
                size_bytes: 1,
                stream_view_type: StreamViewType::NewAndOldImages,
            },
            event_source_arn: String::new(),
            user_identity: None,
        }
    }

    #[test]
    fn plan_keeps_the_last_operation_per_key_in_batch_order() {
        let recs = [
            record(EventName::Insert, "a", "1", true),
            record(EventName::Insert, "b", "2", true),
            record(EventName::Remove, "a", "3", false),
            record(EventName::Modify, "c", "4", true),
            record(EventName::Modify, "b", "5", true),
        ];
        let batch: Vec<&ChangeRecord> = recs.iter().collect();
        let mut rejected = Vec::new();
        let plan = AlternatorSink::plan(&batch, &mut rejected);
        let indices: Vec<usize> = plan.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, vec![2, 3, 4]);
        assert!(plan[0].1.delete_request.is_some());
        assert!(plan[1].1.put_request.is_some());
        assert!(rejected.is_empty());
    }

    #[test]
    fn a_put_without_new_image_is_rejected_with_the_reason() {
        let recs = [record(EventName::Modify, "a", "1", false)];
        let batch: Vec<&ChangeRecord> = recs.iter().collect();
        let mut rejected = Vec::new();
        assert!(AlternatorSink::plan(&batch, &mut rejected).is_empty());
        assert_eq!(rejected.len(), 1);
        assert!(rejected[0].reason.contains("needs NEW_IMAGE"), "{}", rejected[0].reason);
    }

    #[test]
    fn backoff_stays_under_its_cap() {
        for attempt in 0..40 {
            assert!(full_jitter(attempt) <= Duration::from_secs(2));
        }
    }
}
