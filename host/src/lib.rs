//! eddy: a DynamoDB Streams processor host.
//!
//! It reads a table's change stream (shard discovery, polling, checkpoints, backoff), passes
//! every change record through routes of WebAssembly processors, and writes the result to sinks
//! (ScyllaDB Alternator, files, ...), at least once and in shard order. See README.md for the
//! configuration and docs/architecture.md for the record's way through and the rules it follows.
//!
//! Layout: [`config`] (the YAML contract), [`source`] (the stream consumer), [`pipeline`]
//! (routes, dead letter), [`wasm`] (the processor host), [`checkpoint`] (progress), [`app`]
//! (assembly).

pub mod access;
pub mod app;
pub mod aws;
pub mod checkpoint;
pub mod config;
pub mod coordinator;
pub mod dead_letter;
pub mod events;
pub mod health;
pub mod lease;
pub mod metrics;
pub mod pattern;
pub mod pipeline;
pub mod plugin_new;
pub mod plugin_test;
pub mod replay;
pub mod sinks;
pub mod snapshot;
pub mod source;
pub mod spec;
pub mod stop;
#[cfg(test)]
pub(crate) mod testing;
pub mod wasm;
