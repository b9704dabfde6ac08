//! `eddy status`: whether a pipeline is caught up, for an operator and for a cut-over script.
//!
//! Read only (it creates and locks nothing, so it runs beside the pipeline): the stream's shards
//! (DescribeStream or ListShards), each shard's checkpoint and owner (the lease table, or the
//! local checkpoints folder), how far behind each checkpoint is, and the snapshot's segments.
//! How far behind is read, not guessed: GetShardIterator after the checkpoint (the trim horizon
//! without one) and up to [`PAGES`] GetRecords pages, following `NextShardIterator` past empty
//! pages as DynamoDB Streams may return them. A shard is caught up when that finds no record.
//!
//! The verdict: **caught up** when every shard is read to its newest record (closed shards to
//! SHARD_END) and no snapshot is in progress; otherwise **behind**, with every reason.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::source::{IteratorPosition, ShardInfo, StreamsApi};

/// GetRecords pages read after a checkpoint before a shard is called caught up.
pub const PAGES: usize = 3;

/// The most records one GetRecords asks for (DynamoDB Streams' maximum).
const LIMIT: u32 = 1000;

/// One shard's state.
#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    /// The shard id.
    pub shard: String,
    /// Its parent (or parents, comma-separated), if any.
    pub parent: Option<String>,
    /// Whether the shard is open (takes new records).
    pub open: bool,
    /// The process holding its lease (a lease table), if any.
    pub owner: Option<String>,
    /// Its checkpoint: a sequence number, `SHARD_END`, or `None` (not read yet).
    pub checkpoint: Option<String>,
    /// How far behind its checkpoint is.
    pub behind: Behind,
}

/// How far behind a shard's checkpoint is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Behind {
    /// No record after the checkpoint.
    CaughtUp,
    /// A closed shard read to its end (SHARD_END).
    Done,
    /// Records after the checkpoint: `records` read (`more`: the pages read were full, there may be
    /// more), the oldest `oldest_seconds` old (when the records say).
    Records {
        /// Records found after the checkpoint.
        records: usize,
        /// Whether more may follow the ones counted.
        more: bool,
        /// Age of the oldest of them, in seconds.
        oldest_seconds: Option<i64>,
    },
    /// The stream could not tell (the error).
    Unknown {
        /// Why.
        error: String,
    },
}

impl Behind {
    fn text(&self) -> String {
        match self {
            Behind::CaughtUp => "caught up".to_owned(),
            Behind::Done => "done".to_owned(),
            Behind::Records { records, more, oldest_seconds } => {
                let at_least = if *more { "≥" } else { "" };
                match oldest_seconds {
                    Some(age) => format!("{at_least}{records} records, oldest {age}s old"),
                    None => format!("{at_least}{records} records"),
                }
            }
            Behind::Unknown { error } => format!("unknown ({error})"),
        }
    }
}

/// The snapshot's state, when the pipeline has one (`snapshot.mode: first_run`).
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotStatus {
    /// Segments read to their end.
    pub segments_done: usize,
    /// `TotalSegments` (the recorded plan's, else the configured number).
    pub segments: u32,
    /// Whether a plan is recorded (the snapshot has started).
    pub started: bool,
}

impl SnapshotStatus {
    /// Whether every segment is done.
    pub fn complete(&self) -> bool {
        self.started && self.segments_done >= self.segments as usize
    }
}

/// What `eddy status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The pipeline's name, if any.
    pub pipeline: Option<String>,
    /// The stream.
    pub stream: String,
    /// Every shard of the stream, in shard order.
    pub shards: Vec<ShardStatus>,
    /// The snapshot, if the pipeline has one.
    pub snapshot: Option<SnapshotStatus>,
    /// Why the pipeline is behind; empty when it is caught up.
    pub behind_because: Vec<String>,
}

impl Status {
    /// Whether the pipeline is caught up.
    pub fn caught_up(&self) -> bool {
        self.behind_because.is_empty()
    }

    /// The report for a terminal: a line per shard, the snapshot, and the verdict line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let name = self.pipeline.as_deref().unwrap_or("(unnamed)");
        let _ = writeln!(out, "pipeline {name}, stream {}", self.stream);
        let _ = writeln!(out, "{:<28} {:<6} {:<30} {:<26} behind", "shard", "state", "owner", "checkpoint");
        for s in &self.shards {
            let _ = writeln!(
                out,
                "{:<28} {:<6} {:<30} {:<26} {}",
                s.shard,
                if s.open { "open" } else { "closed" },
                s.owner.as_deref().unwrap_or("-"),
                s.checkpoint.as_deref().unwrap_or("-"),
                s.behind.text()
            );
        }
        if let Some(snap) = &self.snapshot {
            let state = match (snap.started, snap.complete()) {
                (false, _) => "not started".to_owned(),
                (true, true) => "complete".to_owned(),
                (true, false) => "in progress".to_owned(),
            };
            let _ = writeln!(out, "snapshot: {state}, {} of {} segments done", snap.segments_done, snap.segments);
        }
        if self.caught_up() {
            let _ = writeln!(out, "caught up: every shard is read to its newest record");
        } else {
            let _ = writeln!(out, "behind: {}", self.behind_because.join("; "));
        }
        out
    }
}

