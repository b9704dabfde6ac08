//! `source: {type: file, path}`: change records from a JSONL file (one record per line, in
//! Lambda's JSON shape), for plugin work, replays and benchmarks.
//!
//! The file is one closed shard named `file`; a record's position is its line. Checkpoints work
//! as for a stream (a restart resumes after the last acknowledged record), and when every line is
//! processed the stream has ended: eddy drains, checkpoints and exits 0. Lines that are not a
//! valid record go to the dead letter with the parser's message.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use eddy_sink_api::ChangeRecord;

use super::{IteratorPosition, RecordsPage, ShardInfo, StreamDescription, StreamsApi, StreamsError, Undecodable};

/// The shard id of a file source.
pub const SHARD: &str = "file";

/// A JSONL file as a one-shard, closed stream.
pub struct FileStreams {
    arn: String,
    lines: Arc<Vec<String>>,
}

impl FileStreams {
    /// Reads `path`.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the source file {}", path.display()))?;
        let lines = text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect();
        let canonical: PathBuf = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        Ok(Self { arn: format!("file:{}", canonical.display()), lines: Arc::new(lines) })
    }

    /// The stream's name for checkpoints: `file:<absolute path>`.
    pub fn stream_arn(&self) -> &str {
        &self.arn
    }

    fn parse(&self, index: usize) -> Result<ChangeRecord, Undecodable> {
        let line = &self.lines[index];
        serde_json::from_str(line).map_err(|e| Undecodable {
            sequence_number: None,
            reason: format!("line {}: not a change record: {e}", index + 1),
            raw: line.clone(),
        })
    }

    /// The index of the line after the record with sequence number `seq` (or at it).
    fn position_of(&self, seq: &str, after: bool) -> Option<usize> {
        self.lines.iter().enumerate().find_map(|(i, line)| {
            let record: serde_json::Value = serde_json::from_str(line).ok()?;
            (record["dynamodb"]["SequenceNumber"].as_str() == Some(seq)).then_some(if after { i + 1 } else { i })
        })
    }
}

#[async_trait]
impl StreamsApi for FileStreams {
    async fn describe_stream(&self) -> Result<StreamDescription, StreamsError> {
        Ok(StreamDescription {
            stream_arn: self.arn.clone(),
            view_type: None,
            shards: vec![ShardInfo {
                shard_id: SHARD.to_owned(),
                parent_shard_id: None,
                starting_sequence_number: None,
                ending_sequence_number: Some(String::new()),
            }],
            ended: true,
        })
    }

    async fn get_shard_iterator(&self, shard_id: &str, position: &IteratorPosition) -> Result<String, StreamsError> {
        if shard_id != SHARD {
            return Err(StreamsError::Fatal(format!("a file source has one shard, {SHARD:?}, not {shard_id:?}")));
        }
        let line = match position {
            IteratorPosition::TrimHorizon => 0,
            IteratorPosition::Latest => self.lines.len(),
            IteratorPosition::AtSequence(s) | IteratorPosition::AfterSequence(s) => {
                let after = matches!(position, IteratorPosition::AfterSequence(_));
                self.position_of(s, after).ok_or_else(|| {
                    StreamsError::Trimmed(format!("no record with sequence number {s} in {}", self.arn))
                })?
            }
        };
        Ok(line.to_string())
    }

    async fn get_records(&self, iterator: &str, limit: u32) -> Result<RecordsPage, StreamsError> {
        let start: usize =
            iterator.parse().map_err(|_| StreamsError::Fatal(format!("bad file iterator {iterator:?}")))?;
        let end = (start + limit as usize).min(self.lines.len());
        let mut page =
            RecordsPage { next_iterator: (end < self.lines.len()).then(|| end.to_string()), ..RecordsPage::default() };
        for i in start..end {
            match self.parse(i) {
                Ok(r) => page.records.push(r),
                Err(u) => page.undecodable.push(u),
            }
        }
        Ok(page)
    }
}
