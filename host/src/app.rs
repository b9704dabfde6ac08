//! Assembling a run from a config: source, checkpoints, pipeline, coordinator.

use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::{local::LocalStore, CheckpointStore};
use crate::config::{CheckpointConfig, Config, OnTrimmed, SourceConfig, StartPosition};
use crate::lease::table::LeaseTable;
use crate::lease::{Leases, LocalLeases};
use crate::pipeline::Pipeline;
use crate::source::aws::AwsStreams;
use crate::source::coordinator::Coordinator;
use crate::source::file::FileStreams;
use crate::source::shard::{ReaderSettings, RecordBudget};
use crate::source::StreamsApi;
use crate::stop::{Stop, StopHandle};

/// A connected source with the settings its readers use.
struct Source {
    api: Arc<dyn StreamsApi>,
    stream_arn: String,
    start: StartPosition,
    discovery_interval: Duration,
    settings: ReaderSettings,
}

async fn connect(source: &SourceConfig) -> anyhow::Result<Source> {
    Ok(match source {
        SourceConfig::Dynamodb(s) => {
            let api = AwsStreams::connect(s).await?;
            Source {
                stream_arn: api.stream_arn().to_owned(),
                api: Arc::new(api),
                start: s.start.clone(),
                discovery_interval: s.shard_discovery_interval,
                settings: ReaderSettings {
                    poll_interval: s.poll_interval,
                    max_records_per_poll: s.max_records_per_poll,
                    max_consecutive_errors: s.max_consecutive_errors,
                    on_trimmed: s.on_trimmed,
                    budget: s.max_records_per_second.map(|n| Arc::new(RecordBudget::new(n))),
                },
            }
        }
        SourceConfig::File(f) => {
            let api = FileStreams::open(&f.path)?;
            Source {
                stream_arn: api.stream_arn().to_owned(),
                api: Arc::new(api),
                start: StartPosition::TrimHorizon,
                discovery_interval: Duration::from_millis(100),
                settings: ReaderSettings {
                    poll_interval: Duration::from_millis(10),
                    max_records_per_poll: f.max_records_per_poll,
                    max_consecutive_errors: 3,
                    on_trimmed: OnTrimmed::Fail,
                    budget: None,
                },
            }
        }
    })
}

/// How often one batch's write to a sink is tried (with backoff) before its shard rewinds to the
/// checkpoint and reads the batch again.
pub const SINK_ATTEMPTS_PER_BATCH: u32 = 5;

/// `eddy leases`: the lease table of `config`'s stream, one line per shard.
///
/// # Errors
/// When the checkpoints are not a lease table, or the stream or table cannot be read.
pub async fn leases(config: &Config) -> anyhow::Result<String> {
    let CheckpointConfig::Dynamodb(table) = &config.checkpoints else {
        anyhow::bail!("checkpoints are not a lease table (`checkpoints: {{type: dynamodb, ...}}`); nothing to show");
    };
    let source = connect(&config.source).await?;
    let table = LeaseTable::open(table, &source.stream_arn).await?;
    crate::lease::report::report(&table, source.api.as_ref()).await
}

/// Runs the pipeline `config` describes until `stop` is set, the source ends, or a fatal error;
/// returns the run's summary line.
///
/// # Errors
/// Start-up failures (stream not found, a component that does not load, a sink that cannot be
/// built) and fatal run-time failures (trimmed data, a sink failing for good).
pub async fn run(config: Config, stop: Stop, stop_handle: StopHandle) -> anyhow::Result<String> {
    let source = connect(&config.source).await?;
    tracing::info!(stream = source.stream_arn, "connected");
    let leases: Arc<dyn Leases> = match &config.checkpoints {
        CheckpointConfig::Local { path } => {
            let store: Arc<dyn CheckpointStore> = Arc::new(LocalStore::open(path, &source.stream_arn)?);
            Arc::new(LocalLeases::new(store))
        }
        CheckpointConfig::Dynamodb(table) => Arc::new(Arc::new(LeaseTable::open(table, &source.stream_arn).await?)),
    };
    // Each batch's write is tried this often; then the shard rewinds to its checkpoint and reads
    // again, and after `max_consecutive_errors` such batches eddy stops.
    let max_attempts = SINK_ATTEMPTS_PER_BATCH;
    if let Some(m) = &config.metrics {
        crate::metrics::serve(m.listen, crate::metrics::install()?, stop.clone()).await?;
    }
    let pipeline = Arc::new(Pipeline::build(&config, max_attempts).await?);
    tokio::spawn(crate::wasm::reload::watch(pipeline.processors(), stop.clone()));
    let coordinator = Coordinator {
        api: source.api,
        leases,
        pipeline: Arc::clone(&pipeline),
        start: source.start,
        discovery_interval: source.discovery_interval,
        settings: source.settings,
        stop,
        stop_handle,
    };
    let result = coordinator.run().await;
    let summary = pipeline.stats().summary();
    result.map(|()| summary)
}
