//! The dead letter: records that cannot be delivered, persisted as JSON lines with the reason,
//! never dropped silently. A batch's entries are written and fsynced before its shard
//! checkpoints past them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Context;
use eddy_sink_api::ChangeRecord;
use serde::Serialize;

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
    file: Arc<Mutex<std::fs::File>>,
}

impl DeadLetter {
    /// Opens `path` for appending, creating it and its folder.
    ///
    /// # Errors
    /// When it cannot be opened.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the dead letter {}", path.display()))?;
        Ok(Self { path: path.to_owned(), file: Arc::new(Mutex::new(file)) })
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
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(&bytes)?;
            f.sync_data()
        })
        .await?
        .with_context(|| format!("cannot write the dead letter {}", self.path.display()))
    }
}
