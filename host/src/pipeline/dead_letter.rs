//! The dead letter: records that cannot be delivered, persisted as JSON lines with the reason,
//! never dropped silently. A batch's entries are written and fsynced before its shard
//! checkpoints past them.
//!
//! Every entry is whole or absent, even on a full disk: a write that fails part-way is cut back
//! to where it started, and opening the file cuts off a partial last line left by a crash. Such
//! a partial entry was never acknowledged (its shard did not checkpoint past it), so the record
//! is read again and its entry written again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Context;
use eddy_sink_api::ChangeRecord;
use serde::Serialize;

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

/// Where a record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The stream record could not be decoded.
    Decode,
    /// A processor failed on it (trap, timeout, `fail` verdict, invalid output).
    Processor,
    /// A sink refused it.
    Sink,
}

/// One dead-letter line.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// When it was written (RFC 3339, UTC).
    pub time: String,
    /// The shard the record came from.
    pub shard_id: String,
    /// The record's sequence number.
    pub sequence_number: Option<String>,
    /// The route it was on (absent for decode failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Where it failed.
    pub stage: Stage,
    /// The processor or sink that failed (absent for decode failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Why.
    pub error: String,
    /// How many times it was tried.
    pub attempts: u32,
    /// The full record, in Lambda's shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<ChangeRecord>,
    /// For undecodable records: the record as received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl Entry {
    /// An entry stamped now.
    pub fn new(shard_id: &str, stage: Stage, error: String) -> Self {
        Self {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            shard_id: shard_id.to_owned(),
            sequence_number: None,
            route: None,
            stage,
            name: None,
            error,
            attempts: 1,
            record: None,
            raw: None,
        }
    }

    /// Attaches the record (and its sequence number).
    pub fn with_record(mut self, record: &ChangeRecord) -> Self {
        self.sequence_number = Some(record.dynamodb.sequence_number.clone());
        self.record = Some(record.clone());
        self
    }
}

/// The dead-letter file (`dead_letter: {type: file, path}`).
pub struct DeadLetter {
    path: PathBuf,
    file: Arc<Mutex<Appender>>,
}

/// The open file and the length of its complete entries.
struct Appender {
    file: std::fs::File,
    len: u64,
}

impl DeadLetter {
    /// Opens `path` for appending, creating it and its folder; a partial last line (a crash or a
    /// full disk during a write) is cut off first.
    ///
    /// # Errors
    /// When it cannot be opened or repaired.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the dead letter {}", path.display()))?;
        let len = complete_length(&file).with_context(|| format!("cannot read the dead letter {}", path.display()))?;
        if len < file.metadata()?.len() {
            tracing::warn!(path = %path.display(), "the dead letter ended in a partial entry (a crash or a full disk while writing); removing it");
            file.set_len(len).with_context(|| format!("cannot repair the dead letter {}", path.display()))?;
            file.sync_data()?;
        }
        Ok(Self { path: path.to_owned(), file: Arc::new(Mutex::new(Appender { file, len })) })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entries` and flushes them to disk.
    ///
    /// # Errors
    /// When they cannot be written; the shard must then not checkpoint past them.
    pub async fn write(&self, entries: &[Entry]) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut bytes, e)?;
            bytes.push(b'\n');
        }
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || {
            let mut a = file.lock().unwrap_or_else(|p| p.into_inner());
            let written = a.file.write_all(&bytes).and_then(|()| a.file.sync_data());
            match written {
                Ok(()) => {
                    a.len += bytes.len() as u64;
                    Ok(())
                }
                Err(e) => {
                    // Cut back to the last whole entry, so the next write does not glue onto a
                    // torn one; if even that fails, the next open repairs the file.
                    let len = a.len;
                    let _ = a.file.set_len(len);
                    Err(e)
                }
            }
        })
        .await?
        .with_context(|| format!("cannot write the dead letter {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_torn_last_entry_is_cut_off_on_open_and_entries_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let dl = DeadLetter::open(&path).unwrap();
        dl.write(&[Entry::new("s1", Stage::Decode, "first".into())]).await.unwrap();
        drop(dl);
        // A crash (or ENOSPC) in the middle of the second write.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"time":"2026-01-01T00:00:00Z","shard_id":"s1","sequ"#).unwrap();
        drop(f);
        let dl = DeadLetter::open(&path).unwrap();
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
        DeadLetter::open(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}
