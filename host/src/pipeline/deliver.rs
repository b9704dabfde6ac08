//! Handing one route's records to one sink: throttling counts, a bounded wait when stopping, and
//! what happens when a sink refuses a change.
//!
//! Sinks may keep only the last change of each key in a write (one request per key). If that
//! change is refused for good (an item over 400 KB, a CrateDB type conflict), the earlier changes
//! of the key were never sent, and the target would keep a version the source no longer has (a
//! REMOVE before the refused change, say). So the key's previous change in the batch is written
//! next, and so on: every key ends at the source's last *deliverable* state, whatever the batch
//! size, and only the refused changes go to the dead letter.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use eddy_record::{ChangeRecord, Item};
use eddy_sink_api::Sink;
use eddy_sink_api::{Rejected, SinkError};

use eddy_sink_api::RetryPolicy;

use super::PipelineError;
use crate::config::{AfterSinkFailure, OnSinkFailure};
use crate::stop::Stop;

/// A sink as a route holds it.
#[derive(Clone)]
pub struct SinkSlot {
    /// Its name in the pipeline file.
    pub name: String,
    /// Its type (`alternator`, ...): the `api` label of its throttling count.
    pub kind: &'static str,
    /// The sink.
    pub sink: Arc<dyn Sink>,
}

/// A route's metric handles for one of its sinks.
#[derive(Clone, Copy)]
pub(super) struct SinkMetrics<'m> {
    /// [`crate::metrics::SINK_WRITE_DURATION`].
    pub write_duration: &'m metrics::Histogram,
    /// [`crate::metrics::SINK_ERRORS`] of this route and sink.
    pub errors: &'m metrics::Counter,
}

