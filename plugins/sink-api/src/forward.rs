//! What the forwarding sinks (`sqs`, `sns`, `kinesis`, `http`, ...) share: the body of a
//! forwarded change ([`Format`]), how one write is cut into requests that keep a key's changes in
//! order ([`requests`]), and the ids FIFO destinations order and deduplicate by ([`group_id`],
//! [`deduplication_id`]).

use std::collections::HashSet;

use eddy_record::{ChangeRecord, Item};
use serde::Deserialize;

use crate::{Rejected, RetryPolicy, SinkError};

/// What a forwarding sink sends for a change (`format:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The change record as Lambda receives it (`eventName`, `dynamodb.Keys`, `NewImage`,
    /// `OldImage` in DynamoDB JSON, ...).
    #[default]
    Record,
    /// The new image as plain JSON (see `eddy_record::plain`); for a REMOVE, the keys and
    /// `"deleted": true`.
    Item,
}

impl Format {
    /// The body of `record` in this format, as JSON text.
    pub fn body(self, record: &ChangeRecord) -> String {
        match self {
            Format::Record => serde_json::to_string(record).expect("records serialize"),
            Format::Item => eddy_record::plain::change_text(record),
        }
    }
}

/// Cuts one write into requests: each a list of batch indexes, at most `max_entries` entries and
/// `max_bytes` of bodies, never two changes of one key, in batch order. Sent one after the other,
/// each once it is wholly acknowledged, they send a key's changes in sequence, never
/// concurrently; and a request's failed entries can be sent again without reordering any key.
/// `sizes[i]` is entry `i`'s size; `None` entries (refused before sending) are left out.
pub fn requests(
    batch: &[&ChangeRecord],
    sizes: &[Option<usize>],
    max_entries: usize,
    max_bytes: usize,
) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut keys: HashSet<&Item> = HashSet::new();
    let mut bytes = 0;
    for (i, record) in batch.iter().enumerate() {
        let Some(size) = sizes[i] else { continue };
        let key = &record.dynamodb.keys;
        if !current.is_empty() && (current.len() == max_entries || bytes + size > max_bytes || keys.contains(key)) {
            out.push(std::mem::take(&mut current));
            keys.clear();
            bytes = 0;
        }
        current.push(i);
        keys.insert(key);
        bytes += size;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The item's key as text, for a FIFO `MessageGroupId` or a Kinesis partition key: the key as
/// DynamoDB JSON (attributes in name order), or its SHA-256 in hex when that is over `max`
/// characters.
pub fn key_id(keys: &Item, max: usize) -> String {
    let text = serde_json::to_string(keys).expect("keys serialize");
    if text.len() <= max {
        text
    } else {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A FIFO queue's or topic's `MessageGroupId` (at most 128 characters): [`key_id`].
pub fn group_id(keys: &Item) -> String {
    key_id(keys, 128)
}

/// A FIFO `MessageDeduplicationId`: the change's `eventID` (at most 128 characters), so a batch
/// read again after a restart is not delivered twice within the five-minute window.
pub fn deduplication_id(record: &ChangeRecord) -> String {
    record.event_id.chars().take(128).collect()
}

/// One entry a batch API's answer failed (SQS `Failed`, SNS `Failed`, Kinesis and EventBridge
/// entries with an `ErrorCode`).
#[derive(Debug)]
pub struct EntryFailure {
    /// The entry's index in the write's batch.
    pub index: usize,
    /// Whether sending it again may succeed (throttling, an internal failure); otherwise it is
    /// refused for good and goes to the dead letter.
    pub transient: bool,
    /// Whether the failure was throttling (counted in `eddy_throttled_total`).
    pub throttled: bool,
    /// Why, in the destination's words.
    pub reason: String,
}

/// Sends the entries `indexes` (batch indexes, in batch order) in one request with `send`, which
/// is retried as a whole under `retry`; then the entries the answer failed transiently are sent
/// again, alone, until none is left (waiting between rounds as between retries), at most
/// `retry.attempts` rounds. Entries keep their batch order, and a request never holds a key twice
/// ([`requests`]), so sending a subset again cannot reorder a key's changes. Returns the entries
/// refused for good; `what` names the destination in errors.
///
/// # Errors
/// The request's error after its retries, or entries still failing after every round.
pub async fn send_entries<F, Fut>(
    retry: &RetryPolicy,
    throttled: &mut u32,
    what: &str,
    indexes: &[usize],
    send: F,
) -> Result<Vec<Rejected>, SinkError>
where
    F: Fn(Vec<usize>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<EntryFailure>, SinkError>>,
{
    let mut rejected = Vec::new();
    let mut left = indexes.to_vec();
    let mut round = 0;
    loop {
        let failures = retry.run(throttled, || send(left.clone())).await?;
        let mut again = Vec::new();
        let mut last = String::new();
        for failure in failures {
            if failure.throttled {
                *throttled += 1;
            }
            if failure.transient {
                again.push(failure.index);
                last = failure.reason;
            } else {
                rejected.push(Rejected { index: failure.index, reason: failure.reason });
            }
        }
        if again.is_empty() {
            return Ok(rejected);
        }
        round += 1;
        if round >= retry.attempts.max(1) {
            return Err(SinkError::Retryable(format!(
                "{what}: {} entries still failing after {round} tries: {last}",
                again.len()
            )));
        }
        tokio::time::sleep(retry.backoff.wait(round - 1)).await;
        again.sort_unstable();
        left = again;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, key: &str) -> ChangeRecord {
        serde_json::from_value(serde_json::json!({
            "eventID": format!("e{seq}"), "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "eventSourceARN": "arn",
            "dynamodb": {"Keys": {"pk": {"S": key}}, "NewImage": {"pk": {"S": key}, "n": {"N": "1"}},
                         "SequenceNumber": seq.to_string(), "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"}
        }))
        .unwrap()
    }

    /// Requests hold at most N entries, never two changes of one key, and stay under the size
    /// limit (a single entry over it still goes alone); refused entries are left out; batch
    /// order is kept.
    #[test]
    fn requests_never_hold_a_key_twice_nor_more_entries_or_bytes_than_allowed() {
        let keys = ["a", "b", "a", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "b"];
        let records: Vec<ChangeRecord> = keys.iter().enumerate().map(|(i, k)| record(i as u64, k)).collect();
        let batch: Vec<&ChangeRecord> = records.iter().collect();
        let mut sizes = vec![Some(10); batch.len()];
        sizes[5] = None;
        assert_eq!(
            requests(&batch, &sizes, 10, 1000),
            vec![vec![0, 1], vec![2, 3, 4, 6, 7, 8, 9, 10, 11, 12], vec![13]]
        );
        assert_eq!(
            requests(&batch[1..4], &[Some(10); 3], 10, 25),
            vec![vec![0, 1], vec![2]],
            "25 bytes hold two of 10"
        );
        assert_eq!(
            requests(&batch[..2], &[Some(40), Some(5)], 10, 30),
            vec![vec![0], vec![1]],
            "one over the limit alone"
        );
    }

    /// Refused entries come back at once; transient ones are sent again alone, in batch order,
    /// counted as throttling when they were; entries that keep failing end in an error.
    #[tokio::test]
    async fn failed_entries_are_sent_again_alone_and_refused_ones_returned() {
        let retry = RetryPolicy {
            attempts: 3,
            backoff: crate::Backoff {
                base_delay: std::time::Duration::from_millis(1),
                max_delay: std::time::Duration::from_millis(1),
            },
        };
        let calls = std::sync::Mutex::new(Vec::new());
        let mut throttled = 0;
        let rejected = send_entries(&retry, &mut throttled, "q", &[0, 1, 2, 3], |left| {
            calls.lock().unwrap().push(left.clone());
            let first = left.len() == 4;
            async move {
                Ok(if first {
                    vec![
                        EntryFailure { index: 3, transient: true, throttled: true, reason: "slow down".into() },
                        EntryFailure { index: 1, transient: true, throttled: false, reason: "internal".into() },
                        EntryFailure { index: 2, transient: false, throttled: false, reason: "too large".into() },
                    ]
                } else {
                    Vec::new()
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(rejected, vec![Rejected { index: 2, reason: "too large".into() }]);
        assert_eq!(*calls.lock().unwrap(), vec![vec![0, 1, 2, 3], vec![1, 3]]);
        assert_eq!(throttled, 1);

        let e = send_entries(&retry, &mut throttled, "q", &[5], |left| async move {
            Ok(vec![EntryFailure { index: left[0], transient: true, throttled: false, reason: "internal".into() }])
        })
        .await
        .unwrap_err();
        assert_eq!(e.to_string(), "q: 1 entries still failing after 3 tries: internal");
    }

    #[test]
    fn bodies_and_ids() {
        let r = record(7, "a");
        let body: serde_json::Value = serde_json::from_str(&Format::Record.body(&r)).unwrap();
        assert_eq!(body["dynamodb"]["NewImage"]["n"], serde_json::json!({"N": "1"}));
        assert_eq!(Format::Item.body(&r), r#"{"n":1,"pk":"a"}"#);
        assert_eq!(group_id(&r.dynamodb.keys), r#"{"pk":{"S":"a"}}"#);
        let long = record(8, &"x".repeat(200));
        assert_eq!(group_id(&long.dynamodb.keys).len(), 64, "hashed past 128 characters");
        assert_eq!(key_id(&r.dynamodb.keys, 10).len(), 64);
        assert_eq!(deduplication_id(&r), "e7");
    }
}
