//! `dead_letter: {type: sqs, queue, overflow_bucket?, ...}`: one message per entry (the same JSON
//! object as a line of the file destination), as Lambda's SQS on-failure destination sends one
//! message per failed invocation.
//!
//! An entry larger than the queue's `MaximumMessageSize` goes to `overflow_bucket` as an object
//! (`{overflow_prefix}{shard}/{sequence}-{hash}.jsonl`, one line) and the message is a pointer in
//! the format of the SQS Extended Client Library (Java, Python):
//! `["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": B, "s3Key": K}]` with a
//! Number attribute `ExtendedPayloadSize`, so consumers using that library read the entry
//! transparently. The queue must be a standard queue, as for Lambda's on-failure destinations:
//! a FIFO queue hands a reader at most 10 messages of a message group at a time, so the dead
//! letter could not be read whole.
//!
//! SQS cannot be read without hiding what is read from other readers, so reading hides as little
//! as it can for as short as it can:
//! - `eddy dead-letter list` receives with a short visibility ([`PEEK_VISIBILITY`]), counts each
//!   message once (by its id; one that shows up again after its visibility ended is the same
//!   entry), and reads until it has seen as many messages as the queue held when it started
//!   (visible and in flight), waiting for messages another reader holds to come back; then it
//!   makes everything it read visible again at once, also when it is stopped (SIGINT, SIGTERM) or
//!   fails. Two lists at once each show every entry.
//! - `eddy dead-letter replay` receives every message with `visibility_timeout`, deletes the
//!   messages it delivered (and their overflow objects), and makes the rest visible again at once
//!   ([`DeadLetterStore::release`]), also when stopped. A replay killed with SIGKILL leaves its
//!   messages hidden until their visibility timeout ends: the next list or replay says how many
//!   are in flight and by when they are back.
//!
//! SQS keeps at most 120,000 messages of a standard queue in flight: a larger dead letter is read
//! in several runs of `replay`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::builders::SendMessageBatchRequestEntryBuilder;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, MessageAttributeValue,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use eddy_sink_api::{RetryPolicy, Timeouts};
use serde::{Deserialize, Serialize};

use super::s3::{object_key, Bucket};
use super::{DeadLetterStore, Entry, Intent, Stored};
use crate::aws::sdk_call::{attempt_on, retried, Attempt};
use crate::stop::Stop;

/// `dead_letter: {type: sqs, queue, overflow_bucket?, overflow_prefix?, visibility_timeout?,
/// endpoint?, region?}`: the queue must exist and be a standard queue; `endpoint` and `region`
/// default to the source's, and also serve the overflow bucket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQueue {
    /// The queue's name, or its URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`). A standard
    /// queue: a FIFO queue is refused (it hands a reader at most 10 messages of a group at a
    /// time, so a replay could not read it whole).
    pub queue: String,
    /// An existing bucket for entries larger than the queue's `MaximumMessageSize` (256 KiB on
    /// queues made before August 2025, 1 MiB since): the entry goes there and the message is a
    /// pointer in the SQS Extended Client Library's format. Without it such an entry cannot be
    /// written, and its shard stops advancing until it is set.
    #[serde(default)]
    pub overflow_bucket: Option<String>,
    /// Where in `overflow_bucket` those entries go. Default `eddy-dead-letter/`.
    #[serde(default = "super::default_prefix")]
    pub overflow_prefix: String,
    /// How long `eddy dead-letter replay` hides the messages it reads from other readers of the
    /// queue (SQS's visibility timeout; messages not removed are made visible again when it
    /// finishes, and a replay killed with SIGKILL leaves them hidden this long). `list` hides a
    /// message for at most 20s. At most 12h. Default 15m.
    #[serde(default = "default_visibility_timeout", deserialize_with = "crate::spec::units::duration")]
    pub visibility_timeout: Duration,
    /// An SQS-compatible endpoint; default: the source's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region; default: the source's.
    #[serde(default)]
    pub region: Option<String>,
}

fn default_visibility_timeout() -> Duration {
    Duration::from_secs(15 * 60)
}

