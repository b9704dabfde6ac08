//! Stalls: a shard that has records to read but whose checkpoint has not moved for
//! `source.stall_after` (default 5 minutes) is stalled. Each shard reader keeps a [`Watch`]
//! (what it last achieved, and what went wrong since); a monitor ([`monitor`]) looks at every
//! watch each second, logs a shard once when it becomes stalled (with the reason eddy knows: a
//! failing sink, a failing dead letter, source errors, throttling) and once when it moves again,
//! and publishes the count in `eddy_shards_stalled`. `GET /ready` answers 503 while any shard of
//! the process is stalled, so an orchestrator (and `eddy status`) sees it.
//!
//! A shard is behind when its last page had records, or its last calls failed (nothing tells it
//! is caught up then); it is caught up after a poll that found its tip. An idle shard never
//! stalls; a shard that is read and checkpointed never stalls, however slowly.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::stop::Stop;

/// Why a shard has not moved, as far as its reader knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// A sink's writes keep failing (the shard rewinds and reads the batch again).
    Sink(String),
    /// The dead letter cannot be written.
    DeadLetter(String),
    /// Calls to the source's API fail.
    Source(String),
    /// The source throttles the reader.
    Throttled(String),
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trouble::Sink(e) => write!(f, "a sink keeps failing: {e}"),
            Trouble::DeadLetter(e) => write!(f, "the dead letter cannot be written: {e}"),
            Trouble::Source(e) => write!(f, "the source's API keeps failing: {e}"),
            Trouble::Throttled(e) => write!(f, "the source throttles the reader: {e}"),
        }
    }
}

#[derive(Debug)]
struct State {
    /// When the checkpoint last moved, or the shard was last caught up.
    moved: Instant,
    /// Whether records wait (or may wait) to be read.
    behind: bool,
    /// The last thing that went wrong since the shard last moved.
    trouble: Option<Trouble>,
    /// Whether the monitor reported it stalled.
    stalled: bool,
}

/// One shard's progress, as its reader reports it.
#[derive(Debug)]
pub struct Watch {
    shard: String,
    state: Mutex<State>,
}

impl Watch {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The checkpoint moved.
    pub fn moved(&self) {
        let mut s = self.state();
        s.moved = Instant::now();
        s.trouble = None;
    }

    /// A poll read records that are not the shard's tip: more wait.
    pub fn behind(&self) {
        self.state().behind = true;
    }

    /// A poll found the shard's tip: nothing waits to be read.
    pub fn caught_up(&self) {
        let mut s = self.state();
        s.behind = false;
        s.moved = Instant::now();
        s.trouble = None;
    }

    /// Something went wrong; until a poll finds the tip, records may be waiting.
    pub fn trouble(&self, trouble: Trouble) {
        let mut s = self.state();
        s.behind = true;
        s.trouble = Some(trouble);
    }
}

/// The watches of this process's readers.
static WATCHES: Mutex<Vec<Weak<Watch>>> = Mutex::new(Vec::new());

/// A watch for `shard`'s reader; the monitor forgets it once the reader drops it.
pub fn watch(shard: &str) -> Arc<Watch> {
    let watch = Arc::new(Watch {
        shard: shard.to_owned(),
        state: Mutex::new(State { moved: Instant::now(), behind: false, trouble: None, stalled: false }),
    });
    let mut all = WATCHES.lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(&watch));
    watch
}

/// One look at every watch: marks the shards behind for `stall_after` or more as stalled
/// (logging each change once) and returns how many are stalled now.
pub fn check(stall_after: Duration) -> usize {
    let watches: Vec<Arc<Watch>> = {
        let mut all = WATCHES.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    let mut stalled = 0;
    for w in watches {
        let mut s = w.state();
        let now = s.behind && s.moved.elapsed() >= stall_after;
        if now && !s.stalled {
            let why = s.trouble.as_ref().map_or_else(
                || "no error: the batch in flight has not been acknowledged (a slow sink or processor)".to_owned(),
                ToString::to_string,
            );
            tracing::warn!(
                shard = w.shard,
                "shard stalled: records wait to be read and its checkpoint has not moved for {}; {why}",
                humantime::format_duration(Duration::from_secs(s.moved.elapsed().as_secs()))
            );
        } else if !now && s.stalled {
            tracing::info!(shard = w.shard, "shard no longer stalled");
        }
        s.stalled = now;
        stalled += usize::from(now);
    }
    stalled
}

/// Looks at every watch each second (or each tenth of `stall_after`, if shorter) until `stop`,
/// publishing the count of stalled shards in `eddy_shards_stalled` and for `GET /ready`.
pub async fn monitor(stall_after: Duration, stop: Stop) {
    let every = (stall_after / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
    loop {
        let stalled = check(stall_after);
        crate::metrics::set_stalled(stalled);
        if stop.sleep(every).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_behind_whose_checkpoint_does_not_move_stalls_and_recovers_when_it_moves() {
        let after = Duration::from_millis(50);
        let w = watch("stall-test-shard");
        let stalled = |w: &Watch| w.state().stalled;
        // Idle (polls find the tip): never stalled.
        std::thread::sleep(after * 2);
        w.caught_up();
        check(after);
        assert!(!stalled(&w));
        // Records wait, a sink fails, nothing moves.
        w.behind();
        w.trouble(Trouble::Sink("sink replica failed: HTTP 500".into()));
        check(after);
        assert!(!stalled(&w), "not before stall_after");
        std::thread::sleep(after * 2);
        check(after);
        assert!(stalled(&w));
        // The checkpoint moves: no longer stalled.
        w.moved();
        check(after);
        assert!(!stalled(&w));
        // Caught up: nothing waits, however long it stays so.
        w.caught_up();
        std::thread::sleep(after * 2);
        check(after);
        assert!(!stalled(&w));
    }
}
