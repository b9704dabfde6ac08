//! `checkpoints: {type: local, path}`: one small JSON file per shard under
//! `path/<stream>/`, replaced atomically (write a temporary file, fsync it, rename it over the old
//! one, fsync the directory), so a crash leaves either the old or the new checkpoint, never a torn
//! one. For one process; several processes on one stream need a lease table.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Checkpoint, CheckpointStore};

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
    /// folder, named after its ARN, so a re-enabled stream never resumes from the old one's
    /// positions.
    ///
    /// # Errors
    /// When the folder cannot be created.
    pub fn open(root: &Path, stream_arn: &str) -> anyhow::Result<Self> {
        let name: String = stream_arn
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
            .collect();
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create checkpoint folder {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// The folder holding this stream's checkpoint files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
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

    async fn save(&self, shard_id: &str, checkpoint: &Checkpoint) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(&File { shard_id: shard_id.to_owned(), checkpoint: checkpoint.clone() })?;
        let dir = self.dir.clone();
        let name = format!("{shard_id}.json");
        tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
            .await?
            .with_context(|| format!("cannot save the checkpoint of {shard_id} in {}", self.dir.display()))
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
}
