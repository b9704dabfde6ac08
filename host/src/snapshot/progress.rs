//! What a person sees while a snapshot runs: on a terminal, a progress bar (indicatif) with
//! items read, items/s, segments done of N and an ETA from DescribeTable's approximate item count;
//! without one, a log line every 10 seconds. Either way the gauge
//! `eddy_snapshot_segments_remaining` is kept up to date.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::Checkpoint;
use crate::lease::Leases;

/// How often the log line is written without a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A running progress display; [`Progress::finish`] ends it.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
    bar: Option<ProgressBar>,
    items: Arc<AtomicU64>,
    started: Instant,
    segments: u32,
}

impl Progress {
    /// Starts showing the progress of a `segments`-segment scan: `items` counts items read,
    /// `leases` tells which segments are done, `approximate_items` is the table's item count (0:
    /// unknown, no ETA).
    pub fn start(items: Arc<AtomicU64>, leases: Arc<dyn Leases>, segments: u32, approximate_items: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                if approximate_items > 0 { ProgressBar::new(approximate_items) } else { ProgressBar::no_length() };
            let template = if approximate_items > 0 {
                "snapshot {elapsed_precise} [{wide_bar}] {human_pos}/~{human_len} items, {per_sec}, ETA {eta}, {msg}"
            } else {
                "snapshot {elapsed_precise} {spinner} {human_pos} items, {per_sec}, {msg}"
            };
            bar.set_style(ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> "));
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        let started = Instant::now();
        let task = {
            let (bar, items) = (bar.clone(), Arc::clone(&items));
            tokio::spawn(async move {
                let mut logged = Instant::now();
                loop {
                    let done = segments_done(leases.as_ref(), segments).await;
                    metrics::gauge!(crate::metrics::SNAPSHOT_SEGMENTS_REMAINING).set(f64::from(segments - done));
                    let read = items.load(Ordering::Relaxed);
                    match &bar {
                        Some(bar) => {
                            bar.set_position(read);
                            bar.set_message(format!("segments {done}/{segments}"));
                        }
                        None if logged.elapsed() >= LOG_EVERY => {
                            logged = Instant::now();
                            log_line(read, started.elapsed(), done, segments, approximate_items);
                        }
                        None => {}
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        Self { task, bar, items, started, segments }
    }

    /// Ends the display with `done` segments of N done.
    pub fn finish(self, done: u32) {
        self.task.abort();
        metrics::gauge!(crate::metrics::SNAPSHOT_SEGMENTS_REMAINING)
            .set(f64::from(self.segments - done.min(self.segments)));
        let read = self.items.load(Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_position(read);
            bar.finish_with_message(format!("segments {done}/{}", self.segments));
        }
        log_line(read, self.started.elapsed(), done, self.segments, 0);
    }
}

/// Segments done, by any process; 0 when the store cannot be read right now (only the display
/// suffers).
async fn segments_done(leases: &dyn Leases, segments: u32) -> u32 {
    match leases.checkpoints().load().await {
        Ok(saved) => (saved.values().filter(|c| **c == Checkpoint::ShardEnd).count() as u32).min(segments),
        Err(_) => 0,
    }
}

fn log_line(read: u64, elapsed: Duration, done: u32, segments: u32, approximate_items: u64) {
    let rate = read as f64 / elapsed.as_secs_f64().max(0.001);
    let eta = (approximate_items > read && rate > 0.0).then(|| {
        humantime::format_duration(Duration::from_secs(((approximate_items - read) as f64 / rate) as u64)).to_string()
    });
    tracing::info!(
        items = read,
        items_per_second = rate.round() as u64,
        segments_done = done,
        segments,
        eta = eta.as_deref().unwrap_or("-"),
        "snapshot progress"
    );
}
