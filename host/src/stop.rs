//! The shutdown signal shared by every task: set once (SIGINT/SIGTERM, or a fatal error), seen by
//! all. Work in flight finishes; waits and polls end early.

use tokio::sync::watch;

/// How long a call still unanswered when stopping is asked may take before it is abandoned: a
/// sink write, a checkpoint or lease release in the lease table, a dead-letter write. What it
/// was for is not checkpointed, so its records are read again on the next start.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Sets the signal.
#[derive(Clone)]
pub struct StopHandle(watch::Sender<bool>);

/// Observes the signal.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

/// A new, unset signal.
pub fn channel() -> (StopHandle, Stop) {
    let (tx, rx) = watch::channel(false);
    (StopHandle(tx), Stop(rx))
}

impl StopHandle {
    /// Asks everything to stop.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Stop {
    /// Whether stopping was asked.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once stopping is asked (at once if it already was).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Runs `call`, abandoning it ([`GRACE`] after stopping is asked) if it has not answered by
    /// then: `None` when abandoned. A call made after stopping was asked gets [`GRACE`] too.
    pub async fn within_grace<F: std::future::Future>(&self, call: F) -> Option<F::Output> {
        tokio::select! {
            out = call => Some(out),
            () = async { self.wait().await; tokio::time::sleep(GRACE).await } => None,
        }
    }

    /// Sleeps for `d`, or less if stopping is asked; returns whether it was.
    pub async fn sleep(&self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_set(),
            _ = self.wait() => true,
        }
    }
}
