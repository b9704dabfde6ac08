//! What a failure leads to: a failed call backs off and is tried again, a failed batch rewinds the
//! shard to its checkpoint, trimmed data stops the reader or is skipped (`on_trimmed`), and a
//! checkpoint is saved only while the lease is held.

use anyhow::bail;

use super::writer::Writer;
use super::ReaderSettings;
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::health::{Trouble, Watch};
use crate::pipeline::PipelineError;
use crate::source::polling::OnTrimmed;
use crate::source::{IteratorPosition, StreamsError};
use crate::stop::Stop;

/// What the reader does after a batch, a flush or a tick went through the pipeline.
pub(super) enum Step {
    /// It was acknowledged; carries the checkpoint saved, when it moved.
    Went(Option<String>),
    /// Stopping was asked (or the lease was lost while saving).
    Stopped,
    /// It failed transiently: read again from the checkpoint.
    Rewind,
}

/// What a failed batch of `shard` leads to: a stop, a rewind to the checkpoint after a backoff (a
/// transient sink failure, or a dead letter that could not be written: never read past
/// unwritten records), or an error (a sink that fails for good, or too many failed batches in a
/// row).
pub(super) async fn after_failure(
    shard: &str,
    settings: &ReaderSettings,
    stop: &Stop,
    e: PipelineError,
    writer: &mut Writer,
    sink_failures: &mut u32,
) -> anyhow::Result<Step> {
    match e {
        PipelineError::Interrupted { sink } => {
            tracing::info!(shard, sink, "stopping with a batch unacknowledged; it will be read again");
            Ok(Step::Stopped)
        }
        e @ (PipelineError::SinkFailed { fatal: false, .. } | PipelineError::DeadLetter(_)) => {
            *sink_failures += 1;
            if *sink_failures >= settings.max_consecutive_errors {
                return Err(anyhow::Error::new(e).context(format!(
                    "shard {shard}: {sink_failures} batches in a row could not be written \
                         (source.max_consecutive_errors)"
                )));
            }
            match writer {
                Writer::Lanes(lanes) => lanes.reset().await,
                Writer::Direct { worker, held } => {
                    worker.discard_held();
                    held.clear();
                }
            }
            let wait = settings.retry.backoff.wait(*sink_failures - 1);
            tracing::warn!(shard, "{e}; rewinding to the checkpoint and reading again in {wait:?}");
            if stop.sleep(wait).await {
                return Ok(Step::Stopped);
            }
            Ok(Step::Rewind)
        }
        e => Err(anyhow::Error::new(e).context(format!("shard {shard}"))),
    }
}

/// Saves a checkpoint; `Ok(false)` when the lease was lost, so the reader must stop without
/// reading further (the new owner resumes from the last checkpoint), or when stopping was asked
/// and the store did not answer within [`crate::stop::GRACE`] (the batch is read again next
/// time).
pub(super) async fn save(
    checkpoints: &dyn CheckpointStore,
    shard: &str,
    checkpoint: &Checkpoint,
    stop: &Stop,
) -> anyhow::Result<bool> {
    let Some(saved) = stop.within_grace(checkpoints.save(shard, checkpoint)).await else {
        tracing::warn!(shard, "stopping without the last checkpoint: the checkpoint store did not answer in time; the batch will be read again");
        return Ok(false);
    };
    match saved {
        Ok(()) => Ok(true),
        Err(e @ CheckpointError::LeaseLost { .. }) => {
            tracing::info!(shard, "stopping: {e}");
            Ok(false)
        }
        Err(CheckpointError::Store(e)) => Err(e),
    }
}

/// Applies `on_trimmed` when `position` is no longer in the stream.
pub(super) fn trimmed(
    shard: &str,
    settings: &ReaderSettings,
    position: &IteratorPosition,
    detail: &str,
) -> anyhow::Result<IteratorPosition> {
    let gap = match position {
        IteratorPosition::AfterSequence(s) => format!("records after sequence number {s}"),
        IteratorPosition::AtSequence(s) => format!("records from sequence number {s}"),
        _ => "records before the trim horizon".to_owned(),
    };
    match settings.on_trimmed {
            OnTrimmed::Fail => bail!(
                "shard {shard}: {gap} were trimmed from the stream (older than 24 hours) before eddy read them: \
                 those changes are lost. Set `source.on_trimmed: skip` to continue from the oldest record still there. ({detail})"
            ),
            OnTrimmed::Skip => {
                crate::events::TrimmedSkipped { shard, gap: &gap }.emit();
                Ok(IteratorPosition::TrimHorizon)
            }
        }
}

/// A failed streams call: which, and the shard's watch to tell.
pub(super) struct Failed<'a> {
    pub(super) call: &'static str,
    pub(super) watch: &'a Watch,
}

/// Counts a failure and waits, or gives up when there were too many in a row.
pub(super) async fn backoff(
    shard: &str,
    settings: &ReaderSettings,
    stop: &Stop,
    errors: &mut u32,
    failed: Failed<'_>,
    e: StreamsError,
) -> anyhow::Result<()> {
    let call = failed.call;
    if let StreamsError::Fatal(message) = &e {
        bail!("shard {shard}: {call} failed: {message}");
    }
    let text = e.to_string();
    let throttled = ["Throttl", "LimitExceeded", "ProvisionedThroughputExceeded"].iter().any(|t| text.contains(t));
    failed.watch.trouble(if throttled {
        Trouble::Throttled(format!("{call}: {text}"))
    } else {
        Trouble::Source(format!("{call}: {text}"))
    });
    *errors += 1;
    if *errors >= settings.max_consecutive_errors {
        bail!("shard {shard}: {call} failed {errors} times in a row (source.max_consecutive_errors); last error: {e}");
    }
    let wait = settings.retry.backoff.wait(*errors - 1);
    tracing::warn!(shard, attempt = *errors, "{call} failed, retrying in {wait:?}: {e}");
    stop.sleep(wait).await;
    Ok(())
}
