//! `dead_letter: {type: s3, bucket, prefix?, endpoint?, region?}`: one object per failed batch,
//! JSON lines of entries (the same objects as the file destination's lines), as Lambda's S3
//! on-failure destination keeps one object per failed invocation. Objects have no size limit
//! that matters here, so this is the destination for tables whose items come near 400 KB.
//!
//! Key: `{prefix}{shard_id}/{first sequence number}-{12 hex digits of the SHA-256 of the entries'
//! ids}.jsonl`. A batch read again after a crash writes the same key again instead of adding a
//! copy. The bucket must exist (eddy does not create buckets); `eddy run` checks it at start-up.
//!
//! Removing entries (a replay) rewrites each object without them, or deletes it when none is
//! left.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use eddy_sink_api::{RetryPolicy, Timeouts};
use serde::Deserialize;

use super::{DeadLetterStore, Entry, Stored};
use crate::aws::sdk_call::{attempt_on, retried};

/// `dead_letter: {type: s3, bucket, prefix?, endpoint?, region?}`: the bucket must exist;
/// `endpoint` (an S3-compatible server such as moto or MinIO, addressed by path) and `region`
/// default to the source's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterBucket {
    /// The bucket's name.
    pub bucket: String,
    /// Where in the bucket the objects go. Default `eddy-dead-letter/`.
    #[serde(default = "super::default_prefix")]
    pub prefix: String,
    /// An S3-compatible endpoint; default: the source's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region; default: the source's.
    #[serde(default)]
    pub region: Option<String>,
}

/// Classifies an S3 error; throttling (`SlowDown`) counts under `api="s3"`.
fn attempt<E, R>(e: aws_sdk_s3::error::SdkError<E, R>) -> crate::aws::sdk_call::Attempt
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    attempt_on("s3", e)
}

/// The dead-letter bucket.
pub struct S3DeadLetter {
    bucket: Bucket,
    prefix: String,
}

impl S3DeadLetter {
    /// Connects to the bucket and checks that it exists (HeadBucket).
    ///
    /// # Errors
    /// When the bucket is missing or cannot be reached.
    pub async fn open(config: &DeadLetterBucket, timeouts: &Timeouts, retry: RetryPolicy) -> anyhow::Result<Self> {
        let target = crate::aws::Target { region: config.region.as_deref(), endpoint: config.endpoint.as_deref() };
        let bucket = Bucket::open(&config.bucket, &target, timeouts, retry).await?;
        Ok(Self { bucket, prefix: config.prefix.clone() })
    }
}

/// An S3 bucket as the dead letter uses it: whole objects read, written and deleted, with the
/// retry policy's waits. Also where the SQS destination puts entries too large for a message.
pub(super) struct Bucket {
    client: Client,
    /// The bucket's name.
    pub(super) name: String,
    retry: RetryPolicy,
}

impl Bucket {
    /// Connects to bucket `name` at `target` and checks that it exists (HeadBucket).
    ///
    /// # Errors
    /// When the bucket is missing or cannot be reached.
    pub(super) async fn open(
        name: &str,
        target: &crate::aws::Target<'_>,
        timeouts: &Timeouts,
        retry: RetryPolicy,
    ) -> anyhow::Result<Self> {
        let shared = crate::aws::sdk_config(target, timeouts).await;
        // A custom endpoint (moto, MinIO, LocalStack) serves buckets by path, not by host name.
        let s3 = aws_sdk_s3::config::Builder::from(&shared).force_path_style(target.endpoint.is_some()).build();
        let bucket = Self { client: Client::from_conf(s3), name: name.to_owned(), retry };
        let what = format!("cannot reach the dead-letter bucket {name} (it must exist)");
        retried(&bucket.retry, &what, || {
            let sent = bucket.client.head_bucket().bucket(&bucket.name).send();
            async move { sent.await.map_err(attempt) }
        })
        .await?;
        Ok(bucket)
    }

