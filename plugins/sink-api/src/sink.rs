//! The sink contract: how the host hands a route's output to a destination and learns what was
//! acknowledged.

use async_trait::async_trait;

use crate::record::ChangeRecord;

/// A destination for change records (ScyllaDB Alternator, CrateDB, a file, ...).
///
/// The host calls [`Sink::write`] with the records of one shard, in sequence order, and calls it
/// again for the same shard only after the previous call returned. A sink may be shared by many
/// shards, so calls for different shards can run concurrently.
///
/// Delivery is at least once: after a failure the host may hand the same records again, so a sink
/// must converge when a suffix of the stream is replayed (puts and deletes by key do).
#[async_trait]
pub trait Sink: Send + Sync {
    /// Writes `batch` and returns once the destination has acknowledged every record that is not
    /// in [`WriteOutcome::rejected`]. Writes of two changes to one key must not be reordered.
    ///
    /// # Errors
    /// [`SinkError::Retryable`] when nothing may be assumed written and the same batch should be
    /// tried again later (network errors, throttling, 5xx); [`SinkError::Fatal`] when retrying
    /// cannot help (bad credentials, a missing table): the host stops.
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError>;
}

/// What a successful [`Sink::write`] reports.
#[derive(Debug, Default, PartialEq)]
pub struct WriteOutcome {
    /// Records the destination refused for good (a value it cannot store, a schema conflict).
    /// The host sends them to the dead letter with the reason; all other records were written.
    pub rejected: Vec<Rejected>,
}

/// One record a sink refused permanently.
#[derive(Debug, PartialEq)]
pub struct Rejected {
    /// The index of the record in the batch given to [`Sink::write`].
    pub index: usize,
    /// Why, in the destination's words.
    pub reason: String,
}

/// Why a [`Sink::write`] failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A transient failure: retry the same batch after a backoff.
    #[error("{0}")]
    Retryable(String),
    /// A failure retrying will not fix.
    #[error("{0}")]
    Fatal(String),
}
