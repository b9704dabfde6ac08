//! The `eddy` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use eddy::config::Config;

/// eddy reads a DynamoDB stream and passes every change through event-pattern filters and
/// WebAssembly processors to sinks such as ScyllaDB Alternator, at least once and in shard order.
///
/// Logs go to standard error; set EDDY_LOG (e.g. `info`, `eddy=debug`) to choose what is shown.
/// AWS credentials come from the usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
/// instance roles); they never appear in the config file.
#[derive(Parser)]
#[command(name = "eddy", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline until SIGINT or SIGTERM. On a signal, the batch in flight finishes, every
    /// shard checkpoints, and eddy exits 0; a second signal exits at once (nothing is lost: the
    /// unacknowledged batch is read again on the next start).
    Run {
        /// The pipeline file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a pipeline file without running it: exit 0 when it is valid, else print every error
    /// with its file, line and key, and exit 2.
    Validate {
        /// The pipeline file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!(
            "{} error{} in {}",
            errors.0.len(),
            if errors.0.len() == 1 { "" } else { "s" },
            path.display()
        );
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EDDY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Validate { config } => match load(&config) {
            Ok(_) => {
                println!("{}: valid", config.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(run(config))
        }
    }
}

async fn run(config: Config) -> ExitCode {
    let (stop_handle, stop) = eddy::stop::channel();
    let signals = stop_handle.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("stopping: finishing the batches in flight and checkpointing");
        signals.stop();
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::warn!("second signal: exiting now; unacknowledged batches will be read again");
        std::process::exit(130);
    });
    match eddy::app::run(config, stop, stop_handle).await {
        Ok(summary) => {
            tracing::info!("stopped: {summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
