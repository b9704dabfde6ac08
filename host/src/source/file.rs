//! `source: {type: file, path}`: change records from a file, for plugin work, replays and
//! benchmarks: JSONL (one record per line, in Lambda's JSON shape), or a Lambda test event
//! (`{"Records": [...]}`, as Lambda's console, SAM and Powertools' test fixtures hold them). The
//! same reader serves `eddy plugin test`, `eddy pattern test` and `eddy sink preview`
//! ([`entries`]).
//!
//! The file is one closed shard named `file`; a record's position is its line. Checkpoints work
//! as for a stream (a restart resumes after the last acknowledged record), and when every line is
//! processed the stream has ended: eddy drains, checkpoints and exits 0. Lines that are not a
//! valid record (not UTF-8, not JSON, not a change record) go to the dead letter with their line
//! number and the parser's message; the other lines flow. Blank lines are skipped but counted, so
//! line numbers are the ones an editor shows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use eddy_record::ChangeRecord;

use super::{IteratorPosition, RecordsPage, ShardInfo, StreamDescription, StreamsApi, StreamsError, Undecodable};

/// `source: {type: file, path}`: change records from a JSONL file, one per line in Lambda's
/// shape. At the end of the file eddy drains, checkpoints and exits 0.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// The JSONL file (relative paths resolve against the pipeline file's folder).
    pub path: PathBuf,
    /// How many lines make one batch, 1 to 1000. Default 1000.
    #[serde(default = "super::polling::defaults::max_records_per_poll")]
    pub max_records_per_poll: u32,
}

impl FileSource {
    /// What a parser cannot see: the batch size's range.
    pub fn problems(&self) -> Vec<crate::spec::Problem> {
        let mut out = Vec::new();
        if !(1..=1000).contains(&self.max_records_per_poll) {
            out.push(crate::spec::Problem::at("max_records_per_poll", "must be between 1 and 1000"));
        }
        out
    }
}

/// The shard id of a file source.
pub const SHARD: &str = "file";

/// A JSONL file as a one-shard, closed stream.
pub struct FileStreams {
    arn: String,
    lines: Arc<Vec<Entry>>,
}

/// Where a record is in its file, for messages: `line N` (JSONL, 1-based, counting blank lines,
/// as an editor shows them) or `Records[I]` (a Lambda test event, 0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A JSONL line.
    Line(usize),
    /// An element of an event's `Records`.
    Record(usize),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Record(i) => write!(f, "Records[{i}]"),
        }
    }
}

/// One record's text in a records file.
pub struct Entry {
    /// Where it is.
    pub place: Place,
    /// The text, or why it is not UTF-8.
    pub text: Result<String, String>,
}

/// The records of a file: the elements of `Records` when the whole file is a Lambda test event
/// (`{"Records": [...]}`), else its non-blank lines (JSONL; a `\r` before `\n` is dropped), each
/// decoded on its own so one bad line does not reject the file.
pub fn entries(bytes: &[u8]) -> Vec<Entry> {
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(rename = "Records", borrow)]
        records: Vec<&'a serde_json::value::RawValue>,
    }
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"{") {
        if let Ok(event) = serde_json::from_slice::<Event>(bytes) {
            return event
                .records
                .into_iter()
                .enumerate()
                .map(|(i, r)| Entry { place: Place::Record(i), text: Ok(r.get().to_owned()) })
                .collect();
        }
    }
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, raw)| !raw.iter().all(u8::is_ascii_whitespace))
        .map(|(i, raw)| {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let text = std::str::from_utf8(raw).map(str::to_owned).map_err(|e| format!("not UTF-8: {e}"));
            Entry { place: Place::Line(i + 1), text }
        })
        .collect()
}

