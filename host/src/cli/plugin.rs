//! `eddy plugin new` and `eddy plugin test`: writing a processor, and running one on records.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::usage;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Write a ready-to-build processor project: the contract (wit/processor.wit), a filter that
    /// builds as it is (keeps records whose image has an attribute equal to a configured value), a
    /// README with the build and `eddy plugin test` commands, and sample records.
    New {
        /// The processor's name (lowercase letters, digits and `-`), e.g. only-dogs.
        name: String,
        /// The guest language: rust (cargo, wasm32-wasip2), python (componentize-py) or js
        /// (componentize-js from npm).
        #[arg(long, value_enum)]
        lang: eddy::plugin_new::Lang,
        /// Where to write it (must not exist, or be empty); default ./NAME.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run a component on records from a file (JSONL, one stream record per line in Lambda's
    /// shape, or a Lambda test event `{"Records": [...]}` as the console, SAM and Powertools hold
    /// them) and print each record's verdict and output as one JSON line. Traps, timeouts and
    /// memory refusals are handled as in a pipeline: retried, bisected, reported per record.
    Test {
        /// The component (.wasm).
        #[arg(long)]
        wasm: PathBuf,
        /// The processor's config, as JSON (what `config:` holds in the YAML).
        #[arg(long, default_value = "{}")]
        config: String,
        /// The records (JSONL, or a Lambda test event).
        #[arg(long)]
        input: PathBuf,
        /// Records per `process` call.
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Memory limit per instance, e.g. 64MiB.
        #[arg(long, default_value = "64MiB")]
        memory: String,
        /// Time limit per call, e.g. 1s.
        #[arg(long, default_value = "1s")]
        timeout: String,
    },
}

/// Runs `eddy plugin ...`.
pub fn execute(command: PluginCommand) -> ExitCode {
    match command {
        PluginCommand::New { name, lang, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            match eddy::plugin_new::create(&name, lang, &dir) {
                Ok(files) => {
                    println!("wrote {}:", dir.display());
                    for f in files {
                        println!("  {}", f.display());
                    }
                    println!(
                        "next: see {} for the build and `eddy plugin test` commands",
                        dir.join("README.md").display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => usage(&format!("{e:#}")),
            }
        }
        PluginCommand::Test { wasm, config, input, batch_size, memory, timeout } => {
            plugin_test(&wasm, &config, &input, batch_size, &memory, &timeout)
        }
    }
}

fn plugin_test(wasm: &Path, config: &str, input: &Path, batch_size: usize, memory: &str, timeout: &str) -> ExitCode {
    let limits = match (eddy::spec::units::parse_size(memory), humantime::parse_duration(timeout)) {
        (Ok(memory_bytes), Ok(timeout)) => eddy::wasm::config::Limits { memory_bytes, timeout },
        (Err(e), _) => return usage(&format!("--memory: {e}")),
        (_, Err(e)) => return usage(&format!("--timeout: {e}")),
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(config) {
        return usage(&format!("--config is not JSON: {e}"));
    }
    // WASI's stdout/stderr plumbing expects a Tokio runtime around the calls.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let _guard = runtime.enter();
    let mut out = std::io::stdout().lock();
    match eddy::plugin_test::run(wasm, config, limits, input, batch_size, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