impl DeadLetterQueue {
    /// Queue `queue` with every other key at its default (no overflow bucket; the source's
    /// endpoint and region are filled in by the caller).
    pub fn named(queue: &str) -> Self {
        Self {
            queue: queue.to_owned(),
            overflow_bucket: None,
            overflow_prefix: super::default_prefix(),
            visibility_timeout: default_visibility_timeout(),
            endpoint: None,
            region: None,
        }
    }
}

impl DeadLetterQueue {
    /// What a parser cannot see: a visibility timeout out of SQS's limits.
    pub fn problems(&self) -> Vec<crate::spec::Problem> {
        let hours12 = std::time::Duration::from_secs(12 * 3600);
        if self.visibility_timeout < std::time::Duration::from_secs(1) || self.visibility_timeout > hours12 {
            return vec![crate::spec::Problem::at("visibility_timeout", "must be between 1s and 12h (SQS's limits)")];
        }
        Vec::new()
    }
}

/// The SQS Extended Client Library's pointer class name, the first element of a pointer message.
const POINTER_CLASS: &str = "software.amazon.payloadoffloading.PayloadS3Pointer";
/// The message attribute that carries the size of an entry stored in S3 (the library's name).
const SIZE_ATTRIBUTE: &str = "ExtendedPayloadSize";
/// SQS's limit on entries per batch call.
const BATCH: usize = 10;
/// How long `eddy dead-letter list` hides the messages it reads from other readers (it makes them
/// visible again as soon as it is done).
pub const PEEK_VISIBILITY: std::time::Duration = std::time::Duration::from_secs(20);
/// How long `eddy dead-letter list` waits, after the last message it had not seen, for messages
/// other readers hold to come back.
pub const PEEK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// A queue's `MaximumMessageSize` when SQS does not say: the limit before August 2025.
const DEFAULT_MAXIMUM_MESSAGE_SIZE: usize = 256 * 1024;

/// The pointer's object, as the SQS Extended Client Library writes it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct PayloadS3Pointer {
    s3_bucket_name: String,
    s3_key: String,
}

/// Classifies an SQS error: a missing queue or a refused message is fatal; throttling counts
/// under `api="sqs"`.
fn attempt<E, R>(e: aws_sdk_sqs::error::SdkError<E, R>) -> Attempt
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let refused = matches!(
        e.code(),
        Some(
            "QueueDoesNotExist"
                | "AWS.SimpleQueueService.NonExistentQueue"
                | "InvalidParameterValue"
                | "InvalidMessageContents"
                | "BatchRequestTooLong"
        )
    );
    match attempt_on("sqs", e) {
        Attempt::Transient(error) if refused => Attempt::Fatal(error),
        other => other,
    }
}

/// The dead-letter queue.
pub struct SqsDeadLetter {
    client: Client,
    url: String,
    /// The queue's `MaximumMessageSize` in bytes: the largest message, and the largest batch.
    maximum_message_size: usize,
    overflow: Option<(Bucket, String)>,
    visibility_timeout: i32,
    retry: RetryPolicy,
}