/// What one sink made of a route's records.
pub(super) struct Delivered<'a> {
    /// How many count as written.
    pub written: usize,
    /// Records the sink refused, with its reason.
    pub refused: Vec<(&'a ChangeRecord, String)>,
    /// Records whose writes kept failing (`on_sink_failure: {then: dead_letter}`), with the
    /// sink's last error.
    pub failed: Vec<(&'a ChangeRecord, String)>,
}

/// [`deliver`] under the route's `on_sink_failure`: a write that fails (transiently, after the
/// sink's own retries) is tried `retries` more times with the retry policy's waits; then, with
/// `then: stop`, the error is returned (the shard rewinds), and with `then: dead_letter` the
/// records are bisected, in order, down to the single records whose writes still fail, and
/// those are returned as `failed` while the rest are delivered. A fatal sink error is returned
/// either way.
///
/// # Errors
/// As [`deliver`].
pub(super) async fn deliver_with_policy<'a>(
    slot: &SinkSlot,
    records: Vec<&'a ChangeRecord>,
    policy: &OnSinkFailure,
    retry: &RetryPolicy,
    stop: &Stop,
    m: SinkMetrics<'_>,
) -> Result<Delivered<'a>, PipelineError> {
    let mut delivered = Delivered { written: 0, refused: Vec::new(), failed: Vec::new() };
    // Ranges still to write, the next one last; the first is the whole batch.
    let mut todo: Vec<&[&'a ChangeRecord]> = vec![&records];
    while let Some(part) = todo.pop() {
        match with_retries(slot, part, policy.retries, retry, stop, m).await {
            Ok((written, refused)) => {
                delivered.written += written;
                delivered.refused.extend(refused);
            }
            Err(PipelineError::SinkFailed { sink, message, fatal: false })
                if policy.then == AfterSinkFailure::DeadLetter =>
            {
                if let [record] = part {
                    tracing::warn!(sink, sequence = record.dynamodb.sequence_number, "a record's writes keep failing; sending it to the dead letter (on_sink_failure: dead_letter): {message}");
                    delivered.failed.push((record, message));
                } else {
                    let (left, right) = part.split_at(part.len() / 2);
                    tracing::info!(
                        sink,
                        records = part.len(),
                        "a write keeps failing; bisecting it (on_sink_failure: dead_letter)"
                    );
                    todo.push(right);
                    todo.push(left);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(delivered)
}

/// [`deliver`], tried again up to `retries` times when it fails transiently.
async fn with_retries<'a>(
    slot: &SinkSlot,
    records: &[&'a ChangeRecord],
    retries: u32,
    retry: &RetryPolicy,
    stop: &Stop,
    m: SinkMetrics<'_>,
) -> Result<(usize, Vec<(&'a ChangeRecord, String)>), PipelineError> {
    let mut tried = 0;
    loop {
        match deliver(slot, records.to_vec(), stop, m).await {
            Err(PipelineError::SinkFailed { fatal: false, sink, message }) if tried < retries => {
                let wait = retry.backoff.wait(tried);
                tried += 1;
                tracing::warn!(
                    sink,
                    "{message}; trying the write again in {wait:?} ({tried} of on_sink_failure.retries {retries})"
                );
                if stop.sleep(wait).await {
                    return Err(PipelineError::Interrupted { sink });
                }
            }
            Err(PipelineError::SinkFailed { fatal: false, sink, message }) if tried > 0 => {
                return Err(PipelineError::SinkFailed {
                    sink,
                    message: format!("{message} (and {tried} more writes, on_sink_failure.retries)"),
                    fatal: false,
                })
            }
            other => return other,
        }
    }
}

/// Writes `records` (one shard's, in sequence order) to `slot` until each is acknowledged or
/// refused. Returns how many count as written (acknowledged, or replaced by a later change of
/// their key that was acknowledged) and the refused ones with the sink's reason.
///
/// # Errors
/// [`PipelineError::SinkFailed`] when a write fails (after the sink's own retries), and
/// [`PipelineError::Interrupted`] when stopping is asked meanwhile: nothing may be checkpointed.
pub(super) async fn deliver<'a>(
    slot: &SinkSlot,
    records: Vec<&'a ChangeRecord>,
    stop: &Stop,
    m: SinkMetrics<'_>,
) -> Result<(usize, Vec<(&'a ChangeRecord, String)>), PipelineError> {
    if records.is_empty() {
        return Ok((0, Vec::new()));
    }
    // The first write is the whole batch (no copies on the usual path); later rounds write the
    // previous changes of refused keys, `round_index` mapping their positions back to `records`.
    let mut rejected = write_once(slot, &records, stop, m).await?;
    if rejected.is_empty() {
        return Ok((records.len(), Vec::new()));
    }
    let mut refused: Vec<(usize, String)> = Vec::new();
    let mut round_index: Vec<usize> = (0..records.len()).collect();
    // The indices of each key's changes, in order.
    let mut by_key: HashMap<&Item, Vec<usize>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        by_key.entry(&r.dynamodb.keys).or_default().push(i);
    }
    while !rejected.is_empty() {
        let newly: HashSet<usize> = rejected.iter().map(|r| round_index[r.index]).collect();
        refused.extend(rejected.into_iter().map(|r| (round_index[r.index], r.reason)));
        let refused_set: HashSet<usize> = refused.iter().map(|(i, _)| *i).collect();
        // For each key whose last change in this round was refused: its latest earlier change
        // that was not refused.
        let mut last_in_round: HashMap<&Item, usize> = HashMap::new();
        for &i in &round_index {
            last_in_round.insert(&records[i].dynamodb.keys, i);
        }
        let mut next: Vec<usize> = last_in_round
            .into_iter()
            .filter(|(_, last)| newly.contains(last))
            .filter_map(|(key, last)| {
                by_key[key].iter().copied().filter(|&j| j < last && !refused_set.contains(&j)).max()
            })
            .collect();
        if next.is_empty() {
            break;
        }
        next.sort_unstable();
        tracing::info!(
            sink = slot.name,
            keys = next.len(),
            "a key's last change was refused; writing its previous change in the batch instead"
        );
        let round: Vec<&ChangeRecord> = next.iter().map(|&i| records[i]).collect();
        rejected = write_once(slot, &round, stop, m).await?;
        round_index = next;
    }
    refused.sort_by_key(|(i, _)| *i);
    let written = records.len() - refused.len();
    Ok((written, refused.into_iter().map(|(i, reason)| (records[i], reason)).collect()))
}

/// One write of `batch` (the sink retries its own requests under the retry policy; a write that
/// still fails is not retried here: the shard rewinds). Returns the refused records (indices into
/// `batch`).
async fn write_once(
    slot: &SinkSlot,
    batch: &[&ChangeRecord],
    stop: &Stop,
    m: SinkMetrics<'_>,
) -> Result<Vec<Rejected>, PipelineError> {
    let name = slot.name.as_str();
    let started = std::time::Instant::now();
    // A write still unanswered when stopping is asked gets a short grace, then is abandoned
    // (nothing is checkpointed; the batch is read again on the next start).
    let Some(outcome) = stop.within_grace(slot.sink.write(batch)).await else {
        return Err(PipelineError::Interrupted { sink: name.to_owned() });
    };
    m.write_duration.record(started.elapsed().as_secs_f64());
    match outcome {
        Ok(outcome) => {
            crate::events::Throttled { api: slot.kind, n: u64::from(outcome.throttled) }.emit();
            Ok(outcome.rejected)
        }
        Err(e) => {
            m.errors.increment(1);
            let fatal = matches!(e, SinkError::Fatal(_));
            if matches!(e, SinkError::Throttled(_)) {
                crate::events::Throttled { api: slot.kind, n: 1 }.emit();
            }
            Err(PipelineError::SinkFailed {
                sink: name.to_owned(),
                message: eddy_sink_api::redact(&e.to_string()),
                fatal,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use eddy_record::{AttributeValue, EventName, StreamRecord, StreamViewType};
    use eddy_sink_api::{Sink, WriteOutcome};

    use super::*;

    /// A key-value target that, like both built-in sinks, keeps only the last change per key of
    /// a write, and refuses any item with a `big` attribute (as DynamoDB refuses one over 400 KB).
    #[derive(Default)]
    struct Coalescing {
        table: Mutex<BTreeMap<String, String>>,
    }

    #[async_trait]
    impl Sink for Coalescing {
        async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
            let mut last: HashMap<&Item, usize> = HashMap::new();
            for (i, r) in batch.iter().enumerate() {
                last.insert(&r.dynamodb.keys, i);
            }
            let mut keep: Vec<usize> = last.into_values().collect();
            keep.sort_unstable();
            let mut outcome = WriteOutcome::default();
            let mut table = self.table.lock().unwrap();
            for i in keep {
                let r = batch[i];
                let key = format!("{:?}", r.dynamodb.keys);
                match (r.event_name, &r.dynamodb.new_image) {
                    (EventName::Remove, _) => {
                        table.remove(&key);
                    }
                    (_, Some(image)) if image.contains_key("big") => {
                        outcome.rejected.push(Rejected { index: i, reason: "item too large".into() })
                    }
                    (_, Some(image)) => {
                        table.insert(key, format!("{:?}", image["v"]));
                    }
                    (_, None) => outcome.rejected.push(Rejected { index: i, reason: "no image".into() }),
                }
            }
            outcome.rejected.sort_by_key(|r| r.index);
            Ok(outcome)
        }
    }

    fn change(seq: u32, key: &str, event: EventName, v: &str, big: bool) -> ChangeRecord {
        let keys: Item = [("id".to_owned(), AttributeValue::S(key.into()))].into();
        let mut image = keys.clone();
        image.insert("v".into(), AttributeValue::S(v.into()));
        if big {
            image.insert("big".into(), AttributeValue::Bool(true));
        }
        ChangeRecord {
            event_id: seq.to_string(),
            event_name: event,
            event_version: "1.1".into(),
            event_source: "aws:dynamodb".into(),
            aws_region: "us-east-1".into(),
            dynamodb: StreamRecord {
                approximate_creation_date_time: None,
                new_image: (event != EventName::Remove).then_some(image.into()),
                keys,
                old_image: None,
                sequence_number: seq.to_string(),
                size_bytes: 1,
                stream_view_type: StreamViewType::NewAndOldImages,
            },
            event_source_arn: String::new(),
            user_identity: None,
        }
    }

    /// Delivers `changes` in batches of `size`; returns the target and the refused sequence
    /// numbers.
    async fn run(changes: &[ChangeRecord], size: usize) -> (BTreeMap<String, String>, Vec<String>) {
        let sink = Arc::new(Coalescing::default());
        let slot = SinkSlot { name: "t".into(), kind: "test", sink: sink.clone() };
        let (_handle, stop) = crate::stop::channel();
        let histogram = metrics::Histogram::noop();
        let errors = metrics::Counter::noop();
        let m = SinkMetrics { write_duration: &histogram, errors: &errors };
        let mut refused = Vec::new();
        for chunk in changes.chunks(size) {
            let records: Vec<&ChangeRecord> = chunk.iter().collect();
            let (written, rejected) = deliver(&slot, records, &stop, m).await.unwrap();
            assert_eq!(written + rejected.len(), chunk.len());
            refused.extend(rejected.into_iter().map(|(r, _)| r.dynamodb.sequence_number.clone()));
        }
        let table = sink.table.lock().unwrap().clone();
        (table, refused)
    }

    #[tokio::test]
    async fn a_refused_last_change_leaves_the_key_at_its_last_deliverable_state_at_any_batch_size() {
        use EventName::*;
        let changes = [
            change(1, "a", Insert, "a1", false),
            change(2, "b", Insert, "b1", false),
            change(3, "a", Remove, "", false),
            change(4, "b", Modify, "b2", false),
            change(5, "a", Insert, "a-huge", true),
            change(6, "b", Modify, "b-huge", true),
            change(7, "b", Modify, "b-huge-2", true),
            change(8, "c", Insert, "c1", false),
            change(9, "c", Modify, "c-huge", true),
            change(10, "c", Modify, "c2", false),
        ];
        let expected: BTreeMap<String, String> = [
            (format!("{:?}", changes[1].dynamodb.keys), "S(\"b2\")".to_owned()),
            (format!("{:?}", changes[7].dynamodb.keys), "S(\"c2\")".to_owned()),
        ]
        .into();
        for size in 1..=changes.len() {
            let (table, refused) = run(&changes, size).await;
            // `a` was removed before its refused insert: it stays removed; `b` stays at b2.
            assert_eq!(table, expected, "batch size {size}");
            // Refused changes are reported; a refused change that a later one replaced within a
            // batch was never sent, so it is not.
            assert!(refused.contains(&"5".to_owned()) && refused.contains(&"7".to_owned()), "{size}: {refused:?}");
        }
    }

    /// A sink whose whole write fails (as a 5xx after the sink's retries) whenever the batch
    /// holds a `poison` record, and that records every acknowledged write.
    #[derive(Default)]
    struct Poisoned {
        written: Mutex<Vec<String>>,
        calls: Mutex<usize>,
    }

    #[async_trait]
    impl Sink for Poisoned {
        async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
            *self.calls.lock().unwrap() += 1;
            if batch.iter().any(|r| r.dynamodb.new_image.as_ref().is_some_and(|i| i.contains_key("big"))) {
                return Err(SinkError::Retryable("HTTP 500 (injected)".into()));
            }
            self.written.lock().unwrap().extend(batch.iter().map(|r| r.dynamodb.sequence_number.clone()));
            Ok(WriteOutcome::default())
        }
    }

    #[tokio::test]
    async fn dead_letter_policy_bisects_down_to_the_failing_records_and_delivers_the_rest_in_order() {
        use crate::config::{AfterSinkFailure, OnSinkFailure};
        let changes: Vec<ChangeRecord> =
            (1..=40).map(|i| change(i, &format!("k{}", i % 7), EventName::Modify, "v", i == 13 || i == 31)).collect();
        let records: Vec<&ChangeRecord> = changes.iter().collect();
        let sink = Arc::new(Poisoned::default());
        let slot = SinkSlot { name: "t".into(), kind: "test", sink: sink.clone() };
        let (_handle, stop) = crate::stop::channel();
        let retry = RetryPolicy {
            attempts: 1,
            backoff: eddy_sink_api::Backoff {
                base_delay: std::time::Duration::from_millis(1),
                max_delay: std::time::Duration::from_millis(1),
            },
        };
        let histogram = metrics::Histogram::noop();
        let errors = metrics::Counter::noop();
        let m = SinkMetrics { write_duration: &histogram, errors: &errors };

        let stop_policy = OnSinkFailure { retries: 1, then: AfterSinkFailure::Stop };
        let failed = deliver_with_policy(&slot, records.clone(), &stop_policy, &retry, &stop, m).await;
        match failed {
            Err(PipelineError::SinkFailed { message, fatal: false, .. }) => {
                assert!(message.contains("1 more writes"), "{message}")
            }
            other => panic!("expected the failure back, got {:?}", other.map(|d| d.written)),
        }
        assert_eq!(*sink.calls.lock().unwrap(), 2, "one write and one retry");
        assert!(sink.written.lock().unwrap().is_empty());

        let policy = OnSinkFailure { retries: 1, then: AfterSinkFailure::DeadLetter };
        let delivered = deliver_with_policy(&slot, records, &policy, &retry, &stop, m).await.unwrap();
        let failed: Vec<&str> = delivered.failed.iter().map(|(r, _)| r.dynamodb.sequence_number.as_str()).collect();
        assert_eq!(failed, ["13", "31"]);
        assert!(delivered.failed.iter().all(|(_, e)| e.contains("HTTP 500")));
        assert_eq!(delivered.written, 38);
        let expected: Vec<String> = (1..=40).filter(|i| *i != 13 && *i != 31).map(|i| i.to_string()).collect();
        assert_eq!(*sink.written.lock().unwrap(), expected, "the rest, once each, in sequence order");
    }
}
