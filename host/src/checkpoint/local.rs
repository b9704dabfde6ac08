//! `checkpoints: {type: local, path}`: one small JSON file per shard under `path/<stream>/`,
//! replaced atomically (write a temporary file, fsync it, rename it over the old one, fsync the
//! directory), so a crash leaves either the old or the new checkpoint, never a torn one. For one
//! process; several processes on one stream need a lease table.
//!
//! A stream's folder is named after its ARN (or a file source's path) made safe for a file name,
//! plus 16 hex digits of the ARN's SHA-256, so two streams never share a folder (`a/b.jsonl` and
//! `a_b.jsonl` once did). The folder's `stream` file records the exact ARN, and a folder that
//! records another stream is refused. A named pipeline's folders are under `path/<name>/`, so two
//! pipelines on one stream keep their positions apart; the first named pipeline to start adopts
//! the positions an unnamed one left in `path/` (copied, and the old folder marked as adopted).
//!
//! One process per `path`: it is locked (an advisory `flock` on `path/.lock`, released by the
//! kernel when the process ends, however it ends) for as long as the process runs, and a second
//! process is refused with an error naming the folder.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use anyhow::Context;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Checkpoint, CheckpointError, CheckpointStore};

/// `checkpoints: {type: local, path}`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalCheckpoints {
    /// The folder (default `.eddy/state`, relative to the pipeline file's folder).
    #[serde(default = "default_path")]
    pub path: PathBuf,
}

impl Default for LocalCheckpoints {
    fn default() -> Self {
        Self { path: default_path() }
    }
}

fn default_path() -> PathBuf {
    PathBuf::from(".eddy/state")
}

/// Checkpoint files of one stream.
pub struct LocalStore {
    dir: PathBuf,
    /// The lock on the checkpoints folder, held while any store of it lives.
    _lock: Arc<std::fs::File>,
}

#[derive(Serialize, Deserialize)]
struct File {
    shard_id: String,
    checkpoint: Checkpoint,
}

impl LocalStore {
    /// The store for `stream_arn` of pipeline `pipeline` (`None`: an unnamed pipeline) under
    /// `root` (created if missing, and locked for this process). Each stream gets its own folder,
    /// so a re-enabled stream never resumes from the old one's positions. A folder of the naming
    /// used before (readable name only) is copied into the new one once; a named pipeline adopts
    /// the unnamed positions of its stream once.
    ///
    /// # Errors
    /// When the folder cannot be created, another process holds `root`, the folder records
    /// another stream, or an unnamed pipeline finds its positions adopted by a named one.
    pub fn open(root: &Path, pipeline: Option<&str>, stream_arn: &str) -> anyhow::Result<Self> {
        let lock = lock(root)?;
        let unnamed = root.join(folder_name(stream_arn));
        let dir = match pipeline {
            Some(name) => root.join(name).join(folder_name(stream_arn)),
            None => unnamed.clone(),
        };
        let marker = dir.join(STREAM_FILE);
        match std::fs::read_to_string(&marker) {
            Ok(recorded) if recorded == stream_arn => return Self::opened(dir, lock, pipeline),
            Ok(recorded) => anyhow::bail!(
                "checkpoint folder {} belongs to stream {recorded:?}, not {stream_arn:?}; \
                 move it away or use another checkpoints.path",
                dir.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", marker.display())),
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create checkpoint folder {}", dir.display()))?;
        match pipeline {
            None => adopt_legacy(root, stream_arn, &dir)?,
            Some(name) => adopt_unnamed(&unnamed, name, &dir)?,
        }
        write_atomically(&dir, STREAM_FILE, stream_arn.as_bytes())
            .with_context(|| format!("cannot write {}", marker.display()))?;
        Self::opened(dir, lock, pipeline)
    }

    /// The store of `dir`, unless an unnamed pipeline opens a folder a named one adopted.
    fn opened(dir: PathBuf, lock: Arc<std::fs::File>, pipeline: Option<&str>) -> anyhow::Result<Self> {
        if pipeline.is_none() {
            if let Ok(name) = std::fs::read_to_string(dir.join(ADOPTED_FILE)) {
                anyhow::bail!(
                    "the checkpoints in {} were adopted by pipeline {name:?}: if this is that pipeline, add \
                     `name: {name}` at the top of its file; if it is another, give it a name of its own",
                    dir.display()
                );
            }
        }
        Ok(Self { dir, _lock: lock })
    }

    /// The checkpoints and plan of `stream_arn` (a stream ARN or a snapshot key) of pipeline
    /// `pipeline` under `root`, read without the lock and without creating anything (for `eddy
    /// status`, while the pipeline runs): empty when the folder does not exist. The positions of
    /// an unnamed pipeline that a named one has not adopted yet are read for the named one.
    ///
    /// # Errors
    /// When a file cannot be read or is not a checkpoint.
    pub fn peek(
        root: &Path,
        pipeline: Option<&str>,
        stream_arn: &str,
    ) -> anyhow::Result<(HashMap<String, Checkpoint>, Option<String>)> {
        let unnamed = root.join(folder_name(stream_arn));
        let mut dir = match pipeline {
            Some(name) => root.join(name).join(folder_name(stream_arn)),
            None => unnamed.clone(),
        };
        if !dir.join(STREAM_FILE).exists() && unnamed.join(STREAM_FILE).exists() {
            dir = unnamed;
        }
        let mut checkpoints = HashMap::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((checkpoints, None)),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        };
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !name.ends_with(".json") || name.starts_with('.') {
                continue;
            }
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let file: File =
                serde_json::from_str(&text).with_context(|| format!("corrupt checkpoint file {}", path.display()))?;
            checkpoints.insert(file.shard_id, file.checkpoint);
        }
        let plan = std::fs::read_to_string(dir.join(PLAN_FILE)).ok();
        Ok((checkpoints, plan))
    }