    /// The object at `key`, as text.
    ///
    /// # Errors
    /// When it cannot be read or is not UTF-8.
    pub(super) async fn get(&self, key: &str) -> anyhow::Result<String> {
        let what = format!("cannot read s3://{}/{key}", self.name);
        let out = retried(&self.retry, &what, || {
            let sent = self.client.get_object().bucket(&self.name).key(key).send();
            async move { sent.await.map_err(attempt) }
        })
        .await?;
        let bytes = out.body.collect().await.map_err(|e| anyhow::anyhow!("{what}: {e}"))?.into_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|e| anyhow::anyhow!("{what}: not UTF-8: {e}"))
    }

    /// Writes `body` (JSON lines) at `key`, replacing what is there.
    ///
    /// # Errors
    /// When S3 does not acknowledge it after the retries.
    pub(super) async fn put(&self, key: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let what = format!("cannot write s3://{}/{key}", self.name);
        retried(&self.retry, &what, || {
            let sent = self
                .client
                .put_object()
                .bucket(&self.name)
                .key(key)
                .content_type("application/x-ndjson")
                .body(ByteStream::from(body.clone()))
                .send();
            async move { sent.await.map_err(attempt) }
        })
        .await
        .map(|_| ())
    }

    /// Deletes the object at `key` (nothing there is not an error: S3 answers 204 either way).
    ///
    /// # Errors
    /// When S3 does not acknowledge it after the retries.
    pub(super) async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let what = format!("cannot delete s3://{}/{key}", self.name);
        retried(&self.retry, &what, || {
            let sent = self.client.delete_object().bucket(&self.name).key(key).send();
            async move { sent.await.map_err(attempt) }
        })
        .await
        .map(|_| ())
    }

    /// The keys of every object under `prefix`.
    ///
    /// # Errors
    /// When the bucket cannot be listed.
    async fn keys(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token = None;
        let what = format!("cannot list s3://{}/{prefix}", self.name);
        loop {
            let page = retried(&self.retry, &what, || {
                let sent = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.name)
                    .prefix(prefix)
                    .set_continuation_token(token.clone())
                    .send();
                async move { sent.await.map_err(attempt) }
            })
            .await?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(keys)
    }
}

/// The object key of `entries` under `prefix`.
pub(super) fn object_key(prefix: &str, entries: &[Entry]) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for e in entries {
        hash.update(e.id().as_bytes());
        hash.update(b"\n");
    }
    let digest = hash.finalize();
    let first = &entries[0];
    let position = first.sequence_number.clone().unwrap_or_else(|| "undecodable".to_owned());
    format!("{prefix}{}/{position}-{}.jsonl", first.shard_id, super::hex(&digest[..6]))
}

#[async_trait]
impl DeadLetterStore for S3DeadLetter {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket.name, self.prefix)
    }

    async fn write(&self, entries: &[Entry]) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut body = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut body, e)?;
            body.push(b'\n');
        }
        self.bucket.put(&object_key(&self.prefix, entries), body).await
    }

    async fn list(&self, _intent: super::Intent, _stop: &crate::stop::Stop) -> anyhow::Result<Vec<Stored>> {
        let keys = self.bucket.keys(&self.prefix).await?;
        let mut stored = Vec::new();
        for key in keys {
            let text = self.bucket.get(&key).await?;
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let entry = serde_json::from_str(line).map_err(|e| {
                    anyhow::anyhow!("s3://{}/{key}:{}: not a dead-letter entry: {e}", self.bucket.name, i + 1)
                })?;
                stored.push(Stored { id: format!("{key}\n{i}"), entry });
            }
        }
        Ok(stored)
    }

    async fn remove(&self, ids: &[String]) -> anyhow::Result<()> {
        let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for id in ids {
            let (key, line) = id.rsplit_once('\n').ok_or_else(|| anyhow::anyhow!("not an S3 entry id: {id:?}"))?;
            by_key.entry(key).or_default().push(line.parse()?);
        }
        for (key, gone) in by_key {
            let text = self.bucket.get(key).await?;
            let kept: Vec<&str> = text
                .lines()
                .enumerate()
                .filter(|(i, l)| !gone.contains(i) && !l.trim().is_empty())
                .map(|(_, l)| l)
                .collect();
            if kept.is_empty() {
                self.bucket.delete(key).await?;
            } else {
                let mut body = kept.join("\n").into_bytes();
                body.push(b'\n');
                self.bucket.put(key, body).await?;
            }
        }
        Ok(())
    }
}
