//! The `sqs` sink: forwards each change to an Amazon SQS queue, as a Lambda function that calls
//! `sqs.sendMessage` would, but batched (`SendMessageBatch`, up to 10 entries and the queue's
//! `MaximumMessageSize` a request) and in order per key.
//!
//! - **Body** (`eddy_sink_api::forward::Format`): `record` (default) is the change record as Lambda receives it
//!   (DynamoDB JSON images); `item` is the new image as plain JSON (`eddy_record::plain`), or the
//!   keys and `"deleted": true` for a REMOVE.
//! - **Order per key**: a request never holds two changes of one key, and requests go one after
//!   the other, each once it is wholly acknowledged: a key's changes are sent in sequence, never
//!   concurrently. A FIFO queue (a name ending in `.fifo`) keeps them in order for consumers:
//!   `MessageGroupId` is the item's key, `MessageDeduplicationId` the change's `eventID`, so a
//!   batch read again after a restart is not delivered twice within SQS's five-minute
//!   deduplication window.
//! - **Failures**: an entry SQS fails with `SenderFault` (too large, invalid characters) is
//!   refused for good and goes to the dead letter with SQS's code and message; other failed
//!   entries are sent again, alone, under the pipeline's retry policy; a request that fails as a
//!   whole is retried the same way (throttling counted). A message over the queue's
//!   `MaximumMessageSize` is refused before it is sent.
//! - **The queue** is found on the first write: `GetQueueUrl` for a name (a URL is used as
//!   given), then `GetQueueAttributes` for `MaximumMessageSize` and `FifoQueue`. A queue that
//!   does not exist or refuses the credentials stops the pipeline with the queue named.

#![deny(missing_docs)]

use async_trait::async_trait;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;
use eddy_record::ChangeRecord;
use eddy_sink_api::forward::{deduplication_id, group_id, requests, send_entries, EntryFailure, Format};
use eddy_sink_api::{Rejected, RetryPolicy, Sink, SinkError, WriteOutcome};
use serde::Deserialize;

/// `sinks.NAME` with `type: sqs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsConfig {
    /// The queue's name (`orders`, `orders.fifo`) or URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`).
    pub queue: String,
    /// The region; default: the source's, else the AWS chain.
    #[serde(default)]
    pub region: Option<String>,
    /// An SQS-compatible endpoint (moto_server, LocalStack, ElasticMQ); default: AWS's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The message body: `record` (default) or `item`.
    #[serde(default)]
    pub format: Format,
}

impl SqsConfig {
    /// The options' problems a parser cannot see, as (key, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.queue.trim().is_empty() {
            out.push(("queue", "must name a queue (its name or URL)".to_owned()));
        }
        out
    }

    /// Whether the queue is a FIFO queue by its name (`.fifo`), as SQS requires of FIFO queues.
    pub fn fifo_by_name(&self) -> bool {
        self.queue.ends_with(".fifo")
    }
}

/// The most entries one `SendMessageBatch` holds.
pub const MAX_ENTRIES: usize = 10;

/// The queue, as found on the first write.
#[derive(Debug, Clone)]
struct Queue {
    url: String,
    fifo: bool,
    /// `MaximumMessageSize`: the largest message, and the largest request.
    max_bytes: usize,
}

/// The `sqs` sink.
pub struct SqsSink {
    client: Client,
    config: SqsConfig,
    retry: RetryPolicy,
    queue: tokio::sync::OnceCell<Queue>,
}

/// Whether an SQS error code is throttling.
fn throttling(code: Option<&str>) -> bool {
    matches!(code, Some("RequestThrottled" | "ThrottlingException" | "Throttling" | "KmsThrottled"))
}

/// An SDK error as the retry policy sees it: refused requests (a missing queue, bad
/// credentials, an invalid request) are fatal; throttling and the rest transient.
fn classify<E: ProvideErrorMetadata + std::fmt::Debug>(what: &str, e: aws_sdk_sqs::error::SdkError<E>) -> SinkError {
    use aws_sdk_sqs::error::SdkError;
    let code = e.code().map(str::to_owned);
    let text = format!("{what}: {}", e.message().map_or_else(|| format!("{e:?}"), str::to_owned));
    match (&e, code.as_deref()) {
        (_, c) if throttling(c) => SinkError::Throttled(text),
        (SdkError::ServiceError(s), _) if s.raw().status().is_server_error() => SinkError::Retryable(text),
        (SdkError::ServiceError(_), c) => SinkError::Fatal(format!("{text} ({})", c.unwrap_or("no code"))),
        _ => SinkError::Retryable(text),
    }
}

