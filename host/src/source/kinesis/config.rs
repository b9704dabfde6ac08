//! `source: {type: kinesis, ...}`: DynamoDB changes read from a Kinesis data stream (see
//! [`crate::source::kinesis`]), with each default declared once.

use std::time::Duration;

use serde::Deserialize;

use crate::source::polling::{defaults, OnTrimmed, StartPosition, StreamPolling};
use crate::spec::{at_least, units, Problem};

/// `source: {type: kinesis, stream_name | stream_arn, ...}`: a Kinesis data stream carrying the
/// JSON change records DynamoDB writes to a Kinesis destination (as cratedb-toolkit's
/// `kinesis+dynamodb+cdc` relay reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisSource {
    /// The stream's name (resolved with DescribeStreamSummary).
    #[serde(default)]
    pub stream_name: Option<String>,
    /// The stream's ARN, instead of `stream_name`.
    #[serde(default)]
    pub stream_arn: Option<String>,
    /// The AWS region; default: the AWS chain (`AWS_REGION`, profile).
    #[serde(default)]
    pub region: Option<String>,
    /// A Kinesis-compatible endpoint (moto_server, LocalStack); default: AWS's. The lease table
    /// and Alternator sinks default to it too.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Only changes of this DynamoDB table (`tableName`) are read; others go to the dead letter.
    /// Default: changes of any table.
    #[serde(default)]
    pub table: Option<String>,
    /// Where to start in a shard that has no checkpoint: `trim_horizon` (default), `latest`,
    /// `{at_sequence}`, `{after_sequence}` or `{at_timestamp: RFC 3339}`.
    #[serde(default)]
    pub start: StartPosition,
    /// How long an idle shard waits between polls. Default 1s (Lambda and KCL poll an idle
    /// Kinesis shard once a second); at least 200ms, since Kinesis allows 5 GetRecords a second
    /// per shard across all its consumers.
    #[serde(default = "kinesis_poll_interval", deserialize_with = "units::duration")]
    pub poll_interval: Duration,
    /// `Limit` of each GetRecords call, 1 to 10000 (the API's maximum). Default 1000.
    #[serde(default = "defaults::max_records_per_poll")]
    pub max_records_per_poll: u32,
    /// How often the shard list is refreshed (ListShards). Default 10s.
    #[serde(default = "defaults::shard_discovery_interval", deserialize_with = "units::duration")]
    pub shard_discovery_interval: Duration,
    /// What to do when a shard's checkpoint is no longer in the stream (older than its retention
    /// period; GetShardIterator answers InvalidArgumentException about the
    /// StartingSequenceNumber): `fail` (default) stops with an error naming the shard; `skip`
    /// continues from the oldest record still there and counts the loss.
    #[serde(default)]
    pub on_trimmed: OnTrimmed,
    /// Consecutive failed calls after which eddy stops with an error. Default 20.
    #[serde(default = "defaults::max_consecutive_errors")]
    pub max_consecutive_errors: u32,
    /// The most records per second this process reads, across all its shards. Default: no limit.
    #[serde(default)]
    pub max_records_per_second: Option<std::num::NonZeroU32>,
    /// Records older than this when read (by `ApproximateCreationDateTime`) go to the dead letter
    /// (stage `record_age`) instead of the routes, and count in
    /// `eddy_records_dead_lettered_total{stage="record_age"}`: Lambda's
    /// MaximumRecordAgeInSeconds. At least 1s. Default: no limit.
    #[serde(default, deserialize_with = "units::opt_duration")]
    pub maximum_record_age: Option<Duration>,
    /// How many lanes write one shard's page at once (Lambda's ParallelizationFactor), 1 to 10:
    /// records are split by a hash of their key, so each item's changes stay in order, and the
    /// shard checkpoints once every lane acknowledged (see `pipeline::lanes`). Default 1.
    #[serde(default = "defaults::parallelization_factor")]
    pub parallelization_factor: u32,
    /// A shard that has records to read but whose checkpoint has not moved for this long is
    /// stalled (see the DynamoDB source's `stall_after`). Default 5m.
    #[serde(default = "defaults::stall_after", deserialize_with = "units::duration")]
    pub stall_after: Duration,
    /// The most bytes of pages this process holds at once over all its shards (fetched, fetched
    /// ahead, in the pipeline): readers wait for room, first come first served, instead of
    /// fetching. A byte size (`256MiB`). Default 256MiB.
    #[serde(default = "defaults::max_inflight_bytes", deserialize_with = "crate::spec::units::size")]
    pub max_inflight_bytes: u64,
    /// A snapshot of `table` first (`{mode: first_run, ...}`, the keys of the DynamoDB source's
    /// `snapshot`): a parallel Scan through the routes, then the stream from `at_timestamp` T0
    /// minus `safety_margin`, newest-wins per key. Needs `table`. Default: off.
    #[serde(default)]
    pub snapshot: crate::source::dynamodb::config::SnapshotConfig,
    /// How many keys each shard remembers for newest-wins (a change older than one already
    /// passed on for its key is dropped). Default 10000 (about 1–2 MB a shard).
    #[serde(default = "recent_keys_per_shard")]
    pub recent_keys_per_shard: usize,
}

/// The smallest `poll_interval` of a Kinesis source (5 GetRecords a second per shard).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(200);

fn kinesis_poll_interval() -> Duration {
    Duration::from_secs(1)
}

fn recent_keys_per_shard() -> usize {
    10_000
}

impl KinesisSource {
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

    /// What a parser cannot see: `stream_name` or `stream_arn` (one), the ranges and minimums,
    /// and an `at_timestamp` in the future (nothing would be read until then).
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = self.polling().problems();
        match (&self.stream_name, &self.stream_arn) {
            (None, None) => out.push(Problem::at("", "set `stream_name` or `stream_arn`")),
            (Some(_), Some(_)) => out.push(Problem::at("", "set only one of `stream_name` and `stream_arn`")),
            _ => {}
        }
        if !(1..=10_000).contains(&self.max_records_per_poll) {
            out.push(Problem::at("max_records_per_poll", "must be between 1 and 10000 (the Kinesis GetRecords limit)"));
        }
        if self.recent_keys_per_shard == 0 {
            out.push(Problem::at("recent_keys_per_shard", "must be at least 1"));
        }
        out.extend(at_least("poll_interval", self.poll_interval, MIN_POLL_INTERVAL));
        out.extend(self.snapshot.problems());
        if self.snapshot.mode == crate::source::dynamodb::config::SnapshotMode::FirstRun {
            if self.table.is_none() {
                out.push(Problem::at(
                    "snapshot.mode",
                    "a snapshot scans the DynamoDB table the stream carries: set `table` (its name)",
                ));
            }
            if self.start != StartPosition::TrimHorizon {
                out.push(Problem::at(
                    "start",
                    "with `snapshot.mode: first_run` the stream is read from the snapshot's start minus \
                     `snapshot.safety_margin` (so no change is missed); remove `start`",
                ));
            }
        }
        if let StartPosition::AtTimestamp(millis) = self.start {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            if millis > now {
                out.push(Problem::at(
                    "start.at_timestamp",
                    "is in the future: no record is there yet, so eddy would read nothing until then; use `latest` \
                     to read from now on",
                ));
            }
        }
        out
    }
}
