//! In-process test doubles for the seams (tests only): a scripted [`StreamsApi`], an in-memory
//! [`CheckpointStore`], a recording [`Sink`] and an in-memory [`DeadLetterStore`], so that the
//! reader, the coordinator and the pipeline are tested without a network, a server or the
//! binary, under tokio's clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use eddy_record::{ChangeRecord, StreamRecord};
use eddy_sink_api::{Sink, SinkError, WriteOutcome};

use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::dead_letter::{DeadLetterStore, Entry, Stored};
use crate::events::stats::Stats;
use crate::pipeline::{Pipeline, RouteSpec, SinkSlot};
use crate::source::{IteratorPosition, RecordsPage, ShardInfo, StreamDescription, StreamsApi, StreamsError};

/// A change record of key `key` with sequence number `seq`, created at `created` (epoch seconds).
pub fn record(seq: u64, key: &str, created: i64) -> ChangeRecord {
    serde_json::from_value(serde_json::json!({
        "eventID": format!("e{seq}"), "eventName": "MODIFY", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "eventSourceARN": "arn:scripted",
        "dynamodb": {
            "ApproximateCreationDateTime": created,
            "Keys": {"pk": {"S": key}},
            "NewImage": {"pk": {"S": key}, "seq": {"N": seq.to_string()}},
            "SequenceNumber": format!("{seq:021}"), "SizeBytes": 10, "StreamViewType": "NEW_IMAGE"
        }
    }))
    .expect("a valid record")
}

/// A GetRecords answer of `n` records ([`record`]s of keys `k0`, `k1`, ...), as DynamoDB Streams
/// sends it.
pub fn get_records_page(n: u64) -> bytes::Bytes {
    let records: Vec<ChangeRecord> = (1..=n).map(|i| record(i, &format!("k{i}"), 1_700_000_000)).collect();
    let page = serde_json::json!({"Records": records, "NextShardIterator": "next"});
    bytes::Bytes::from(serde_json::to_vec(&page).expect("records serialize"))
}

/// One scripted shard.
pub struct ScriptedShard {
    /// What DescribeStream says of it (set `ending_sequence_number` for a closed shard).
    pub info: ShardInfo,
    /// Its records, in sequence order.
    pub records: Vec<ChangeRecord>,
    /// How many of its first records are trimmed (gone: older than the stream's retention).
    pub trimmed: usize,
}

impl ScriptedShard {
    /// A closed shard `id` holding `records`.
    pub fn closed(id: &str, parent: Option<&str>, records: Vec<ChangeRecord>) -> Self {
        let last = records.last().map_or_else(|| "0".to_owned(), |r| r.dynamodb.sequence_number.clone());
        Self {
            info: ShardInfo {
                shard_id: id.to_owned(),
                parent_shard_id: parent.map(str::to_owned),
                ending_sequence_number: Some(last),
                ..ShardInfo::default()
            },
            records,
            trimmed: 0,
        }
    }

    /// An open shard `id` holding `records` (more may be added).
    pub fn open(id: &str, records: Vec<ChangeRecord>) -> Self {
        Self { info: ShardInfo { shard_id: id.to_owned(), ..ShardInfo::default() }, records, trimmed: 0 }
    }
}

/// A [`StreamsApi`] over scripted shards. Iterators are `SHARD/INDEX`. It counts the GetRecords
/// calls in flight (and the most at once), records when each call came and where each iterator
/// was asked for, and answers the calls `failures` names with their errors.
#[derive(Default)]
pub struct ScriptedStreams {
    /// The shards.
    pub shards: Mutex<Vec<ScriptedShard>>,
    /// Errors by GetRecords call number (1-based): that call answers with the error.
    pub failures: Mutex<std::collections::BTreeMap<usize, StreamsError>>,
    /// When each GetRecords call came (tokio's clock).
    pub call_times: Mutex<Vec<tokio::time::Instant>>,
    /// How many of the next DescribeStream calls fail (throttled).
    pub describe_failures: AtomicUsize,
    /// Every GetShardIterator call: the shard and the position asked for.
    pub positions: Mutex<Vec<(String, IteratorPosition)>>,
    /// How long each GetRecords takes.
    pub latency: Duration,
    /// GetRecords calls in flight now.
    pub in_flight: AtomicUsize,
    /// The most GetRecords calls in flight at once.
    pub max_in_flight: AtomicUsize,
    /// GetRecords calls made.
    pub calls: AtomicUsize,
}

impl ScriptedStreams {
    /// A stream of these shards.
    pub fn new(shards: Vec<ScriptedShard>) -> Self {
        Self { shards: Mutex::new(shards), ..Self::default() }
    }
}