/// How far behind `checkpoint` is in shard `shard` of `api` (see the module).
pub async fn behind(api: &dyn StreamsApi, shard: &str, checkpoint: Option<&Checkpoint>) -> Behind {
    let position = match checkpoint {
        Some(Checkpoint::ShardEnd) => return Behind::Done,
        Some(Checkpoint::After(seq)) => IteratorPosition::AfterSequence(seq.clone()),
        None => IteratorPosition::TrimHorizon,
    };
    let mut iterator = match api.get_shard_iterator(shard, &position).await {
        Ok(it) => it,
        Err(e) => return Behind::Unknown { error: e.to_string() },
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    for _ in 0..PAGES {
        let page = match api.get_records(&iterator, LIMIT).await {
            Ok(page) => page,
            Err(e) => return Behind::Unknown { error: e.to_string() },
        };
        let n = page.records.len() + page.undecodable.len();
        if n > 0 {
            let oldest = page.records.iter().filter_map(|r| r.dynamodb.approximate_creation_date_time).min();
            return Behind::Records {
                records: n,
                more: n >= LIMIT as usize,
                oldest_seconds: oldest.map(|t| (now - t).max(0)),
            };
        }
        match page.next_iterator {
            Some(next) => iterator = next,
            None => break,
        }
    }
    Behind::CaughtUp
}

/// The statuses of `shards` with their `checkpoints` and `owners`, read from `api`, and the
/// reasons the stream part is behind.
pub async fn shards(
    api: &dyn StreamsApi,
    shards: &[ShardInfo],
    checkpoints: &HashMap<String, Checkpoint>,
    owners: &HashMap<String, String>,
) -> (Vec<ShardStatus>, Vec<String>) {
    let mut out = Vec::with_capacity(shards.len());
    let mut reasons = Vec::new();
    for info in shards {
        let checkpoint = checkpoints.get(&info.shard_id);
        let behind = behind(api, &info.shard_id, checkpoint).await;
        match &behind {
            Behind::Records { .. } => reasons.push(format!("shard {} has {}", info.shard_id, behind.text())),
            Behind::Unknown { error } => reasons.push(format!("shard {} cannot be read: {error}", info.shard_id)),
            Behind::CaughtUp | Behind::Done => {}
        }
        let parent = match (&info.parent_shard_id, &info.adjacent_parent_shard_id) {
            (Some(p), Some(q)) => Some(format!("{p},{q}")),
            (p, _) => p.clone(),
        };
        out.push(ShardStatus {
            shard: info.shard_id.clone(),
            parent,
            open: info.ending_sequence_number.is_none(),
            owner: owners.get(&info.shard_id).cloned(),
            checkpoint: checkpoint.map(|c| match c {
                Checkpoint::ShardEnd => "SHARD_END".to_owned(),
                Checkpoint::After(seq) => seq.clone(),
            }),
            behind,
        });
    }
    out.sort_by(|a, b| a.shard.cmp(&b.shard));
    (out, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, ScriptedShard, ScriptedStreams};

    /// A shard with records after its checkpoint is behind by them; one read to its newest record
    /// is caught up; a closed one at SHARD_END is done; the verdict names each shard behind.
    #[tokio::test]
    async fn shards_are_behind_by_what_follows_their_checkpoints() {
        let records = |from: u64, to: u64| {
            (from..=to).map(|i| testing::record(i, &format!("k{i}"), 1_700_000_000)).collect::<Vec<_>>()
        };
        let mut child = ScriptedShard::open("b-open", records(4, 9));
        child.info.parent_shard_id = Some("a-closed".into());
        let api = ScriptedStreams::new(vec![
            ScriptedShard::closed("a-closed", None, records(1, 3)),
            child,
            ScriptedShard::open("c-open", records(10, 12)),
        ]);
        let infos = api.describe_stream().await.unwrap().shards;
        let checkpoints = HashMap::from([
            ("a-closed".to_owned(), Checkpoint::ShardEnd),
            ("b-open".to_owned(), Checkpoint::After(format!("{:021}", 6))),
            ("c-open".to_owned(), Checkpoint::After(format!("{:021}", 12))),
        ]);
        let owners = HashMap::from([("b-open".to_owned(), "worker-1".to_owned())]);
        let (shards, reasons) = shards(&api, &infos, &checkpoints, &owners).await;
        let by = |id: &str| shards.iter().find(|s| s.shard == id).unwrap().clone();
        assert_eq!(by("a-closed").behind, Behind::Done);
        assert!(matches!(by("b-open").behind, Behind::Records { records: 3, more: false, .. }), "{:?}", by("b-open"));
        assert_eq!(by("b-open").owner.as_deref(), Some("worker-1"));
        assert_eq!(by("b-open").parent.as_deref(), Some("a-closed"));
        assert_eq!(by("c-open").behind, Behind::CaughtUp);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("shard b-open has 3 records, oldest"), "{reasons:?}");

        let status = Status {
            pipeline: Some("p".into()),
            stream: "arn".into(),
            shards,
            snapshot: Some(SnapshotStatus { segments_done: 2, segments: 4, started: true }),
            behind_because: reasons,
        };
        let text = status.render();
        assert!(text.contains("snapshot: in progress, 2 of 4 segments done"), "{text}");
        assert!(text.lines().last().unwrap().starts_with("behind: shard b-open has 3 records"), "{text}");
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["shards"][1]["behind"]["state"], "records");
        assert_eq!(json["shards"][2]["behind"]["state"], "caught_up");
    }
}