impl SqsDeadLetter {
    /// Finds the queue (GetQueueUrl for a name) and reads its `MaximumMessageSize`; checks the
    /// overflow bucket exists when one is set.
    ///
    /// # Errors
    /// When the queue or the bucket is missing or cannot be reached.
    pub async fn open(config: &DeadLetterQueue, timeouts: &Timeouts, retry: RetryPolicy) -> anyhow::Result<Self> {
        let target = crate::aws::Target { region: config.region.as_deref(), endpoint: config.endpoint.as_deref() };
        let client = Client::new(&crate::aws::sdk_config(&target, timeouts).await);
        let url = if config.queue.starts_with("https://") || config.queue.starts_with("http://") {
            config.queue.clone()
        } else {
            let what = format!("cannot find the dead-letter queue {} (it must exist)", config.queue);
            let out = retried(&retry, &what, || {
                let sent = client.get_queue_url().queue_name(&config.queue).send();
                async move { sent.await.map_err(attempt) }
            })
            .await?;
            out.queue_url().ok_or_else(|| anyhow::anyhow!("{what}: GetQueueUrl returned no URL"))?.to_owned()
        };
        let what = format!("cannot read the attributes of the dead-letter queue {url} (it must exist)");
        let attributes = retried(&retry, &what, || {
            let sent = client
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::MaximumMessageSize)
                .send();
            async move { sent.await.map_err(attempt) }
        })
        .await?;
        let maximum_message_size = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::MaximumMessageSize))
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAXIMUM_MESSAGE_SIZE);
        let overflow = match &config.overflow_bucket {
            Some(name) => Some((Bucket::open(name, &target, timeouts, retry).await?, config.overflow_prefix.clone())),
            None => None,
        };
        if url.ends_with(".fifo") {
            anyhow::bail!(
                "dead_letter.queue: {url} is a FIFO queue; use a standard queue (a FIFO queue hands a reader \
                 at most 10 messages of a group at a time, so `eddy dead-letter replay` could not read it whole)"
            );
        }
        Ok(Self {
            client,
            url,
            maximum_message_size,
            overflow,
            visibility_timeout: i32::try_from(config.visibility_timeout.as_secs()).unwrap_or(43_200),
            retry,
        })
    }

    /// The message for `entry` (without its batch id) and its size in bytes: the entry itself, or
    /// (over the queue's limit) a pointer to the overflow object, written first.
    async fn message(&self, entry: &Entry) -> anyhow::Result<(SendMessageBatchRequestEntryBuilder, usize)> {
        let body = sqs_text(serde_json::to_string(entry)?);
        let mut message = SendMessageBatchRequestEntry::builder();
        let mut bytes = body.len();
        if body.len() <= self.maximum_message_size {
            message = message.message_body(body);
        } else {
            let Some((bucket, prefix)) = &self.overflow else {
                anyhow::bail!(
                    "dead-letter entry {} is {} bytes, over the queue's MaximumMessageSize of {}: set \
                     dead_letter.overflow_bucket to store such entries in S3",
                    entry.id(),
                    body.len(),
                    self.maximum_message_size
                );
            };
            let key = object_key(prefix, std::slice::from_ref(entry));
            let size = body.len();
            let mut object = body.into_bytes();
            object.push(b'\n');
            bucket.put(&key, object).await?;
            let pointer = PayloadS3Pointer { s3_bucket_name: bucket.name.clone(), s3_key: key };
            let size = MessageAttributeValue::builder().data_type("Number").string_value(size.to_string()).build()?;
            let body = serde_json::to_string(&(POINTER_CLASS, &pointer))?;
            // The attribute's name, type and value count towards the message's size.
            bytes = body.len() + SIZE_ATTRIBUTE.len() + 32;
            message = message.message_body(body).message_attributes(SIZE_ATTRIBUTE, size);
        }
        Ok((message, bytes))
    }

    /// Sends `messages` in one SendMessageBatch, sending again those SQS failed on its side.
    async fn send(&self, mut messages: Vec<SendMessageBatchRequestEntry>) -> anyhow::Result<()> {
        let what = format!("cannot write to the dead-letter queue {}", self.url);
        let mut rounds = 0u32;
        loop {
            let out = retried(&self.retry, &what, || {
                let sent =
                    self.client.send_message_batch().queue_url(&self.url).set_entries(Some(messages.clone())).send();
                async move { sent.await.map_err(attempt) }
            })
            .await?;
            if out.failed().is_empty() {
                return Ok(());
            }
            if let Some(refused) = out.failed().iter().find(|f| f.sender_fault()) {
                anyhow::bail!(
                    "{what}: SQS refused a message: {}: {}",
                    refused.code(),
                    refused.message().unwrap_or_default()
                );
            }
            let failed: HashSet<&str> = out.failed().iter().map(|f| f.id()).collect();
            messages.retain(|m| failed.contains(m.id()));
            rounds += 1;
            if rounds >= self.retry.attempts {
                anyhow::bail!("{what}: {} messages still failed after {rounds} tries", messages.len());
            }
            tokio::time::sleep(self.retry.backoff.wait(rounds - 1)).await;
        }
    }

    /// The entry a received message holds, reading the overflow object a pointer names.
    async fn entry(&self, body: &str) -> anyhow::Result<(Entry, Option<String>)> {
        if body.starts_with('[') {
            let (class, pointer): (String, PayloadS3Pointer) = serde_json::from_str(body)?;
            anyhow::ensure!(class == POINTER_CLASS, "an array that is not a {POINTER_CLASS}");
            let Some((bucket, _)) = self.overflow.as_ref().filter(|(b, _)| b.name == pointer.s3_bucket_name) else {
                anyhow::bail!(
                    "it points to s3://{}/{}; set dead_letter.overflow_bucket to {} to read it",
                    pointer.s3_bucket_name,
                    pointer.s3_key,
                    pointer.s3_bucket_name
                );
            };
            let text = bucket.get(&pointer.s3_key).await?;
            Ok((serde_json::from_str(text.trim())?, Some(pointer.s3_key)))
        } else {
            Ok((serde_json::from_str(body)?, None))
        }
    }

    /// How many messages the queue holds: (visible, in flight).
    async fn counts(&self) -> anyhow::Result<(usize, usize)> {
        let what = format!("cannot read the attributes of the dead-letter queue {}", self.url);
        let out = retried(&self.retry, &what, || {
            let sent = self
                .client
                .get_queue_attributes()
                .queue_url(&self.url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send();
            async move { sent.await.map_err(attempt) }
        })
        .await?;
        let count = |name: &QueueAttributeName| {
            out.attributes().and_then(|a| a.get(name)).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        Ok((
            count(&QueueAttributeName::ApproximateNumberOfMessages),
            count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    /// Receives every message, hiding each for `visibility` (seconds), into `stored`; each
    /// message once, with its latest receipt handle. `held` gets the indices (in `stored`) of the
    /// messages it holds hidden when it returns.
    ///
    /// To replay ([`Intent::Replay`]) it reads what is visible. To look ([`Intent::Look`]) it reads
    /// until it has seen `expected` messages. When nothing new comes for a second while some are
    /// missing, another reader holds them (and may be waiting for ours): the reader holding fewer
    /// (a coin decides a tie) hands back all it holds and waits for the others to finish (at most
    /// a peek's visibility) before reading again, so two lists never wait for each other. It gives
    /// up [`PEEK_PATIENCE`] after the last new message: a killed reader's messages come back only
    /// when their visibility timeout ends. Stops with an error when `stop` is set.
    async fn receive_all(
        &self,
        stored: &mut Vec<Stored>,
        held: &mut HashSet<usize>,
        intent: Intent,
        expected: usize,
        stop: &Stop,
    ) -> anyhow::Result<()> {
        let stopped = || anyhow::anyhow!("stopped while reading the dead-letter queue {}", self.url);
        let what = format!("cannot read the dead-letter queue {}", self.url);
        let visibility = match intent {
            Intent::Look => PEEK_VISIBILITY.as_secs() as i32,
            Intent::Replay => self.visibility_timeout,
        };
        // Message id → index in `stored`.
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut last_new = std::time::Instant::now();
        let mut stuck_since: Option<std::time::Instant> = None;
        loop {
            if stop.is_set() {
                return Err(stopped());
            }
            let receive = retried(&self.retry, &what, || {
                let sent = self
                    .client
                    .receive_message()
                    .queue_url(&self.url)
                    .max_number_of_messages(BATCH as i32)
                    .visibility_timeout(visibility)
                    // Long polling asks every SQS server: an empty answer means nothing is visible.
                    .wait_time_seconds(1)
                    .send();
                async move { sent.await.map_err(attempt) }
            });
            // Not abandoned on a stop: the messages of an answer not read would stay hidden, their
            // receipt handles unknown (a long poll answers within a second).
            let out = receive.await?;
            let mut new = 0;
            for message in out.messages() {
                let handle = message.receipt_handle().unwrap_or_default();
                let message_id = message.message_id().unwrap_or(handle).to_owned();
                if let Some(&i) = seen.get(&message_id) {
                    // Read again (its visibility ended, or it was handed back): the same entry,
                    // held again under a new handle.
                    let key = handle_and_key(&stored[i].id)?.1.to_owned();
                    stored[i].id = format!("{handle}\n{key}");
                    held.insert(i);
                    continue;
                }
                // Held from here on: on an error below, the caller releases what `held` names.
                let id = |key: &str| format!("{handle}\n{key}");
                let (entry, key) = match self.entry(message.body().unwrap_or_default()).await {
                    Ok(read) => read,
                    Err(e) => {
                        self.release(&[id("")]).await?;
                        return Err(
                            e.context(format!("message {message_id} of {} is not a dead-letter entry", self.url))
                        );
                    }
                };
                seen.insert(message_id, stored.len());
                held.insert(stored.len());
                stored.push(Stored { id: id(key.as_deref().unwrap_or_default()), entry });
                new += 1;
            }
            if new > 0 {
                last_new = std::time::Instant::now();
                stuck_since = None;
                continue;
            }
            if intent == Intent::Replay || stored.len() >= expected || last_new.elapsed() >= PEEK_PATIENCE {
                return Ok(());
            }
            let since = *stuck_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() < std::time::Duration::from_secs(1) {
                continue;
            }
            stuck_since = None;
            let (_, in_flight) = self.counts().await?;
            let others = in_flight.saturating_sub(held.len());
            if others == 0 {
                // Nobody holds the missing ones: they were deleted since the count.
                return Ok(());
            }
            if held.len() < others || (held.len() == others && rand::random::<bool>()) {
                // Give way: hand everything back, let the others finish, then read again.
                let ids: Vec<String> = held.drain().map(|i| stored[i].id.clone()).collect();
                self.release(&ids).await?;
                let until = std::time::Instant::now() + PEEK_VISIBILITY + std::time::Duration::from_secs(2);
                while std::time::Instant::now() < until && self.counts().await?.1 > 0 {
                    if stop.sleep(std::time::Duration::from_millis(300)).await {
                        return Err(stopped());
                    }
                }
                last_new = std::time::Instant::now();
            }
        }
    }
}

/// `text` with the characters SQS refuses in a message (U+FFFE, U+FFFF) written as JSON escapes;
/// they can only occur inside JSON strings, where the escape means the same character.
fn sqs_text(text: String) -> String {
    if text.contains(['\u{FFFE}', '\u{FFFF}']) {
        text.replace('\u{FFFE}', "\\ufffe").replace('\u{FFFF}', "\\uffff")
    } else {
        text
    }
}

/// Splits a stored id into the receipt handle and the overflow object's key (empty when none).
fn handle_and_key(id: &str) -> anyhow::Result<(&str, &str)> {
    id.split_once('\n').ok_or_else(|| anyhow::anyhow!("not an SQS entry id: {id:?}"))
}

#[async_trait]
impl DeadLetterStore for SqsDeadLetter {
    fn describe(&self) -> String {
        format!("SQS queue {}", self.url)
    }

    async fn write(&self, entries: &[Entry]) -> anyhow::Result<()> {
        let mut batch = Vec::new();
        let mut size = 0;
        for entry in entries {
            let (message, bytes) = self.message(entry).await?;
            // SQS's limits per call: 10 messages, and their sizes' sum at most the message limit.
            if batch.len() == BATCH || (!batch.is_empty() && size + bytes > self.maximum_message_size) {
                self.send(std::mem::take(&mut batch)).await?;
                size = 0;
            }
            size += bytes;
            // Ids must be distinct within a batch call.
            batch.push(message.id(batch.len().to_string()).build()?);
        }
        if !batch.is_empty() {
            self.send(batch).await?;
        }
        Ok(())
    }

    async fn list(&self, intent: Intent, stop: &Stop) -> anyhow::Result<Vec<Stored>> {
        let (visible, in_flight) = self.counts().await?;
        // To look: everything, also what others hold now (it comes back when they are done). To
        // replay: what can be had now; what others hold is theirs.
        let expected = match intent {
            Intent::Look => visible + in_flight,
            Intent::Replay => visible,
        };
        let (mut stored, mut held) = (Vec::new(), HashSet::new());
        let read = self.receive_all(&mut stored, &mut held, intent, expected, stop).await;
        if read.is_err() || intent == Intent::Look {
            let ids: Vec<String> = held.iter().map(|i| stored[*i].id.clone()).collect();
            if let Err(release) = self.release(&ids).await {
                tracing::warn!("{release:#}");
            }
        }
        read.map(|()| stored)
    }

    async fn in_flight(&self) -> anyhow::Result<Option<String>> {
        let (_, in_flight) = self.counts().await?;
        if in_flight == 0 {
            return Ok(None);
        }
        let by = std::time::SystemTime::now() + std::time::Duration::from_secs(self.visibility_timeout as u64);
        Ok(Some(format!(
            "{in_flight} entries of {} are in flight: read by another `eddy dead-letter` command, or by one that was \
             stopped without handing them back (killed); they are visible again once their visibility timeout \
             (dead_letter.visibility_timeout, {}) ends, by {} at the latest, and are listed and replayed then",
            self.url,
            humantime::format_duration(std::time::Duration::from_secs(self.visibility_timeout as u64)),
            humantime::format_rfc3339_seconds(by)
        )))
    }

    async fn remove(&self, ids: &[String]) -> anyhow::Result<()> {
        let what = format!("cannot delete messages from the dead-letter queue {}", self.url);
        for chunk in ids.chunks(BATCH) {
            let mut entries = Vec::new();
            for (i, id) in chunk.iter().enumerate() {
                let (handle, _) = handle_and_key(id)?;
                entries
                    .push(DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(handle).build()?);
            }
            let out = retried(&self.retry, &what, || {
                let sent =
                    self.client.delete_message_batch().queue_url(&self.url).set_entries(Some(entries.clone())).send();
                async move { sent.await.map_err(attempt) }
            })
            .await?;
            if let Some(failed) = out.failed().first() {
                anyhow::bail!(
                    "{what}: {}: {} (a message hidden longer than dead_letter.visibility_timeout \
                     is visible again and may have been read by another reader)",
                    failed.code(),
                    failed.message().unwrap_or_default()
                );
            }
            // The messages are gone: their overflow objects are not needed any more.
            if let Some((bucket, _)) = &self.overflow {
                for id in chunk {
                    match handle_and_key(id)? {
                        (_, "") => {}
                        (_, key) => bucket.delete(key).await?,
                    }
                }
            }
        }
        Ok(())
    }

    async fn release(&self, ids: &[String]) -> anyhow::Result<()> {
        let what = format!("cannot make messages of the dead-letter queue {} visible again", self.url);
        for chunk in ids.chunks(BATCH) {
            let mut entries = Vec::new();
            for (i, id) in chunk.iter().enumerate() {
                let (handle, _) = handle_and_key(id)?;
                entries.push(
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .build()?,
                );
            }
            let out = retried(&self.retry, &what, || {
                let sent = self
                    .client
                    .change_message_visibility_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries.clone()))
                    .send();
                async move { sent.await.map_err(attempt) }
            })
            .await?;
            // Not an error: such a message is visible again once its timeout ends anyway.
            for failed in out.failed() {
                tracing::warn!("{what}: {}: {}", failed.code(), failed.message().unwrap_or_default());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_is_written_as_the_sqs_extended_client_library_writes_it() {
        let pointer = PayloadS3Pointer { s3_bucket_name: "b".into(), s3_key: "k/1.jsonl".into() };
        let text = serde_json::to_string(&(POINTER_CLASS, &pointer)).unwrap();
        assert_eq!(
            text,
            r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":"k/1.jsonl"}]"#
        );
        let (class, back): (String, PayloadS3Pointer) = serde_json::from_str(&text).unwrap();
        assert_eq!((class.as_str(), back), (POINTER_CLASS, pointer));
    }

    #[test]
    fn characters_sqs_refuses_are_escaped_and_mean_the_same() {
        let entry = serde_json::json!({"s": "a\u{FFFF}b\u{FFFE}c"});
        let text = sqs_text(entry.to_string());
        assert!(!text.contains(['\u{FFFE}', '\u{FFFF}']), "{text}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), entry);
    }
}
