//! Counters for the run summary: records read, delivered per sink, dropped, dead-lettered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Process-wide counters.
pub struct Stats {
    started: Instant,
    /// Records read from the stream.
    pub read: AtomicU64,
    /// Records a processor dropped, per route.
    pub dropped: AtomicU64,
    /// Records sent to the dead letter.
    pub dead_lettered: AtomicU64,
    /// Records acknowledged, per sink name.
    pub written: BTreeMap<String, AtomicU64>,
    /// Records a route's filter left out, per route name.
    pub filtered: BTreeMap<String, AtomicU64>,
}

impl Stats {
    /// Zeroed counters for these sinks and routes.
    pub fn new<'a>(sinks: impl IntoIterator<Item = &'a String>, routes: impl IntoIterator<Item = &'a String>) -> Self {
        Self {
            started: Instant::now(),
            read: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            written: sinks.into_iter().map(|s| (s.clone(), AtomicU64::new(0))).collect(),
            filtered: routes.into_iter().map(|s| (s.clone(), AtomicU64::new(0))).collect(),
        }
    }

    /// Adds `n` to sink `name`'s count.
    pub fn add_written(&self, name: &str, n: u64) {
        if let Some(c) = self.written.get(name) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Adds `n` to route `name`'s filtered-out count.
    pub fn add_filtered(&self, name: &str, n: u64) {
        if let Some(c) = self.filtered.get(name) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// One line: counts, elapsed time and the read rate.
    pub fn summary(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let read = self.read.load(Ordering::Relaxed);
        let mut line = format!(
            "read {read} records in {secs:.1}s ({:.0} records/s); dropped by processors {}; dead-lettered {}",
            read as f64 / secs.max(1e-9),
            self.dropped.load(Ordering::Relaxed),
            self.dead_lettered.load(Ordering::Relaxed)
        );
        for (name, n) in &self.filtered {
            line.push_str(&format!("; route {name}: {} filtered out", n.load(Ordering::Relaxed)));
        }
        for (name, n) in &self.written {
            line.push_str(&format!("; sink {name}: {} written", n.load(Ordering::Relaxed)));
        }
        line
    }
}
