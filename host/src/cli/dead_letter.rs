//! `eddy dead-letter list` and `eddy dead-letter replay`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::{load, on_signals, runtime, usage};

/// Options both `eddy dead-letter` commands take.
#[derive(clap::Args)]
pub struct DeadLetterArgs {
    /// The pipeline file (YAML).
    #[arg(long, short)]
    pub config: PathBuf,
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
pub enum DeadLetterCommand {
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

/// Runs `eddy dead-letter ...`: exit 0 done, 1 a replay stopped half-way (a sink still down), 2
/// an error (a destination that does not exist, a bad filter).
pub fn execute(command: DeadLetterCommand) -> ExitCode {
    let (args, replay, force) = match command {
        DeadLetterCommand::List { args } => (args, false, false),
        DeadLetterCommand::Replay { args, force } => (args, true, force),
    };
    let config = match load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (from, filter) = (args.from.as_deref(), args.filter.as_deref());
    let result = runtime().block_on(async {
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
        Err(e) if e.downcast_ref::<eddy::replay::ReplayStopped>().is_some() => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
        Err(e) => usage(&format!("{e:#}")),
    }
}