impl FileStreams {
    /// Reads `path`.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read the source file {}", path.display()))?;
        let lines = entries(&bytes);
        let canonical: PathBuf = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        Ok(Self { arn: format!("file:{}", canonical.display()), lines: Arc::new(lines) })
    }

    /// The stream's name for checkpoints: `file:<absolute path>`.
    pub fn stream_arn(&self) -> &str {
        &self.arn
    }

    fn parse(&self, index: usize) -> Result<ChangeRecord, Undecodable> {
        let line = &self.lines[index];
        match &line.text {
            Ok(text) => serde_json::from_str(text).map_err(|e| Undecodable {
                sequence_number: None,
                reason: format!("{}: not a change record: {e}", line.place),
                raw: text.clone(),
            }),
            Err(e) => {
                Err(Undecodable { sequence_number: None, reason: format!("{}: {e}", line.place), raw: String::new() })
            }
        }
    }

    /// The index of the line after the record with sequence number `seq` (or at it).
    fn position_of(&self, seq: &str, after: bool) -> Option<usize> {
        self.lines.iter().enumerate().find_map(|(i, line)| {
            let record: serde_json::Value = serde_json::from_str(line.text.as_deref().ok()?).ok()?;
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
                ending_sequence_number: Some(String::new()),
                ..ShardInfo::default()
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
            IteratorPosition::AtTimestamp(_) => {
                return Err(StreamsError::Fatal("a file source has no AT_TIMESTAMP iterator".into()))
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"eventID":"1","eventName":"INSERT","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{"Keys":{"id":{"S":"a"}},"NewImage":{"id":{"S":"a"}},"SequenceNumber":"100","SizeBytes":1,"StreamViewType":"NEW_AND_OLD_IMAGES"},"eventSourceARN":"x"}"#;

    /// A Lambda test event (`{"Records": [...]}`) is read as its records, in order; a record
    /// that is not a change record is named by its place in `Records`.
    #[tokio::test]
    async fn a_lambda_test_event_is_read_as_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        let second = GOOD.replace("\"100\"", "\"200\"");
        std::fs::write(
            &path,
            format!("{{\n  \"Records\": [\n    {GOOD},\n    {{\"eventID\": 7}},\n    {second}\n  ]\n}}\n"),
        )
        .unwrap();
        let file = FileStreams::open(&path).unwrap();
        let it = file.get_shard_iterator(SHARD, &IteratorPosition::TrimHorizon).await.unwrap();
        let page = file.get_records(&it, 1000).await.unwrap();
        let seqs: Vec<&str> = page.records.iter().map(|r| r.dynamodb.sequence_number.as_str()).collect();
        assert_eq!(seqs, ["100", "200"]);
        assert_eq!(page.undecodable.len(), 1);
        assert!(
            page.undecodable[0].reason.starts_with("Records[1]: not a change record"),
            "{}",
            page.undecodable[0].reason
        );
        // A JSONL file whose first line is a record is still JSONL.
        let lines = entries(format!("{GOOD}\n{second}\n").as_bytes());
        assert_eq!(lines.iter().map(|e| e.place).collect::<Vec<_>>(), [Place::Line(1), Place::Line(2)]);
    }

    #[tokio::test]
    async fn an_invalid_utf8_line_is_undecodable_with_its_number_and_the_rest_flows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let mut bytes = Vec::new();
        bytes.extend_from_slice(GOOD.as_bytes());
        bytes.extend_from_slice(b"\n\n{\"bad\": \"\xff\xfe\"}\r\n");
        bytes.extend_from_slice(GOOD.replace("\"100\"", "\"200\"").as_bytes());
        bytes.push(b'\n');
        std::fs::write(&path, bytes).unwrap();
        let file = FileStreams::open(&path).unwrap();
        let it = file.get_shard_iterator(SHARD, &IteratorPosition::TrimHorizon).await.unwrap();
        let page = file.get_records(&it, 1000).await.unwrap();
        let seqs: Vec<&str> = page.records.iter().map(|r| r.dynamodb.sequence_number.as_str()).collect();
        assert_eq!(seqs, ["100", "200"]);
        assert_eq!(page.undecodable.len(), 1);
        assert!(page.undecodable[0].reason.starts_with("line 3: not UTF-8"), "{}", page.undecodable[0].reason);
        // Resuming after the second record finds it by sequence number past the bad line.
        let after = file.get_shard_iterator(SHARD, &IteratorPosition::AfterSequence("100".into())).await.unwrap();
        assert_eq!(after, "1");
    }
}
