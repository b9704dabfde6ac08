//! `dead_letter: {type: file, path}`: entries as JSON lines, appended and fsynced before the
//! shard checkpoints past them.
//!
//! Every entry is whole or absent, even on a full disk: a write that fails part-way is cut back
//! to where it started, and opening the file cuts off a partial last line left by a crash. Such
//! a partial entry was never acknowledged (its shard did not checkpoint past it), so the record
//! is read again and its entry written again.
//!
//! Writers and `eddy dead-letter replay` (which removes delivered entries) share the file under
//! an exclusive `flock`. A replay writes the remaining entries to a new file and renames it over
//! the old one; a writer that finds its open file replaced reopens the path before appending, so
//! an `eddy run` writing to the file while a replay runs loses nothing.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use async_trait::async_trait;

use super::{DeadLetterStore, Entry, Stored};
/// The length of `file` up to and including its last newline (0 when it has none).
fn complete_length(file: &std::fs::File) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = file;
    let total = file.metadata()?.len();
    let mut end = total;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let buf = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(buf)?;
        if let Some(i) = buf.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// `dead_letter: {type: file, path}`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDestination {
    /// The file (relative paths resolve against the pipeline file's folder).
    pub path: PathBuf,
}

/// The dead-letter file.
pub struct FileDeadLetter {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
}

impl FileDeadLetter {
    /// Opens `path` for appending, creating it and its folder; a partial last line (a crash or a
    /// full disk during a write) is cut off first.
    ///
    /// # Errors
    /// When it cannot be opened or repaired.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = open_repaired(path)?;
        Ok(Self { path: path.to_owned(), file: Arc::new(Mutex::new(file)) })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens `path` for reading and appending, cutting off a partial last line.
fn open_repaired(path: &Path) -> anyhow::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the dead letter {}", path.display()))?;
    file.lock().with_context(|| format!("cannot lock the dead letter {}", path.display()))?;
    let repaired = (|| {
        let len = complete_length(&file)?;
        if len < file.metadata()?.len() {
            tracing::warn!(path = %path.display(), "the dead letter ended in a partial entry (a crash or a full disk while writing); removing it");
            file.set_len(len)?;
            file.sync_data()?;
        }
        std::io::Result::Ok(())
    })();
    file.unlock()?;
    repaired.with_context(|| format!("cannot repair the dead letter {}", path.display()))?;
    Ok(file)
}

/// Locks `file` (reopened first if a replay replaced the path meanwhile) and runs `f` on it.
fn locked<T>(
    path: &Path,
    file: &mut std::fs::File,
    f: impl FnOnce(&mut std::fs::File) -> std::io::Result<T>,
) -> anyhow::Result<T> {
    loop {
        file.lock().with_context(|| format!("cannot lock the dead letter {}", path.display()))?;
        let ours = file.metadata()?;
        let current = std::fs::metadata(path).ok();
        if current.is_some_and(|m| m.dev() == ours.dev() && m.ino() == ours.ino()) {
            break;
        }
        file.unlock()?;
        *file = open_repaired(path)?;
    }
    let result = f(file);
    let _ = file.unlock();
    result.with_context(|| format!("cannot write the dead letter {}", path.display()))
}

#[async_trait]
impl DeadLetterStore for FileDeadLetter {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    async fn write(&self, entries: &[Entry]) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut bytes, e)?;
            bytes.push(b'\n');
        }
        let file = Arc::clone(&self.file);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            locked(&path, &mut file, |file| {
                let start = file.metadata()?.len();
                let written = file.write_all(&bytes).and_then(|()| file.sync_data());
                if written.is_err() {
                    // Cut back to the last whole entry, so the next write does not glue onto a
                    // torn one; if even that fails, the next open repairs the file.
                    let _ = file.set_len(start);
                }
                written
            })
        })
        .await?
    }

    async fn list(&self, _intent: super::Intent, _stop: &crate::stop::Stop) -> anyhow::Result<Vec<Stored>> {
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("cannot read the dead letter {}", self.path.display()))?;
        let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
        complete
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                let entry = serde_json::from_str(line)
                    .with_context(|| format!("{}:{}: not a dead-letter entry", self.path.display(), i + 1))?;
                Ok(Stored { id: line.to_owned(), entry })
            })
            .collect()
    }

    async fn remove(&self, ids: &[String]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // An entry's id is its line; each id removes one line with that text.
        let mut gone: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for id in ids {
            *gone.entry(id.clone()).or_default() += 1;
        }
        let file = Arc::clone(&self.file);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            let tmp = path.with_extension("replaying");
            locked(&path, &mut file, |file| {
                use std::io::Read;
                use std::io::Seek;
                let mut text = String::new();
                file.seek(std::io::SeekFrom::Start(0))?;
                file.read_to_string(&mut text)?;
                let mut kept = String::with_capacity(text.len());
                for line in text.split_inclusive('\n') {
                    match gone.get_mut(line.trim_end_matches('\n')) {
                        Some(n) if *n > 0 => *n -= 1,
                        _ => kept.push_str(line),
                    }
                }
                let mut out = std::fs::File::create(&tmp)?;
                out.write_all(kept.as_bytes())?;
                out.sync_all()?;
                // Writers blocked on the old file's lock see it replaced and reopen the path.
                std::fs::rename(&tmp, &path)?;
                if let Some(dir) = path.parent() {
                    if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) {
                        let _ = d.sync_all();
                    }
                }
                Ok(())
            })?;
            *file = open_repaired(&path)?;
            Ok(())
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::Stage;

    #[tokio::test]
    async fn a_torn_last_entry_is_cut_off_on_open_and_entries_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let dl = FileDeadLetter::open(&path).unwrap();
        dl.write(&[Entry::new("s1", Stage::Decode, "first".into())]).await.unwrap();
        drop(dl);
        // A crash (or ENOSPC) in the middle of the second write.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"time":"2026-01-01T00:00:00Z","shard_id":"s1","sequ"#).unwrap();
        drop(f);
        let dl = FileDeadLetter::open(&path).unwrap();
        dl.write(&[Entry::new("s1", Stage::Decode, "second".into())]).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let errors: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("every line is whole JSON")["error"].to_string()
            })
            .collect();
        assert_eq!(errors, ["\"first\"", "\"second\""]);
    }

    #[tokio::test]
    async fn a_file_of_one_partial_line_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        std::fs::write(&path, b"{\"half").unwrap();
        FileDeadLetter::open(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    #[tokio::test]
    async fn remove_keeps_the_rest_and_a_writer_holding_the_old_file_appends_to_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        // Two handles, as `eddy run` and `eddy dead-letter replay` in two processes.
        let run = FileDeadLetter::open(&path).unwrap();
        let replay = FileDeadLetter::open(&path).unwrap();
        let entries: Vec<Entry> = ["a", "b", "c"].iter().map(|e| Entry::new("s1", Stage::Sink, (*e).into())).collect();
        run.write(&entries).await.unwrap();
        let listed = replay.list(crate::dead_letter::Intent::Look, &crate::stop::channel().1).await.unwrap();
        assert_eq!(listed.iter().map(|s| s.entry.error.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        replay.remove(&[listed[0].id.clone(), listed[2].id.clone()]).await.unwrap();
        // `run` still holds the replaced file open: its next entry must land in the new one.
        run.write(&[Entry::new("s1", Stage::Sink, "d".into())]).await.unwrap();
        let left: Vec<String> = replay
            .list(crate::dead_letter::Intent::Look, &crate::stop::channel().1)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.entry.error)
            .collect();
        assert_eq!(left, ["b", "d"]);
        assert!(!path.with_extension("replaying").exists());
    }
}
