//! Test harness for eddy's end-to-end tests: a `moto_server` (DynamoDB + Streams API) on a free
//! loopback port, the real `eddy` binary as a child process, and random table operations over
//! every DynamoDB attribute type.
//!
//! Needs `moto_server` on PATH (`pip install 'moto[server]'`) and, for processor tests, the
//! example components built for `wasm32-wasip2` (`.ci/run` does both).

pub mod fakes;
pub mod kinesis;
pub mod moto;
pub mod ops;
pub mod process;
pub mod topology;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}
