//! `eddy validate`: a pipeline file checked without running it.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{load, runtime};

/// `eddy validate` options.
#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The pipeline file (YAML).
    #[arg(long, short)]
    pub config: PathBuf,
}

/// Exit 0 when the file is valid, else 2 with every problem on standard error.
pub fn execute(args: ValidateArgs) -> ExitCode {
    let path = args.config;
    let config = match load(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Loading components uses WASI, which expects a Tokio runtime around it.
    let runtime = runtime();
    let _guard = runtime.enter();
    let checked = eddy::app::check(&config).and_then(|()| runtime.block_on(eddy::app::check_environment(&config)));
    match checked {
        Ok(()) => {
            println!("{}: valid", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {}", path.display(), eddy_sink_api::redact(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}
