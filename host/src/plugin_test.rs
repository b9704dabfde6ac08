//! `eddy plugin test`: runs a processor component on records from a file (JSONL, or a Lambda test
//! event `{"Records": [...]}`) and prints each record's verdict and output, one JSON line per input
//! record (`line`: its JSONL line; for an event, `record`: its index in `Records`):
//!
//! ```text
//! {"line":1,"sequence_number":"100","verdict":"pass","output":[{...record...}]}
//! {"line":2,"sequence_number":"101","verdict":"drop","output":[]}
//! {"line":3,"sequence_number":"102","verdict":"route","sinks":["pets"],"output":[{...}]}
//! {"line":4,"sequence_number":"103","verdict":"error","message":"processor test: trapped: ..."}
//! ```
//!
//! The component runs exactly as in a pipeline: the same limits, the same retry-and-bisect on
//! traps and timeouts, so a poison record shows up as `error` while the others get their verdicts.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use eddy_record::ChangeRecord;
use serde_json::{json, Value};

use crate::pipeline::isolate;
use crate::source::file::Place;
use crate::wasm::config::{Limits, ProcessorConfig};
use crate::wasm::{self, Verdict};

/// Runs `wasm` (initialised with `config_json`) on every record of `input` in batches of
/// `batch_size` and writes one JSON line per record to `out`.
///
/// # Errors
/// When the component does not load or rejects its config, or `input` cannot be read.
pub fn run(
    wasm: &Path,
    config_json: &str,
    limits: Limits,
    input: &Path,
    batch_size: usize,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let runtime = wasm::Runtime::new(limits.memory_bytes)?;
    let config = ProcessorConfig { wasm: wasm.to_owned(), config_json: config_json.to_owned(), limits };
    let component = runtime.load("test", &config)?;
    let mut instance = component.instantiate()?;
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let mut parsed: Vec<(Place, ChangeRecord)> = Vec::new();
    for entry in crate::source::file::entries(&bytes) {
        let record = entry
            .text
            .and_then(|t| serde_json::from_str::<ChangeRecord>(&t).map_err(|e| format!("not a change record: {e}")));
        match record {
            Ok(r) => parsed.push((entry.place, r)),
            Err(message) => {
                let mut row = place(entry.place);
                row["verdict"] = json!("invalid");
                row["message"] = json!(message);
                writeln!(out, "{row}")?;
            }
        }
    }
    for chunk in parsed.chunks(batch_size.max(1)) {
        let records: Vec<&ChangeRecord> = chunk.iter().map(|(_, r)| r).collect();
        let outcomes = isolate::run(&mut instance, &records);
        for ((line, record), outcome) in chunk.iter().zip(outcomes) {
            let mut row = place(*line);
            row["sequence_number"] = json!(record.dynamodb.sequence_number);
            describe(&mut row, record, outcome);
            writeln!(out, "{row}")?;
        }
    }
    Ok(())
}

/// `{"line": N}` for a JSONL line, `{"record": I}` for an event's `Records[I]`.
fn place(place: Place) -> Value {
    match place {
        Place::Line(n) => json!({"line": n}),
        Place::Record(i) => json!({"record": i}),
    }
}

fn describe(row: &mut Value, record: &ChangeRecord, outcome: isolate::Outcome) {
    let to_json = |r: &ChangeRecord| serde_json::to_value(r).expect("records serialize");
    let (verdict, extra) = match outcome {
        Ok(Verdict::Pass) => ("pass", json!({"output": [to_json(record)]})),
        Ok(Verdict::Drop) => ("drop", json!({"output": []})),
        Ok(Verdict::Replace(change)) => match wasm::to_record(change, record) {
            Ok(r) => ("replace", json!({"output": [to_json(&r)]})),
            Err(e) => ("error", json!({"message": e})),
        },
        Ok(Verdict::FanOut(changes)) => {
            match changes
                .into_iter()
                .map(|c| wasm::to_record(c, record).map(|r| to_json(&r)))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(v) => ("fan-out", json!({"output": v})),
                Err(e) => ("error", json!({"message": e})),
            }
        }
        Ok(Verdict::Route(sinks)) => ("route", json!({"sinks": sinks, "output": [to_json(record)]})),
        Ok(Verdict::Fail(message)) => ("fail", json!({"message": message})),
        Err((message, attempts)) => ("error", json!({"message": message, "attempts": attempts})),
    };
    row["verdict"] = json!(verdict);
    if let (Value::Object(row), Value::Object(extra)) = (row, extra) {
        row.extend(extra);
    }
}
