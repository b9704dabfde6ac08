//! The pipeline configuration: one YAML file with `source`, `checkpoints`, `processors`, `sinks`,
//! `routes` and `dead_letter` (README.md documents every key).
//!
//! Loading is strict: unknown keys and wrong types are errors, and every error names the file,
//! the line and the key path (`pipeline.yaml:12: routes[0].sinks[1]: unknown sink "replca"`).
//! All problems are reported at once. Relative paths in the file resolve against the file's
//! directory, so a pipeline runs the same from any working directory.

mod duplicates;
mod kinesis;
mod locate;
mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use kinesis::KinesisSource;
pub use locate::Seg;
pub use units::parse_size;

/// A loaded, validated pipeline configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `name:` — the pipeline's name (KCL's application name): it keys the pipeline's leases,
    /// checkpoints, snapshot segments and plan, so two pipelines on one stream and one lease table
    /// (or one checkpoints folder) each get every record. Required with a lease table; optional
    /// with local checkpoints (without it, the folder's unnamed positions are used).
    pub name: Option<String>,
    /// Where the stream comes from.
    pub source: SourceConfig,
    /// Where shard checkpoints are kept.
    pub checkpoints: CheckpointConfig,
    /// Wasm processors by name.
    pub processors: BTreeMap<String, ProcessorConfig>,
    /// Sinks by name.
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Routes, in file order.
    pub routes: Vec<RouteConfig>,
    /// Where records that cannot be delivered go.
    pub dead_letter: DeadLetterConfig,
    /// `metrics:` — where to serve Prometheus metrics; `None`: not served.
    pub metrics: Option<MetricsConfig>,
    /// `retry:` — the one retry policy for every call (streams API, sinks, lease table).
    pub retry: eddy_sink_api::RetryPolicy,
    /// `timeouts:` — connect and per-attempt timeouts of every network call.
    pub timeouts: eddy_sink_api::Timeouts,
}

/// `retry: {attempts, base_delay, max_delay}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default)]
    attempts: Option<u32>,
    #[serde(default, deserialize_with = "opt_duration")]
    base_delay: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    max_delay: Option<Duration>,
}

/// `timeouts: {connect, request}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    #[serde(default, deserialize_with = "opt_duration")]
    connect: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    request: Option<Duration>,
}

/// `metrics: {listen: ADDR}`: serve `/metrics` (Prometheus text format) and `/health` over HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `IP:port` to listen on, e.g. `0.0.0.0:9100` or `127.0.0.1:9100`.
    pub listen: std::net::SocketAddr,
}

/// `source:` — the stream to read.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// `type: dynamodb`
    Dynamodb(DynamodbSource),
    /// `type: kinesis`
    Kinesis(KinesisSource),
    /// `type: file`
    File(FileSource),
}

/// The polling keys both stream sources (`dynamodb`, `kinesis`) have, with the same meaning.
#[derive(Debug, Clone)]
pub struct StreamPolling {
    /// `poll_interval`.
    pub poll_interval: Duration,
    /// `max_records_per_poll`.
    pub max_records_per_poll: u32,
    /// `max_consecutive_errors`.
    pub max_consecutive_errors: u32,
    /// `on_trimmed`.
    pub on_trimmed: OnTrimmed,
    /// `max_records_per_second`.
    pub max_records_per_second: Option<std::num::NonZeroU32>,
    /// `maximum_record_age`.
    pub maximum_record_age: Option<Duration>,
    /// `parallelization_factor`.
    pub parallelization_factor: u32,
    /// `shard_discovery_interval`.
    pub shard_discovery_interval: Duration,
    /// `stall_after`.
    pub stall_after: Duration,
}

impl SourceConfig {
    /// The polling keys of a stream source; `None` for the file source.
    pub fn polling(&self) -> Option<StreamPolling> {
        macro_rules! polling {
            ($s:expr) => {
                StreamPolling {
                    poll_interval: $s.poll_interval,
                    max_records_per_poll: $s.max_records_per_poll,
                    max_consecutive_errors: $s.max_consecutive_errors,
                    on_trimmed: $s.on_trimmed,
                    max_records_per_second: $s.max_records_per_second,
                    maximum_record_age: $s.maximum_record_age,
                    parallelization_factor: $s.parallelization_factor,
                    shard_discovery_interval: $s.shard_discovery_interval,
                    stall_after: $s.stall_after,
                }
            };
        }
        match self {
            SourceConfig::Dynamodb(s) => Some(polling!(s)),
            SourceConfig::Kinesis(s) => Some(polling!(s)),
            SourceConfig::File(_) => None,
        }
    }

    /// The source's `endpoint` and `region` (AWS sources only): what the lease table and
    /// Alternator sinks default to.
    pub fn endpoint_and_region(&self) -> Option<(&Option<String>, &Option<String>)> {
        match self {
            SourceConfig::Dynamodb(s) => Some((&s.endpoint, &s.region)),
            SourceConfig::Kinesis(s) => Some((&s.endpoint, &s.region)),
            SourceConfig::File(_) => None,
        }
    }
}

