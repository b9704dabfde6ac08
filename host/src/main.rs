//! The `eddy` command line.

/// mimalloc instead of the system allocator: `eddy-bench e2e` measured it faster on the hot path
/// (allocation per record is what remains of decoding GetRecords into attribute trees).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use eddy::config::Config;

/// eddy reads a DynamoDB stream (or the Kinesis data stream a table writes its changes to) and
/// passes every change through event-pattern filters and WebAssembly processors to sinks such as
/// ScyllaDB Alternator, at least once and in shard order.
///
/// Logs go to standard error; set EDDY_LOG (e.g. `info`, `eddy=debug`) to choose what is shown.
/// Compiled processors are cached in EDDY_CACHE_DIR (default ~/.cache/eddy/components; `off`
/// disables the cache).
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
    /// Copy the table's existing items through the pipeline (a full load), then exit: a parallel
    /// Scan of `source.snapshot.segments` segments, each checkpointed after the sinks acknowledge
    /// a page, so a stopped or killed run resumes where it was. With a lease table, several
    /// processes share the segments. Exits 0 once every segment is done. To follow with the
    /// stream, use `snapshot.mode: first_run` with `eddy run` instead (or afterwards: it continues
    /// from this snapshot's start).
    Snapshot {
        /// The pipeline file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show the lease table of a pipeline with `checkpoints: {type: dynamodb}`: per shard, its
    /// owner (and who asked for it), lease counter, checkpoint, parent, and how far behind the
    /// checkpoint is (records after it, up to 1,000, and the oldest one's age).
    Leases {
        /// The pipeline file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Look at the dead letter (the failure destination: `dead_letter:` of the pipeline, or
    /// `--from`), or send its records through the pipeline again once the cause is fixed.
    #[command(name = "dead-letter")]
    DeadLetter {
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
    /// Work on a processor component.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Inspect what a sink would write.
    Sink {
        #[command(subcommand)]
        command: SinkCommand,
    },
    /// Test an event pattern (Lambda FilterCriteria syntax) against an event, with the same engine
    /// routes use: exit 0 when the pattern matches, 1 when it does not, 2 when the pattern (or the
    /// event) is invalid, 3 when a file cannot be read (the reason on stderr). A Lambda test event
    /// (`{"Records": [...]}`) is matched record by record, as Lambda filters: one line per record,
    /// exit 0 when any matches.
    Pattern {
        #[command(subcommand)]
        command: PatternCommand,
    },
    /// Check a pipeline file without running it: every key, and everything that needs no network
    /// (each processor's component loads and accepts its config; each sink's options). Exit 0
    /// when it is valid, else print every error with its file, line and key, and exit 2.
    Validate {
        /// The pipeline file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Options both `eddy dead-letter` commands take.
#[derive(clap::Args)]
struct DeadLetterArgs {
    /// The pipeline file (YAML).
    #[arg(long, short)]
    config: PathBuf,
    /// Read this destination instead of the pipeline's `dead_letter`: `file:PATH`,
    /// `dynamodb:TABLE`, `s3://BUCKET/PREFIX` or `sqs:QUEUE` (a name or URL), at the source's
    /// endpoint and region.
    #[arg(long)]
    from: Option<String>,
    /// Only the entries whose record matches this event pattern (Lambda FilterCriteria syntax,
    /// JSON), e.g. '{"dynamodb": {"Keys": {"id": {"S": ["42"]}}}}'.
    #[arg(long)]
    filter: Option<String>,
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// Print one line per entry (time, stage, route/sink or processor, shard, sequence number,
    /// error) and a count.
    List {
        #[command(flatten)]
        args: DeadLetterArgs,
    },
    /// Send the entries' records through the pipeline again, each through the route it failed on
    /// (every route for `record_age` entries), per shard in sequence-number order, and remove the
    /// entries whose records were delivered. A record that fails again gets a new entry with the
    /// new reason. Entries without a record (undecodable input) stay. An entry whose change is no
    /// longer its key's newest (a DynamoDB source: the table's item changed since; other sources:
    /// a sink that keeps items by key) is skipped and listed, so a replay never takes an item back
    /// to an older version. Exits 1 when a batch fails (a sink still down): the entries not yet
    /// replayed stay.
    Replay {
        #[command(flatten)]
        args: DeadLetterArgs,
        /// Replay every selected entry, also those that are not (or not known to be) their key's
        /// newest change.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum PatternCommand {
    /// Match one event.
    Test {
        /// The pattern: a JSON file, or the JSON itself (an object, or a list of objects matched
        /// as alternatives), e.g. '{"eventName": ["INSERT"]}'.
        #[arg(long)]
        pattern: String,
        /// The event: a JSON file or the JSON itself, e.g. a DynamoDB stream record as Lambda
        /// receives it, or a Lambda test event `{"Records": [...]}`.
        #[arg(long)]
        event: String,
    },
}

#[derive(Subcommand)]
enum SinkCommand {
    /// Print, for each input record, one JSON line of what sink NAME of the pipeline would write
    /// (for cratedb: op, row, statement and arguments; for alternator: the write request), without
    /// connecting to anything. Records are planned in batches as the sink receives them, so a
    /// change that a later change of the same key replaces shows as `{"op": "superseded", "by":
    /// J}` (J: the later record's 0-based index in its batch).
    Preview {
        /// The pipeline file (YAML).
        #[arg(long, short)]
        config: PathBuf,
        /// The sink's name in the pipeline.
        #[arg(long)]
        sink: String,
        /// The records: JSONL (one stream record per line, in Lambda's shape) or a Lambda test
        /// event (`{"Records": [...]}`).
        #[arg(long)]
        input: PathBuf,
        /// Records per sink write (a poll's worth: `source.max_records_per_poll`).
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
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

/// The text of a `--pattern` or `--event`: the argument itself when it is JSON (it starts with
/// `{` or `[`), else the file it names. `Err` when the file cannot be read.
fn json_argument(argument: &str) -> Result<(String, Vec<u8>), String> {
    let trimmed = argument.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return Ok(("(inline)".to_owned(), argument.as_bytes().to_vec()));
    }
    std::fs::read(argument).map(|bytes| (argument.to_owned(), bytes)).map_err(|e| {
        format!("cannot read {argument}: {e} (give a JSON file, or the JSON itself, e.g. '{{\"eventName\": [\"INSERT\"]}}')")
    })
}

fn pattern_test(pattern: &str, event: &str) -> ExitCode {
    let (pattern, pattern_bytes) = match json_argument(pattern) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: --pattern: {e}");
            return ExitCode::from(3);
        }
    };
    let (event, bytes) = match json_argument(event) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: --event: {e}");
            return ExitCode::from(3);
        }
    };
    let parse = |name: &str, bytes: &[u8]| -> Result<serde_json::Value, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("{name}: not JSON: {e}"))
    };
    let filter = match parse(&pattern, &pattern_bytes)
        .and_then(|p| eddy::pattern::Filter::compile(&p).map_err(|e| format!("{pattern}: {e}")))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("invalid pattern: {e}");
            return ExitCode::from(2);
        }
    };
    // A Lambda test event (`{"Records": [...]}`) is matched record by record, as Lambda filters.
    let entries = eddy::source::file::entries(&bytes);
    let is_event = entries.first().is_some_and(|e| matches!(e.place, eddy::source::file::Place::Record(_)));
    if !is_event {
        return match parse(&event, &bytes) {
            Ok(e) if filter.matches_json(&e) => {
                println!("match");
                ExitCode::SUCCESS
            }
            Ok(_) => {
                println!("no match");
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    let mut matched = 0;
    for entry in &entries {
        let record: serde_json::Value = match entry.text.as_deref().map(serde_json::from_str) {
            Ok(Ok(v)) => v,
            _ => {
                eprintln!("{event}: {}: not JSON", entry.place);
                return ExitCode::from(2);
            }
        };
        let hit = filter.matches_json(&record);
        matched += usize::from(hit);
        println!("{}: {}", entry.place, if hit { "match" } else { "no match" });
    }
    println!("{matched} of {} records match", entries.len());
    if matched > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn plugin_test(wasm: &Path, config: &str, input: &Path, batch_size: usize, memory: &str, timeout: &str) -> ExitCode {
    let limits = match (eddy::config::parse_size(memory), humantime::parse_duration(timeout)) {
        (Ok(memory_bytes), Ok(timeout)) => eddy::config::Limits { memory_bytes, timeout },
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

fn sink_preview(config: &Path, sink: &str, input: &Path, batch_size: usize) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(sink_config) = config.sinks.get(sink) else {
        let names: Vec<&str> = config.sinks.keys().map(String::as_str).collect();
        return usage(&format!("no sink {sink:?} in the pipeline (its sinks: {})", names.join(", ")));
    };
    let bytes = match std::fs::read(input) {
        Ok(b) => b,
        Err(e) => return usage(&format!("{}: {e}", input.display())),
    };
    // Each record's output, in input order: invalid ones at once, records once their batch is
    // planned.
    let mut lines: Vec<Option<serde_json::Value>> = Vec::new();
    let mut records: Vec<(usize, eddy_record::ChangeRecord)> = Vec::new();
    for entry in eddy::source::file::entries(&bytes) {
        let parsed = entry.text.and_then(|t| {
            serde_json::from_str::<eddy_record::ChangeRecord>(&t).map_err(|e| format!("not a change record: {e}"))
        });
        match parsed {
            Ok(record) => {
                records.push((lines.len(), record));
                lines.push(None);
            }
            Err(reason) => {
                let mut row = match entry.place {
                    eddy::source::file::Place::Line(n) => serde_json::json!({"line": n}),
                    eddy::source::file::Place::Record(i) => serde_json::json!({"record": i}),
                };
                row["op"] = "invalid".into();
                row["reason"] = reason.into();
                lines.push(Some(row));
            }
        }
    }
    for chunk in records.chunks(batch_size.max(1)) {
        let batch: Vec<&eddy_record::ChangeRecord> = chunk.iter().map(|(_, r)| r).collect();
        for ((slot, _), value) in chunk.iter().zip(eddy::sinks::preview(sink_config, &batch)) {
            lines[*slot] = Some(value);
        }
    }
    let mut out = std::io::stdout().lock();
    for value in lines.into_iter().flatten() {
        if std::io::Write::write_all(&mut out, format!("{value}\n").as_bytes()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("{} error{} in {}", errors.0.len(), if errors.0.len() == 1 { "" } else { "s" }, path.display());
        ExitCode::from(2)
    })
}

/// mimalloc's `purge_delay` option: its place in `mi_option_e` of mimalloc v3's
/// `include/mimalloc.h` (between `deprecated_eager_commit_delay`, 14, and `use_numa_nodes`, 16,
/// which libmimalloc-sys names); libmimalloc-sys 0.1.49 does not name it for v3.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps memory eddy frees for its next pages instead of returning it to the OS: mimalloc's
/// `purge_delay` becomes -1 (its default is 1,000 ms) unless `MIMALLOC_PURGE_DELAY` is set.
///
/// Reading a stream frees and allocates the same few hundred MiB over and over (a page of
/// records, ~2 MB, per shard and poll). With the default, mimalloc hands freed ranges back every
/// second and the next pages fault them in again, zeroed (in `perf`: `clear_page_erms`, up to a
/// tenth of eddy's CPU at 16 shards); `eddy-bench e2e` measured 291,000–298,000 records per
/// CPU-second on 16 shards with the default and 317,000–336,000 without purging. Resident
/// memory then stays at its peak, which the configuration bounds (shards × pages in flight and
/// the sinks' batches); `MIMALLOC_PURGE_DELAY=1000` restores mimalloc's default.
fn keep_freed_memory() {
    // SAFETY: sets one option's value; mimalloc reads it at each purge decision. An option set
    // from the environment is left alone (`mi_option_set_default`).
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, -1) }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EDDY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Sink { command: SinkCommand::Preview { config, sink, input, batch_size } } => {
            sink_preview(&config, &sink, &input, batch_size)
        }
        Command::Plugin { command: PluginCommand::New { name, lang, dir } } => {
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
        Command::Plugin { command: PluginCommand::Test { wasm, config, input, batch_size, memory, timeout } } => {
            plugin_test(&wasm, &config, &input, batch_size, &memory, &timeout)
        }
        Command::Pattern { command: PatternCommand::Test { pattern, event } } => pattern_test(&pattern, &event),
        Command::Validate { config: path } => {
            let config = match load(&path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            // Loading components uses WASI, which expects a Tokio runtime around it.
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            let _guard = runtime.enter();
            let checked =
                eddy::app::check(&config).and_then(|()| runtime.block_on(eddy::app::check_environment(&config)));
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
        Command::Leases { config } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            match runtime.block_on(eddy::app::leases(&config)) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => usage(&format!("{e:#}")),
            }
        }
        Command::DeadLetter { command } => {
            let (args, replay, force) = match command {
                DeadLetterCommand::List { args } => (args, false, false),
                DeadLetterCommand::Replay { args, force } => (args, true, force),
            };
            let config = match load(&args.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            let (from, filter) = (args.from.as_deref(), args.filter.as_deref());
            let result = runtime.block_on(async {
                // A signal stops the command; what it read is handed back first.
                let (handle, stop) = eddy::stop::channel();
                on_signals(handle, "stopping: handing back the dead-letter entries read");
                if replay {
                    eddy::app::dead_letter_replay(&config, from, filter, force, stop).await.map(|s| format!("{s}\n"))
                } else {
                    eddy::app::dead_letter_list(&config, from, filter, &stop).await
                }
            });
            match result {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                // A replay that stopped half-way (a sink still down): exit 1, as documented.
                Err(e) if e.downcast_ref::<eddy::dead_letter::replay::ReplayStopped>().is_some() => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
                Err(e) => usage(&format!("{e:#}")),
            }
        }
        Command::Run { config } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            runtime.block_on(run(config, Job::Run))
        }
        Command::Snapshot { config } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            runtime.block_on(run(config, Job::Snapshot))
        }
    }
}

/// The longest a shutdown may take after SIGINT/SIGTERM before eddy exits anyway.
const SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(15);

/// What `run` runs until a signal.
enum Job {
    /// `eddy run`
    Run,
    /// `eddy snapshot`
    Snapshot,
}

/// Sets `handle` on the first SIGINT or SIGTERM (logging `message`), and exits on a second one,
/// or when stopping takes longer than [`SHUTDOWN_LIMIT`]. Call within a Tokio runtime.
fn on_signals(handle: eddy::stop::StopHandle, message: &'static str) {
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

async fn run(config: Config, job: Job) -> ExitCode {
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
