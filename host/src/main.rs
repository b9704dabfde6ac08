//! The `eddy` command line: the subcommands are in `cli/`, one file each.

/// mimalloc instead of the system allocator: `eddy-bench e2e` measured it faster on the hot path
/// (allocation per record is what remains of decoding GetRecords into attribute trees).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// checkpoint is (records after it, up to 1,000, and the oldest one's age). Reads only: a
    /// lease table that does not exist is an error (exit 2).
    Leases(cli::leases::LeasesArgs),
    /// Whether the pipeline is caught up, for an operator or a cut-over script: every shard of the
    /// stream with its owner, checkpoint and how far behind it is (read from the stream after the
    /// checkpoint), the snapshot's segments, and one verdict line. Exit 0 when caught up (every
    /// shard read to its newest record, no snapshot in progress), 1 when behind (with why), 2 when
    /// something cannot be read. Reads only: it runs beside the pipeline and creates nothing.
    Status(cli::status::StatusArgs),
    /// Look at the dead letter (the failure destination: `dead_letter:` of the pipeline, or
    /// `--from`), or send its records through the pipeline again once the cause is fixed.
    #[command(name = "dead-letter", subcommand)]
    DeadLetter(cli::dead_letter::DeadLetterCommand),
    /// Work on a processor component.
    #[command(subcommand)]
    Plugin(cli::plugin::PluginCommand),
    /// Inspect what a sink would write.
    #[command(subcommand)]
    Sink(cli::sink::SinkCommand),
    /// Test an event pattern (Lambda FilterCriteria syntax) against an event, with the same engine
    /// routes use: exit 0 when the pattern matches, 1 when it does not, 2 when the pattern (or the
    /// event) is invalid, 3 when a file cannot be read (the reason on stderr). A Lambda test event
    /// (`{"Records": [...]}`) is matched record by record, as Lambda filters: one line per record,
    /// exit 0 when any matches.
    #[command(subcommand)]
    Pattern(cli::pattern::PatternCommand),
    /// Check a pipeline file without running it: every key, and everything that needs no network
    /// (each processor's component loads and accepts its config; each sink's options; the
    /// checkpoints folder, the metrics address and each sink's region). Exit 0 when it is valid,
    /// else print every error with its file, line and key, and exit 2.
    Validate(cli::validate::ValidateArgs),
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
        Command::Run { config } => run(&config, cli::run::Job::Run),
        Command::Snapshot { config } => run(&config, cli::run::Job::Snapshot),
        Command::Leases(args) => cli::leases::execute(args),
        Command::Status(args) => cli::status::execute(args),
        Command::DeadLetter(command) => cli::dead_letter::execute(command),
        Command::Plugin(command) => cli::plugin::execute(command),
        Command::Sink(command) => cli::sink::execute(command),
        Command::Pattern(command) => cli::pattern::execute(command),
        Command::Validate(args) => cli::validate::execute(args),
    }
}

/// `eddy run` or `eddy snapshot` of the pipeline file at `path`.
fn run(path: &std::path::Path, job: cli::run::Job) -> ExitCode {
    match cli::load(path) {
        Ok(config) => cli::runtime().block_on(cli::run::run(config, job)),
        Err(code) => code,
    }
}
