//! `eddy status`: whether a pipeline is caught up (see `eddy::status`).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{load, runtime};

/// `eddy status` options.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// The pipeline file (YAML).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Redraw every second (like `top`) until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Print the status as one JSON object (with `--watch`, one a line).
    #[arg(long)]
    pub json: bool,
}

/// Prints the status: exit 0 when caught up, 1 when behind, 2 when it cannot be read. With
/// `--watch`, the exit code of the last look once interrupted.
pub fn execute(args: StatusArgs) -> ExitCode {
    let config = match load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    runtime().block_on(async {
        let mut code;
        loop {
            code = match eddy::app::status(&config).await {
                Ok(status) => {
                    let text = if args.json {
                        format!("{}\n", serde_json::to_string(&status).expect("a status serializes"))
                    } else {
                        status.render()
                    };
                    if args.watch && !args.json {
                        // Clear the screen and go home, as `watch` and `top` redraw.
                        print!("\x1b[2J\x1b[H");
                    }
                    print!("{text}");
                    if status.caught_up() {
                        0
                    } else {
                        1
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    2
                }
            };
            if !args.watch {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        ExitCode::from(code)
    })
}
