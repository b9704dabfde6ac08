//! What the forwarding sinks (`sqs`, `sns`, `kinesis`, `http`, ...) share: the body of a
//! forwarded change ([`Format`]), how one write is cut into requests that keep a key's changes in
//! order ([`requests`]), and the ids FIFO destinations order and deduplicate by ([`group_id`],
//! [`deduplication_id`]).

use std::collections::HashSet;

use eddy_record::{ChangeRecord, Item};
use serde::Deserialize;

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
