//! The table behind the canned stream, for `eddy snapshot`: DescribeTable and a parallel Scan.
//!
//! The table has one Scan segment per stream shard (the pipeline's `snapshot.segments` must be
//! the endpoint's `--shards`), and segment `s` holds `records_per_shard` items. Item `n` of a
//! segment is the `NewImage` of PetTracker sample record `n % DISTINCT_KEYS` (its `OldImage` for
//! a REMOVE) with the sort key `SK` made unique: `SEG#<s>#<n>`, `n` in twelve digits, so that an
//! `ExclusiveStartKey` says where its segment resumes and no two items share a key. Items are
//! rendered from pre-serialized templates, as GetRecords records are.

use std::sync::atomic::Ordering;

use serde::Deserialize;

use super::{State, DISTINCT_KEYS, STREAM_ARN};

/// The table's ARN.
pub const TABLE_ARN: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/PetTracker";

/// The mark where an item's `SK` value goes in its template.
const SK_MARK: &str = "SKSKSKSKSKSK";

/// One item: its text before and after the `SK` value, and its `PK` as DynamoDB JSON.
pub(super) struct ItemTemplate {
    before: String,
    after: String,
    pk: String,
}

impl ItemTemplate {
    /// The item of sample record `i`.
    pub(super) fn new(i: usize) -> Self {
        let record = crate::components::sample_record(i);
        let image = record.dynamodb.new_image.or(record.dynamodb.old_image).expect("a sample record has an image");
        let mut item = image.into_item();
        item.insert("SK".into(), eddy_record::AttributeValue::S(SK_MARK.into()));
        let pk = serde_json::to_string(&item["PK"]).expect("a value serializes");
        let text = serde_json::to_string(&item).expect("an item serializes");
        let (before, after) = text.split_once(SK_MARK).expect("the mark is in the item");
        Self { before: before.to_owned(), after: after.to_owned(), pk }
    }

    fn sort_key(segment: u32, n: u64) -> String {
        format!("SEG#{segment}#{n:012}")
    }

    fn render(&self, out: &mut Vec<u8>, segment: u32, n: u64) {
        out.extend_from_slice(self.before.as_bytes());
        out.extend_from_slice(Self::sort_key(segment, n).as_bytes());
        out.extend_from_slice(self.after.as_bytes());
    }
}

/// DescribeTable: `PetTracker`, keys `PK` (hash) and `SK` (range), its stream the canned stream.
pub(super) fn describe_table(state: &State) -> String {
    serde_json::json!({
        "Table": {
            "TableName": "PetTracker",
            "TableArn": TABLE_ARN,
            "TableStatus": "ACTIVE",
            "CreationDateTime": 1_700_000_000.0,
            "KeySchema": [
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            "ItemCount": state.spec.records_per_shard * state.spec.shards as u64,
            "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "LatestStreamArn": STREAM_ARN,
            "LatestStreamLabel": "2024-01-01T00:00:00.000",
        }
    })
    .to_string()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScanRequest {
    #[serde(default)]
    segment: u32,
    #[serde(default = "one")]
    total_segments: u32,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    exclusive_start_key: Option<serde_json::Value>,
}

fn one() -> u32 {
    1
}

/// Scan: up to `Limit` (at most 1,000) items of the request's segment after its
/// `ExclusiveStartKey`, and a `LastEvaluatedKey` unless the segment is read to its end.
pub(super) fn scan(state: &State, body: &[u8]) -> Result<Vec<u8>, String> {
    let request: ScanRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if request.total_segments as usize != state.spec.shards {
        return Err(format!(
            "the bench table has {} segments (its shards), not TotalSegments {}",
            state.spec.shards, request.total_segments
        ));
    }
    let start = match &request.exclusive_start_key {
        None => 0,
        Some(key) => {
            let sk = key["SK"]["S"].as_str().ok_or("ExclusiveStartKey has no SK")?;
            let n = sk.rsplit('#').next().and_then(|n| n.parse::<u64>().ok()).ok_or("bad ExclusiveStartKey")?;
            n + 1
        }
    };
    let limit = request.limit.unwrap_or(1000).clamp(1, 1000);
    let end = (start + limit).min(state.spec.records_per_shard).max(start);
    let mut out = Vec::with_capacity((end - start) as usize * 1500 + 128);
    out.extend_from_slice(br#"{"Items":["#);
    for n in start..end {
        if n > start {
            out.push(b',');
        }
        state.items[(n % DISTINCT_KEYS) as usize].render(&mut out, request.segment, n);
    }
    out.extend_from_slice(format!(r#"],"Count":{0},"ScannedCount":{0}"#, end - start).as_bytes());
    if end < state.spec.records_per_shard && end > start {
        let last = &state.items[((end - 1) % DISTINCT_KEYS) as usize];
        let sk = ItemTemplate::sort_key(request.segment, end - 1);
        out.extend_from_slice(format!(r#","LastEvaluatedKey":{{"PK":{},"SK":{{"S":"{sk}"}}}}"#, last.pk).as_bytes());
    }
    out.push(b'}');
    state.records_served.fetch_add(end - start, Ordering::Relaxed);
    state.get_records_calls.fetch_add(1, Ordering::Relaxed);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{Spec, State};
    use super::*;
    use std::time::Duration;

    /// Pages of a segment follow each other through `LastEvaluatedKey` and end without one;
    /// every item has its key schema's attributes and a key of its own.
    #[test]
    fn a_segment_reads_to_its_end_page_by_page() {
        let state = State::new(Spec { shards: 2, records_per_shard: 3, rate: None, write_latency: Duration::ZERO });
        let first = scan(&state, br#"{"TableName":"PetTracker","Segment":1,"TotalSegments":2,"Limit":2}"#).unwrap();
        let first: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(first["Items"].as_array().unwrap().len(), 2);
        assert_eq!(first["Items"][1]["SK"]["S"], "SEG#1#000000000001");
        assert!(first["Items"][0]["PK"]["S"].is_string());
        let key = first["LastEvaluatedKey"].clone();
        assert_eq!(key["SK"]["S"], "SEG#1#000000000001");
        let body = serde_json::json!({"Segment": 1, "TotalSegments": 2, "Limit": 2, "ExclusiveStartKey": key});
        let second = scan(&state, body.to_string().as_bytes()).unwrap();
        let second: serde_json::Value = serde_json::from_slice(&second).unwrap();
        assert_eq!(second["Items"].as_array().unwrap().len(), 1);
        assert!(second.get("LastEvaluatedKey").is_none());
        let item: eddy_record::Item = serde_json::from_value(second["Items"][0].clone()).unwrap();
        assert_eq!(item["SK"].as_s(), Some("SEG#1#000000000002"));
        assert_eq!(state.records_served.load(Ordering::Relaxed), 3);
        assert!(scan(&state, br#"{"Segment":0,"TotalSegments":3}"#).is_err());
        let table: serde_json::Value = serde_json::from_str(&describe_table(&state)).unwrap();
        assert_eq!(table["Table"]["ItemCount"], 6);
    }
}
