//! Assembling a run from a config, in an order that fails before it changes anything: the
//! processors load and the sinks are built first, then the source connects, and only then are the
//! state folder or the lease table created.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::access::Access;
use crate::checkpoint::{local::LocalStore, Checkpoint, CheckpointStore, PlanStore};
use crate::config::Config;
use crate::coordinator::reader::ReaderSettings;
use crate::coordinator::Coordinator;
use crate::lease::dynamo::DynamoLeaseStore;
use crate::lease::manager::{LeaseManager, SystemClock};
use crate::lease::CheckpointConfig;
use crate::lease::{Leases, LocalLeases};
use crate::pipeline::Pipeline;
use crate::source::dynamodb::config::{DynamodbSource, SnapshotMode};
use crate::source::dynamodb::AwsStreams;
use crate::source::file::FileStreams;
use crate::source::kinesis::KinesisStreams;
use crate::source::polling::{OnTrimmed, StartPosition, StreamPolling};
use crate::source::SourceConfig;
use crate::source::StreamsApi;
use crate::stop::{Stop, StopHandle};

/// A connected source with the settings its readers use.
struct Source {
    api: Arc<dyn StreamsApi>,
    stream_arn: String,
    start: StartPosition,
    discovery_interval: Duration,
    settings: ReaderSettings,
    /// A Kinesis stream's retention, when a snapshot comes first.
    retention: Option<Duration>,
}

async fn connect(config: &Config) -> anyhow::Result<Source> {
    let polling = config.source.polling();
    let settings = |spacing: Duration| {
        let polling = polling.as_ref().expect("a stream source");
        ReaderSettings { min_poll_spacing: spacing, ..ReaderSettings::new(polling, config.retry) }
    };
    Ok(match &config.source {
        SourceConfig::Dynamodb(s) => {
            let api = AwsStreams::connect(s, &config.timeouts, &config.retry).await?;
            Source {
                stream_arn: api.stream_arn().to_owned(),
                api: Arc::new(api),
                start: s.start.clone(),
                discovery_interval: s.shard_discovery_interval,
                settings: settings(Duration::ZERO),
                retention: None,
            }
        }
        SourceConfig::Kinesis(s) => {
            let api = KinesisStreams::connect(s, &config.timeouts, &config.retry).await?;
            let mut retention = None;
            if s.snapshot.mode == SnapshotMode::FirstRun {
                // A scan that cannot end within the stream's retention is refused before anything
                // is created.
                let hold = api.retention(&config.retry).await?;
                let table = TableSource::of(&config.source).expect("checked: a snapshot names its table");
                let info = describe_source_table(config, &table).await?;
                crate::snapshot::kinesis::check_planned(
                    info.approximate_items,
                    s.snapshot.max_items_per_second,
                    hold,
                    s.snapshot.safety_margin,
                )?;
                retention = Some(hold);
            }
            Source {
                retention,
                stream_arn: api.stream_arn().to_owned(),
                api: Arc::new(api),
                start: s.start.clone(),
                discovery_interval: s.shard_discovery_interval,
                settings: ReaderSettings {
                    page_bytes_hint: crate::source::kinesis::MAX_PAGE_BYTES,
                    ..settings(crate::source::kinesis::MIN_POLL_SPACING)
                },
            }
        }
        SourceConfig::File(f) => {
            let api = FileStreams::open(&f.path)?;
            let polling = StreamPolling {
                poll_interval: Duration::from_millis(10),
                max_records_per_poll: f.max_records_per_poll,
                max_consecutive_errors: 3,
                on_trimmed: OnTrimmed::Fail,
                max_records_per_second: None,
                maximum_record_age: None,
                parallelization_factor: 1,
                shard_discovery_interval: Duration::from_millis(100),
                stall_after: crate::source::polling::defaults::STALL_AFTER,
                max_inflight_bytes: crate::source::polling::defaults::MAX_INFLIGHT_BYTES,
            };
            Source {
                stream_arn: api.stream_arn().to_owned(),
                api: Arc::new(api),
                start: StartPosition::TrimHorizon,
                discovery_interval: Duration::from_millis(100),
                settings: ReaderSettings::new(&polling, config.retry),
                retention: None,
            }
        }
    })
}

