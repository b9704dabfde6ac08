//! The snapshot: the table's existing items, then the stream, with no gap and no stale
//! overwrite (what scylla-migrator does with Spark, and cratedb-toolkit with a separate full
//! load, in one process).
//!
//! 1. **Plan.** Before the first segment is read, eddy records a [`Plan`] beside the checkpoints:
//!    the time T0 and the stream's open shards. The first process to record it wins, so every
//!    process sharing a lease table works to the same T0; a restart reads it back.
//! 2. **Scan.** The table's parallel Scan segments are read as closed shards ([`scan`]) by the
//!    same coordinator, readers, leases and pipeline as a stream: each page's `LastEvaluatedKey`
//!    is checkpointed after the sinks acknowledge it, segments are leased like shards with a
//!    lease table, and a killed process's segments resume after their last acknowledged page. No
//!    stream record is applied while the scan runs.
//! 3. **Stream.** Once every segment is done (SHARD_END, by any process), the stream is read from
//!    the trim horizon of every shard. Records created before T0 minus `safety_margin` are
//!    skipped and counted: the scan already saw their effect. Records after that are applied in
//!    shard order, so an item the scan wrote at a newer version than a replayed change ends at its
//!    latest version. [`check_retention`] stops with the gap named when changes made after T0 may
//!    already be trimmed (the snapshot took longer than the stream's 24 hours).

pub mod kinesis;
pub mod progress;
pub mod scan;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, PlanStore};
use crate::coordinator::reader::ReaderSettings;
use crate::coordinator::Coordinator;
use crate::lease::Leases;
use crate::pipeline::Pipeline;
use crate::source::polling::StartPosition;
use crate::source::{StreamDescription, StreamsApi};
use crate::stop::{Stop, StopHandle};
use scan::ScanSegments;

/// How long DynamoDB Streams keeps a record.
pub const STREAM_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// What a snapshot records before its first segment is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// T0: when the scan began, in epoch milliseconds.
    pub started_at_ms: i64,
    /// Scan `TotalSegments` (a restart keeps the recorded number, whatever the config says now).
    pub segments: u32,
    /// The table's stream when the scan began; `None` when it had none (`eddy snapshot` on a
    /// table without a stream).
    pub stream: Option<StreamAtStart>,
}

/// The table's stream at T0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAtStart {
    /// Its ARN.
    pub arn: String,
    /// Its shards that were open (no ending sequence number): they hold the changes made after T0.
    pub open_shards: Vec<String>,
}

impl Plan {
    /// T0 as RFC 3339 text, for messages.
    pub fn started_at(&self) -> String {
        let at = UNIX_EPOCH + Duration::from_millis(self.started_at_ms.max(0) as u64);
        humantime::format_rfc3339_seconds(at).to_string()
    }

    /// Stream records created before this (epoch seconds) are skipped after the snapshot.
    pub fn stream_cutoff(&self, safety_margin: Duration) -> i64 {
        (self.started_at_ms - safety_margin.as_millis() as i64).div_euclid(1000)
    }
}

/// Now, in epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Reads the recorded plan, or records a new one: T0 is now, and the open shards are those of
/// `stream` (its ARN and API) as DescribeStream lists them now.
///
/// # Errors
/// When the store cannot be read or written, the recorded plan is not readable, or the stream
/// cannot be described (DescribeStream is tried under `retry`).
pub async fn plan(
    plans: &dyn PlanStore,
    segments: u32,
    stream: Option<(&str, &dyn StreamsApi)>,
    retry: &eddy_sink_api::RetryPolicy,
) -> anyhow::Result<Plan> {
    let parse = |text: String| -> anyhow::Result<Plan> {
        serde_json::from_str(&text).with_context(|| format!("the recorded snapshot plan is not readable: {text}"))
    };
    if let Some(text) = plans.plan().await? {
        return parse(text);
    }
    let started_at_ms = now_ms();
    let stream = match stream {
        None => None,
        Some((arn, api)) => {
            let desc = crate::source::describe_with_retry(api, retry).await?;
            Some(StreamAtStart {
                arn: arn.to_owned(),
                open_shards: desc
                    .shards
                    .into_iter()
                    .filter(|s| s.ending_sequence_number.is_none())
                    .map(|s| s.shard_id)
                    .collect(),
            })
        }
    };
    let text = serde_json::to_string(&Plan { started_at_ms, segments, stream }).expect("a plan serializes");
    let recorded = parse(plans.record_plan(&text).await?)?;
    if recorded.started_at_ms == started_at_ms {
        tracing::info!(started_at = recorded.started_at(), segments, "snapshot plan recorded");
    }
    Ok(recorded)
}

/// How a snapshot run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every segment is done.
    Complete,
    /// Stopping was asked first; the acknowledged pages are checkpointed.
    Stopped,
}

/// One table's snapshot, ready to run.
pub struct Snapshot {
    /// The segments.
    pub api: Arc<ScanSegments>,
    /// Which segments this process reads, and where their checkpoints go.
    pub leases: Arc<dyn Leases>,
    /// Reader settings (`source`'s, without its records budget: the scan has its own).
    pub settings: ReaderSettings,
    /// How many segments this process reads at once (`snapshot.concurrency`).
    pub concurrency: usize,
}