/// `source: {type: file, path}`: change records from a JSONL file, one per line in Lambda's
/// shape. At the end of the file eddy drains, checkpoints and exits 0.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// The JSONL file.
    pub path: PathBuf,
    /// How many lines make one batch, 1 to 1000. Default 1000.
    #[serde(default = "defaults::max_records_per_poll")]
    pub max_records_per_poll: u32,
}

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
    #[serde(default = "defaults::poll_interval", deserialize_with = "units::duration")]
    pub poll_interval: Duration,
    /// `Limit` of each GetRecords call, 1 to 1000 (the API's maximum). Default 1000.
    #[serde(default = "defaults::max_records_per_poll")]
    pub max_records_per_poll: u32,
    /// How often the shard list is refreshed (DescribeStream) to find new shards. Default 10s.
    #[serde(default = "defaults::shard_discovery_interval", deserialize_with = "units::duration")]
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
    #[serde(default, deserialize_with = "opt_duration")]
    pub maximum_record_age: Option<Duration>,
    /// How many lanes write one shard's page at once (Lambda's ParallelizationFactor), 1 to 10:
    /// records are split by a hash of their key, so each item's changes stay in order, and the
    /// shard checkpoints once every lane acknowledged (see [`crate::pipeline::lanes`]). Default 1.
    #[serde(default = "defaults::parallelization_factor")]
    pub parallelization_factor: u32,
    /// A shard that has records to read but whose checkpoint has not moved for this long is
    /// stalled: logged once with the reason, counted in `eddy_shards_stalled`, and `GET /ready`
    /// answers 503 while any shard is (see [`crate::health`]). At least 1s. Default 5m.
    #[serde(default = "defaults::stall_after", deserialize_with = "units::duration")]
    pub stall_after: Duration,
    /// `snapshot:`: scan the table's existing items before reading the stream (a migration), and
    /// how. Default: off.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
}

/// `source.snapshot`: a parallel Scan of the table, written through the same routes as the
/// stream, then the stream from the trim horizon of the shards open when the scan began (see
/// [`crate::snapshot`]). `eddy snapshot` uses these settings whatever `mode` says.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// `off` (default) or `first_run`.
    #[serde(default)]
    pub mode: SnapshotMode,
    /// Scan `TotalSegments`: how many segments are read in parallel (and leased separately with
    /// a lease table). 1 to 1,000,000 (DynamoDB's limit); default 8.
    #[serde(default = "defaults::snapshot_segments")]
    pub segments: u32,
    /// How many segments this process scans at once; the others wait for one to finish (each
    /// segment in flight holds a Scan page, up to 1 MB, and a connection). Default: twice the
    /// number of cores. 1 to 1,000.
    #[serde(default = "defaults::snapshot_concurrency")]
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
    #[serde(default = "defaults::snapshot_safety_margin", deserialize_with = "units::duration")]
    pub safety_margin: Duration,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            mode: SnapshotMode::Off,
            segments: defaults::snapshot_segments(),
            concurrency: defaults::snapshot_concurrency(),
            max_items_per_second: None,
            consistent_read: false,
            safety_margin: defaults::snapshot_safety_margin(),
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

/// `source.start`: where a shard without a checkpoint starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record still in the shard (`TRIM_HORIZON`). Default.
    #[default]
    TrimHorizon,
    /// Only records written after eddy first starts (`LATEST`) in the shards open at that time;
    /// shards that appear later start at their beginning, so no change is missed.
    Latest,
    /// `{after_sequence: "N"}`: after the record with this sequence number.
    AfterSequence(String),
    /// `{at_sequence: "N"}`: at the record with this sequence number.
    AtSequence(String),
    /// `{at_timestamp: "2026-11-23T10:00:00Z"}` (RFC 3339, UTC): at the first record that
    /// arrived at or after this time, in epoch milliseconds. Kinesis only (`AT_TIMESTAMP`).
    AtTimestamp(i64),
}

impl<'de> Deserialize<'de> for StartPosition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The names are the YAML keys.
        #[allow(clippy::enum_variant_names)]
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case", deny_unknown_fields)]
        enum At {
            AfterSequence(String),
            AtSequence(String),
            AtTimestamp(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            At(At),
        }
        let err = || {
            serde::de::Error::custom(
                "expected trim_horizon, latest, {after_sequence: \"...\"}, {at_sequence: \"...\"} or \
                 {at_timestamp: \"2026-11-23T10:00:00Z\"}",
            )
        };
        match Raw::deserialize(d).map_err(|_| err())? {
            Raw::Name(n) if n == "trim_horizon" => Ok(Self::TrimHorizon),
            Raw::Name(n) if n == "latest" => Ok(Self::Latest),
            Raw::Name(_) => Err(err()),
            Raw::At(At::AfterSequence(s)) => Ok(Self::AfterSequence(s)),
            Raw::At(At::AtSequence(s)) => Ok(Self::AtSequence(s)),
            Raw::At(At::AtTimestamp(t)) => {
                let at = humantime::parse_rfc3339_weak(&t).map_err(|e| {
                    serde::de::Error::custom(format!(
                        "at_timestamp {t:?} is not an RFC 3339 time in UTC such as 2026-11-23T10:00:00Z: {e}"
                    ))
                })?;
                let millis = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
                Ok(Self::AtTimestamp(millis))
            }
        }
    }
}

/// `source.on_trimmed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTrimmed {
    /// Stop with an error naming the shard and the gap.
    #[default]
    Fail,
    /// Continue from the trim horizon and count the loss.
    Skip,
}

/// `checkpoints:` — where each shard's progress is kept.
#[derive(Debug, Clone)]
pub enum CheckpointConfig {
    /// `type: local`: crash-safe files under `path`, for one process.
    Local {
        /// The directory (default `.eddy/state`, next to the config file).
        path: PathBuf,
    },
    /// `type: dynamodb`: a lease table shared by every eddy process reading the stream.
    Dynamodb(LeaseTableConfig),
}

/// `checkpoints: {type: dynamodb, table, lease_duration, endpoint?, region?}`: one row per shard
/// with its owner, lease counter, checkpoint and parent, in a DynamoDB table (created with
/// on-demand billing if missing). `endpoint` and `region` default to the source's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseTableConfig {
    /// The lease table's name.
    pub table: String,
    /// How long a lease whose counter does not move stays its owner's, as seen by another worker.
    /// Owners renew every third of it. Default 10s.
    #[serde(default = "defaults::lease_duration", deserialize_with = "units::duration")]
    pub lease_duration: Duration,
    /// A DynamoDB-compatible endpoint; default: the source's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region; default: the source's.
    #[serde(default)]
    pub region: Option<String>,
}

