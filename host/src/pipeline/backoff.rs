//! Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff And Jitter"):
//! the n-th wait is uniform in [0, min(cap, base · 2^n)].

use std::time::Duration;

use rand::Rng;

/// A backoff schedule.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first ceiling.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Backoff {
    /// The default for calls to AWS and sinks: 100ms doubling up to 10s.
    pub const DEFAULT: Backoff = Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(10) };

    /// The wait before retry number `attempt` (0-based).
    pub fn wait(&self, attempt: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.cap);
        ceiling.mul_f64(rand::rng().random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_within_the_ceiling() {
        let b = Backoff { base: Duration::from_millis(10), cap: Duration::from_millis(80) };
        for attempt in 0..30 {
            let ceiling = Duration::from_millis(10 * (1 << attempt.min(3)));
            assert!(b.wait(attempt) <= ceiling, "attempt {attempt}");
        }
    }
}
