//! `eddy sink preview`: what a sink of the pipeline would write, without connecting to anything.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::{load, usage};

#[derive(Subcommand)]
pub enum SinkCommand {
    /// Print, for each input record, one JSON line of what sink NAME of the pipeline would write
    /// (for cratedb: op, row, statement and arguments; for alternator: the write request; for sqs: the SendMessageBatch entry), without
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

/// Runs `eddy sink ...`.
pub fn execute(command: SinkCommand) -> ExitCode {
    match command {
        SinkCommand::Preview { config, sink, input, batch_size } => sink_preview(&config, &sink, &input, batch_size),
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
        for ((slot, _), value) in chunk.iter().zip(eddy::sinks::preview(sink_config.as_ref(), &batch)) {
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