/// `processors.NAME`: a WebAssembly component.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// The component file (`.wasm`).
    pub wasm: PathBuf,
    /// The `config:` block, as JSON text, handed to the component's `init`. `{}` when absent.
    pub config_json: String,
    /// Resource limits per call.
    pub limits: Limits,
}

/// `processors.NAME.limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most linear memory one instance may grow to, in bytes. Default 64 MiB.
    pub memory_bytes: u64,
    /// The longest one `process` call may run. Default 1s.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { memory_bytes: 64 << 20, timeout: Duration::from_secs(1) }
    }
}

/// `sinks.NAME`: a destination.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// `type: alternator`: the DynamoDB API (ScyllaDB Alternator, or DynamoDB itself).
    Alternator(eddy_sink_alternator::AlternatorConfig),
    /// `type: cratedb`: CrateDB over HTTP, in commons-codec's table layout.
    CrateDb(eddy_sink_cratedb::CrateDbConfig),
    /// `type: file`: JSONL, one change record per line.
    File {
        /// The file, created if missing and appended to.
        path: PathBuf,
    },
    /// `type: stdout`: JSONL on standard output.
    Stdout,
    /// `type: "null"`: counts and discards.
    Null,
}

/// `routes[i]`: which records go through which processors to which sinks.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The route's name, unique in the file.
    pub name: String,
    /// Which records the route takes (Lambda `FilterCriteria` patterns, ORed); `None`: all.
    pub filter: Option<crate::pattern::Filter>,
    /// Processor names, applied in order. May be empty.
    pub processors: Vec<String>,
    /// Sink names; every record the processors keep goes to each.
    pub sinks: Vec<String>,
    /// What a failed sink write leads to.
    pub on_sink_failure: OnSinkFailure,
    /// `batch_size` / `batching_window`; `None`: each page as read.
    pub batching: Option<Batching>,
}

/// `routes[i].batch_size` and `routes[i].batching_window` (Lambda's BatchSize and
/// MaximumBatchingWindowInSeconds): the route gathers the records its filter takes, across
/// polls, and runs them through its processors and sinks once it holds `size` records or its
/// oldest has waited `window`, in writes of at most `size`. The shard checkpoints only past
/// records the route no longer holds; a stop leaves the held records to be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// `batch_size`, 1 to 10,000. Default (with only a window): 1,000.
    pub size: usize,
    /// `batching_window`, at most 300s (Lambda's limit). Default (with only a size): 0, which
    /// splits each page into writes of `size` without waiting.
    pub window: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    #[serde(default)]
    filter: Option<serde_json::Value>,
    #[serde(default)]
    processors: Vec<String>,
    sinks: Vec<String>,
    #[serde(default)]
    on_sink_failure: OnSinkFailure,
    #[serde(default)]
    batch_size: Option<usize>,
    #[serde(default, deserialize_with = "opt_duration")]
    batching_window: Option<Duration>,
}

/// `dead_letter:` — where records that cannot be delivered are persisted (Lambda's on-failure
/// destination); see [`crate::dead_letter`].
#[derive(Debug, Clone)]
pub enum DeadLetterConfig {
    /// `type: file`: JSONL, appended and flushed to disk before the shard checkpoints past them.
    File {
        /// Default `.eddy/dead-letter.jsonl` next to the config file.
        path: PathBuf,
    },
    /// `type: dynamodb`: one item per entry in a table shared by every worker.
    Dynamodb(DeadLetterTable),
    /// `type: s3`: one object of JSON lines per failed batch, in a bucket every worker shares.
    S3(DeadLetterBucket),
    /// `type: sqs`: one message per entry in a queue every worker shares.
    Sqs(DeadLetterQueue),
}

/// `dead_letter: {type: sqs, queue, overflow_bucket?, overflow_prefix?, visibility_timeout?,
/// endpoint?, region?}`: the queue must exist and be a standard queue; `endpoint` and `region`
/// default to the source's, and also serve the overflow bucket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQueue {
    /// The queue's name, or its URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`). A standard
    /// queue: a FIFO queue is refused (it hands a reader at most 10 messages of a group at a
    /// time, so a replay could not read it whole).
    pub queue: String,
    /// An existing bucket for entries larger than the queue's `MaximumMessageSize` (256 KiB on
    /// queues made before August 2025, 1 MiB since): the entry goes there and the message is a
    /// pointer in the SQS Extended Client Library's format. Without it such an entry cannot be
    /// written, and its shard stops advancing until it is set.
    #[serde(default)]
    pub overflow_bucket: Option<String>,
    /// Where in `overflow_bucket` those entries go. Default `eddy-dead-letter/`.
    #[serde(default = "default_dead_letter_prefix")]
    pub overflow_prefix: String,
    /// How long `eddy dead-letter replay` hides the messages it reads from other readers of the
    /// queue (SQS's visibility timeout; messages not removed are made visible again when it
    /// finishes, and a replay killed with SIGKILL leaves them hidden this long). `list` hides a
    /// message for at most 20s. At most 12h. Default 15m.
    #[serde(default = "default_visibility_timeout", deserialize_with = "units::duration")]
    pub visibility_timeout: Duration,
    /// An SQS-compatible endpoint; default: the source's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region; default: the source's.
    #[serde(default)]
    pub region: Option<String>,
}

fn default_visibility_timeout() -> Duration {
    Duration::from_secs(15 * 60)
}

