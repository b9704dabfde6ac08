//! The sink contract: the [`Sink`] trait every built-in sink implements, what a write reports
//! ([`WriteOutcome`], [`Rejected`], [`SinkError`]), the one retry policy every request follows
//! ([`RetryPolicy`], [`Timeouts`]), and the small helpers sink configs share (durations as the
//! pipeline YAML writes them, passwords masked in URLs).
//!
//! The host (`eddy`) decodes stream records into `eddy_record::ChangeRecord`s, runs them through
//! routes and processors, and hands each route's output to its sinks. Sinks live in their own
//! crates under `plugins/` and depend on this crate and `eddy-record`.

#![deny(missing_docs)]

pub mod duration;
pub mod forward;
pub mod redact;
mod retry;
mod sink;

pub use redact::redact;
pub use retry::{Backoff, RetryPolicy, Timeouts};
pub use sink::{Rejected, Sink, SinkError, WriteOutcome};
