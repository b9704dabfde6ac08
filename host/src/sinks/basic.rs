//! `type: file`, `type: stdout` and `type: "null"` (`eddy-sink-basic`): JSON lines to a file or
//! standard output, or nothing at all.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use eddy_record::ChangeRecord;
use eddy_sink_api::{RetryPolicy, Sink, Timeouts};
use serde::Deserialize;
use serde_json::Value;

use super::SinkSpec;
use crate::spec::Inherited;

/// `type: file, path`: JSONL, one change record per line, fsynced before acknowledging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file, created if missing and appended to (relative paths resolve against the
    /// pipeline file's folder).
    pub path: PathBuf,
}

/// `type: stdout`: JSONL on standard output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {}

/// `type: "null"`: counts and discards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullConfig {}

/// The records as the local sinks store them.
fn as_stored(batch: &[&ChangeRecord]) -> Vec<Value> {
    batch.iter().map(|r| serde_json::to_value(r).expect("records serialize")).collect()
}

#[async_trait]
impl SinkSpec for FileConfig {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn complete(&mut self, base: &Path, _inherited: &Inherited<'_>) {
        if self.path.is_relative() {
            self.path = base.join(&self.path);
        }
    }

    fn file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    async fn build(&self, _retry: RetryPolicy, _timeouts: &Timeouts) -> anyhow::Result<Arc<dyn Sink>> {
        let sink = eddy_sink_basic::FileSink::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        Ok(Arc::new(sink))
    }

    fn preview(&self, batch: &[&ChangeRecord]) -> Vec<Value> {
        as_stored(batch)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[async_trait]
impl SinkSpec for StdoutConfig {
    fn kind(&self) -> &'static str {
        "stdout"
    }

    async fn build(&self, _retry: RetryPolicy, _timeouts: &Timeouts) -> anyhow::Result<Arc<dyn Sink>> {
        Ok(Arc::new(eddy_sink_basic::StdoutSink))
    }

    fn preview(&self, batch: &[&ChangeRecord]) -> Vec<Value> {
        as_stored(batch)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[async_trait]
impl SinkSpec for NullConfig {
    fn kind(&self) -> &'static str {
        "null"
    }

    async fn build(&self, _retry: RetryPolicy, _timeouts: &Timeouts) -> anyhow::Result<Arc<dyn Sink>> {
        Ok(Arc::new(eddy_sink_basic::NullSink::default()))
    }

    fn preview(&self, batch: &[&ChangeRecord]) -> Vec<Value> {
        as_stored(batch)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
