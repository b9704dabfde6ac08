//! eddy's local sinks, for plugin work, tests and benchmarks:
//!
//! - [`FileSink`] (`type: file`): appends each change record as one JSON line (Lambda's shape) and
//!   flushes it to disk before acknowledging;
//! - [`StdoutSink`] (`type: stdout`): the same lines on standard output;
//! - [`NullSink`] (`type: "null"`): counts and discards.

#![deny(missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use eddy_record::ChangeRecord;
use eddy_sink_api::{Sink, SinkError, WriteOutcome};

fn to_jsonl(batch: &[&ChangeRecord]) -> Result<Vec<u8>, SinkError> {
    let mut out = Vec::with_capacity(batch.len() * 256);
    for record in batch {
        serde_json::to_writer(&mut out, record).map_err(|e| SinkError::Fatal(e.to_string()))?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Appends records to a JSONL file; a write returns after the lines reach the disk (fsync).
pub struct FileSink {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
}

impl FileSink {
    /// Opens `path` for appending, creating it and its directory if missing.
    ///
    /// # Errors
    /// The I/O error, with the path.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Self { path: path.to_owned(), file: Arc::new(Mutex::new(file)) })
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        let bytes = to_jsonl(batch)?;
        let file = Arc::clone(&self.file);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(&bytes)?;
            f.sync_data()
        })
        .await
        .map_err(|e| SinkError::Retryable(e.to_string()))?
        .map_err(|e| SinkError::Retryable(format!("{}: {e}", path.display())))?;
        Ok(WriteOutcome::default())
    }
}

/// Prints records as JSON lines on standard output.
#[derive(Default)]
pub struct StdoutSink;

#[async_trait]
impl Sink for StdoutSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        let bytes = to_jsonl(batch)?;
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes).and_then(|()| out.flush()).map_err(|e| SinkError::Fatal(format!("stdout: {e}")))?;
        Ok(WriteOutcome::default())
    }
}

/// Counts records and discards them.
#[derive(Default)]
pub struct NullSink {
    count: AtomicU64,
}

impl NullSink {
    /// How many records were written so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Sink for NullSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        self.count.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(WriteOutcome::default())
    }
}
