//! `source.max_inflight_bytes`: one budget for the pages a process holds, over all its shard
//! readers (and snapshot segments).
//!
//! A reader reserves room before each GetRecords (or Scan) call, for the most the source's
//! answer can be ([`MemoryBudget::reserve`]), and sets the reservation to the page's measured
//! size once it has it ([`MemoryPermit::resize`]). The page's permit lives as long as the page:
//! through the pipeline (and in a lane's queue) until it is acknowledged. So a process with
//! hundreds of shards in backlog holds at most the budget in pages, whatever the shard count,
//! instead of two pages a shard.
//!
//! - Fair: the budget is a FIFO semaphore (tokio's), counted in KiB; a reader waiting for room
//!   is served before any that asked after it, so no shard starves.
//! - No reader waits while holding a page: the next page fetched ahead during the pipeline
//!   takes room only if it is free ([`MemoryBudget::try_reserve`]), otherwise the reader fetches
//!   it after the current page is acknowledged, holding nothing. Readers can therefore never
//!   wait for each other.
//! - A page larger than the whole budget still goes, alone: its reservation is the whole budget.
//! - A page larger than its reservation (a source answering over the API's maximum) takes the
//!   difference if it is free and otherwise goes on over budget, counted in
//!   [`crate::metrics::INFLIGHT_BYTES`] (never dropped, never waiting while holding a page).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes a reader expects for a decoded record besides its share of the answer (the record's
/// fields, keys and event ids): measured ~300 bytes for PetTracker records.
pub const RECORD_OVERHEAD: u64 = 320;

/// The budget's unit: permits are KiB, so that a 4 TiB budget still fits in a `u32` request.
const UNIT: u64 = 1024;

/// The process's budget for the pages it holds, in bytes.
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    /// The budget, in KiB.
    limit: u64,
    /// KiB held now, including what pages hold over their reservation.
    held: AtomicU64,
    /// The most KiB [`Self::held`] has been.
    peak: AtomicU64,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget").field("limit_bytes", &self.limit()).field("held_bytes", &self.held()).finish()
    }
}

impl MemoryBudget {
    /// A budget of `bytes` (rounded up to whole KiB, at least 1 KiB).
    pub fn new(bytes: u64) -> Arc<Self> {
        let limit = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS as u64);
        metrics::gauge!(crate::metrics::INFLIGHT_BYTES_LIMIT).set((limit * UNIT) as f64);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(limit as usize)),
            limit,
            held: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        })
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit * UNIT
    }

    /// Bytes held now by pages (over the budget only when a page outgrew its reservation).
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed) * UNIT
    }

    /// The most bytes held at once so far.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed) * UNIT
    }

    /// Room for `bytes` (at most the whole budget), once it is free; waits behind earlier
    /// requests (first come, first served).
    pub async fn reserve(self: &Arc<Self>, bytes: u64) -> MemoryPermit {
        let kib = self.kib(bytes);
        let permit = Arc::clone(&self.permits).acquire_many_owned(kib).await.expect("the semaphore is never closed");
        self.permit(permit)
    }

    /// Room for `bytes` (at most the whole budget) if it is free now and nobody waits for room.
    pub fn try_reserve(self: &Arc<Self>, bytes: u64) -> Option<MemoryPermit> {
        let kib = self.kib(bytes);
        let permit = Arc::clone(&self.permits).try_acquire_many_owned(kib).ok()?;
        Some(self.permit(permit))
    }

    fn kib(&self, bytes: u64) -> u32 {
        bytes.div_ceil(UNIT).clamp(1, self.limit).min(u64::from(u32::MAX)) as u32
    }

    fn permit(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> MemoryPermit {
        let kib = permit.num_permits() as u64;
        self.add(kib);
        MemoryPermit { budget: Arc::clone(self), permit: Some(permit), over: 0 }
    }

    fn add(&self, kib: u64) {
        let now = self.held.fetch_add(kib, Ordering::Relaxed) + kib;
        self.peak.fetch_max(now, Ordering::Relaxed);
        metrics::gauge!(crate::metrics::INFLIGHT_BYTES).set((now * UNIT) as f64);
    }

    fn sub(&self, kib: u64) {
        let now = self.held.fetch_sub(kib, Ordering::Relaxed) - kib;
        metrics::gauge!(crate::metrics::INFLIGHT_BYTES).set((now * UNIT) as f64);
    }
}

