//! The sink contract: how the host hands a route's output to a destination and learns what was
//! acknowledged.

use async_trait::async_trait;

use eddy_record::ChangeRecord;

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
    /// A sink retries each of its requests under the pipeline's [`crate::RetryPolicy`]; the host
    /// does not retry a write.
    ///
    /// # Errors
    /// [`SinkError::Retryable`] or [`SinkError::Throttled`] when a request still failed after
    /// its retries: nothing may be assumed written, and the shard rewinds to its checkpoint and
    /// reads the batch again; [`SinkError::Fatal`] when retrying cannot help (bad credentials, a
    /// missing table): the host stops.
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError>;
}

/// What a successful [`Sink::write`] reports.
#[derive(Debug, Default, PartialEq)]
pub struct WriteOutcome {
    /// Records the destination refused for good (a value it cannot store, a schema conflict).
    /// The host sends them to the dead letter with the reason; all other records were written.
    ///
    /// A sink may coalesce the changes of one key within a write (keep the last). When the change
    /// it kept is refused, the host writes that key's previous change of the batch next, and so
    /// on, so the key ends at its last deliverable state: report only the refused change.
    pub rejected: Vec<Rejected>,
    /// Requests the destination throttled on the way (and the sink retried), for
    /// `eddy_throttled_total`.
    pub throttled: u32,
}

/// One record a sink refused permanently.
#[derive(Debug, PartialEq)]
pub struct Rejected {
    /// The index of the record in the batch given to [`Sink::write`].
    pub index: usize,
    /// Why, in the destination's words.
    pub reason: String,
}

impl SinkError {
    /// The same error, its message saying it was tried `attempts` times.
    pub fn tried(self, attempts: u32) -> Self {
        match self {
            Self::Retryable(m) => Self::Retryable(format!("{m} (tried {attempts} times)")),
            Self::Throttled(m) => Self::Throttled(format!("{m} (tried {attempts} times)")),
            Self::Fatal(m) => Self::Fatal(m),
        }
    }
}

/// Why a [`Sink::write`] failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A transient failure (network, timeout, 5xx): retry the same batch after a backoff.
    #[error("{0}")]
    Retryable(String),
    /// The destination throttled the write (a transient failure that is counted as throttling).
    #[error("throttled: {0}")]
    Throttled(String),
    /// A failure retrying will not fix.
    #[error("{0}")]
    Fatal(String),
}
