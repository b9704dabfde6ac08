//! The sink itself: dedupe per key, batch by 25, write concurrently, retry what is unprocessed.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use eddy_sink_api::{ChangeRecord, EventName, Item, Rejected, RetryPolicy, Sink, SinkError, WriteOutcome};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::convert::to_sdk;
use crate::AlternatorConfig;

/// `BatchWriteItem` takes at most 25 operations.
const MAX_BATCH: usize = 25;

/// Writes changes into one table through the DynamoDB API.
pub struct AlternatorSink {
    client: Client,
    table: String,
    concurrency: usize,
    retry: RetryPolicy,
}

/// What one write sends: one request per key, and the changes refused before sending.
#[derive(Debug, Default)]
pub struct Plan {
    /// `(index in the batch, request)`, in batch order: the last change of each key.
    pub requests: Vec<(usize, WriteRequest)>,
    /// Changes that cannot be written (an INSERT or MODIFY without a `NewImage`).
    pub rejected: Vec<Rejected>,
}

/// A chunk's result: the refused changes and how many rounds were throttled.
type ChunkResult = Result<(Vec<Rejected>, u32), SinkError>;

impl AlternatorSink {
    /// A sink on `client` (built by the host with its timeouts and its retries switched off:
    /// `retry` is the only retry policy, applied to `UnprocessedItems`).
    pub fn new(client: Client, config: &AlternatorConfig, retry: RetryPolicy) -> Self {
        Self { client, table: config.table.clone(), concurrency: config.concurrency.max(1), retry }
    }