/// Room one page holds in a [`MemoryBudget`]; given back when dropped.
pub struct MemoryPermit {
    budget: Arc<MemoryBudget>,
    permit: Option<OwnedSemaphorePermit>,
    /// KiB the page holds over its permit (it outgrew its reservation and the budget had no room).
    over: u64,
}

impl std::fmt::Debug for MemoryPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryPermit").field("bytes", &self.bytes()).finish()
    }
}

impl MemoryPermit {
    /// The bytes this permit holds (its room in the budget and any excess over it).
    pub fn bytes(&self) -> u64 {
        (self.permit.as_ref().map_or(0, |p| p.num_permits() as u64) + self.over) * UNIT
    }

    /// Sets what the page holds to `bytes` (its measured size): gives back the room it does not
    /// need, or takes more if the budget has it free now. Never waits (see the module's rules).
    pub fn resize(&mut self, bytes: u64) {
        let want = bytes.div_ceil(UNIT).max(1);
        let budget = Arc::clone(&self.budget);
        let Some(permit) = self.permit.as_mut() else { return };
        let have = permit.num_permits() as u64 + self.over;
        if want < have {
            let mut give = have - want;
            let from_over = give.min(self.over);
            self.over -= from_over;
            give -= from_over;
            if give > 0 {
                drop(permit.split(give as usize));
            }
            budget.sub(have - want);
        } else if want > have {
            let more = want - have;
            match Arc::clone(&budget.permits).try_acquire_many_owned(more.min(u64::from(u32::MAX)) as u32) {
                Ok(extra) => permit.merge(extra),
                Err(_) => self.over += more,
            }
            budget.add(more);
        }
    }
}

impl Drop for MemoryPermit {
    fn drop(&mut self) {
        let bytes = self.bytes() / UNIT;
        self.budget.sub(bytes);
    }
}

/// The bytes a page holds: the answer it was read from (its records keep slices of it) and
/// [`RECORD_OVERHEAD`] a record.
pub fn page_bytes(page: &crate::source::RecordsPage) -> u64 {
    page.bytes + (page.records.len() + page.undecodable.len()) as u64 * RECORD_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn room_is_given_back_when_a_page_shrinks_or_ends_and_a_page_over_the_budget_goes_alone() {
        let budget = MemoryBudget::new(100 * 1024);
        let mut a = budget.reserve(60 * 1024).await;
        assert_eq!(budget.held(), 60 * 1024);
        assert!(budget.try_reserve(50 * 1024).is_none(), "no room");
        a.resize(10 * 1024);
        assert_eq!(budget.held(), 10 * 1024);
        let b = budget.try_reserve(50 * 1024).expect("room given back");
        assert_eq!(budget.held(), 60 * 1024);
        // Larger than the budget: its reservation is what is left once everything else is back.
        drop(a);
        drop(b);
        let mut huge = budget.reserve(10 << 20).await;
        assert_eq!(huge.bytes(), 100 * 1024);
        assert!(budget.try_reserve(1).is_none());
        huge.resize(5 << 20);
        assert_eq!(budget.held(), 5 << 20, "over the budget, counted, not waited for");
        huge.resize(20 * 1024);
        assert_eq!(budget.held(), 20 * 1024);
        assert!(budget.try_reserve(80 * 1024).is_some());
        drop(huge);
        assert_eq!(budget.held(), 0);
        assert_eq!(budget.peak(), 5 << 20);
    }

    #[tokio::test]
    async fn a_waiting_reader_is_served_before_later_ones() {
        let budget = MemoryBudget::new(10 * 1024);
        let first = budget.reserve(10 * 1024).await;
        let waiting = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.reserve(8 * 1024).await })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        drop(first);
        let second = waiting.await.unwrap();
        assert_eq!(second.bytes(), 8 * 1024);
        assert!(budget.try_reserve(4 * 1024).is_none(), "only 2 KiB left");
    }
}
