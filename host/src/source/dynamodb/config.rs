//! `source: {type: dynamodb, ...}`: the DynamoDB stream of one table, and the snapshot that may
//! come before it (`snapshot:`), with each default declared once.

use std::time::Duration;

use serde::Deserialize;

use crate::source::polling::{defaults, minimums, OnTrimmed, StartPosition, StreamPolling};
use crate::spec::{at_least, Problem};

/// `source: {type: dynamodb, ...}`: the DynamoDB stream of one table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamodbSource {
    /// The table whose latest stream to read (resolved with DescribeTable).
    #[serde(default)]
    pub table: Option<String>,
    /// The stream's ARN, instead of `table`.
    #[serde(default)]
    pub stream_arn: Option<String>,
    /// The AWS region; default: the AWS chain (`AWS_REGION`, profile).
    #[serde(default)]
    pub region: Option<String>,
    /// A DynamoDB-compatible endpoint (an emulator such as moto_server), for both the table and the
    /// streams API; default: AWS's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Where to start in a shard that has no checkpoint.
    #[serde(default)]
    pub start: StartPosition,
    /// How long an idle shard waits between polls; a shard that returned records is polled again
    /// at once. Default 250ms.
    #[serde(default = "defaults::poll_interval", deserialize_with = "crate::spec::units::duration")]
    pub poll_interval: Duration,
    /// `Limit` of each GetRecords call, 1 to 1000 (the API's maximum). Default 1000.
    #[serde(default = "defaults::max_records_per_poll")]
    pub max_records_per_poll: u32,
    /// How often the shard list is refreshed (DescribeStream) to find new shards. Default 10s.
    #[serde(default = "defaults::shard_discovery_interval", deserialize_with = "crate::spec::units::duration")]
    pub shard_discovery_interval: Duration,
    /// What to do when a shard's checkpoint is older than the stream's trim horizon (records were
    /// lost before eddy read them): `fail` (default) stops with an error naming the shard; `skip`
    /// continues from the oldest record still there and counts the loss.
    #[serde(default)]
    pub on_trimmed: OnTrimmed,
    /// Consecutive failed calls (to the streams API or a sink) after which eddy stops with an
    /// error instead of retrying forever. Default 20.
    #[serde(default = "defaults::max_consecutive_errors")]
    pub max_consecutive_errors: u32,
    /// The most records per second this process reads, across all its shards (a budget that
    /// keeps a backfill from flooding the sinks). Default: no limit.
    #[serde(default)]
    pub max_records_per_second: Option<std::num::NonZeroU32>,
    /// Records older than this when read (by `ApproximateCreationDateTime`) go to the dead letter
    /// (stage `record_age`) instead of the routes, and count in
    /// `eddy_records_dead_lettered_total{stage="record_age"}`: Lambda's
    /// MaximumRecordAgeInSeconds. At least 1s. Default: no limit.
    #[serde(default, deserialize_with = "crate::spec::units::opt_duration")]
    pub maximum_record_age: Option<Duration>,
    /// How many lanes write one shard's page at once (Lambda's ParallelizationFactor), 1 to 10:
    /// records are split by a hash of their key, so each item's changes stay in order, and the
    /// shard checkpoints once every lane acknowledged (see `pipeline::lanes`). Default 1.
    #[serde(default = "defaults::parallelization_factor")]
    pub parallelization_factor: u32,
    /// A shard that has records to read but whose checkpoint has not moved for this long is
    /// stalled: logged once with the reason, counted in `eddy_shards_stalled`, and `GET /ready`
    /// answers 503 while any shard is (see the `health` module). At least 1s. Default 5m.
    #[serde(default = "defaults::stall_after", deserialize_with = "crate::spec::units::duration")]
    pub stall_after: Duration,
    /// The most bytes of pages this process holds at once over all its shards (fetched, fetched
    /// ahead, in the pipeline): readers wait for room, first come first served, instead of
    /// fetching. A byte size (`256MiB`). Default 256MiB.
    #[serde(default = "defaults::max_inflight_bytes", deserialize_with = "crate::spec::units::size")]
    pub max_inflight_bytes: u64,
    /// `snapshot:`: scan the table's existing items before reading the stream (a migration), and
    /// how. Default: off.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
}

