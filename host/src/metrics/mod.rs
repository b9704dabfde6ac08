//! Prometheus metrics (`metrics: {listen: ADDR}` serves them on `/metrics`, with `/health` for
//! liveness). Without that key no recorder is installed and every update below is a no-op.
//!
//! Names follow Prometheus conventions: counters end in `_total`, durations are histograms in
//! seconds. Hot paths take handles registered once ([`RouteMetrics`]), not labels per call.

mod server;

use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use server::serve;

/// Records read from the stream (decoded or not).
pub const RECORDS_IN: &str = "eddy_records_in_total";
/// Records a sink acknowledged, by `route` and `sink`.
pub const RECORDS_OUT: &str = "eddy_records_out_total";
/// Records a route's filter left out, by `route`.
pub const RECORDS_FILTERED: &str = "eddy_records_filtered_total";
/// Records a processor dropped, by `route`.
pub const RECORDS_DROPPED: &str = "eddy_records_dropped_total";
/// Records sent to the dead letter, by `route` and `stage` (decode, record_age, processor, sink):
/// Lambda's OnFailureDestinationDeliveredEventCount.
pub const RECORDS_DEAD_LETTERED: &str = "eddy_records_dead_lettered_total";
/// Seconds between now and the `ApproximateCreationDateTime` of the last record read, by `shard`;
/// 0 when a poll finds the shard caught up.
pub const ITERATOR_AGE: &str = "eddy_iterator_age_seconds";
/// Shards this process holds a lease on (reads and checkpoints).
pub const LEASES_HELD: &str = "eddy_leases_held";
/// GetRecords latency.
pub const POLL_DURATION: &str = "eddy_poll_duration_seconds";
/// One sink write attempt, by `sink`.
pub const SINK_WRITE_DURATION: &str = "eddy_sink_write_duration_seconds";
/// Sink writes that failed (after the sink's own retries of its requests), by `route` and `sink`: the shard
/// rewinds and reads the batch again, or the route's `on_sink_failure` retries or bisects the
/// write. Lambda's FailedInvokeEventCount.
pub const SINK_ERRORS: &str = "eddy_sink_errors_total";
/// Failed calls to the source's API (GetRecords, GetShardIterator, DescribeStream, ListShards), by
/// `api` (`dynamodbstreams`, `kinesis`) and `code` (the AWS error code, `HTTP <status>`,
/// `timeout` or `connection`).
pub const SOURCE_ERRORS: &str = "eddy_source_errors_total";
/// Shards of this process that have records to read but whose checkpoint has not moved for
/// `source.stall_after`.
pub const SHARDS_STALLED: &str = "eddy_shards_stalled";
/// Bytes of pages the process holds now (fetched, fetched ahead, in the pipeline), against
/// `source.max_inflight_bytes`.
pub const INFLIGHT_BYTES: &str = "eddy_inflight_bytes";
/// `source.max_inflight_bytes`, in bytes.
pub const INFLIGHT_BYTES_LIMIT: &str = "eddy_inflight_bytes_limit";
/// Throttling errors from an AWS API, by `api`.
pub const THROTTLED: &str = "eddy_throttled_total";
/// One `process` call into a Wasm processor, by `processor`.
pub const WASM_CALL_DURATION: &str = "eddy_wasm_call_duration_seconds";
/// Times records were trimmed from a shard before eddy read them and `on_trimmed: skip` went on.
pub const TRIMMED_SKIPS: &str = "eddy_trimmed_skips_total";

/// Kinesis changes dropped by newest-wins, by `reason` (`stale`, `duplicate`).
pub const KINESIS_SUPERSEDED: &str = "eddy_kinesis_superseded_total";

/// Snapshot items read by the Scan and handed to the routes.
pub const SNAPSHOT_ITEMS: &str = "eddy_snapshot_items_total";
/// Snapshot segments not yet read to their end (by any process).
pub const SNAPSHOT_SEGMENTS_REMAINING: &str = "eddy_snapshot_segments_remaining";
/// Stream records skipped after a snapshot because they are older than its start (minus the
/// safety margin): the scan already saw their effect.
pub const SNAPSHOT_SKIPPED: &str = "eddy_snapshot_stream_records_skipped_total";

/// Whether the process is ready (`GET /ready`): set once the source is connected and the first
/// round of shard discovery (and, with a lease table, of lease taking) succeeded.
static READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks the process ready for `GET /ready`.
pub fn set_ready() {
    READY.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`set_ready`] was called.
pub fn is_ready() -> bool {
    READY.load(std::sync::atomic::Ordering::Relaxed)
}

/// How many shards of this process are stalled (`GET /ready` answers 503 while any is).
static STALLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Sets the number of stalled shards: [`SHARDS_STALLED`], and what `GET /ready` answers.
pub fn set_stalled(n: usize) {
    STALLED.store(n, std::sync::atomic::Ordering::Relaxed);
    gauge!(SHARDS_STALLED).set(n as f64);
}

/// The number of stalled shards last set.
pub fn stalled() -> usize {
    STALLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Histogram buckets, in seconds: 100 µs to 30 s.
const BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Installs the Prometheus recorder for this process (`crate::events::describe` then describes
/// every metric).
///
/// # Errors
/// When a recorder is already installed.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)?
        .install_recorder()?;
    Ok(handle)
}

/// Counter handles for one route, registered once.
pub struct RouteMetrics {
    /// [`RECORDS_FILTERED`]
    pub filtered: Counter,
    /// [`RECORDS_DROPPED`]
    pub dropped: Counter,
    /// [`RECORDS_OUT`], one per sink of the route, in the route's order.
    pub out: Vec<Counter>,
    /// [`SINK_WRITE_DURATION`], one per sink of the route, in the route's order.
    pub write_duration: Vec<Histogram>,
    /// [`SINK_ERRORS`], one per sink of the route, in the route's order.
    pub errors: Vec<Counter>,
}

impl RouteMetrics {
    /// Handles for route `route` with these sinks.
    pub fn new(route: &str, sinks: &[&str]) -> Self {
        let route = route.to_owned();
        Self {
            filtered: counter!(RECORDS_FILTERED, "route" => route.clone()),
            dropped: counter!(RECORDS_DROPPED, "route" => route.clone()),
            out: sinks
                .iter()
                .map(|s| counter!(RECORDS_OUT, "route" => route.clone(), "sink" => (*s).to_owned()))
                .collect(),
            write_duration: sinks.iter().map(|s| histogram!(SINK_WRITE_DURATION, "sink" => (*s).to_owned())).collect(),
            errors: sinks
                .iter()
                .map(|s| counter!(SINK_ERRORS, "route" => route.clone(), "sink" => (*s).to_owned()))
                .collect(),
        }
    }
}

/// Handles for one shard reader, registered once.
pub struct ShardMetrics {
    poll: Histogram,
    age: Gauge,
}

impl ShardMetrics {
    /// Handles for `shard`.
    pub fn new(shard: &str) -> Self {
        Self { poll: histogram!(POLL_DURATION), age: gauge!(ITERATOR_AGE, "shard" => shard.to_owned()) }
    }

    /// Records one GetRecords call and the shard's iterator age after it.
    pub fn poll(&self, took: Duration, age: Duration) {
        self.poll.record(took.as_secs_f64());
        self.age.set(age.as_secs_f64());
    }

    /// Sets the shard's iterator age without a successful poll (while polls fail, it keeps
    /// growing from what the reader last knew).
    pub fn age(&self, age: Duration) {
        self.age.set(age.as_secs_f64());
    }
}
