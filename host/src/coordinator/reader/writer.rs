//! Where a shard's batches go: one pipeline worker, or lanes (`parallelization_factor` > 1).

use crate::pipeline::lanes::Lanes;
use crate::pipeline::{Held, Worker};

/// Where a shard's batches go: one worker, or lanes (`parallelization_factor` > 1).
pub(super) enum Writer {
    /// One worker; `held` lists the pages (worker page number, last sequence number) not yet
    /// checkpointed because a batching route holds records of them or of an earlier page.
    Direct {
        /// The worker.
        worker: Worker,
        /// Pages not yet checkpointable.
        held: Held<Option<String>>,
    },
    /// Lanes by key.
    Lanes(Lanes),
}

impl Writer {
    /// Waits until the lanes finish a page (its room in the memory budget is then given back at
    /// the next [`Lanes::settled`]); never, for one worker, which holds no page between calls.
    pub(super) async fn finished_one(&mut self) {
        match self {
            Writer::Lanes(lanes) => lanes.finished_one().await,
            Writer::Direct { .. } => std::future::pending().await,
        }
    }
}

/// Records page `page` (with its last sequence number) as processed, and returns the newest
/// last sequence number of the pages now checkpointable: those before `oldest_held` (every page
/// when nothing is held).
pub(super) fn release(
    held: &mut Held<Option<String>>,
    page: u64,
    last: Option<String>,
    oldest_held: Option<u64>,
) -> Option<String> {
    held.release(page, last, oldest_held).into_iter().flatten().next_back()
}
