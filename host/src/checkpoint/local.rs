//! `checkpoints: {type: local, path}`: one small JSON file per shard under `path/<stream>/`,
//! replaced atomically (write a temporary file, fsync it, rename it over the old one, fsync the
//! directory), so a crash leaves either the old or the new checkpoint, never a torn one. For one
//! process; several processes on one stream need a lease table.
//!
//! A stream's folder is named after its ARN (or a file source's path) made safe for a file name,
//! plus 16 hex digits of the ARN's SHA-256, so two streams never share a folder (`a/b.jsonl` and
//! `a_b.jsonl` once did). The folder's `stream` file records the exact ARN, and a folder that
//! records another stream is refused.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Checkpoint, CheckpointError, CheckpointStore};

/// Checkpoint files of one stream.
pub struct LocalStore {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct File {
    shard_id: String,
    checkpoint: Checkpoint,
}

impl LocalStore {
    /// The store for `stream_arn` under `root` (created if missing). Each stream gets its own
    /// folder, so a re-enabled stream never resumes from the old one's positions. A folder of the
    /// naming used before (readable name only) is copied into the new one once.
    ///
    /// # Errors
    /// When the folder cannot be created, or it records another stream.
    pub fn open(root: &Path, stream_arn: &str) -> anyhow::Result<Self> {
        let dir = root.join(folder_name(stream_arn));
        let marker = dir.join(STREAM_FILE);
        match std::fs::read_to_string(&marker) {
            Ok(recorded) if recorded == stream_arn => return Ok(Self { dir }),
            Ok(recorded) => anyhow::bail!(
                "checkpoint folder {} belongs to stream {recorded:?}, not {stream_arn:?}; \
                 move it away or use another checkpoints.path",
                dir.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", marker.display())),
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create checkpoint folder {}", dir.display()))?;
        adopt_legacy(root, stream_arn, &dir)?;
        write_atomically(&dir, STREAM_FILE, stream_arn.as_bytes())
            .with_context(|| format!("cannot write {}", marker.display()))?;
        Ok(Self { dir })
    }

    /// The folder holding this stream's checkpoint files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The file in a stream's folder that names the stream.
const STREAM_FILE: &str = "stream";

/// The file in a folder that holds its [`super::PlanStore`] plan (not `.json`: it is not a
/// checkpoint).
const PLAN_FILE: &str = "plan";

/// `<readable ARN, at most 80 characters>-<16 hex digits of its SHA-256>`: the readable part helps
/// a person find the folder, the hash makes the name unique per stream.
fn folder_name(stream_arn: &str) -> String {
    use sha2::Digest;
    let readable: String = legacy_name(stream_arn).chars().take(80).collect();
    let hash = sha2::Sha256::digest(stream_arn.as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{readable}-{hex}")
}

/// The folder name used before the hash was added: not injective (`/` and `_` both became `_`).
fn legacy_name(stream_arn: &str) -> String {
    stream_arn.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

/// Copies the checkpoint files of a folder named the old way into `dir`, so an upgrade resumes
/// where it stopped instead of starting over. The old folder stays as it was.
fn adopt_legacy(root: &Path, stream_arn: &str, dir: &Path) -> anyhow::Result<()> {
    let legacy = root.join(legacy_name(stream_arn));
    if !legacy.is_dir() || legacy.join(STREAM_FILE).exists() {
        return Ok(());
    }
    let mut copied = 0;
    for entry in std::fs::read_dir(&legacy).with_context(|| format!("cannot read {}", legacy.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.ends_with(".json") && !name.starts_with('.') && !dir.join(&name).exists() {
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            write_atomically(dir, &name, &bytes).with_context(|| format!("cannot copy {}", path.display()))?;
            copied += 1;
        }
    }
    if copied > 0 {
        tracing::info!(from = %legacy.display(), to = %dir.display(), copied, "adopted checkpoints from the older folder naming");
    }
    Ok(())
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &target)?;
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl CheckpointStore for LocalStore {
    async fn load(&self) -> anyhow::Result<HashMap<String, Checkpoint>> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = HashMap::new();
            for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
                let path = entry?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let file: File = serde_json::from_str(&text)
                    .with_context(|| format!("corrupt checkpoint file {}", path.display()))?;
                out.insert(file.shard_id, file.checkpoint);
            }
            Ok(out)
        })
        .await?
    }

    async fn save(&self, shard_id: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let bytes = serde_json::to_vec(&File { shard_id: shard_id.to_owned(), checkpoint: checkpoint.clone() })
            .map_err(anyhow::Error::from)?;
        let dir = self.dir.clone();
        let name = format!("{shard_id}.json");
        tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
            .await
            .map_err(anyhow::Error::from)?
            .with_context(|| format!("cannot save the checkpoint of {shard_id} in {}", self.dir.display()))
            .map_err(CheckpointError::Store)
    }
}

#[async_trait]
impl super::PlanStore for LocalStore {
    async fn plan(&self) -> anyhow::Result<Option<String>> {
        let path = self.dir.join(PLAN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    async fn record_plan(&self, text: &str) -> anyhow::Result<String> {
        // One process per local folder: read, then write if missing.
        if let Some(recorded) = self.plan().await? {
            return Ok(recorded);
        }
        write_atomically(&self.dir, PLAN_FILE, text.as_bytes())
            .with_context(|| format!("cannot write {}", self.dir.join(PLAN_FILE).display()))?;
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saves_replace_and_survive_a_reopen() {
        let root = tempfile::tempdir().unwrap();
        let arn = "arn:aws:dynamodb:us-east-1:1:table/T/stream/2024-01-01T00:00:00.000";
        let store = LocalStore::open(root.path(), arn).unwrap();
        store.save("shardId-1", &Checkpoint::After("100".into())).await.unwrap();
        store.save("shardId-1", &Checkpoint::After("200".into())).await.unwrap();
        store.save("shardId-2", &Checkpoint::ShardEnd).await.unwrap();
        let again = LocalStore::open(root.path(), arn).unwrap();
        let all = again.load().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["shardId-1"], Checkpoint::After("200".into()));
        assert_eq!(all["shardId-2"], Checkpoint::ShardEnd);
        // Another stream of the same table starts empty.
        let other = LocalStore::open(root.path(), "arn:aws:dynamodb:us-east-1:1:table/T/stream/2025").unwrap();
        assert!(other.load().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn streams_whose_names_differ_only_in_punctuation_get_their_own_folders() {
        let root = tempfile::tempdir().unwrap();
        let a = LocalStore::open(root.path(), "file:/data/a/b.jsonl").unwrap();
        let b = LocalStore::open(root.path(), "file:/data/a_b.jsonl").unwrap();
        assert_ne!(a.dir(), b.dir());
        a.save("file", &Checkpoint::ShardEnd).await.unwrap();
        assert!(b.load().await.unwrap().is_empty(), "the second stream must not see the first one's checkpoint");
    }

    #[tokio::test]
    async fn a_folder_that_records_another_stream_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::open(root.path(), "arn:one").unwrap();
        std::fs::write(store.dir().join(STREAM_FILE), "arn:two").unwrap();
        let err = LocalStore::open(root.path(), "arn:one").err().expect("refused").to_string();
        assert!(err.contains("belongs to stream \"arn:two\", not \"arn:one\""), "{err}");
    }

    #[tokio::test]
    async fn checkpoints_of_the_older_folder_naming_are_adopted() {
        let root = tempfile::tempdir().unwrap();
        let arn = "arn:aws:dynamodb:us-east-1:1:table/T/stream/2024";
        let legacy = root.path().join(legacy_name(arn));
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(legacy.join("shardId-1.json"), r#"{"shard_id":"shardId-1","checkpoint":{"after":"42"}}"#)
            .unwrap();
        let store = LocalStore::open(root.path(), arn).unwrap();
        assert_eq!(store.load().await.unwrap()["shardId-1"], Checkpoint::After("42".into()));
    }
}