async fn lease_manager(
    config: &Config,
    table: &crate::lease::dynamo::LeaseTableConfig,
    stream: &str,
    access: Access,
    max_held: Option<usize>,
) -> anyhow::Result<(Arc<LeaseManager>, Arc<DynamoLeaseStore>)> {
    // The config requires a name with a lease table.
    let pipeline = config.name.as_deref().context("a lease table needs the pipeline's `name:`")?;
    let store =
        Arc::new(DynamoLeaseStore::open(table, pipeline, stream, &config.timeouts, config.retry, access).await?);
    let manager = LeaseManager::new(
        Arc::clone(&store) as Arc<dyn crate::lease::store::LeaseStore>,
        Arc::new(SystemClock),
        LeaseManager::process_id(),
        table.lease_duration,
    );
    let manager = match max_held {
        Some(max) => manager.with_max_held(max),
        None => manager,
    };
    if access == Access::Work {
        tracing::info!(table = %table.table, pipeline, worker = %manager.worker_id(), "using the lease table for {stream}");
    }
    Ok((Arc::new(manager), store))
}

/// The leases and plan store of `stream` (a stream ARN, or a table's snapshot key) in the
/// configured checkpoint store; with a lease table, at most `max_held` unfinished leases at once.
async fn leases_for(
    config: &Config,
    stream: &str,
    max_held: Option<usize>,
) -> anyhow::Result<(Arc<dyn Leases>, Arc<dyn PlanStore>)> {
    Ok(match &config.checkpoints {
        CheckpointConfig::Local(local) => {
            let store = Arc::new(LocalStore::open(&local.path, config.name.as_deref(), stream)?);
            (Arc::new(LocalLeases::new(Arc::clone(&store) as Arc<dyn CheckpointStore>)), store)
        }
        CheckpointConfig::Dynamodb(table) => {
            let (manager, store) = lease_manager(config, table, stream, Access::Work, max_held).await?;
            (Arc::new(manager), store)
        }
    })
}

/// The checkpoints, owners and plan of `key` (a stream ARN or a snapshot key), read without
/// creating or locking anything.
async fn positions(
    config: &Config,
    key: &str,
) -> anyhow::Result<(HashMap<String, Checkpoint>, HashMap<String, String>, Option<String>)> {
    use crate::checkpoint::PlanStore as _;
    Ok(match &config.checkpoints {
        CheckpointConfig::Local(local) => {
            let (checkpoints, plan) = LocalStore::peek(&local.path, config.name.as_deref(), key)?;
            (checkpoints, HashMap::new(), plan)
        }
        CheckpointConfig::Dynamodb(table) => {
            let (manager, store) = lease_manager(config, table, key, Access::Inspect, None).await?;
            let (mut checkpoints, mut owners) = (HashMap::new(), HashMap::new());
            for lease in manager.list().await? {
                if let Some(c) = lease.checkpoint {
                    checkpoints.insert(lease.shard_id.clone(), c);
                }
                if let Some(o) = lease.owner {
                    owners.insert(lease.shard_id, o);
                }
            }
            (checkpoints, owners, store.plan().await?)
        }
    })
}

/// `eddy status`: every shard of `config`'s stream with its owner, checkpoint and how far behind
/// it is, the snapshot's segments, and the verdict (see [`crate::status`]). Creates nothing.
///
/// # Errors
/// When the stream, the table or the checkpoints cannot be read.
pub async fn status(config: &Config) -> anyhow::Result<crate::status::Status> {
    let source = connect(config).await?;
    let desc = crate::source::describe_with_retry(source.api.as_ref(), &config.retry).await?;
    let (checkpoints, owners, _) = positions(config, &source.stream_arn).await?;
    let (shards, mut behind_because) =
        crate::status::shards(source.api.as_ref(), &desc.shards, &checkpoints, &owners).await;
    let mut snapshot = None;
    if let Some(s) = TableSource::of(&config.source).filter(|s| s.snapshot.mode == SnapshotMode::FirstRun) {
        let info = describe_source_table(config, &s).await?;
        let (segments, _, plan) = positions(config, &snapshot_key(&info)).await?;
        let recorded = plan.as_deref().and_then(|p| serde_json::from_str::<crate::snapshot::Plan>(p).ok());
        let state = crate::status::SnapshotStatus {
            segments_done: segments.values().filter(|c| **c == Checkpoint::ShardEnd).count(),
            segments: recorded.as_ref().map_or(s.snapshot.segments, |p| p.segments),
            started: recorded.is_some(),
        };
        if !state.started {
            behind_because.insert(0, "the snapshot has not started".to_owned());
        } else if !state.complete() {
            behind_because.insert(
                0,
                format!("the snapshot is in progress ({} of {} segments done)", state.segments_done, state.segments),
            );
        }
        snapshot = Some(state);
    }
    Ok(crate::status::Status {
        pipeline: config.name.clone(),
        stream: source.stream_arn,
        shards,
        snapshot,
        behind_because,
    })
}

