//! The sink itself: dedupe per key, batch by 25, write concurrently, retry what is unprocessed.
//!
//! Request bodies are written straight from the records' images: an image read from GetRecords
//! is copied as the DynamoDB JSON text it arrived as (never decoded), and an image a processor
//! built serializes to the same form, so no other model is built.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use eddy_aws_json::AwsJsonError;
use eddy_record::{ChangeRecord, EventName, Image, Item};
use eddy_sink_api::{Rejected, RetryPolicy, Sink, SinkError, WriteOutcome};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::nodes::Nodes;
use crate::AlternatorConfig;

/// `BatchWriteItem` takes at most 25 operations.
const MAX_BATCH: usize = 25;

/// Writes changes into one table through the DynamoDB API.
pub struct AlternatorSink {
    nodes: Arc<Nodes>,
    table: String,
    /// The table name as a JSON string, written into every request.
    table_json: String,
    concurrency: usize,
    retry: RetryPolicy,
}

/// One write request: put an image or delete a key (borrowed from the batch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Request<'a> {
    /// `PutRequest` of the change's `NewImage`.
    Put(&'a Image),
    /// `DeleteRequest` of the change's `Keys`.
    Delete(&'a Item),
}

impl Request<'_> {
    /// Appends this request as a `BatchWriteItem` entry: `{"PutRequest":{"Item":...}}` or
    /// `{"DeleteRequest":{"Key":...}}`.
    fn write_entry(&self, out: &mut Vec<u8>) {
        match self {
            Request::Put(image) => {
                out.extend_from_slice(br#"{"PutRequest":{"Item":"#);
                image.write_json(out);
            }
            Request::Delete(key) => {
                out.extend_from_slice(br#"{"DeleteRequest":{"Key":"#);
                serde_json::to_writer(&mut *out, key).expect("attribute values serialize");
            }
        }
        out.extend_from_slice(b"}}");
    }
}

/// What one write sends: one request per key, and the changes refused before sending.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// `(index in the batch, request)`, in batch order: the last change of each key.
    pub requests: Vec<(usize, Request<'a>)>,
    /// Changes that cannot be written (an INSERT or MODIFY without a `NewImage`).
    pub rejected: Vec<Rejected>,
}

/// A chunk's result: the refused changes and how many rounds were throttled.
type ChunkResult = Result<(Vec<Rejected>, u32), SinkError>;

/// The part of a `BatchWriteItem` answer the sink reads: the entries left unprocessed, kept as
/// their JSON text to send again as they are.
#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(rename = "UnprocessedItems", default)]
    unprocessed: HashMap<String, Vec<Box<RawValue>>>,
}

impl AlternatorSink {
    /// A sink on `nodes` (one or more Alternator nodes, each with a DynamoDB-API client built by
    /// the host with its timeouts; the clients do not retry: `retry` is the only retry policy,
    /// applied to failed requests and to `UnprocessedItems`, after a failed node's request has
    /// gone to the other nodes).
    pub fn new(nodes: Arc<Nodes>, config: &AlternatorConfig, retry: RetryPolicy) -> Self {
        Self {
            nodes,
            table: config.table.clone(),
            table_json: serde_json::to_string(&config.table).expect("a string serializes"),
            concurrency: config.concurrency.max(1),
            retry,
        }
    }

    /// One write request per key (the last change of each key wins), with the batch index of the
    /// change it came from, in batch order. Changes that cannot be written are rejected. (Public
    /// for `eddy sink preview`, which shows what a batch becomes.)
    pub fn plan<'a>(batch: &[&'a ChangeRecord]) -> Plan<'a> {
        let mut plan = Plan::default();
        // foldhash, not SipHash: a batch's keys are hashed once each on every write (SipHash was
        // ~3% of eddy's CPU into Alternator); a batch is at most a page, so flooding is harmless.
        let mut last: HashMap<&Item, usize, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(batch.len(), foldhash::fast::RandomState::default());
        for (i, record) in batch.iter().enumerate() {
            last.insert(&record.dynamodb.keys, i);
        }
        let mut keep: Vec<usize> = last.into_values().collect();
        keep.sort_unstable();
        plan.requests.reserve(keep.len());
        for i in keep {
            let record: &'a ChangeRecord = batch[i];
            let request = match record.event_name {
                EventName::Insert | EventName::Modify => match &record.dynamodb.new_image {
                    Some(image) => Request::Put(image),
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
                EventName::Remove => Request::Delete(&record.dynamodb.keys),
            };
            plan.requests.push((i, request));
        }
        plan
    }

    /// A `BatchWriteItem` body: `{"RequestItems":{TABLE:[` entries written by `entries` `]}}`.
    fn batch_body(&self, entries: impl FnOnce(&mut Vec<u8>)) -> bytes::Bytes {
        let mut body = Vec::with_capacity(32 * 1024);
        body.extend_from_slice(br#"{"RequestItems":{"#);
        body.extend_from_slice(self.table_json.as_bytes());
        body.extend_from_slice(b":[");
        entries(&mut body);
        body.extend_from_slice(b"]}}");
        body.into()
    }

    /// Sends one `BatchWriteItem`, retrying under the retry policy both a failed request and the
    /// items the table left unprocessed (it throttled part of the request).
    async fn write_chunk(&self, chunk: &[(usize, Request<'_>)]) -> ChunkResult {
        let mut body = self.batch_body(|out| {
            for (n, (_, request)) in chunk.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                request.write_entry(out);
            }
        });
        let mut throttled = 0;
        let mut attempt = 0;
        loop {
            let failure = match self.nodes.call("BatchWriteItem", body.clone()).await {
                Ok(answer) => {
                    let answer: BatchAnswer = serde_json::from_slice(&answer).map_err(|e| {
                        SinkError::Retryable(format!("table {}: a malformed BatchWriteItem answer: {e}", self.table))
                    })?;
                    let pending: Vec<Box<RawValue>> = answer.unprocessed.into_values().flatten().collect();
                    if pending.is_empty() {
                        return Ok((Vec::new(), throttled));
                    }
                    body = self.batch_body(|out| {
                        for (n, entry) in pending.iter().enumerate() {
                            if n > 0 {
                                out.push(b',');
                            }
                            out.extend_from_slice(entry.get().as_bytes());
                        }
                    });
                    SinkError::Throttled(format!("table {}: {} items unprocessed", self.table, pending.len()))
                }
                Err(e) if is_validation(&e) => {
                    // One bad item fails the whole request: write them one by one to find it.
                    let mut singly_throttled = 0;
                    let refused = self.write_singly(chunk, &mut singly_throttled).await?;
                    return Ok((refused, throttled + singly_throttled));
                }
                Err(e) => match classify(&self.table, &e) {
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

    /// Writes each request on its own (`PutItem` or `DeleteItem`, each retried under the
    /// policy); requests the table refuses for good are rejected.
    async fn write_singly(
        &self,
        chunk: &[(usize, Request<'_>)],
        throttled: &mut u32,
    ) -> Result<Vec<Rejected>, SinkError> {
        let mut rejected = Vec::new();
        for (index, request) in chunk {
            let (operation, field) = match request {
                Request::Put(_) => ("PutItem", "Item"),
                Request::Delete(_) => ("DeleteItem", "Key"),
            };
            let mut text = format!(r#"{{"TableName":{},"{field}":"#, self.table_json).into_bytes();
            match request {
                Request::Put(image) => image.write_json(&mut text),
                Request::Delete(key) => serde_json::to_writer(&mut text, key).expect("attribute values serialize"),
            }
            text.push(b'}');
            let body = bytes::Bytes::from(text);
            let result = self
                .retry
                .run(throttled, || {
                    let body = body.clone();
                    async move {
                        // A refusal is an answer, not a failure: it is not retried.
                        match self.nodes.call(operation, body).await {
                            Ok(_) => Ok(None),
                            Err(e) if is_validation(&e) => Ok(Some(format!("table {}: {}", self.table, message(&e)))),
                            Err(e) => Err(classify(&self.table, &e)),
                        }
                    }
                })
                .await?;
            if let Some(reason) = result {
                rejected.push(Rejected { index: *index, reason });
            }
        }
        Ok(rejected)
    }
}

#[async_trait]
impl Sink for AlternatorSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        let Plan { requests, mut rejected } = Self::plan(batch);
        let mut writes = Vec::with_capacity(requests.len().div_ceil(MAX_BATCH));
        for chunk in requests.chunks(MAX_BATCH) {
            writes.push(self.write_chunk(chunk));
        }
        let results: Vec<(Vec<Rejected>, u32)> =
            stream::iter(writes).buffer_unordered(self.concurrency).try_collect().await?;
        let mut throttled = 0;
        for (refused, t) in results {
            rejected.extend(refused);
            throttled += t;
        }
        rejected.sort_by_key(|r| r.index);
        Ok(WriteOutcome { rejected, throttled })
    }
}

fn is_validation(e: &AwsJsonError) -> bool {
    e.code() == Some("ValidationException")
}

fn message(e: &AwsJsonError) -> String {
    match e {
        AwsJsonError::Service { message, code, .. } if !message.is_empty() => {
            if code.is_empty() {
                message.clone()
            } else {
                format!("{code}: {message}")
            }
        }
        other => other.to_string(),
    }
}

/// The error codes with which the DynamoDB API throttles a request.
pub const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
];

/// Missing tables and refused credentials are fatal; throttling is counted; everything else (5xx,
/// network, timeouts, credentials that could not be loaded yet) is worth retrying.
fn classify(table: &str, e: &AwsJsonError) -> SinkError {
    let message = format!("table {table}: {e}");
    match e.code() {
        Some(
            "ResourceNotFoundException"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "MissingAuthenticationTokenException",
        ) => SinkError::Fatal(message),
        Some(c) if THROTTLING_CODES.contains(&c) => SinkError::Throttled(message),
        _ => SinkError::Retryable(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_record::{AttributeValue, Item, StreamRecord, StreamViewType};

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
                new_image: with_image.then(|| keys.clone().into()),
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
        assert!(matches!(plan.requests[0].1, Request::Delete(_)));
        assert!(matches!(plan.requests[1].1, Request::Put(_)));
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

    /// A loopback server that answers each request with the next of `answers` (status, body)
    /// and records the bodies it got.
    fn scripted(answers: Vec<(u16, &'static str)>) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&got);
        std::thread::spawn(move || {
            for ((status, body), stream) in answers.into_iter().zip(listener.incoming()) {
                let mut stream = stream.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                let text = loop {
                    let n = stream.read(&mut buf).unwrap();
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break text[end + 4..].to_owned();
                        }
                    }
                };
                seen.lock().unwrap().push(text);
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(body.as_bytes()).unwrap();
            }
        });
        (url, got)
    }

    fn sink(url: &str) -> AlternatorSink {
        let credentials = aws_credential_types::Credentials::new("a", "b", None, None, "test");
        let provider = aws_credential_types::provider::SharedCredentialsProvider::new(credentials);
        let client = eddy_aws_json::AwsJsonClient::new(
            eddy_aws_json::DYNAMODB,
            url,
            "us-east-1",
            provider,
            &eddy_sink_api::Timeouts::default(),
        )
        .unwrap();
        let config = AlternatorConfig {
            table: "T".into(),
            endpoint: None,
            endpoints: None,
            discovery: None,
            region: None,
            concurrency: 1,
        };
        let retry = RetryPolicy {
            attempts: 3,
            backoff: eddy_sink_api::Backoff {
                base_delay: std::time::Duration::from_millis(1),
                max_delay: std::time::Duration::from_millis(2),
            },
        };
        AlternatorSink::new(Nodes::single(url, client), &config, retry)
    }

    #[tokio::test]
    async fn unprocessed_items_are_sent_again_as_the_table_returned_them() {
        let (url, got) = scripted(vec![
            (200, r#"{"UnprocessedItems":{"T":[{"DeleteRequest":{"Key":{"id":{"S":"b"}}}}]}}"#),
            (200, r#"{"UnprocessedItems":{}}"#),
        ]);
        let recs = [record(EventName::Insert, "a", "1", true), record(EventName::Remove, "b", "2", false)];
        let batch: Vec<&ChangeRecord> = recs.iter().collect();
        let outcome = sink(&url).write(&batch).await.unwrap();
        assert_eq!(outcome, WriteOutcome { rejected: vec![], throttled: 1 });
        let got = got.lock().unwrap();
        assert_eq!(
            got[0],
            r#"{"RequestItems":{"T":[{"PutRequest":{"Item":{"id":{"S":"a"}}}},{"DeleteRequest":{"Key":{"id":{"S":"b"}}}}]}}"#
        );
        assert_eq!(got[1], r#"{"RequestItems":{"T":[{"DeleteRequest":{"Key":{"id":{"S":"b"}}}}]}}"#);
    }

    #[tokio::test]
    async fn a_refused_batch_is_written_item_by_item_and_only_the_refused_item_is_rejected() {
        let refused = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException","message":"Item size has exceeded the maximum allowed size"}"#;
        let (url, got) = scripted(vec![(400, refused), (400, refused), (200, "{}")]);
        let recs = [record(EventName::Insert, "a", "1", true), record(EventName::Modify, "b", "2", true)];
        let batch: Vec<&ChangeRecord> = recs.iter().collect();
        let outcome = sink(&url).write(&batch).await.unwrap();
        assert_eq!(outcome.rejected.len(), 1);
        assert_eq!(outcome.rejected[0].index, 0);
        assert!(outcome.rejected[0].reason.contains("maximum allowed size"), "{}", outcome.rejected[0].reason);
        let got = got.lock().unwrap();
        assert_eq!(got[1], r#"{"TableName":"T","Item":{"id":{"S":"a"}}}"#);
        assert_eq!(got[2], r#"{"TableName":"T","Item":{"id":{"S":"b"}}}"#);
    }

    #[tokio::test]
    async fn a_missing_table_is_fatal_and_throttling_is_retried_then_reported() {
        let missing = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"no table"}"#;
        let (url, _) = scripted(vec![(400, missing)]);
        let recs = [record(EventName::Insert, "a", "1", true)];
        let batch: Vec<&ChangeRecord> = recs.iter().collect();
        assert!(matches!(sink(&url).write(&batch).await, Err(SinkError::Fatal(m)) if m.contains("no table")));
        let slow = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#;
        let (url, got) = scripted(vec![(400, slow), (400, slow), (400, slow)]);
        let err = sink(&url).write(&batch).await.unwrap_err();
        assert!(matches!(&err, SinkError::Throttled(m) if m.contains("tried 3 times")), "{err}");
        assert_eq!(got.lock().unwrap().len(), 3);
    }
}