impl Snapshot {
    /// How many segments are done (SHARD_END), by any process.
    ///
    /// # Errors
    /// When the checkpoint store cannot be read.
    pub async fn segments_done(&self) -> anyhow::Result<u32> {
        let saved = self.leases.checkpoints().load().await?;
        Ok((0..self.api.segments())
            .filter(|i| saved.get(&self.api.segment_id(*i)) == Some(&Checkpoint::ShardEnd))
            .count() as u32)
    }

    /// Reads every segment not yet done through `pipeline`, sharing them with other processes
    /// through the lease table if there is one, until every segment is done or `stop` is set.
    ///
    /// # Errors
    /// A segment that fails for good (a refused Scan, a sink that fails for good, a checkpoint
    /// that cannot be saved).
    pub async fn run(
        &self,
        pipeline: &Arc<Pipeline>,
        stop: &Stop,
        stop_handle: &StopHandle,
    ) -> anyhow::Result<Outcome> {
        let total = self.api.segments();
        if self.segments_done().await? == total {
            return Ok(Outcome::Complete);
        }
        let table = self.api.table();
        tracing::info!(table = table.name, segments = total, "snapshot: scanning the table");
        let progress =
            progress::Progress::start(self.api.items(), Arc::clone(&self.leases), total, table.approximate_items);
        let coordinator = Coordinator {
            api: Arc::clone(&self.api) as Arc<dyn StreamsApi>,
            leases: Arc::clone(&self.leases),
            pipeline: Arc::clone(pipeline),
            start: StartPosition::TrimHorizon,
            // Segments never change; a short interval notices other processes' segments ending.
            discovery_interval: Duration::from_secs(1),
            settings: self.settings.clone(),
            max_readers: Some(self.concurrency),
            stop: stop.clone(),
            stop_handle: stop_handle.clone(),
        };
        let result = coordinator.run().await;
        let done = self.segments_done().await;
        progress.finish(*done.as_ref().unwrap_or(&0));
        result?;
        Ok(if done? == total { Outcome::Complete } else { Outcome::Stopped })
    }
}

/// Checks, before the stream is read after a snapshot, that it still holds every change made
/// since T0: the stream is the one recorded at T0, each shard open at T0 is still in the stream
/// (or was already read: it has a checkpoint in `saved`), and T0 is within the stream's 24-hour
/// retention unless those shards were already read. `desc`: the stream now.
///
/// # Errors
/// The gap, named: which shards or which time span of changes can no longer be read.
pub fn check_retention(
    plan: &Plan,
    desc: &StreamDescription,
    saved: &HashMap<String, Checkpoint>,
    now_ms: i64,
) -> anyhow::Result<()> {
    let again = "Take the snapshot again (remove the snapshot's checkpoints and plan, or use a new \
                 checkpoints location), with more segments or a larger read budget if it has to finish sooner";
    let Some(at_start) = &plan.stream else {
        anyhow::bail!(
            "the snapshot that began at {} was taken while the table had no stream: the changes made since are in no \
             stream, so the replica may miss them. {again}.",
            plan.started_at()
        );
    };
    if at_start.arn != desc.stream_arn {
        anyhow::bail!(
            "the snapshot that began at {} was taken while the table streamed to {}; it now streams to {}: changes \
             made between the two streams are in neither. {again}.",
            plan.started_at(),
            at_start.arn,
            desc.stream_arn
        );
    }
    let present: HashSet<&str> = desc.shards.iter().map(|s| s.shard_id.as_str()).collect();
    let gone: Vec<&str> = at_start
        .open_shards
        .iter()
        .map(String::as_str)
        .filter(|s| !present.contains(s) && !saved.contains_key(*s))
        .collect();
    if !gone.is_empty() {
        anyhow::bail!(
            "gap after the snapshot: shard(s) {} were open when the snapshot began at {} and are no longer in the \
             stream: their records, changes made after the snapshot began, were trimmed (older than 24 hours) before \
             eddy read them. {again}.",
            gone.join(", "),
            plan.started_at()
        );
    }
    let unread = at_start.open_shards.iter().any(|s| !saved.contains_key(s));
    let age = Duration::from_millis((now_ms - plan.started_at_ms).max(0) as u64);
    if unread && age >= STREAM_RETENTION {
        let trimmed_to = UNIX_EPOCH
            + Duration::from_millis((now_ms.max(0) as u64).saturating_sub(STREAM_RETENTION.as_millis() as u64));
        anyhow::bail!(
            "gap after the snapshot: it began at {} ({} ago), longer ago than the stream's 24-hour retention: the \
             changes made from then until {} may have been trimmed before eddy read them. {again}.",
            plan.started_at(),
            humantime::format_duration(Duration::from_secs(age.as_secs())),
            humantime::format_rfc3339_seconds(trimmed_to)
        );
    }
    Ok(())
}