/// `eddy leases`: the lease table of `config`'s stream, one line per shard.
///
/// # Errors
/// When the checkpoints are not a lease table, or the stream or table cannot be read.
pub async fn leases(config: &Config) -> anyhow::Result<String> {
    let CheckpointConfig::Dynamodb(table) = &config.checkpoints else {
        anyhow::bail!("checkpoints are not a lease table (`checkpoints: {{type: dynamodb, ...}}`); nothing to show");
    };
    // The stream's leases, then the snapshot's segments if the table has a snapshot in the table
    // (`eddy snapshot` needs no stream, so a missing stream is an error only without segments).
    let pipeline = config.name.as_deref().unwrap_or_default();
    let mut report = format!("pipeline {pipeline}, lease table {}\n", table.table);
    let stream = match connect(config).await {
        Ok(source) => {
            let (manager, store) = lease_manager(config, table, &source.stream_arn, Access::Inspect, None).await?;
            report.push_str(&format!("stream {}\n", source.stream_arn));
            report.push_str(&crate::lease::report::report(&manager, Some(source.api.as_ref())).await?);
            match store.unnamed_rows().await? {
                (0, _) => {}
                (n, Some(by)) => report.push_str(&format!(
                    "({n} rows of this stream written without a pipeline name were adopted by pipeline {by})\n"
                )),
                (n, None) => report.push_str(&format!(
                    "({n} rows of this stream written without a pipeline name: the first named pipeline that starts \
                     adopts them)\n"
                )),
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    if let Some(s) = TableSource::of(&config.source) {
        let info = match describe_source_table(config, &s).await {
            Ok(info) => info,
            // No table to describe (a scripted streams endpoint): the stream's report stands alone.
            Err(_) => return stream.map(|()| report),
        };
        let (segments, _) = lease_manager(config, table, &snapshot_key(&info), Access::Inspect, None).await?;
        if !segments.list().await?.is_empty() {
            report.push_str("\nsnapshot segments:\n");
            report.push_str(&crate::lease::report::report(&segments, None).await?);
            if let Err(e) = &stream {
                report.push_str(&format!("\nstream: {e:#}\n"));
            }
            return Ok(report);
        }
    }
    stream?;
    Ok(report)
}

/// Everything that can be checked without the network and without creating anything: every
/// processor's component exists, compiles, matches the contract and accepts its `config:` (each
/// sink's options were checked when the file was loaded). `eddy validate` runs it, and `eddy
/// run` loads the processors the same way before it creates anything.
///
/// # Errors
/// The first problem, naming the processor.
pub fn check(config: &Config) -> anyhow::Result<()> {
    crate::pipeline::load_processors(config)?;
    Ok(())
}

/// What `eddy run` would refuse at start because of this machine rather than the file, checked
/// without creating anything: the checkpoints path is a folder (or can be one), the metrics
/// address is free, and every Alternator sink has a region to sign with (its own, the source's,
/// or the AWS chain's). `eddy validate` runs it after [`check`].
///
/// # Errors
/// The first problem, naming the key.
pub async fn check_environment(config: &Config) -> anyhow::Result<()> {
    if let CheckpointConfig::Local(local) = &config.checkpoints {
        if local.path.exists() && !local.path.is_dir() {
            anyhow::bail!("checkpoints.path: {} is a file; the checkpoints need a folder", local.path.display());
        }
    }
    if let Some(m) = &config.metrics {
        std::net::TcpListener::bind(m.listen)
            .map_err(|e| anyhow::anyhow!("metrics.listen: cannot listen on {}: {e}", m.listen))?;
    }
    for (name, sink) in &config.sinks {
        sink.check_environment(name, &config.timeouts).await?;
    }
    Ok(())
}

/// Runs the pipeline `config` describes until `stop` is set, the source ends, or a fatal error;
/// returns the run's summary line. Stopping during start-up (a server that does not answer)
/// returns at once.
///
/// # Errors
/// Start-up failures (a component that does not load, a sink that cannot be built, stream not
/// found or not answering) and fatal run-time failures (trimmed data, a sink failing for good).
pub async fn run(config: Config, stop: Stop, stop_handle: StopHandle) -> anyhow::Result<String> {
    let started = tokio::select! {
        started = start(&config, &stop) => started?,
        () = stop.wait() => return Ok("stopped during start-up; nothing was read".to_owned()),
    };
    let (mut source, leases, pipeline) = started;
    tokio::spawn(crate::wasm::reload::watch(pipeline.processors(), stop.clone()));
    tokio::spawn(crate::health::monitor(stall_after(&config), stop.clone()));
    if let Some(s) = TableSource::of(&config.source).filter(|s| s.snapshot.mode == SnapshotMode::FirstRun) {
        // A DynamoDB stream's open shards are part of the plan; a Kinesis stream is read by time.
        let stream = match &config.source {
            SourceConfig::Dynamodb(_) => Some((source.stream_arn.as_str(), source.api.as_ref())),
            _ => None,
        };
        let prepared = tokio::select! {
            prepared = prepare_snapshot(&config, &s, stream) => prepared?,
            () = stop.wait() => return Ok("stopped during start-up; nothing was read".to_owned()),
        };
        let (snapshot, plan) = prepared;
        if snapshot.run(&pipeline, &stop, &stop_handle).await? == crate::snapshot::Outcome::Stopped {
            return Ok(format!(
                "stopped during the snapshot (it resumes on the next start); {}",
                pipeline.stats().summary()
            ));
        }
        let saved = leases.checkpoints().load().await.context("cannot load checkpoints")?;
        let margin = s.snapshot.safety_margin;
        if let Some(retention) = source.retention {
            // Kinesis: shards without a checkpoint start at T0 minus the margin, which the
            // stream must still hold.
            if saved.is_empty() {
                crate::snapshot::kinesis::check_gap(&plan, margin, retention, crate::snapshot::now_ms())?;
            }
            source.start = StartPosition::AtTimestamp(plan.started_at_ms - margin.as_millis() as i64);
        } else {
            let desc = crate::source::describe_with_retry(source.api.as_ref(), &config.retry).await?;
            crate::snapshot::check_retention_now(&plan, &desc, &saved)?;
        }
        source.settings.skip_created_before = Some(plan.stream_cutoff(margin));
        tracing::info!(
                started_at = plan.started_at(),
                "snapshot complete; reading the stream from {}, skipping records created more than {} before the snapshot began",
                if source.retention.is_some() { "the snapshot's start minus the margin" } else { "its trim horizon" },
                humantime::format_duration(margin)
            );
    }
    let coordinator = Coordinator {
        api: source.api,
        leases,
        pipeline: Arc::clone(&pipeline),
        start: source.start,
        discovery_interval: source.discovery_interval,
        settings: source.settings,
        max_readers: None,
        stop,
        stop_handle,
    };
    let result = coordinator.run().await;
    let summary = pipeline.stats().summary();
    result.map(|()| summary)
}

/// `eddy snapshot`: scans the table through the pipeline and exits once every segment is done
/// (a full load, without the stream). It records the same plan as `snapshot.mode: first_run`,
/// so a later `eddy run` with `first_run` goes straight to the stream (if the table had a
/// stream when the scan began).
///
/// # Errors
/// Start-up failures, a segment failing for good, or a stop before every segment was done.
pub async fn snapshot(config: Config, stop: Stop, stop_handle: StopHandle) -> anyhow::Result<String> {
    let Some(view) = TableSource::of(&config.source) else {
        anyhow::bail!(
            "`eddy snapshot` scans a DynamoDB table: the pipeline's source must be `type: dynamodb`, or `type: kinesis` \
             with `table`"
        );
    };
    let prepared = async {
        let pipeline = build_pipeline(&config, &stop).await?;
        let info = describe_source_table(&config, &view).await?;
        // The stream, if the table has one, so that `run` with `first_run` can continue from it.
        let stream = match (&config.source, info.live_stream_arn()) {
            (SourceConfig::Dynamodb(s), Some(arn)) => {
                let with_arn = DynamodbSource { stream_arn: Some(arn.to_owned()), table: None, ..s.clone() };
                Some(AwsStreams::connect(&with_arn, &config.timeouts, &config.retry).await?)
            }
            _ => None,
        };
        let stream = stream.as_ref().map(|api| (api.stream_arn(), api as &dyn StreamsApi));
        let (snapshot, _) = prepare_snapshot(&config, &view, stream).await?;
        Ok::<_, anyhow::Error>((pipeline, snapshot))
    };
    let (pipeline, snapshot) = tokio::select! {
        prepared = prepared => prepared?,
        () = stop.wait() => return Ok("stopped during start-up; nothing was read".to_owned()),
    };
    tokio::spawn(crate::wasm::reload::watch(pipeline.processors(), stop.clone()));
    tokio::spawn(crate::health::monitor(stall_after(&config), stop.clone()));
    match snapshot.run(&pipeline, &stop, &stop_handle).await? {
        crate::snapshot::Outcome::Complete => Ok(format!("snapshot complete; {}", pipeline.stats().summary())),
        crate::snapshot::Outcome::Stopped => {
            let done = snapshot.segments_done().await.unwrap_or(0);
            anyhow::bail!(
                "stopped with {done} of {} segments done; run `eddy snapshot` again to resume after the last acknowledged pages",
                snapshot.api.segments()
            )
        }
    }
}

/// The destination `eddy dead-letter` reads: `from` (see [`crate::dead_letter::parse_destination`]),
/// else the pipeline's `dead_letter`.
async fn dead_letter_source(
    config: &Config,
    from: Option<&str>,
) -> anyhow::Result<Arc<dyn crate::dead_letter::DeadLetterStore>> {
    match from {
        Some(text) => {
            let destination =
                crate::dead_letter::parse_destination(text, &config.source.inherited(), &config.dead_letter)?;
            crate::dead_letter::open(&destination, &config.timeouts, config.retry, Access::Inspect).await
        }
        None => crate::dead_letter::open(&config.dead_letter, &config.timeouts, config.retry, Access::Inspect).await,
    }
}

/// A `--filter` pattern (Lambda's event-pattern syntax, JSON text).
fn dead_letter_filter(filter: Option<&str>) -> anyhow::Result<Option<crate::pattern::Filter>> {
    filter
        .map(|text| {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| anyhow::anyhow!("--filter is not JSON: {e}"))?;
            crate::pattern::Filter::compile(&value).map_err(|e| anyhow::anyhow!("--filter: {e}"))
        })
        .transpose()
}

/// `eddy dead-letter list`: the entries of the dead letter (or `from`), one per line.
///
/// # Errors
/// When the destination cannot be opened or read, or the filter is invalid.
pub async fn dead_letter_list(
    config: &Config,
    from: Option<&str>,
    filter: Option<&str>,
    stop: &Stop,
) -> anyhow::Result<String> {
    let filter = dead_letter_filter(filter)?;
    let store = dead_letter_source(config, from).await?;
    crate::replay::list(store.as_ref(), filter.as_ref(), stop).await
}

/// `eddy dead-letter replay`: sends the records of the dead letter (or `from`) through the
/// pipeline again and removes the entries done; returns a summary. Entries whose change is no
/// longer its key's newest are skipped and listed, unless `force` ([`crate::replay::newest`]).
///
/// # Errors
/// When the pipeline cannot be built or the destination cannot be read or changed; a
/// [`crate::replay::ReplayStopped`] when a batch fails (its entries and later ones
/// stay).
pub async fn dead_letter_replay(
    config: &Config,
    from: Option<&str>,
    filter: Option<&str>,
    force: bool,
    stop: Stop,
) -> anyhow::Result<String> {
    let filter = dead_letter_filter(filter)?;
    // What is read must exist before anything is built (the pipeline opens its own dead letter).
    let store = dead_letter_source(config, from).await?;
    let check = newest_check(config).await?;
    let pipeline = build_pipeline(config, &stop).await?;
    let guard = crate::replay::Guard { check: check.as_ref(), force };
    let done = crate::replay::replay(&pipeline, store.as_ref(), filter.as_ref(), &guard, &stop).await?;
    let mut out = String::new();
    for line in &done.skipped {
        out.push_str(&format!("skipped {line}\n"));
    }
    out.push_str(&format!(
        "replayed {} entries from {}: {} new dead-letter entries (records that failed again, in {}); {} left (no record to replay, or a route no longer in the pipeline); {} keys skipped (their entries are not the key's newest change and stay; --force replays them); {}",
        done.replayed,
        store.describe(),
        done.new_entries,
        pipeline.dead_letter().describe(),
        done.left,
        done.skipped.len(),
        pipeline.stats().summary()
    ));
    Ok(out)
}

/// How a replay tells whether an entry is still its key's newest change: the source table for a
/// DynamoDB stream source, else by the sinks' kinds alone.
async fn newest_check(config: &Config) -> anyhow::Result<Box<dyn crate::replay::newest::NewestCheck>> {
    use crate::replay::newest::{SourceTable, Unreadable};
    let Some(s) = TableSource::of(&config.source) else { return Ok(Box::new(Unreadable)) };
    let info = describe_source_table(config, &s)
        .await
        .context("the source table (to check that replayed changes are still the newest)")?;
    let target = crate::aws::Target { region: s.region, endpoint: s.endpoint };
    let client = crate::aws::json_client(eddy_aws_json::DYNAMODB, "dynamodb", &target, &config.timeouts).await?;
    Ok(Box::new(SourceTable::new(client, info.name, config.retry)))
}

/// `source.stall_after` (the default for a file source).
fn stall_after(config: &Config) -> Duration {
    config.source.polling().map_or_else(crate::source::polling::defaults::stall_after, |p| p.stall_after)
}

/// The key of `table`'s snapshot in the checkpoint store: its segments and its plan.
fn snapshot_key(table: &crate::aws::TableInfo) -> String {
    format!("{}#snapshot", table.arn)
}

/// What the snapshot and the replay's newest check need of a source: its DynamoDB table, where
/// it is, and the reading keys a Scan takes from the source's section.
struct TableSource<'a> {
    table: Option<&'a str>,
    /// A DynamoDB stream ARN names its table.
    stream_arn: Option<&'a str>,
    region: Option<&'a str>,
    endpoint: Option<&'a str>,
    snapshot: &'a crate::source::dynamodb::config::SnapshotConfig,
    /// Scan's `Limit` (at most 1,000 items).
    max_records_per_poll: u32,
    max_consecutive_errors: u32,
    max_inflight_bytes: u64,
}

impl<'a> TableSource<'a> {
    /// The table of a DynamoDB stream source, or of a Kinesis source with `table`; `None` for a
    /// Kinesis source without one, or a file.
    fn of(source: &'a SourceConfig) -> Option<Self> {
        match source {
            SourceConfig::Dynamodb(s) => Some(Self {
                table: s.table.as_deref(),
                stream_arn: s.stream_arn.as_deref(),
                region: s.region.as_deref(),
                endpoint: s.endpoint.as_deref(),
                snapshot: &s.snapshot,
                max_records_per_poll: s.max_records_per_poll,
                max_consecutive_errors: s.max_consecutive_errors,
                max_inflight_bytes: s.max_inflight_bytes,
            }),
            SourceConfig::Kinesis(k) => Some(Self {
                table: Some(k.table.as_deref()?),
                stream_arn: None,
                region: k.region.as_deref(),
                endpoint: k.endpoint.as_deref(),
                snapshot: &k.snapshot,
                max_records_per_poll: k.max_records_per_poll.min(1000),
                max_consecutive_errors: k.max_consecutive_errors,
                max_inflight_bytes: k.max_inflight_bytes,
            }),
            SourceConfig::File(_) => None,
        }
    }
}

/// DescribeTable of the source's table (`table`, or the table named in `stream_arn`).
async fn describe_source_table(config: &Config, s: &TableSource<'_>) -> anyhow::Result<crate::aws::TableInfo> {
    let table = match (s.table, s.stream_arn) {
        (Some(t), _) => t.to_owned(),
        (None, Some(arn)) => arn
            .split_once(":table/")
            .and_then(|(_, rest)| rest.split('/').next())
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("cannot tell the table from stream ARN {arn}; set `source.table`"))?,
        (None, None) => anyhow::bail!("the source names neither `table` nor `stream_arn`"),
    };
    let target = crate::aws::Target { region: s.region, endpoint: s.endpoint };
    let client = crate::aws::dynamodb(&target, &config.timeouts).await;
    crate::aws::describe_table(&client, &table, &config.retry).await
}