impl DeadLetterQueue {
    /// Queue `queue` with every other key at its default (no overflow bucket; the source's
    /// endpoint and region are filled in by the caller).
    pub fn named(queue: &str) -> Self {
        Self {
            queue: queue.to_owned(),
            overflow_bucket: None,
            overflow_prefix: default_dead_letter_prefix(),
            visibility_timeout: default_visibility_timeout(),
            endpoint: None,
            region: None,
        }
    }
}

/// `dead_letter: {type: s3, bucket, prefix?, endpoint?, region?}`: the bucket must exist;
/// `endpoint` (an S3-compatible server such as moto or MinIO, addressed by path) and `region`
/// default to the source's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterBucket {
    /// The bucket's name.
    pub bucket: String,
    /// Where in the bucket the objects go. Default `eddy-dead-letter/`.
    #[serde(default = "default_dead_letter_prefix")]
    pub prefix: String,
    /// An S3-compatible endpoint; default: the source's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region; default: the source's.
    #[serde(default)]
    pub region: Option<String>,
}

fn default_dead_letter_prefix() -> String {
    "eddy-dead-letter/".to_owned()
}

/// `dead_letter: {type: dynamodb, table, endpoint?, region?}`: the table is created with
/// on-demand billing if missing; `endpoint` and `region` default to the source's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterTable {
    /// The table's name.
    pub table: String,
    /// A DynamoDB-compatible endpoint; default: the source's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region; default: the source's.
    #[serde(default)]
    pub region: Option<String>,
}

/// `routes[i].on_sink_failure: {retries, then}`: what happens when a write to one of the route's
/// sinks fails after the sink's own retries of its requests (Lambda's MaximumRetryAttempts with
/// BisectBatchOnFunctionError and an on-failure destination). Default `{retries: 0, then: stop}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnSinkFailure {
    /// How many more times the failed write is tried in place, with the retry policy's waits,
    /// before `then` applies. Default 0.
    #[serde(default)]
    pub retries: u32,
    /// `stop` (default): the shard rewinds to its checkpoint and reads the batch again, and stops
    /// after `source.max_consecutive_errors` failed batches in a row; nothing is skipped.
    /// `dead_letter`: the batch is bisected, each half written (with the same retries), down to
    /// the single records that still fail: those go to the dead letter with the sink's error, the
    /// rest are delivered, and the shard moves on. A sink that fails for good (refused
    /// credentials, a missing table) stops the shard either way: that is not a record's fault.
    #[serde(default)]
    pub then: AfterSinkFailure,
}

impl Default for OnSinkFailure {
    fn default() -> Self {
        Self { retries: 0, then: AfterSinkFailure::Stop }
    }
}

/// `routes[i].on_sink_failure.then`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterSinkFailure {
    /// Rewind and read again; never skip (default).
    #[default]
    Stop,
    /// Bisect, dead-letter the records that still fail, deliver the rest.
    DeadLetter,
}

pub(crate) mod defaults {
    use std::time::Duration;
    pub fn poll_interval() -> Duration {
        Duration::from_millis(250)
    }
    pub fn max_records_per_poll() -> u32 {
        1000
    }
    pub fn parallelization_factor() -> u32 {
        1
    }
    pub fn shard_discovery_interval() -> Duration {
        Duration::from_secs(10)
    }
    pub fn max_consecutive_errors() -> u32 {
        20
    }
    pub fn stall_after() -> Duration {
        Duration::from_secs(300)
    }
    pub fn lease_duration() -> Duration {
        Duration::from_secs(10)
    }
    pub fn snapshot_concurrency() -> usize {
        2 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }
    pub fn snapshot_segments() -> u32 {
        8
    }
    pub fn snapshot_safety_margin() -> Duration {
        Duration::from_secs(300)
    }
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The key path, e.g. `routes[0].sinks`; empty for the whole file.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All the problems found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The file's top level, with the tagged sections kept as raw YAML until their `type` is known.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    name: Option<String>,
    source: serde_norway::Value,
    #[serde(default)]
    checkpoints: Option<serde_norway::Value>,
    #[serde(default)]
    processors: BTreeMap<String, RawProcessor>,
    sinks: BTreeMap<String, serde_norway::Value>,
    routes: Vec<RawRoute>,
    #[serde(default)]
    dead_letter: Option<serde_norway::Value>,
    #[serde(default)]
    metrics: Option<serde_norway::Value>,
    #[serde(default)]
    retry: Option<serde_norway::Value>,
    #[serde(default)]
    timeouts: Option<serde_norway::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcessor {
    wasm: PathBuf,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default, deserialize_with = "opt_size")]
    memory: Option<u64>,
    #[serde(default, deserialize_with = "opt_duration")]
    timeout: Option<Duration>,
}

fn opt_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    units::size(d).map(Some)
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    units::duration(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalCheckpoints {
    #[serde(default)]
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSection {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOptions {}

/// Collects errors with their lines while a file is checked.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, path: &[Seg], message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: locate::line_of(self.text, path),
            key: locate::render(path),
            message: eddy_sink_api::redact(&message.into()),
        });
    }

    /// Deserializes the tagged section `value` (found at `at`), less its `type` key, into `T`,
    /// recording an error on failure.
    fn typed<T: DeserializeOwned>(&mut self, at: &[Seg], mut value: serde_norway::Value) -> Option<T> {
        if let Some(map) = value.as_mapping_mut() {
            map.remove("type");
        }
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let (path, message) = explain(at, &e.path().to_string(), &e.inner().to_string());
                self.error(&path, message);
                None
            }
        }
    }
}

