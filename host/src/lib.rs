//! eddy: a DynamoDB Streams processor host.
//!
//! It reads a table's change stream (shard discovery, polling, checkpoints, backoff), passes
//! every change record through routes of WebAssembly processors, and writes the result to sinks
//! (ScyllaDB Alternator, files, ...), at least once and in shard order. See README.md for the
//! configuration and docs/architecture.md for the record's way through and the rules it follows.
//!
//! Layout (docs/architecture.md walks through it): [`config`] (the file's shell) and [`spec`]
//! (what component sections share); [`source`] (the streams API and its types), `coordinator`
//! (discovery, lineage, one reader per shard), [`pipeline`] (routes, processors, sinks),
//! [`sinks`] (the sink registry), [`dead_letter`] and [`replay`], `checkpoint` and `lease`
//! (progress and ownership), `snapshot`, [`wasm`] (the processor host), [`events`] and
//! [`metrics`], [`app`] (assembly). The modules only this crate uses are `pub(crate)`.

#![deny(missing_docs)]

pub mod access;
pub mod app;
pub(crate) mod aws;
pub(crate) mod checkpoint;
pub mod config;
pub(crate) mod coordinator;
pub mod dead_letter;
pub mod events;
pub(crate) mod health;
pub(crate) mod lease;
pub mod memory;
pub mod metrics;
pub mod pattern;
pub mod pipeline;
pub mod plugin_new;
pub mod plugin_test;
pub mod replay;
pub mod sinks;
pub(crate) mod snapshot;
pub mod source;
pub mod spec;
pub mod status;
pub mod stop;
#[cfg(test)]
pub(crate) mod testing;
pub mod wasm;
