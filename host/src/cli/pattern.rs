//! `eddy pattern test`: an event pattern against an event, with the engine routes use.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum PatternCommand {
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

/// Runs `eddy pattern ...`.
pub fn execute(command: PatternCommand) -> ExitCode {
    match command {
        PatternCommand::Test { pattern, event } => pattern_test(&pattern, &event),
    }
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