/// The key path and message of a deserialization error found at `base`: serde_norway's own
/// location and path prefixes are removed (the error reports them), and an unknown field is
/// appended to the path so its line is found.
fn explain(base: &[Seg], path: &str, message: &str) -> (Vec<Seg>, String) {
    let mut key = base.to_vec();
    key.extend(locate::parse(path));
    let mut message = strip_location(message);
    if let Some((prefix, rest)) = message.split_once(": ") {
        if !prefix.contains(' ') && locate::render(&key).contains(prefix) {
            message = rest;
        }
    }
    if let Some(field) = unknown_field(message) {
        if key.last() != Some(&Seg::Key(field.clone())) {
            key.push(Seg::Key(field));
        }
    }
    (key, message.to_owned())
}

/// The field an "unknown field `x`" message names.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// serde_norway appends "at line L column C"; the error already carries the line.
fn strip_location(message: &str) -> &str {
    message.find(" at line ").map_or(message, |i| &message[..i])
}

fn section_type(value: &serde_norway::Value) -> Option<&str> {
    value.get("type").and_then(|t| t.as_str())
}

impl Config {
    /// Reads and checks the config file at `path`.
    ///
    /// # Errors
    /// Every problem found: unreadable file, YAML syntax, unknown keys, wrong types, references to
    /// undeclared processors or sinks, duplicate route names. Each names file, line and key.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                line: None,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        Self::parse(path, &text)
    }

    /// Checks config `text` as if read from `path` (relative paths inside resolve against
    /// `path`'s directory).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigErrors> {
        // Editors on Windows may start a UTF-8 file with a byte-order mark; YAML allows it.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let repeated = duplicates::find(text);
        if !repeated.is_empty() {
            return Err(ConfigErrors(repeated.iter().map(|key| repeated_key(path, text, key)).collect()));
        }
        let mut c = Checker { file: path, text, errors: Vec::new() };
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let raw: RawConfig = match serde_path_to_error::deserialize(serde_norway::Deserializer::from_str(text)) {
            Ok(raw) => raw,
            Err(e) => {
                let (key, message) = explain(&[], &e.path().to_string(), &e.inner().to_string());
                let line = e.inner().location().map(|l| l.line()).or_else(|| locate::line_of(text, &key));
                return Err(ConfigErrors(vec![ConfigError {
                    file: path.to_owned(),
                    line,
                    key: locate::render(&key),
                    message: eddy_sink_api::redact(&message),
                }]));
            }
        };

        let k = |s: &str| Seg::Key(s.to_owned());

        // source
        let source = match section_type(&raw.source) {
            Some("dynamodb") => c.typed::<DynamodbSource>(&[k("source")], raw.source).map(|s| {
                let at = [k("source")];
                match (&s.table, &s.stream_arn) {
                    (None, None) => c.error(&at, "set `table` or `stream_arn`"),
                    (Some(_), Some(_)) => c.error(&at, "set only one of `table` and `stream_arn`"),
                    _ => {}
                }
                if !(1..=1000).contains(&s.max_records_per_poll) {
                    c.error(
                        &[k("source"), k("max_records_per_poll")],
                        "must be between 1 and 1000 (the GetRecords limit)",
                    );
                }
                at_least(&mut c, &[k("source"), k("poll_interval")], s.poll_interval, minimums::POLL_INTERVAL);
                if !(1..=1000).contains(&s.snapshot.concurrency) {
                    c.error(&[k("source"), k("snapshot"), k("concurrency")], "must be between 1 and 1000");
                }
                if !(1..=1_000_000).contains(&s.snapshot.segments) {
                    c.error(
                        &[k("source"), k("snapshot"), k("segments")],
                        "must be between 1 and 1000000 (Scan's TotalSegments)",
                    );
                }
                if matches!(s.start, StartPosition::AtTimestamp(_)) {
                    c.error(
                        &[k("source"), k("start")],
                        "DynamoDB Streams has no AT_TIMESTAMP iterator; use trim_horizon, latest or a sequence number",
                    );
                }
                if s.snapshot.mode == SnapshotMode::FirstRun && s.start != StartPosition::TrimHorizon {
                    c.error(
                        &[k("source"), k("start")],
                        "with `snapshot.mode: first_run` the stream is read from the trim horizon of the shards \
                         open when the scan began (so no change is missed); remove `start`",
                    );
                }
                SourceConfig::Dynamodb(s)
            }),
            Some("kinesis") => c.typed::<KinesisSource>(&[k("source")], raw.source).map(|s| {
                let at = [k("source")];
                match (&s.stream_name, &s.stream_arn) {
                    (None, None) => c.error(&at, "set `stream_name` or `stream_arn`"),
                    (Some(_), Some(_)) => c.error(&at, "set only one of `stream_name` and `stream_arn`"),
                    _ => {}
                }
                if !(1..=10_000).contains(&s.max_records_per_poll) {
                    c.error(
                        &[k("source"), k("max_records_per_poll")],
                        "must be between 1 and 10000 (the Kinesis GetRecords limit)",
                    );
                }
                if s.recent_keys_per_shard == 0 {
                    c.error(&[k("source"), k("recent_keys_per_shard")], "must be at least 1");
                }
                at_least(&mut c, &[k("source"), k("poll_interval")], s.poll_interval, kinesis::MIN_POLL_INTERVAL);
                if let StartPosition::AtTimestamp(millis) = s.start {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64);
                    if millis > now {
                        c.error(
                            &[k("source"), k("start"), k("at_timestamp")],
                            "is in the future: no record is there yet, so eddy would read nothing until then; use \
                             `latest` to read from now on",
                        );
                    }
                }
                SourceConfig::Kinesis(s)
            }),
            Some("file") => c.typed::<FileSource>(&[k("source")], raw.source).map(|mut f| {
                if !(1..=1000).contains(&f.max_records_per_poll) {
                    c.error(&[k("source"), k("max_records_per_poll")], "must be between 1 and 1000");
                }
                f.path = resolve(f.path);
                SourceConfig::File(f)
            }),
            other => {
                c.error(&[k("source"), k("type")], type_message(other, &["dynamodb", "kinesis", "file"]));
                None
            }
        };

        if let Some(polling) = source.as_ref().and_then(SourceConfig::polling) {
            check_stream_keys(&mut c, &polling);
        }

        // checkpoints
        let checkpoints = match raw.checkpoints {
            None => Some(CheckpointConfig::Local { path: resolve(".eddy/state".into()) }),
            Some(v) => match section_type(&v) {
                Some("local") => c
                    .typed::<LocalCheckpoints>(&[k("checkpoints")], v)
                    .map(|l| CheckpointConfig::Local { path: resolve(l.path.unwrap_or_else(|| ".eddy/state".into())) }),
                Some("dynamodb") => c.typed::<LeaseTableConfig>(&[k("checkpoints")], v).map(|mut t| {
                    at_least(
                        &mut c,
                        &[k("checkpoints"), k("lease_duration")],
                        t.lease_duration,
                        minimums::LEASE_DURATION,
                    );
                    if let Some((endpoint, region)) = source.as_ref().and_then(SourceConfig::endpoint_and_region) {
                        t.endpoint = t.endpoint.or_else(|| endpoint.clone());
                        t.region = t.region.or_else(|| region.clone());
                    }
                    CheckpointConfig::Dynamodb(t)
                }),
                other => {
                    c.error(&[k("checkpoints"), k("type")], type_message(other, &["local", "dynamodb"]));
                    None
                }
            },
        };

        // name
        if let Some(name) = &raw.name {
            if let Err(message) = check_name(name) {
                c.error(&[k("name")], message);
            }
        } else if matches!(checkpoints, Some(CheckpointConfig::Dynamodb(_))) {
            c.error(
                &[k("checkpoints")],
                "a lease table needs the pipeline's name: add `name: <pipeline>` (letters, digits, `.`, `_`, `-`) at \
                 the top of the file. It keys this pipeline's leases, checkpoints and snapshot in the table, so \
                 pipelines sharing it never take each other's work; rows written before names existed are adopted \
                 by the first named pipeline that starts",
            );
        }

        // processors
        let mut processors = BTreeMap::new();
        for (name, p) in raw.processors {
            let limits = Limits {
                memory_bytes: p.limits.memory.unwrap_or(Limits::default().memory_bytes),
                timeout: p.limits.timeout.unwrap_or(Limits::default().timeout),
            };
            if limits.timeout.is_zero() {
                c.error(&[k("processors"), k(&name), k("limits"), k("timeout")], "must be more than 0");
            }
            if limits.memory_bytes < minimums::PROCESSOR_MEMORY {
                c.error(
                    &[k("processors"), k(&name), k("limits"), k("memory")],
                    format!(
                        "{} bytes is below the minimum of 1MiB (a component needs room for its stack and heap)",
                        limits.memory_bytes
                    ),
                );
            }
            let config_json = p.config.unwrap_or_else(|| serde_json::json!({})).to_string();
            processors.insert(name, ProcessorConfig { wasm: resolve(p.wasm), config_json, limits });
        }

        // sinks
        let mut sinks = BTreeMap::new();
        for (name, v) in raw.sinks {
            let at = [k("sinks"), k(&name)];
            // `type: null` unquoted is YAML's null value; it can only mean the null sink.
            let kind = section_type(&v).or_else(|| v.get("type").filter(|t| t.is_null()).map(|_| "null"));
            let sink = match kind {
                Some("alternator") => c.typed::<eddy_sink_alternator::AlternatorConfig>(&at, v).and_then(|a| {
                    let problems = a.problems();
                    for (key, message) in &problems {
                        c.error(&[k("sinks"), k(&name), k(key)], message.clone());
                    }
                    problems.is_empty().then_some(SinkConfig::Alternator(a))
                }),
                Some("cratedb") => c.typed::<eddy_sink_cratedb::CrateDbConfig>(&at, v).and_then(|s| {
                    match eddy_sink_cratedb::CrateDbSink::new(
                        &s,
                        &eddy_sink_api::Timeouts::default(),
                        Default::default(),
                    ) {
                        Ok(_) => Some(SinkConfig::CrateDb(s)),
                        Err(e) => {
                            c.error(&[k("sinks"), k(&name), k("url")], e);
                            None
                        }
                    }
                }),
                Some("file") => c.typed::<FileSection>(&at, v).map(|f| SinkConfig::File { path: resolve(f.path) }),
                Some("stdout") => c.typed::<NoOptions>(&at, v).map(|_| SinkConfig::Stdout),
                Some("null") => c.typed::<NoOptions>(&at, v).map(|_| SinkConfig::Null),
                other => {
                    c.error(
                        &[k("sinks"), k(&name), k("type")],
                        type_message(other, &["alternator", "cratedb", "file", "stdout", "null"]),
                    );
                    None
                }
            };
            if let Some(sink) = sink {
                sinks.insert(name, sink);
            }
        }

        // routes
        if raw.routes.is_empty() {
            c.error(&[k("routes")], "declare at least one route");
        }
        let mut seen = BTreeMap::new();
        for (i, route) in raw.routes.iter().enumerate() {
            let at = |rest: &[Seg]| {
                let mut p = vec![k("routes"), Seg::Index(i)];
                p.extend_from_slice(rest);
                p
            };
            if let Some(pattern) = &route.filter {
                if let Err(reason) = crate::pattern::Filter::compile(pattern) {
                    c.error(&at(&[k("filter")]), format!("invalid pattern: {reason}"));
                }
            }
            if let Some(first) = seen.insert(route.name.clone(), i) {
                c.error(&at(&[k("name")]), format!("route name {:?} is already used by routes[{first}]", route.name));
            }
            for (j, p) in route.processors.iter().enumerate() {
                if !processors.contains_key(p) {
                    c.error(
                        &at(&[k("processors"), Seg::Index(j)]),
                        format!("unknown processor {p:?}{}", known(processors.keys())),
                    );
                }
            }
            if route.sinks.is_empty() {
                c.error(&at(&[k("sinks")]), "name at least one sink");
            }
            if route.batch_size.is_some_and(|n| !(1..=10_000).contains(&n)) {
                c.error(&at(&[k("batch_size")]), "must be between 1 and 10000");
            }
            if route.batching_window.is_some_and(|w| w > Duration::from_secs(300)) {
                c.error(
                    &at(&[k("batching_window")]),
                    "must be at most 300s (as Lambda's MaximumBatchingWindowInSeconds)",
                );
            }
            for (j, s) in route.sinks.iter().enumerate() {
                if !sinks.contains_key(s)
                    && !c
                        .errors
                        .iter()
                        .any(|e| e.key == format!("sinks.{s}") || e.key.starts_with(&format!("sinks.{s}.")))
                {
                    c.error(&at(&[k("sinks"), Seg::Index(j)]), format!("unknown sink {s:?}{}", known(sinks.keys())));
                }
            }
        }

        // dead letter
        let dead_letter = match raw.dead_letter {
            None => Some(DeadLetterConfig::File { path: resolve(".eddy/dead-letter.jsonl".into()) }),
            Some(v) => match section_type(&v) {
                Some("file") => c
                    .typed::<FileSection>(&[k("dead_letter")], v)
                    .map(|f| DeadLetterConfig::File { path: resolve(f.path) }),
                Some("dynamodb") => c.typed::<DeadLetterTable>(&[k("dead_letter")], v).map(|mut t| {
                    if let Some((endpoint, region)) = source.as_ref().and_then(SourceConfig::endpoint_and_region) {
                        t.endpoint = t.endpoint.or_else(|| endpoint.clone());
                        t.region = t.region.or_else(|| region.clone());
                    }
                    DeadLetterConfig::Dynamodb(t)
                }),
                Some("s3") => c.typed::<DeadLetterBucket>(&[k("dead_letter")], v).map(|mut b| {
                    if let Some((endpoint, region)) = source.as_ref().and_then(SourceConfig::endpoint_and_region) {
                        b.endpoint = b.endpoint.or_else(|| endpoint.clone());
                        b.region = b.region.or_else(|| region.clone());
                    }
                    DeadLetterConfig::S3(b)
                }),
                Some("sqs") => c.typed::<DeadLetterQueue>(&[k("dead_letter")], v).and_then(|mut q| {
                    if let Some((endpoint, region)) = source.as_ref().and_then(SourceConfig::endpoint_and_region) {
                        q.endpoint = q.endpoint.or_else(|| endpoint.clone());
                        q.region = q.region.or_else(|| region.clone());
                    }
                    let hours12 = Duration::from_secs(12 * 3600);
                    if q.visibility_timeout < Duration::from_secs(1) || q.visibility_timeout > hours12 {
                        c.error(
                            &[k("dead_letter"), k("visibility_timeout")],
                            "must be between 1s and 12h (SQS's limits)".to_owned(),
                        );
                        return None;
                    }
                    Some(DeadLetterConfig::Sqs(q))
                }),
                other => {
                    c.error(&[k("dead_letter"), k("type")], type_message(other, &["file", "dynamodb", "s3", "sqs"]));
                    None
                }
            },
        };

        // Two writers of one file would interleave their lines (and the dead letter's repair
        // would cut the other's off).
        let mut files: Vec<(PathBuf, Vec<Seg>)> = sinks
            .iter()
            .filter_map(|(name, sink)| match sink {
                SinkConfig::File { path } => Some((path.clone(), vec![k("sinks"), k(name), k("path")])),
                _ => None,
            })
            .collect();
        if let Some(DeadLetterConfig::File { path }) = &dead_letter {
            files.push((path.clone(), vec![k("dead_letter"), k("path")]));
        }
        for (i, (path, at)) in files.iter().enumerate() {
            if let Some((_, first)) = files[..i].iter().find(|(p, _)| p == path) {
                c.error(
                    at,
                    format!(
                        "{} is written by {} too: give each sink and the dead letter its own file",
                        path.display(),
                        locate::render(first)
                    ),
                );
            }
        }

        let metrics = match raw.metrics {
            None => Some(None),
            Some(v) => c.typed::<MetricsConfig>(&[k("metrics")], v).map(Some),
        };

        let defaults = eddy_sink_api::RetryPolicy::default();
        let retry = match raw.retry {
            None => Some(defaults),
            Some(v) => c.typed::<RawRetry>(&[k("retry")], v).map(|r| {
                let policy = eddy_sink_api::RetryPolicy {
                    attempts: r.attempts.unwrap_or(defaults.attempts),
                    backoff: eddy_sink_api::Backoff {
                        base_delay: r.base_delay.unwrap_or(defaults.backoff.base_delay),
                        max_delay: r.max_delay.unwrap_or(defaults.backoff.max_delay),
                    },
                };
                if policy.attempts == 0 {
                    c.error(&[k("retry"), k("attempts")], "must be at least 1");
                }
                at_least(&mut c, &[k("retry"), k("base_delay")], policy.backoff.base_delay, minimums::RETRY_DELAY);
                if policy.backoff.max_delay < policy.backoff.base_delay {
                    c.error(&[k("retry"), k("max_delay")], "must not be below base_delay");
                }
                policy
            }),
        };
        let timeouts = match raw.timeouts {
            None => Some(eddy_sink_api::Timeouts::default()),
            Some(v) => c.typed::<RawTimeouts>(&[k("timeouts")], v).map(|t| {
                let d = eddy_sink_api::Timeouts::default();
                let t = eddy_sink_api::Timeouts {
                    connect: t.connect.unwrap_or(d.connect),
                    request: t.request.unwrap_or(d.request),
                };
                at_least(&mut c, &[k("timeouts"), k("connect")], t.connect, minimums::TIMEOUT);
                at_least(&mut c, &[k("timeouts"), k("request")], t.request, minimums::TIMEOUT);
                t
            }),
        };
        // A sink's region defaults to the source's (Alternator signs with any; DynamoDB needs it).
        if let Some((_, region)) = source.as_ref().and_then(SourceConfig::endpoint_and_region) {
            for sink in sinks.values_mut() {
                if let SinkConfig::Alternator(a) = sink {
                    a.region = a.region.take().or_else(|| region.clone());
                }
            }
        }

        if !c.errors.is_empty() {
            c.errors.sort_by_key(|e| e.line.unwrap_or(0));
            return Err(ConfigErrors(c.errors));
        }
        Ok(Config {
            name: raw.name,
            source: source.expect("checked"),
            checkpoints: checkpoints.expect("checked"),
            processors,
            sinks,
            routes: raw
                .routes
                .into_iter()
                .map(|r| RouteConfig {
                    filter: r.filter.map(|p| crate::pattern::Filter::compile(&p).expect("checked")),
                    name: r.name,
                    processors: r.processors,
                    sinks: r.sinks,
                    on_sink_failure: r.on_sink_failure,
                    batching: (r.batch_size.is_some() || r.batching_window.is_some()).then(|| Batching {
                        size: r.batch_size.unwrap_or(1000),
                        window: r.batching_window.unwrap_or_default(),
                    }),
                })
                .collect(),
            dead_letter: dead_letter.expect("checked"),
            metrics: metrics.expect("checked"),
            retry: retry.expect("checked"),
            timeouts: timeouts.expect("checked"),
        })
    }
}

