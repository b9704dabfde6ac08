//! `eddy leases`: the lease table of a pipeline, as an operator needs it.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{load, runtime, usage};

/// `eddy leases` options.
#[derive(clap::Args)]
pub struct LeasesArgs {
    /// The pipeline file (YAML).
    #[arg(long, short)]
    pub config: PathBuf,
}

/// Prints the report: exit 0, or 2 when the lease table does not exist or cannot be read.
pub fn execute(args: LeasesArgs) -> ExitCode {
    let config = match load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match runtime().block_on(eddy::app::leases(&config)) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => usage(&format!("{e:#}")),
    }
}