/// [`check_retention`] at the current time.
///
/// # Errors
/// As [`check_retention`].
pub fn check_retention_now(
    plan: &Plan,
    desc: &StreamDescription,
    saved: &HashMap<String, Checkpoint>,
) -> anyhow::Result<()> {
    check_retention(plan, desc, saved, now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ShardInfo;

    fn shard(id: &str) -> ShardInfo {
        ShardInfo { shard_id: id.into(), ..ShardInfo::default() }
    }

    fn plan(t0: i64) -> Plan {
        Plan {
            started_at_ms: t0,
            segments: 4,
            stream: Some(StreamAtStart { arn: "arn:s".into(), open_shards: vec!["a".into(), "b".into()] }),
        }
    }

    fn desc(shards: &[&str]) -> StreamDescription {
        StreamDescription {
            stream_arn: "arn:s".into(),
            view_type: None,
            shards: shards.iter().map(|s| shard(s)).collect(),
            ended: false,
        }
    }

    const HOUR: i64 = 3_600_000;

    /// A stream whose trim horizon has passed T0 stops the run with the gap named: a shard open at
    /// T0 that is gone, or T0 older than the retention while those shards are unread.
    #[test]
    fn a_stream_trimmed_past_the_snapshot_start_is_a_named_gap() {
        let t0 = 1_700_000_000_000;
        let none = HashMap::new();
        assert!(check_retention(&plan(t0), &desc(&["a", "b", "c"]), &none, t0 + HOUR).is_ok());

        let gone = check_retention(&plan(t0), &desc(&["b", "c"]), &none, t0 + HOUR).unwrap_err().to_string();
        assert!(gone.contains("shard(s) a were open when the snapshot began at 2023-11-14T22:13:20Z"), "{gone}");
        assert!(gone.contains("trimmed"), "{gone}");

        let old = check_retention(&plan(t0), &desc(&["a", "b"]), &none, t0 + 25 * HOUR).unwrap_err().to_string();
        assert!(old.contains("1day 1h ago"), "{old}");
        assert!(old.contains("may have been trimmed"), "{old}");

        // Shards already read (a restart long after) are no gap.
        let read: HashMap<String, Checkpoint> =
            [("a".to_owned(), Checkpoint::ShardEnd), ("b".to_owned(), Checkpoint::After("9".into()))].into();
        assert!(check_retention(&plan(t0), &desc(&["c"]), &read, t0 + 48 * HOUR).is_ok());

        let other = StreamDescription { stream_arn: "arn:other".into(), ..desc(&["a", "b"]) };
        let err = check_retention(&plan(t0), &other, &none, t0 + HOUR).unwrap_err().to_string();
        assert!(err.contains("now streams to arn:other"), "{err}");
        let no_stream = Plan { stream: None, ..plan(t0) };
        let err = check_retention(&no_stream, &desc(&["a"]), &none, t0 + HOUR).unwrap_err().to_string();
        assert!(err.contains("had no stream"), "{err}");
    }

    /// The cutoff is T0 minus the margin, in whole seconds rounded down (never later than it).
    #[test]
    fn the_stream_cutoff_is_t0_minus_the_margin() {
        let p = plan(1_700_000_000_999);
        assert_eq!(p.stream_cutoff(Duration::from_secs(300)), 1_700_000_000 - 300);
        assert_eq!(p.stream_cutoff(Duration::ZERO), 1_700_000_000);
    }

    /// The first plan recorded wins; later calls read it back, whatever they would have recorded.
    #[tokio::test]
    async fn the_first_recorded_plan_wins() {
        let root = tempfile::tempdir().unwrap();
        let store = crate::checkpoint::local::LocalStore::open(root.path(), None, "arn:t#snapshot").unwrap();
        let first = super::plan(&store, 8, None, &eddy_sink_api::RetryPolicy::default()).await.unwrap();
        assert_eq!(first.segments, 8);
        assert!(first.stream.is_none());
        let again = super::plan(&store, 16, None, &eddy_sink_api::RetryPolicy::default()).await.unwrap();
        assert_eq!(again, first);
    }

    /// A throttled DescribeStream when the plan is recorded is tried again, not the end of the run
    /// (the chaos soak found a restart exiting 1 on one injected fault there).
    #[tokio::test(start_paused = true)]
    async fn the_plan_survives_a_throttled_describe_stream() {
        use crate::testing::{ScriptedShard, ScriptedStreams};
        let root = tempfile::tempdir().unwrap();
        let store = crate::checkpoint::local::LocalStore::open(root.path(), None, "arn:t#snapshot").unwrap();
        let api = ScriptedStreams::new(vec![ScriptedShard::open("shard-1", Vec::new())]);
        api.describe_failures.store(2, std::sync::atomic::Ordering::SeqCst);
        let retry = eddy_sink_api::RetryPolicy::default();
        let plan = super::plan(&store, 4, Some(("arn:stream", &api)), &retry).await.unwrap();
        assert_eq!(plan.stream.unwrap().open_shards, ["shard-1"]);
    }
}
