//! The one retry policy and the call timeouts every part of eddy uses: the streams API, the lease
//! table and every sink. The AWS SDK's own retries are switched off under it (the host's client
//! builder does that), so a failing request is tried exactly as often as this policy says.
//!
//! Where each level lives: a sink retries each of its requests under [`RetryPolicy::run`] (so a
//! write of several requests never redoes the ones that succeeded); a write that still fails
//! makes the shard rewind to its checkpoint and read again, and after
//! `source.max_consecutive_errors` such rewinds in a row eddy stops. Nothing else retries.

use std::time::Duration;

use crate::SinkError;

/// Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff And Jitter"):
/// the n-th wait (0-based) is uniform in `[0, min(max_delay, base_delay · 2^n)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first ceiling.
    pub base_delay: Duration,
    /// The largest ceiling.
    pub max_delay: Duration,
}

impl Backoff {
    /// The wait before retry number `attempt` (0-based).
    pub fn wait(&self, attempt: u32) -> Duration {
        self.ceiling(attempt).mul_f64(rand::random::<f64>())
    }

    /// The largest wait before retry number `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base_delay.saturating_mul(1u32 << attempt.min(20)).min(self.max_delay)
    }
}

/// `retry:` in the pipeline file: how often one call (a sink write, an `UnprocessedItems`
/// round, a streams call) is tried, and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries of one call before it is reported as failed (at least 1). Default 5.
    pub attempts: u32,
    /// The waits between tries.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            backoff: Backoff { base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(10) },
        }
    }
}

impl RetryPolicy {
    /// Runs `call` until it succeeds, fails with an error `transient` does not call transient,
    /// or has been tried `attempts` times, waiting [`Backoff::wait`] between tries. The one retry
    /// loop of eddy: sinks use it through [`RetryPolicy::run`], the lease store and the source's
    /// start-up with their own error types.
    ///
    /// # Errors
    /// The last error, with how many tries were made.
    pub async fn retry<T, E, F, Fut>(&self, mut call: F, mut transient: impl FnMut(&E) -> bool) -> Result<T, (E, u32)>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(e) => {
                    attempt += 1;
                    if !transient(&e) || attempt >= self.attempts.max(1) {
                        return Err((e, attempt));
                    }
                }
            }
            tokio::time::sleep(self.backoff.wait(attempt - 1)).await;
        }
    }

    /// [`RetryPolicy::retry`] for sink requests: [`SinkError::Fatal`] is not retried, and
    /// `throttled` counts the tries that ended in [`SinkError::Throttled`]. The last error says
    /// how many tries were made.
    ///
    /// # Errors
    /// The fatal error, or the last transient one.
    pub async fn run<T, F, Fut>(&self, throttled: &mut u32, call: F) -> Result<T, SinkError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SinkError>>,
    {
        let transient = |e: &SinkError| match e {
            SinkError::Fatal(_) => false,
            SinkError::Throttled(_) => {
                *throttled += 1;
                true
            }
            SinkError::Retryable(_) => true,
        };
        self.retry(call, transient).await.map_err(|(e, tries)| e.tried(tries))
    }
}

/// `timeouts:` in the pipeline file: every network call eddy makes has both. A call that runs
/// out of time is a transient error, retried by the [`RetryPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (TCP and TLS). Default 3s.
    pub connect: Duration,
    /// One attempt of one request, from sending it to the end of the answer. Default 10s.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(3), request: Duration::from_secs(10) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn run_retries_transient_errors_up_to_the_attempts_and_counts_throttling() {
        let policy = RetryPolicy {
            attempts: 3,
            backoff: Backoff { base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(1) },
        };
        let mut calls = 0;
        let mut throttled = 0;
        let r: Result<(), _> = policy
            .run(&mut throttled, || {
                calls += 1;
                async { Err(SinkError::Throttled("slow down".into())) }
            })
            .await;
        assert_eq!((calls, throttled), (3, 3));
        assert_eq!(r.unwrap_err().to_string(), "throttled: slow down (tried 3 times)");
        let mut calls = 0;
        let r: Result<u8, _> = policy
            .run(&mut throttled, || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 2 {
                        Err(SinkError::Retryable("flaky".into()))
                    } else {
                        Ok(7)
                    }
                }
            })
            .await;
        assert_eq!((r.unwrap(), calls), (7, 2));
        let mut calls = 0;
        let r: Result<(), _> = policy
            .run(&mut throttled, || {
                calls += 1;
                async { Err(SinkError::Fatal("no table".into())) }
            })
            .await;
        assert_eq!((r.unwrap_err().to_string(), calls), ("no table".to_owned(), 1));
    }

    #[test]
    fn waits_stay_within_the_ceiling() {
        let b = Backoff { base_delay: Duration::from_millis(10), max_delay: Duration::from_millis(80) };
        for attempt in 0..40 {
            let ceiling = Duration::from_millis(10 * (1 << attempt.min(3)));
            assert_eq!(b.ceiling(attempt), ceiling);
            assert!(b.wait(attempt) <= ceiling, "attempt {attempt}");
        }
    }
}
