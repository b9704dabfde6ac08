//! Assembling a run from a config: source, checkpoints, pipeline, coordinator.

use std::sync::Arc;

use crate::checkpoint::{local::LocalStore, CheckpointStore};
use crate::config::{CheckpointConfig, Config, SourceConfig};
use crate::pipeline::Pipeline;
use crate::source::aws::AwsStreams;
use crate::source::coordinator::Coordinator;
use crate::source::shard::ReaderSettings;
use crate::stop::{Stop, StopHandle};

/// Runs the pipeline `config` describes until `stop` is set or a fatal error; returns the run's
/// summary line.
///
/// # Errors
/// Start-up failures (stream not found, a component that does not load, a sink that cannot be
/// built) and fatal run-time failures (trimmed data, a sink failing for good).
pub async fn run(config: Config, stop: Stop, stop_handle: StopHandle) -> anyhow::Result<String> {
    let SourceConfig::Dynamodb(source) = &config.source;
    let api = AwsStreams::connect(source).await?;
    tracing::info!(stream = api.stream_arn(), "connected");
    let checkpoints: Arc<dyn CheckpointStore> = match &config.checkpoints {
        CheckpointConfig::Local { path } => Arc::new(LocalStore::open(path, api.stream_arn())?),
    };
    let pipeline = Arc::new(Pipeline::build(&config, source.max_consecutive_errors).await?);
    let coordinator = Coordinator {
        api: Arc::new(api),
        checkpoints,
        pipeline: Arc::clone(&pipeline),
        start: source.start.clone(),
        discovery_interval: source.shard_discovery_interval,
        settings: ReaderSettings {
            poll_interval: source.poll_interval,
            max_records_per_poll: source.max_records_per_poll,
            max_consecutive_errors: source.max_consecutive_errors,
            on_trimmed: source.on_trimmed,
        },
        stop,
        stop_handle,
    };
    let result = coordinator.run().await;
    let summary = pipeline.stats().summary();
    result.map(|()| summary)
}