/// `source.snapshot`: a parallel Scan of the table, written through the same routes as the
/// stream, then the stream from the trim horizon of the shards open when the scan began (see
/// the `snapshot` module). `eddy snapshot` uses these settings whatever `mode` says.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// `off` (default) or `first_run`.
    #[serde(default)]
    pub mode: SnapshotMode,
    /// Scan `TotalSegments`: how many segments are read in parallel (and leased separately with
    /// a lease table). 1 to 1,000,000 (DynamoDB's limit); default 8.
    #[serde(default = "snapshot_defaults::segments")]
    pub segments: u32,
    /// How many segments this process scans at once; the others wait for one to finish (each
    /// segment in flight holds a Scan page, up to 1 MB, and a connection). Default: twice the
    /// number of cores. 1 to 1,000.
    #[serde(default = "snapshot_defaults::concurrency")]
    pub concurrency: usize,
    /// The most items per second the scan reads, over all segments of this process. Default: no
    /// limit (throttling still backs off).
    #[serde(default)]
    pub max_items_per_second: Option<std::num::NonZeroU32>,
    /// Scan with `ConsistentRead`. Default false (half the read capacity).
    #[serde(default)]
    pub consistent_read: bool,
    /// Stream records created more than this before the scan began are skipped after it (the
    /// scan saw their effect); the margin covers clock differences. Default 5m.
    #[serde(default = "snapshot_defaults::safety_margin", deserialize_with = "crate::spec::units::duration")]
    pub safety_margin: Duration,
}

impl SnapshotConfig {
    /// The ranges of `snapshot.concurrency` and `snapshot.segments`, at `snapshot.*`.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !(1..=1000).contains(&self.concurrency) {
            out.push(Problem::at("snapshot.concurrency", "must be between 1 and 1000"));
        }
        if !(1..=1_000_000).contains(&self.segments) {
            out.push(Problem::at("snapshot.segments", "must be between 1 and 1000000 (Scan's TotalSegments)"));
        }
        out
    }
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            mode: SnapshotMode::Off,
            segments: snapshot_defaults::segments(),
            concurrency: snapshot_defaults::concurrency(),
            max_items_per_second: None,
            consistent_read: false,
            safety_margin: snapshot_defaults::safety_margin(),
        }
    }
}

/// `source.snapshot.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Read the stream only.
    #[default]
    Off,
    /// Scan the table once, before the stream; a finished snapshot is recorded with the
    /// checkpoints, so later starts go straight to the stream.
    FirstRun,
}

/// The snapshot's defaults (README's key table shows the same; a test compares them).
pub mod snapshot_defaults {
    use std::time::Duration;

    /// `snapshot.segments`.
    pub const SEGMENTS: u32 = 8;
    /// `snapshot.safety_margin`.
    pub const SAFETY_MARGIN: Duration = Duration::from_secs(300);

    pub(crate) fn segments() -> u32 {
        SEGMENTS
    }
    /// `snapshot.concurrency`: twice the number of cores.
    pub fn concurrency() -> usize {
        2 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }
    pub(crate) fn safety_margin() -> Duration {
        SAFETY_MARGIN
    }
}

impl DynamodbSource {
    /// The polling keys, as the reader takes them.
    pub fn polling(&self) -> StreamPolling {
        StreamPolling {
            poll_interval: self.poll_interval,
            max_records_per_poll: self.max_records_per_poll,
            max_consecutive_errors: self.max_consecutive_errors,
            on_trimmed: self.on_trimmed,
            max_records_per_second: self.max_records_per_second,
            maximum_record_age: self.maximum_record_age,
            parallelization_factor: self.parallelization_factor,
            shard_discovery_interval: self.shard_discovery_interval,
            stall_after: self.stall_after,
            max_inflight_bytes: self.max_inflight_bytes,
        }
    }

    /// What a parser cannot see: `table` or `stream_arn` (one), the ranges, the minimums, and a
    /// start position that does not fit DynamoDB Streams or the snapshot.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = self.polling().problems();
        match (&self.table, &self.stream_arn) {
            (None, None) => out.push(Problem::at("", "set `table` or `stream_arn`")),
            (Some(_), Some(_)) => out.push(Problem::at("", "set only one of `table` and `stream_arn`")),
            _ => {}
        }
        if !(1..=1000).contains(&self.max_records_per_poll) {
            out.push(Problem::at("max_records_per_poll", "must be between 1 and 1000 (the GetRecords limit)"));
        }
        out.extend(at_least("poll_interval", self.poll_interval, minimums::POLL_INTERVAL));
        out.extend(self.snapshot.problems());
        if matches!(self.start, StartPosition::AtTimestamp(_)) {
            out.push(Problem::at(
                "start",
                "DynamoDB Streams has no AT_TIMESTAMP iterator; use trim_horizon, latest or a sequence number",
            ));
        }
        if self.snapshot.mode == SnapshotMode::FirstRun && self.start != StartPosition::TrimHorizon {
            out.push(Problem::at(
                "start",
                "with `snapshot.mode: first_run` the stream is read from the trim horizon of the shards open when \
                 the scan began (so no change is missed); remove `start`",
            ));
        }
        out
    }
}