impl SqsSink {
    /// The sink of `config`, sending through `client` (built by the host with the pipeline's
    /// timeouts and no retries of its own) under `retry`. Nothing connects yet.
    pub fn new(client: Client, config: SqsConfig, retry: RetryPolicy) -> Self {
        Self { client, config, retry, queue: tokio::sync::OnceCell::new() }
    }

    /// The queue's URL, kind and size limit, found once.
    async fn queue(&self, throttled: &mut u32) -> Result<&Queue, SinkError> {
        if let Some(q) = self.queue.get() {
            return Ok(q);
        }
        let name = &self.config.queue;
        let url = if name.starts_with("https://") || name.starts_with("http://") {
            name.clone()
        } else {
            self.retry
                .run(throttled, || async {
                    let out = self.client.get_queue_url().queue_name(name).send().await;
                    out.map_err(|e| classify(&format!("queue {name}: GetQueueUrl"), e))
                })
                .await?
                .queue_url
                .unwrap_or_default()
        };
        let attributes = self
            .retry
            .run(throttled, || async {
                let out = self
                    .client
                    .get_queue_attributes()
                    .queue_url(&url)
                    .attribute_names(QueueAttributeName::MaximumMessageSize)
                    .attribute_names(QueueAttributeName::FifoQueue)
                    .send()
                    .await;
                out.map_err(|e| classify(&format!("queue {name}: GetQueueAttributes"), e))
            })
            .await?
            .attributes
            .unwrap_or_default();
        let max_bytes = attributes
            .get(&QueueAttributeName::MaximumMessageSize)
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_BYTES);
        let fifo =
            attributes.get(&QueueAttributeName::FifoQueue).is_some_and(|v| v == "true") || url.ends_with(".fifo");
        let queue = Queue { url, fifo, max_bytes };
        tracing::info!(queue = name, url = queue.url, fifo, max_bytes, "sqs sink: queue found");
        Ok(self.queue.get_or_init(|| async { queue }).await)
    }

    /// Sends the entries `indexes` of `batch` (with `bodies`) ([`send_entries`]: failed entries
    /// again, alone); returns the entries refused for good (SQS's `SenderFault`).
    async fn send(
        &self,
        queue: &Queue,
        batch: &[&ChangeRecord],
        bodies: &[String],
        indexes: &[usize],
        throttled: &mut u32,
    ) -> Result<Vec<Rejected>, SinkError> {
        let what = &format!("queue {}", self.config.queue);
        send_entries(&self.retry, throttled, what, indexes, |left| async move {
            let entries = left.iter().map(|&i| {
                let mut entry = SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(&bodies[i]);
                if queue.fifo {
                    entry = entry
                        .message_group_id(group_id(&batch[i].dynamodb.keys))
                        .message_deduplication_id(deduplication_id(batch[i]));
                }
                entry.build().expect("id and body are set")
            });
            let sent =
                self.client.send_message_batch().queue_url(&queue.url).set_entries(Some(entries.collect())).send();
            let out = sent.await.map_err(|e| classify(&format!("{what}: SendMessageBatch"), e))?;
            Ok(out
                .failed()
                .iter()
                .filter_map(|f| {
                    Some(EntryFailure {
                        index: f.id().parse().ok()?,
                        transient: !f.sender_fault(),
                        throttled: throttling(Some(f.code())),
                        reason: format!("SQS refused the message: {} ({})", f.message().unwrap_or_default(), f.code()),
                    })
                })
                .collect())
        })
        .await
    }
}

/// A queue's `MaximumMessageSize` when SQS does not say: 256 KiB.
pub const DEFAULT_MAX_BYTES: usize = 262_144;

#[async_trait]
impl Sink for SqsSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        let mut outcome = WriteOutcome::default();
        let queue = self.queue(&mut outcome.throttled).await?.clone();
        let bodies: Vec<String> = batch.iter().map(|r| self.config.format.body(r)).collect();
        let mut sizes = Vec::with_capacity(bodies.len());
        for (i, body) in bodies.iter().enumerate() {
            if body.len() > queue.max_bytes {
                outcome.rejected.push(Rejected {
                    index: i,
                    reason: format!(
                        "the message is {} bytes, over the queue's MaximumMessageSize of {}",
                        body.len(),
                        queue.max_bytes
                    ),
                });
                sizes.push(None);
            } else {
                sizes.push(Some(body.len()));
            }
        }
        for request in requests(batch, &sizes, MAX_ENTRIES, queue.max_bytes) {
            let refused = self.send(&queue, batch, &bodies, &request, &mut outcome.throttled).await?;
            outcome.rejected.extend(refused);
        }
        outcome.rejected.sort_by_key(|r| r.index);
        Ok(outcome)
    }
}