    /// One write request per key (the last change of each key wins), with the batch index of the
    /// change it came from, in batch order. Changes that cannot be written are rejected. (Public
    /// for `eddy sink preview`, which shows what a batch becomes.)
    pub fn plan(batch: &[&ChangeRecord]) -> Plan {
        let mut plan = Plan::default();
        let mut last: HashMap<&Item, usize> = HashMap::with_capacity(batch.len());
        for (i, record) in batch.iter().enumerate() {
            last.insert(&record.dynamodb.keys, i);
        }
        let mut keep: Vec<usize> = last.into_values().collect();
        keep.sort_unstable();
        plan.requests.reserve(keep.len());
        for i in keep {
            let record = batch[i];
            let request = match record.event_name {
                EventName::Insert | EventName::Modify => match &record.dynamodb.new_image {
                    Some(image) => {
                        let put = PutRequest::builder().set_item(Some(to_sdk(image))).build();
                        WriteRequest::builder().put_request(put.expect("item is set")).build()
                    }
                    None => {
                        plan.rejected.push(Rejected {
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
            plan.requests.push((i, request));
        }
        plan
    }

    /// Sends one `BatchWriteItem`, retrying under the retry policy both a failed request and the
    /// items the table left unprocessed (it throttled part of the request).
    async fn write_chunk(&self, chunk: Vec<(usize, WriteRequest)>) -> ChunkResult {
        let mut pending: Vec<WriteRequest> = chunk.iter().map(|(_, r)| r.clone()).collect();
        let mut throttled = 0;
        let mut attempt = 0;
        loop {
            let result = self.client.batch_write_item().request_items(&self.table, pending.clone()).send().await;
            let failure = match result {
                Ok(out) => {
                    pending = out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
                    if pending.is_empty() {
                        return Ok((Vec::new(), throttled));
                    }
                    SinkError::Throttled(format!("table {}: {} items unprocessed", self.table, pending.len()))
                }
                Err(e) if is_validation(&e) => {
                    // One bad item fails the whole request: write them one by one to find it.
                    let mut singly_throttled = 0;
                    let refused = self.write_singly(chunk, &mut singly_throttled).await?;
                    return Ok((refused, throttled + singly_throttled));
                }
                Err(e) => match classify(&self.table, e) {
                    SinkError::Fatal(m) => return Err(SinkError::Fatal(m)),
                    other => other,
                },
            };
            if matches!(failure, SinkError::Throttled(_)) {
                throttled += 1;
            }
            attempt += 1;
            if attempt >= self.retry.attempts.max(1) {
                return Err(failure.tried(attempt));
            }
            tokio::time::sleep(self.retry.backoff.wait(attempt - 1)).await;
        }
    }

    /// Writes each request on its own (each retried under the policy); requests the table
    /// refuses for good are rejected.
    async fn write_singly(
        &self,
        chunk: Vec<(usize, WriteRequest)>,
        throttled: &mut u32,
    ) -> Result<Vec<Rejected>, SinkError> {
        let mut rejected = Vec::new();
        for (index, request) in chunk {
            let result = self
                .retry
                .run(throttled, || {
                    let request = request.clone();
                    async move {
                        let sent = if let Some(put) = request.put_request {
                            self.client
                                .put_item()
                                .table_name(&self.table)
                                .set_item(Some(put.item))
                                .send()
                                .await
                                .map(|_| ())
                                .map_err(|e| classify_single(&self.table, e))
                        } else if let Some(delete) = request.delete_request {
                            self.client
                                .delete_item()
                                .table_name(&self.table)
                                .set_key(Some(delete.key))
                                .send()
                                .await
                                .map(|_| ())
                                .map_err(|e| classify_single(&self.table, e))
                        } else {
                            Ok(())
                        };
                        // A refusal is an answer, not a failure: it is not retried.
                        match sent {
                            Ok(()) => Ok(None),
                            Err(Single::Refused(reason)) => Ok(Some(reason)),
                            Err(Single::Failed(e)) => Err(e),
                        }
                    }
                })
                .await?;
            if let Some(reason) = result {
                rejected.push(Rejected { index, reason });
            }
        }
        Ok(rejected)
    }
}

/// How a single put or delete failed.
enum Single {
    /// The table refuses this item for good (ValidationException).
    Refused(String),
    /// Anything else, classified as for a batch.
    Failed(SinkError),
}

fn classify_single<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    table: &str,
    e: SdkError<E, R>,
) -> Single {
    if is_validation(&e) {
        let message = e.message().unwrap_or("ValidationException").to_owned();
        return Single::Refused(format!("table {table}: {message}"));
    }
    Single::Failed(classify(table, e))
}

#[async_trait]
impl Sink for AlternatorSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        let Plan { requests, mut rejected } = Self::plan(batch);
        let mut chunks = Vec::with_capacity(requests.len().div_ceil(MAX_BATCH));
        let mut it = requests.into_iter().peekable();
        while it.peek().is_some() {
            chunks.push(it.by_ref().take(MAX_BATCH).collect::<Vec<_>>());
        }
        let results: Vec<(Vec<Rejected>, u32)> = stream::iter(chunks.into_iter().map(|c| self.write_chunk(c)))
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        let mut throttled = 0;
        for (refused, t) in results {
            rejected.extend(refused);
            throttled += t;
        }
        rejected.sort_by_key(|r| r.index);
        Ok(WriteOutcome { rejected, throttled })
    }
}

fn is_validation<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(s) if s.err().code() == Some("ValidationException"))
}

/// The error codes with which the DynamoDB API throttles a request.
pub const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
];

/// Missing tables and refused credentials are fatal; throttling is counted; everything else (5xx,
/// network, timeouts) is worth retrying.
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
        Some(c) if THROTTLING_CODES.contains(&c) => SinkError::Throttled(message),
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
        let plan = AlternatorSink::plan(&batch);
        let indices: Vec<usize> = plan.requests.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, vec![2, 3, 4]);
        assert!(plan.requests[0].1.delete_request.is_some());
        assert!(plan.requests[1].1.put_request.is_some());
        assert!(plan.rejected.is_empty());
    }

    #[test]
    fn a_put_without_new_image_is_rejected_with_the_reason() {
        let recs = [record(EventName::Modify, "a", "1", false)];
        let batch: Vec<&ChangeRecord> = recs.iter().collect();
        let plan = AlternatorSink::plan(&batch);
        assert!(plan.requests.is_empty());
        assert_eq!(plan.rejected.len(), 1);
        assert!(plan.rejected[0].reason.contains("needs NEW_IMAGE"), "{}", plan.rejected[0].reason);
    }
}
