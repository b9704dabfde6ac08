//! Assembling a run from a config, in an order that fails before it changes anything: the
//! processors load and the sinks are built first, then the source connects, and only then are the
//! state folder or the lease table created.

use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::{local::LocalStore, CheckpointStore};
use crate::config::{CheckpointConfig, Config, OnTrimmed, SinkConfig, SourceConfig, StartPosition};
use crate::coordinator::reader::{ReaderSettings, RecordBudget};
use crate::coordinator::Coordinator;
use crate::lease::dynamo::DynamoLeaseStore;
use crate::lease::manager::{LeaseManager, SystemClock};
use crate::lease::{Leases, LocalLeases};
use crate::pipeline::Pipeline;
use crate::source::aws::AwsStreams;
use crate::source::file::FileStreams;
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

async fn connect(config: &Config) -> anyhow::Result<Source> {
    Ok(match &config.source {
        SourceConfig::Dynamodb(s) => {
            let api = AwsStreams::connect(s, &config.timeouts, &config.retry).await?;
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
                    retry: config.retry,
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
                    retry: config.retry,
                },
            }
        }
    })
}

async fn lease_manager(
    config: &Config,
    table: &crate::config::LeaseTableConfig,
    stream: &str,
) -> anyhow::Result<Arc<LeaseManager>> {
    let store = DynamoLeaseStore::open(table, stream, &config.timeouts, config.retry).await?;
    let manager =
        LeaseManager::new(Arc::new(store), Arc::new(SystemClock), LeaseManager::process_id(), table.lease_duration);
    tracing::info!(table = %table.table, worker = %manager.worker_id(), "using the lease table");
    Ok(Arc::new(manager))
}

/// `eddy leases`: the lease table of `config`'s stream, one line per shard.
///
/// # Errors
/// When the checkpoints are not a lease table, or the stream or table cannot be read.
pub async fn leases(config: &Config) -> anyhow::Result<String> {
    let CheckpointConfig::Dynamodb(table) = &config.checkpoints else {
        anyhow::bail!("checkpoints are not a lease table (`checkpoints: {{type: dynamodb, ...}}`); nothing to show");
    };
    let source = connect(config).await?;
    let manager = lease_manager(config, table, &source.stream_arn).await?;
    crate::lease::report::report(&manager, source.api.as_ref()).await
}

/// Everything that can be checked without the network and without creating anything: every
/// processor's component exists, compiles, matches the contract and accepts its `config:`, and
/// every sink's options make a sink. `eddy validate` runs it, and `eddy run` runs it first.
///
/// # Errors
/// The first problem, naming the processor or sink.
pub fn check(config: &Config) -> anyhow::Result<()> {
    crate::pipeline::load_processors(config)?;
    for (name, sink) in &config.sinks {
        if let SinkConfig::CrateDb(c) = sink {
            eddy_sink_cratedb::CrateDbSink::new(c, &config.timeouts, config.retry)
                .map_err(|e| anyhow::anyhow!("sink {name}: {e}"))?;
        }
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
    let (source, leases, pipeline) = started;
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

/// Start-up, cheapest and side-effect-free parts first.
async fn start(config: &Config, stop: &Stop) -> anyhow::Result<(Source, Arc<dyn Leases>, Arc<Pipeline>)> {
    // The recorder comes first: metric handles are registered as the parts are built.
    let recorder = config.metrics.as_ref().map(|_| crate::metrics::install()).transpose()?;
    let processors = crate::pipeline::load_processors(config)?;
    let pipeline = Arc::new(Pipeline::build(config, processors).await?);
    if let (Some(m), Some(handle)) = (&config.metrics, recorder) {
        crate::metrics::serve(m.listen, handle, stop.clone()).await?;
    }
    let source = connect(config).await?;
    tracing::info!(stream = source.stream_arn, "connected");
    let leases: Arc<dyn Leases> = match &config.checkpoints {
        CheckpointConfig::Local { path } => {
            let store: Arc<dyn CheckpointStore> = Arc::new(LocalStore::open(path, &source.stream_arn)?);
            Arc::new(LocalLeases::new(store))
        }
        CheckpointConfig::Dynamodb(table) => Arc::new(lease_manager(config, table, &source.stream_arn).await?),
    };
    Ok((source, leases, pipeline))
}