struct InFlight<'a>(&'a ScriptedStreams);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl StreamsApi for ScriptedStreams {
    async fn describe_stream(&self) -> Result<StreamDescription, StreamsError> {
        let failing = self.describe_failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(StreamsError::Transient("LimitExceededException: Rate exceeded".into()));
        }
        let shards = self.shards.lock().unwrap();
        Ok(StreamDescription {
            stream_arn: "arn:scripted".into(),
            view_type: None,
            ended: shards.iter().all(|s| s.info.ending_sequence_number.is_some()),
            shards: shards.iter().map(|s| s.info.clone()).collect(),
        })
    }

    async fn get_shard_iterator(&self, shard_id: &str, position: &IteratorPosition) -> Result<String, StreamsError> {
        self.positions.lock().unwrap().push((shard_id.to_owned(), position.clone()));
        let shards = self.shards.lock().unwrap();
        let shard = shards
            .iter()
            .find(|s| s.info.shard_id == shard_id)
            .ok_or_else(|| StreamsError::Fatal(format!("no shard {shard_id}")))?;
        let after = |seq: &str, strict: bool| {
            shard
                .records
                .iter()
                .position(|r| {
                    let order = StreamRecord::sequence_cmp(&r.dynamodb.sequence_number, seq);
                    if strict {
                        order.is_gt()
                    } else {
                        order.is_ge()
                    }
                })
                .unwrap_or(shard.records.len())
        };
        let index = match position {
            IteratorPosition::TrimHorizon | IteratorPosition::AtTimestamp(_) => shard.trimmed,
            IteratorPosition::Latest => shard.records.len(),
            IteratorPosition::AfterSequence(seq) => after(seq, true),
            IteratorPosition::AtSequence(seq) => after(seq, false),
        };
        if index < shard.trimmed {
            return Err(StreamsError::Trimmed(format!("{position:?} is before the trim horizon of {shard_id}")));
        }
        Ok(format!("{shard_id}/{index}"))
    }

    async fn get_records(&self, iterator: &str, limit: u32) -> Result<RecordsPage, StreamsError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = InFlight(self);
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.call_times.lock().unwrap().push(tokio::time::Instant::now());
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if let Some(e) = self.failures.lock().unwrap().remove(&call) {
            return Err(e);
        }
        let (shard_id, index) = iterator.rsplit_once('/').expect("a scripted iterator");
        let index: usize = index.parse().expect("a scripted iterator");
        let shards = self.shards.lock().unwrap();
        let shard = shards.iter().find(|s| s.info.shard_id == shard_id).expect("a scripted shard");
        let end = (index + limit as usize).min(shard.records.len());
        let closed = shard.info.ending_sequence_number.is_some();
        Ok(RecordsPage {
            bytes: (end - index) as u64 * SCRIPTED_RECORD_BYTES,
            records: shard.records[index..end].to_vec(),
            next_iterator: (!closed || end < shard.records.len()).then(|| format!("{shard_id}/{end}")),
            ..RecordsPage::default()
        })
    }
}

/// The answer bytes a scripted page says each of its records took.
pub const SCRIPTED_RECORD_BYTES: u64 = 1000;

/// Checkpoints in memory, with every save in order.
#[derive(Default)]
pub struct MemoryCheckpoints {
    /// The checkpoints now.
    pub saved: Mutex<HashMap<String, Checkpoint>>,
    /// Every save, in order.
    pub history: Mutex<Vec<(String, Checkpoint)>>,
    /// After this many saves, the lease is lost: every later save is refused as
    /// [`CheckpointError::LeaseLost`].
    pub lose_lease_after: Option<usize>,
}

#[async_trait]
impl CheckpointStore for MemoryCheckpoints {
    async fn load(&self) -> anyhow::Result<HashMap<String, Checkpoint>> {
        Ok(self.saved.lock().unwrap().clone())
    }

    async fn save(&self, shard_id: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        if self.lose_lease_after.is_some_and(|n| self.history.lock().unwrap().len() >= n) {
            return Err(CheckpointError::LeaseLost { shard: shard_id.to_owned() });
        }
        self.saved.lock().unwrap().insert(shard_id.to_owned(), checkpoint.clone());
        self.history.lock().unwrap().push((shard_id.to_owned(), checkpoint.clone()));
        Ok(())
    }
}

/// A sink that records what it acknowledges, and fails the writes its script says to.
#[derive(Default)]
pub struct RecordingSink {
    /// The sequence numbers acknowledged, in order.
    pub written: Mutex<Vec<String>>,
    /// Errors by write number (1-based): that write answers with the error (nothing written).
    pub failures: Mutex<std::collections::BTreeMap<usize, SinkError>>,
    /// Writes made.
    pub writes: AtomicUsize,
    /// While set, writes never answer (a sink that hangs).
    pub hang: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Sink for RecordingSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let write = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(e) = self.failures.lock().unwrap().remove(&write) {
            return Err(e);
        }
        self.written.lock().unwrap().extend(batch.iter().map(|r| r.dynamodb.sequence_number.clone()));
        Ok(WriteOutcome::default())
    }
}

/// A dead letter in memory.
#[derive(Default)]
pub struct MemoryDeadLetter {
    /// The entries, in order.
    pub entries: Mutex<Vec<Entry>>,
}

#[async_trait]
impl DeadLetterStore for MemoryDeadLetter {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn write(&self, entries: &[Entry]) -> anyhow::Result<()> {
        self.entries.lock().unwrap().extend(entries.iter().cloned());
        Ok(())
    }

    async fn list(
        &self,
        _intent: crate::dead_letter::Intent,
        _stop: &crate::stop::Stop,
    ) -> anyhow::Result<Vec<Stored>> {
        Ok(self.entries.lock().unwrap().iter().map(|e| Stored { id: e.id(), entry: e.clone() }).collect())
    }

    async fn remove(&self, ids: &[String]) -> anyhow::Result<()> {
        self.entries.lock().unwrap().retain(|e| !ids.contains(&e.id()));
        Ok(())
    }
}

/// A pipeline of one route, `main`, into `sink` (named `out`), with `dead_letter`.
pub fn pipeline(sink: Arc<RecordingSink>, dead_letter: Arc<MemoryDeadLetter>) -> Arc<Pipeline> {
    let route = RouteSpec {
        name: "main".into(),
        filter: None,
        processors: Vec::new(),
        sinks: vec![SinkSlot { name: "out".into(), kind: "null", sink }],
        on_sink_failure: crate::config::OnSinkFailure::default(),
        retry: eddy_sink_api::RetryPolicy::default(),
        batching: None,
    };
    let stats = Stats::new(&["out".to_owned()], &["main".to_owned()]);
    Arc::new(Pipeline::new(vec![Arc::new(route)], dead_letter, Arc::new(stats)))
}
