//! The subcommands of the `eddy` command line, one file each; this module holds what they share:
//! loading the pipeline file, the exit code of a usage error, the Tokio runtime, and signals.

pub mod dead_letter;
pub mod leases;
pub mod pattern;
pub mod plugin;
pub mod run;
pub mod sink;
pub mod status;
pub mod validate;

use std::process::ExitCode;

use eddy::config::Config;

/// The longest a shutdown may take after SIGINT/SIGTERM before eddy exits anyway.
const SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Prints `message` as an error and returns exit code 2 (a usage error, an invalid input, or
/// something that does not exist).
pub fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// Loads the pipeline file at `path`; on errors, prints each (file, line, key) and a count, and
/// returns exit code 2.
pub fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("{} error{} in {}", errors.0.len(), if errors.0.len() == 1 { "" } else { "s" }, path.display());
        ExitCode::from(2)
    })
}

/// The multi-threaded Tokio runtime every command that talks to a network (or loads components:
/// WASI expects one) runs in.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a Tokio runtime")
}

/// Sets `handle` on the first SIGINT or SIGTERM (logging `message`), and exits on a second one,
/// or when stopping takes longer than [`SHUTDOWN_LIMIT`]. Call within a Tokio runtime.
pub fn on_signals(handle: eddy::stop::StopHandle, message: &'static str) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("{message}");
        handle.stop();
        // However a call hangs, the process ends: every call has a timeout and a write in flight
        // gets a short grace, so this only fires if something unforeseen holds on.
        tokio::spawn(async {
            tokio::time::sleep(SHUTDOWN_LIMIT).await;
            tracing::error!("shutdown did not finish within {SHUTDOWN_LIMIT:?}; exiting now; unacknowledged batches will be read again");
            std::process::exit(1);
        });
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::warn!("second signal: exiting now; unacknowledged batches will be read again");
        std::process::exit(130);
    });
}