    /// The folder holding this stream's checkpoint files.
    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The file under a checkpoints folder that its process locks.
const LOCK_FILE: &str = ".lock";

/// The file in an unnamed pipeline's stream folder that names the pipeline that adopted it.
const ADOPTED_FILE: &str = "adopted-by";

/// Locks `root` for this process: the first call creates `root` and takes an exclusive `flock` on
/// its lock file; later calls in the same process share it while it is held.
///
/// # Errors
/// When another process holds the lock, or the folder or its lock file cannot be created.
fn lock(root: &Path) -> anyhow::Result<Arc<std::fs::File>> {
    static HELD: Mutex<Vec<(PathBuf, Weak<std::fs::File>)>> = Mutex::new(Vec::new());
    std::fs::create_dir_all(root).with_context(|| format!("cannot create checkpoint folder {}", root.display()))?;
    let root = root.canonicalize().with_context(|| format!("cannot resolve {}", root.display()))?;
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    held.retain(|(_, file)| file.strong_count() > 0);
    if let Some(file) = held.iter().find(|(path, _)| *path == root).and_then(|(_, file)| file.upgrade()) {
        return Ok(file);
    }
    let path = root.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "checkpoint folder {} is in use by another eddy process: one process per checkpoints.path (run \
             several processes on one stream with a lease table, `checkpoints: {{type: dynamodb}}`, or give each \
             pipeline its own checkpoints.path)",
            root.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    let file = Arc::new(file);
    held.push((root, Arc::downgrade(&file)));
    Ok(file)
}

/// Copies the positions of the unnamed pipeline's folder `unnamed` (if any, and not yet adopted)
/// into `dir`, the folder of pipeline `name`, and marks `unnamed` as adopted by `name`: the first
/// named pipeline to start on a stream carries on where the unnamed one stopped, and no other
/// named pipeline takes those positions as its own.
fn adopt_unnamed(unnamed: &Path, name: &str, dir: &Path) -> anyhow::Result<()> {
    if !unnamed.join(STREAM_FILE).exists() || unnamed.join(ADOPTED_FILE).exists() {
        return Ok(());
    }
    let copied = copy_positions(unnamed, dir)?;
    write_atomically(unnamed, ADOPTED_FILE, name.as_bytes())
        .with_context(|| format!("cannot mark {} as adopted", unnamed.display()))?;
    tracing::info!(from = %unnamed.display(), to = %dir.display(), copied, "pipeline {name:?} adopted the checkpoints written without a pipeline name");
    Ok(())
}

/// Copies the checkpoint files and the plan of folder `from` into `to` (those `to` lacks);
/// returns how many.
fn copy_positions(from: &Path, to: &Path) -> anyhow::Result<usize> {
    let mut copied = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let wanted = (name.ends_with(".json") && !name.starts_with('.')) || name == PLAN_FILE;
        if wanted && !to.join(&name).exists() {
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            write_atomically(to, &name, &bytes).with_context(|| format!("cannot copy {}", path.display()))?;
            copied += 1;
        }
    }
    Ok(copied)
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
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create checkpoint folder {}", dir.display()))?;
    let copied = copy_positions(&legacy, dir)?;
    if copied > 0 {
        tracing::info!(from = %legacy.display(), to = %dir.display(), copied, "adopted checkpoints from the older folder naming");
    }
    Ok(())
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    // The process id keeps two writers from sharing a temporary file, whatever else goes wrong.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
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
        // One process per local folder (it is locked): read, then write if missing.
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
        let store = LocalStore::open(root.path(), None, arn).unwrap();
        store.save("shardId-1", &Checkpoint::After("100".into())).await.unwrap();
        store.save("shardId-1", &Checkpoint::After("200".into())).await.unwrap();
        store.save("shardId-2", &Checkpoint::ShardEnd).await.unwrap();
        let again = LocalStore::open(root.path(), None, arn).unwrap();
        let all = again.load().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["shardId-1"], Checkpoint::After("200".into()));
        assert_eq!(all["shardId-2"], Checkpoint::ShardEnd);
        // Another stream of the same table starts empty.
        let other = LocalStore::open(root.path(), None, "arn:aws:dynamodb:us-east-1:1:table/T/stream/2025").unwrap();
        assert!(other.load().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn streams_whose_names_differ_only_in_punctuation_get_their_own_folders() {
        let root = tempfile::tempdir().unwrap();
        let a = LocalStore::open(root.path(), None, "file:/data/a/b.jsonl").unwrap();
        let b = LocalStore::open(root.path(), None, "file:/data/a_b.jsonl").unwrap();
        assert_ne!(a.dir(), b.dir());
        a.save("file", &Checkpoint::ShardEnd).await.unwrap();
        assert!(b.load().await.unwrap().is_empty(), "the second stream must not see the first one's checkpoint");
    }

    #[tokio::test]
    async fn a_folder_that_records_another_stream_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::open(root.path(), None, "arn:one").unwrap();
        std::fs::write(store.dir().join(STREAM_FILE), "arn:two").unwrap();
        let err = LocalStore::open(root.path(), None, "arn:one").err().expect("refused").to_string();
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
        let store = LocalStore::open(root.path(), None, arn).unwrap();
        assert_eq!(store.load().await.unwrap()["shardId-1"], Checkpoint::After("42".into()));
    }

    #[tokio::test]
    async fn pipelines_keep_their_positions_apart_and_the_first_named_one_adopts_the_unnamed_positions() {
        let root = tempfile::tempdir().unwrap();
        let arn = "arn:aws:dynamodb:us-east-1:1:table/T/stream/2024";
        let unnamed = LocalStore::open(root.path(), None, arn).unwrap();
        unnamed.save("shardId-1", &Checkpoint::After("42".into())).await.unwrap();
        drop(unnamed);

        let first = LocalStore::open(root.path(), Some("to-scylla"), arn).unwrap();
        assert_eq!(first.load().await.unwrap()["shardId-1"], Checkpoint::After("42".into()), "adopted");
        first.save("shardId-1", &Checkpoint::After("50".into())).await.unwrap();
        let second = LocalStore::open(root.path(), Some("to-cratedb"), arn).unwrap();
        assert!(second.load().await.unwrap().is_empty(), "the second pipeline starts on its own");
        second.save("shardId-1", &Checkpoint::After("7".into())).await.unwrap();
        let first = LocalStore::open(root.path(), Some("to-scylla"), arn).unwrap();
        assert_eq!(first.load().await.unwrap()["shardId-1"], Checkpoint::After("50".into()));

        let err = LocalStore::open(root.path(), None, arn).err().expect("refused").to_string();
        assert!(err.contains("adopted by pipeline \"to-scylla\"") && err.contains("name: to-scylla"), "{err}");
    }

    #[test]
    fn a_folder_another_process_holds_is_refused() {
        let root = tempfile::tempdir().unwrap();
        // Another process's lock: a lock on another open file of the same path conflicts as one
        // taken by another process would.
        let other = std::fs::File::create(root.path().join(LOCK_FILE)).unwrap();
        other.try_lock().unwrap();
        let err = LocalStore::open(root.path(), None, "arn:one").err().expect("refused").to_string();
        assert!(err.contains("in use by another eddy process"), "{err}");
        other.unlock().unwrap();
        let store = LocalStore::open(root.path(), None, "arn:one").unwrap();
        // The same process may open more stores of the folder (the stream and the snapshot).
        LocalStore::open(root.path(), Some("p"), "arn:two").unwrap();
        drop(store);
    }
}