/// The table's snapshot, with its plan read back or recorded now (T0 and `stream`'s open
/// shards).
async fn prepare_snapshot(
    config: &Config,
    s: &TableSource<'_>,
    stream: Option<(&str, &dyn StreamsApi)>,
) -> anyhow::Result<(crate::snapshot::Snapshot, crate::snapshot::Plan)> {
    use crate::snapshot::scan::{ScanSegments, ScanSettings};
    let info = describe_source_table(config, s).await?;
    let (leases, plans) = leases_for(config, &snapshot_key(&info), Some(s.snapshot.concurrency)).await?;
    let plan = crate::snapshot::plan(plans.as_ref(), s.snapshot.segments, stream, &config.retry).await?;
    if plan.segments != s.snapshot.segments {
        tracing::warn!(
            recorded = plan.segments,
            configured = s.snapshot.segments,
            "the snapshot in progress was planned with another number of segments; keeping the recorded one"
        );
    }
    let target = crate::aws::Target { region: s.region, endpoint: s.endpoint };
    let shared = crate::aws::sdk_config(&target, &config.timeouts).await;
    let region = shared.region().map(|r| r.as_ref().to_owned()).unwrap_or_default();
    let client = crate::aws::json_client(eddy_aws_json::DYNAMODB, "dynamodb", &target, &config.timeouts).await?;
    let settings = ScanSettings {
        segments: plan.segments,
        consistent_read: s.snapshot.consistent_read,
        max_items_per_second: s.snapshot.max_items_per_second,
        max_items_per_page: s.max_records_per_poll,
    };
    let snapshot = crate::snapshot::Snapshot {
        api: Arc::new(ScanSegments::new(client, info, region, &settings)),
        leases,
        // Scan pages are not stream records: no age limit, no records-per-second budget (the
        // scan has its own), nothing trimmed.
        settings: ReaderSettings::new(
            &StreamPolling {
                poll_interval: Duration::from_millis(50),
                max_records_per_poll: s.max_records_per_poll,
                max_consecutive_errors: s.max_consecutive_errors,
                on_trimmed: OnTrimmed::Fail,
                max_records_per_second: None,
                maximum_record_age: None,
                parallelization_factor: 1,
                shard_discovery_interval: Duration::from_secs(10),
                stall_after: crate::source::polling::defaults::STALL_AFTER,
                max_inflight_bytes: s.max_inflight_bytes,
            },
            config.retry,
        ),
        concurrency: s.snapshot.concurrency,
    };
    Ok((snapshot, plan))
}

/// The pipeline, with the metrics recorder installed first (metric handles are registered as
/// the parts are built) and the metrics endpoint serving.
async fn build_pipeline(config: &Config, stop: &Stop) -> anyhow::Result<Arc<Pipeline>> {
    let recorder = config.metrics.as_ref().map(|_| crate::metrics::install()).transpose()?;
    if recorder.is_some() {
        crate::events::describe();
    }
    let processors = crate::pipeline::load_processors(config)?;
    let pipeline = Arc::new(Pipeline::build(config, processors).await?);
    if let (Some(m), Some(handle)) = (&config.metrics, recorder) {
        let stop = stop.clone();
        crate::metrics::serve(m.listen, handle, async move { stop.wait().await }).await?;
    }
    Ok(pipeline)
}

/// Start-up, cheapest and side-effect-free parts first.
async fn start(config: &Config, stop: &Stop) -> anyhow::Result<(Source, Arc<dyn Leases>, Arc<Pipeline>)> {
    let pipeline = build_pipeline(config, stop).await?;
    let source = connect(config).await?;
    tracing::info!(stream = source.stream_arn, "connected");
    let (leases, _) = leases_for(config, &source.stream_arn, None).await?;
    Ok((source, leases, pipeline))
}
