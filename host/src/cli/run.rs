//! `eddy run` and `eddy snapshot`: a pipeline until a signal, or a snapshot until it is done.

use std::process::ExitCode;

use eddy::config::Config;

use super::on_signals;

/// What [`run`] runs until a signal.
pub enum Job {
    /// `eddy run`
    Run,
    /// `eddy snapshot`
    Snapshot,
}

/// Runs `job` until it ends or a signal: exit 0 when it stopped cleanly, 1 on an error.
pub async fn run(config: Config, job: Job) -> ExitCode {
    let (stop_handle, stop) = eddy::stop::channel();
    on_signals(stop_handle.clone(), "stopping: finishing the batches in flight and checkpointing");
    let result = match job {
        Job::Run => eddy::app::run(config, stop, stop_handle).await,
        Job::Snapshot => eddy::app::snapshot(config, stop, stop_handle).await,
    };
    match result {
        Ok(summary) => {
            tracing::info!("stopped: {summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let message = eddy_sink_api::redact(&format!("{e:#}"));
            tracing::error!("{message}");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