/// The smallest durations eddy accepts, so that no setting turns an idle shard or a lease into a
/// busy loop against the API (a `0s` poll interval would send hundreds of requests a second).
pub mod minimums {
    use std::time::Duration;
    /// `source.poll_interval` (Lambda polls an idle shard 4 times a second).
    pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
    /// `source.shard_discovery_interval`.
    pub const SHARD_DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);
    /// `checkpoints.lease_duration` (owners renew every third of it).
    pub const LEASE_DURATION: Duration = Duration::from_secs(1);
    /// `retry.base_delay`.
    pub const RETRY_DELAY: Duration = Duration::from_millis(1);
    /// `timeouts.connect` and `timeouts.request`.
    pub const TIMEOUT: Duration = Duration::from_millis(100);
    /// `processors.NAME.limits.memory`, in bytes (1 MiB).
    pub const PROCESSOR_MEMORY: u64 = 1 << 20;
}

/// The checks of the keys both stream sources share (besides `poll_interval`, whose minimum
/// differs).
fn check_stream_keys(c: &mut Checker, p: &StreamPolling) {
    let k = |s: &str| Seg::Key(s.to_owned());
    if p.max_consecutive_errors == 0 {
        c.error(&[k("source"), k("max_consecutive_errors")], "must be at least 1");
    }
    at_least(
        c,
        &[k("source"), k("shard_discovery_interval")],
        p.shard_discovery_interval,
        minimums::SHARD_DISCOVERY_INTERVAL,
    );
    if let Some(age) = p.maximum_record_age {
        at_least(c, &[k("source"), k("maximum_record_age")], age, Duration::from_secs(1));
    }
    at_least(c, &[k("source"), k("stall_after")], p.stall_after, Duration::from_secs(1));
    if !(1..=10).contains(&p.parallelization_factor) {
        c.error(
            &[k("source"), k("parallelization_factor")],
            "must be between 1 and 10 (as Lambda's ParallelizationFactor)",
        );
    }
}

