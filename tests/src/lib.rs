//! Test harness for eddy's end-to-end tests: a `moto_server` (DynamoDB + Streams API) on a free
//! loopback port, the real `eddy` binary as a child process, and random table operations over
//! every DynamoDB attribute type.
//!
//! Needs `moto_server` on PATH (`pip install 'moto[server]'`) and, for processor tests, the
//! example components built for `wasm32-wasip2` (`.ci/run` does both).

#![deny(missing_docs)]

pub mod fakes;
pub mod json_api;
pub mod kinesis;
pub mod moto;
pub mod ops;
pub mod pets;
pub mod process;
pub mod topology;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// The complete lines of a file that eddy may still be appending to (a file sink, a dead letter):
/// the text up to its last newline, so a line being written is left for the next read instead of
/// failing to parse. Empty when the file does not exist yet.
pub fn complete_lines(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}
