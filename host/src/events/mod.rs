//! Operational events in one place (after Vector's `internal_events`): one type per event, whose
//! `emit` writes everything the event means at once: its log line, its Prometheus counter, and
//! the run summary's count ([`stats::Stats`]). A call site emits the event; it never writes a
//! counter or a log line of its own, so none is forgotten. The hot path takes counter handles
//! registered once ([`crate::metrics::RouteMetrics`]) and passes them in.
//!
//! `metrics` names and serves the metrics and imports nothing of eddy's; this module describes
//! them ([`describe`]) and is the only writer of counters besides those handles.

pub mod stats;

use std::sync::atomic::Ordering;

use crate::dead_letter::Entry;
use crate::metrics as m;
use stats::Stats;

/// Describes every metric (type, unit, help) once the recorder is installed, including those of
/// the Alternator sink's node rotation.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(m::RECORDS_IN, "Records read from the stream.");
    describe_counter!(m::RECORDS_OUT, "Records a sink acknowledged, by route and sink.");
    describe_counter!(m::RECORDS_FILTERED, "Records a route's filter left out, by route.");
    describe_counter!(m::RECORDS_DROPPED, "Records a processor dropped, by route.");
    describe_counter!(m::RECORDS_DEAD_LETTERED, "Records sent to the dead letter, by stage.");
    describe_gauge!(m::ITERATOR_AGE, Unit::Seconds, "Age of the last record read, by shard (0: caught up).");
    describe_gauge!(m::LEASES_HELD, "Shards this process holds a lease on.");
    describe_histogram!(m::POLL_DURATION, Unit::Seconds, "GetRecords latency.");
    describe_histogram!(m::SINK_WRITE_DURATION, Unit::Seconds, "One sink write attempt, by sink.");
    describe_counter!(eddy_sink_alternator::nodes::REQUESTS, "Requests sent to an Alternator node, by node.");
    describe_counter!(
        eddy_sink_alternator::nodes::NODE_FAILURES,
        "Requests an Alternator node did not answer or answered 5xx, by node."
    );
    describe_gauge!(eddy_sink_alternator::nodes::NODES_LIVE, "Alternator nodes in the rotation.");
    describe_counter!(m::SINK_ERRORS, "Sink writes that failed after the sink's retries, by route and sink.");
    describe_counter!(m::THROTTLED, "Throttling errors from an AWS API, by api.");
    describe_counter!(m::SOURCE_ERRORS, "Failed calls to the source's API, by api and code.");
    describe_gauge!(m::SHARDS_STALLED, "Shards with records to read whose checkpoint has not moved for stall_after.");
    describe_gauge!(
        m::INFLIGHT_BYTES,
        Unit::Bytes,
        "Bytes of pages the process holds now (fetched, ahead, in the pipeline)."
    );
    describe_gauge!(m::INFLIGHT_BYTES_LIMIT, Unit::Bytes, "source.max_inflight_bytes.");
    describe_histogram!(m::WASM_CALL_DURATION, Unit::Seconds, "One process call into a Wasm processor, by processor.");
    describe_counter!(m::TRIMMED_SKIPS, "Trimmed-data gaps skipped under on_trimmed: skip, by shard.");
    describe_counter!(m::SNAPSHOT_ITEMS, "Snapshot items read by the Scan and handed to the routes.");
    describe_gauge!(m::SNAPSHOT_SEGMENTS_REMAINING, "Snapshot segments not yet read to their end.");
    describe_counter!(m::SNAPSHOT_SKIPPED, "Stream records skipped after a snapshot as older than its start.");
    describe_counter!(
        m::KINESIS_SUPERSEDED,
        "Kinesis changes dropped because a newer change of the key was passed on, by reason (stale, duplicate)."
    );
}

/// Records read from the stream and handed to the pipeline (decoded or not).
pub struct RecordsRead<'a> {
    /// How many.
    pub n: u64,
    /// The worker's [`crate::metrics::RECORDS_IN`] handle.
    pub counter: &'a metrics::Counter,
}

impl RecordsRead<'_> {
    /// Counts them (metric and summary).
    pub fn emit(self, stats: &Stats) {
        stats.read.fetch_add(self.n, Ordering::Relaxed);
        self.counter.increment(self.n);
    }
}

/// Records a route's filter left out.
pub struct Filtered<'a> {
    /// The route.
    pub route: &'a str,
    /// How many.
    pub n: u64,
    /// The route's [`crate::metrics::RECORDS_FILTERED`] handle.
    pub counter: &'a metrics::Counter,
}

impl Filtered<'_> {
    /// Counts them (metric and summary).
    pub fn emit(self, stats: &Stats) {
        stats.add_filtered(self.route, self.n);
        self.counter.increment(self.n);
    }
}