/// A pipeline name: 1 to 64 characters of ASCII letters, digits, `.`, `_` and `-`, not starting
/// with `.` (it names a folder and a key prefix in the lease table).
fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a pipeline name: use 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`"
        ))
    }
}

fn at_least(c: &mut Checker, at: &[Seg], value: Duration, minimum: Duration) {
    if value < minimum {
        c.error(at, format!("{value:?} is below the minimum of {minimum:?}"));
    }
}

/// The error for a key written twice in one mapping: at the second line, naming the first.
fn repeated_key(file: &Path, text: &str, key: &[Seg]) -> ConfigError {
    let name = match key.last() {
        Some(Seg::Key(k)) => k.as_str(),
        _ => "",
    };
    let first = locate::line_of_occurrence(text, key, 0);
    let second = locate::line_of_occurrence(text, key, 1).or(first);
    let lines = match (first, second) {
        (Some(a), Some(b)) if a != b => format!(" (lines {a} and {b})"),
        (Some(a), _) => format!(" (both on line {a})"),
        _ => String::new(),
    };
    ConfigError {
        file: file.to_owned(),
        line: second,
        key: locate::render(key),
        message: format!(
            "duplicate key {name:?}{lines}: a second entry would silently replace the first; rename or remove one"
        ),
    }
}

fn type_message(found: Option<&str>, expected: &[&str]) -> String {
    let list = expected.join(", ");
    match found {
        None => format!("missing `type` (one of: {list})"),
        Some(t) => format!("unknown type {t:?} (one of: {list})"),
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        " (none are declared)".to_owned()
    } else {
        format!(" (declared: {})", names.join(", "))
    }
}

#[cfg(test)]
mod tests;