/// A record a processor dropped (a `drop` verdict).
pub struct Dropped<'a> {
    /// The route's [`crate::metrics::RECORDS_DROPPED`] handle.
    pub counter: &'a metrics::Counter,
}

impl Dropped<'_> {
    /// Counts it (metric and summary).
    pub fn emit(self, stats: &Stats) {
        stats.dropped.fetch_add(1, Ordering::Relaxed);
        self.counter.increment(1);
    }
}

/// Records a sink acknowledged.
pub struct Delivered<'a> {
    /// The sink.
    pub sink: &'a str,
    /// How many.
    pub n: u64,
    /// The route's [`crate::metrics::RECORDS_OUT`] handle for this sink.
    pub counter: &'a metrics::Counter,
}

impl Delivered<'_> {
    /// Counts them (metric and summary).
    pub fn emit(self, stats: &Stats) {
        stats.add_written(self.sink, self.n);
        self.counter.increment(self.n);
    }
}

/// Dead-letter entries written for one batch of `shard`.
pub struct DeadLettered<'a> {
    /// The shard.
    pub shard: &'a str,
    /// The entries, as stored.
    pub entries: &'a [Entry],
}

impl DeadLettered<'_> {
    /// Logs each entry (a warning with its reason) and counts it, by route and stage.
    pub fn emit(self, stats: &Stats) {
        for e in self.entries {
            let route = e.route.clone().unwrap_or_default();
            metrics::counter!(m::RECORDS_DEAD_LETTERED, "route" => route, "stage" => e.stage.as_str()).increment(1);
            tracing::warn!(
                shard = self.shard,
                route = e.route.as_deref(),
                stage = e.stage.as_str(),
                name = e.name.as_deref(),
                sequence = e.sequence_number.as_deref(),
                "dead letter: {}",
                e.error
            );
        }
        stats.dead_lettered.fetch_add(self.entries.len() as u64, Ordering::Relaxed);
    }
}

/// Requests an AWS API (or a sink) throttled.
pub struct Throttled {
    /// `dynamodbstreams`, `kinesis`, `dynamodb` (the lease table, the snapshot's Scan) or a sink
    /// type.
    pub api: &'static str,
    /// How many.
    pub n: u64,
}

impl Throttled {
    /// Counts them in [`crate::metrics::THROTTLED`].
    pub fn emit(self) {
        if self.n > 0 {
            metrics::counter!(m::THROTTLED, "api" => self.api).increment(self.n);
        }
    }
}

/// A failed call to the source's API (the reader logs what it does about it).
pub struct SourceFailed<'a> {
    /// `dynamodbstreams` or `kinesis`.
    pub api: &'static str,
    /// The AWS error code, `HTTP <status>`, `no code`, `timeout` or `connection`.
    pub code: &'a str,
}

impl SourceFailed<'_> {
    /// Counts it in [`crate::metrics::SOURCE_ERRORS`].
    pub fn emit(self) {
        metrics::counter!(m::SOURCE_ERRORS, "api" => self.api, "code" => self.code.to_owned()).increment(1);
    }
}

/// Records trimmed from a shard before eddy read them, skipped under `on_trimmed: skip`.
pub struct TrimmedSkipped<'a> {
    /// The shard.
    pub shard: &'a str,
    /// Which records (`records after sequence number N`).
    pub gap: &'a str,
}

impl TrimmedSkipped<'_> {
    /// Logs the loss (an error) and counts it.
    pub fn emit(self) {
        metrics::counter!(m::TRIMMED_SKIPS, "shard" => self.shard.to_owned()).increment(1);
        tracing::error!(
            shard = self.shard,
            "{} were trimmed before eddy read them; continuing from the trim horizon (on_trimmed: skip)",
            self.gap
        );
    }
}

/// Stream records skipped after a snapshot: created before its start, so its scan saw them.
pub struct SnapshotSkipped<'a> {
    /// The shard.
    pub shard: &'a str,
    /// How many.
    pub n: u64,
}

impl SnapshotSkipped<'_> {
    /// Counts them and says so (debug).
    pub fn emit(self) {
        if self.n > 0 {
            metrics::counter!(m::SNAPSHOT_SKIPPED).increment(self.n);
            tracing::debug!(shard = self.shard, skipped = self.n, "skipped stream records older than the snapshot");
        }
    }
}

/// A Kinesis change dropped by newest-wins.
pub struct Superseded<'a> {
    /// The shard.
    pub shard: &'a str,
    /// Its sequence number.
    pub sequence: &'a str,
    /// `stale` or `duplicate`.
    pub reason: &'static str,
}

impl Superseded<'_> {
    /// Counts it by reason and says so (debug).
    pub fn emit(self) {
        metrics::counter!(m::KINESIS_SUPERSEDED, "reason" => self.reason).increment(1);
        tracing::debug!(
            shard = self.shard,
            sequence = self.sequence,
            reason = self.reason,
            "dropped a change superseded for its key"
        );
    }
}
