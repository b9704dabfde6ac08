//! Kinesis GetRecords answers decoded into change records.
//!
//! The answer is `{"Records": [{"SequenceNumber", "Data" (base64), "PartitionKey",
//! "ApproximateArrivalTimestamp"}], "NextShardIterator", "MillisBehindLatest", "ChildShards"}`
//! (Kinesis API reference, GetRecords). Each record's data is the JSON DynamoDB writes to a Kinesis
//! destination ("Kinesis Data Streams for DynamoDB", AWS Developer Guide):
//!
//! ```json
//! {"awsRegion": "us-east-1", "eventID": "...", "eventName": "MODIFY", "userIdentity": null,
//!  "recordFormat": "application/json", "tableName": "Pets", "eventSource": "aws:dynamodb",
//!  "dynamodb": {"ApproximateCreationDateTime": 1700000000123,
//!               "ApproximateCreationDateTimePrecision": "MILLISECOND",
//!               "Keys": {...}, "NewImage": {...}, "OldImage": {...}, "SizeBytes": 59}}
//! ```
//!
//! It becomes the same [`ChangeRecord`] a DynamoDB stream gives (Lambda's shape), so filters,
//! processors and sinks work unchanged: the Kinesis sequence number is the record's sequence
//! number, `ApproximateCreationDateTime` is given in whole epoch seconds as on DynamoDB Streams,
//! the stream view type is `NEW_AND_OLD_IMAGES` (a Kinesis destination always carries both
//! images), and `eventSourceARN` is the Kinesis stream's ARN. A record that is not such a change
//! (not JSON, another format, aggregated or compressed, another table's) becomes an
//! [`Undecodable`] with its sequence number and the reason, for the dead letter.

use std::borrow::Cow;

use base64::Engine as _;
use eddy_record::{ChangeRecord, EventName, Image, Item, StreamRecord, StreamViewType, UserIdentity};

pub use super::change::{recency_key, Decoded};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::source::Undecodable;

/// A GetRecords answer, records still undecoded.
#[derive(Deserialize)]
pub struct Page<'a> {
    /// The records, in sequence order.
    #[serde(rename = "Records", borrow)]
    pub records: Vec<WireRecord<'a>>,
    /// `None` once a closed shard is read to its end (SHARD_END).
    #[serde(rename = "NextShardIterator", default)]
    pub next_shard_iterator: Option<String>,
    /// How far the page is behind the newest record of the shard.
    #[serde(rename = "MillisBehindLatest", default)]
    pub millis_behind_latest: Option<u64>,
    /// At SHARD_END: the shards that continue this one.
    #[serde(rename = "ChildShards", default)]
    pub child_shards: Vec<ChildShard>,
}

/// One Kinesis record of a page.
#[derive(Deserialize)]
pub struct WireRecord<'a> {
    /// Its sequence number in the shard (a decimal string of up to 128 digits).
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
    /// The data, base64.
    #[serde(rename = "Data", borrow)]
    pub data: Cow<'a, str>,
}

/// A child of a shard that ended, with its parents.
#[derive(Debug, Deserialize)]
pub struct ChildShard {
    /// The child.
    #[serde(rename = "ShardId")]
    pub shard_id: String,
    /// Its parents (one after a split, two after a merge).
    #[serde(rename = "ParentShards", default)]
    pub parent_shards: Vec<String>,
}

/// Parses a GetRecords answer.
///
/// # Errors
/// When `body` is not a GetRecords answer (not JSON, `Records` missing or not a list, a record
/// without `SequenceNumber` or `Data`); the message says where it broke. The reader retries.
pub fn page(body: &[u8]) -> Result<Page<'_>, String> {
    serde_json::from_slice(body).map_err(|e| format!("Kinesis GetRecords answered with malformed JSON: {e}"))
}

/// The first bytes of a record aggregated by the Kinesis Producer Library.
const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Decodes one Kinesis record. `table`: the only table whose changes are expected (others go to
/// the dead letter); `stream_arn` becomes `eventSourceARN`.
///
/// # Errors
/// An [`Undecodable`] with the record's sequence number, its data (as text, or base64 when it is
/// not UTF-8) and the reason.
pub fn record(wire: &WireRecord<'_>, table: Option<&str>, stream_arn: &str) -> Result<Decoded, Undecodable> {
    let sequence = &wire.sequence_number;
    let fail = |reason: String, raw: String| Undecodable { sequence_number: Some(sequence.clone()), reason, raw };
    let data = base64::engine::general_purpose::STANDARD
        .decode(wire.data.as_bytes())
        .map_err(|e| fail(format!("the record's Data is not base64: {e}"), wire.data.clone().into_owned()))?;
    let as_text = |data: &[u8]| match std::str::from_utf8(data) {
        Ok(text) => text.to_owned(),
        Err(_) => format!("base64:{}", wire.data),
    };
    if data.starts_with(&KPL_MAGIC) {
        return Err(fail(
            "a record aggregated by the Kinesis Producer Library; eddy reads the JSON records DynamoDB writes, \
             not KPL aggregates"
                .into(),
            as_text(&data),
        ));
    }
    if data.starts_with(&[0x1F, 0x8B]) {
        return Err(fail(
            "gzip-compressed data; eddy reads the uncompressed JSON records DynamoDB writes".into(),
            as_text(&data),
        ));
    }
    let Ok(text) = std::str::from_utf8(&data) else {
        return Err(fail("the record's data is not UTF-8 text, so not a DynamoDB change".into(), as_text(&data)));
    };
    if let Some(decoded) = super::one_pass::change(text, sequence, table, stream_arn) {
        return Ok(decoded);
    }
    change(text, sequence, table, stream_arn).map_err(|reason| fail(reason, text.to_owned()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Change<'a> {
    #[serde(rename = "eventID", default)]
    event_id: String,
    #[serde(default, borrow)]
    event_name: Option<Cow<'a, str>>,
    #[serde(default)]
    event_source: Option<String>,
    #[serde(default)]
    aws_region: Option<String>,
    #[serde(default, borrow)]
    table_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    record_format: Option<Cow<'a, str>>,
    #[serde(default)]
    user_identity: Option<Identity>,
    #[serde(default, borrow)]
    dynamodb: Option<Body<'a>>,
}

/// `userIdentity` of a TTL delete: `{"type": "Service", "principalId": "dynamodb.amazonaws.com"}`.
#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "principalId", alias = "PrincipalId", default)]
    principal_id: String,
    #[serde(rename = "type", alias = "Type", default)]
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Body<'a> {
    #[serde(default)]
    approximate_creation_date_time: Option<f64>,
    #[serde(default, borrow)]
    approximate_creation_date_time_precision: Option<Cow<'a, str>>,
    #[serde(default)]
    keys: Option<Item>,
    #[serde(default, borrow)]
    new_image: Option<&'a RawValue>,
    #[serde(default, borrow)]
    old_image: Option<&'a RawValue>,
    #[serde(default)]
    size_bytes: Option<i64>,
}

/// The change in `text`, or why it is not one.
fn change(text: &str, sequence: &str, table: Option<&str>, stream_arn: &str) -> Result<Decoded, String> {
    let change: Change<'_> = serde_json::from_str(text).map_err(|e| format!("not a DynamoDB change record: {e}"))?;
    if let Some(format) = change.record_format.as_deref().filter(|f| *f != "application/json") {
        return Err(format!("recordFormat {format:?}: eddy reads DynamoDB's application/json records"));
    }
    let event_name = match change.event_name.as_deref() {
        Some("INSERT") => EventName::Insert,
        Some("MODIFY") => EventName::Modify,
        Some("REMOVE") => EventName::Remove,
        None => return Err("not a DynamoDB change record: no eventName".into()),
        Some(other) => return Err(format!("not a DynamoDB change record: unknown eventName {other:?}")),
    };
    if let (Some(expected), Some(found)) = (table, change.table_name.as_deref()) {
        if expected != found {
            return Err(format!("a change of table {found:?}, not of {expected:?} (source.table)"));
        }
    }
    let Some(body) = change.dynamodb else {
        return Err("not a DynamoDB change record: no `dynamodb` part".into());
    };
    let Some(keys) = body.keys.filter(|k| !k.is_empty()) else {
        return Err("not a DynamoDB change record: no Keys".into());
    };
    let created_micros =
        match (body.approximate_creation_date_time, body.approximate_creation_date_time_precision.as_deref()) {
            (None, _) => None,
            (Some(t), Some("MICROSECOND")) => Some(t as i64),
            (Some(t), None | Some("MILLISECOND")) => Some((t as i64).saturating_mul(1000)),
            (Some(_), Some(other)) => return Err(format!("unknown ApproximateCreationDateTimePrecision {other:?}")),
        };
    let image = |raw: Option<&RawValue>, name: &str| -> Result<Option<Image>, String> {
        raw.map(Image::from_raw).transpose().map_err(|e| format!("{name}: {e}"))
    };
    let new_image = image(body.new_image, "NewImage")?;
    let old_image = image(body.old_image, "OldImage")?;
    let key = recency_key(change.table_name.as_deref(), &keys)?;
    let record = ChangeRecord {
        event_id: change.event_id,
        event_name,
        event_version: "1.1".into(),
        event_source: change.event_source.unwrap_or_else(|| "aws:dynamodb".into()),
        aws_region: change.aws_region.unwrap_or_default(),
        dynamodb: StreamRecord {
            approximate_creation_date_time: created_micros.map(|us| us.div_euclid(1_000_000)),
            keys,
            new_image,
            old_image,
            sequence_number: sequence.to_owned(),
            size_bytes: body.size_bytes.unwrap_or_default().max(0) as u64,
            stream_view_type: StreamViewType::NewAndOldImages,
        },
        event_source_arn: stream_arn.to_owned(),
        user_identity: change.user_identity.map(|u| UserIdentity { kind: u.kind, principal_id: u.principal_id }),
    };
    Ok(Decoded { record, created_micros, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_record::AttributeValue;

    const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/pets";

    fn wire(seq: &str, data: &[u8]) -> WireRecord<'static> {
        WireRecord {
            sequence_number: seq.into(),
            data: Cow::Owned(base64::engine::general_purpose::STANDARD.encode(data)),
        }
    }

    fn modify(precision: Option<&str>, time: f64) -> String {
        let mut body = serde_json::json!({
            "ApproximateCreationDateTime": time,
            "Keys": {"pk": {"S": "dog#1"}, "sk": {"N": "1"}},
            "NewImage": {"pk": {"S": "dog#1"}, "sk": {"N": "1"}, "name": {"S": "Rex"},
                         "tags": {"SS": ["a", "b"]}, "n": {"N": "12345678901234567890123456789012345678"},
                         "b": {"B": "AAE="}, "m": {"M": {"l": {"L": [{"NULL": true}, {"BOOL": false}]}}}},
            "OldImage": {"pk": {"S": "dog#1"}, "sk": {"N": "1"}, "name": {"S": "Max"}},
            "SizeBytes": 59
        });
        if let Some(p) = precision {
            body["ApproximateCreationDateTimePrecision"] = p.into();
        }
        serde_json::json!({
            "awsRegion": "eu-central-1", "eventID": "e-1", "eventName": "MODIFY", "userIdentity": null,
            "recordFormat": "application/json", "tableName": "Pets", "eventSource": "aws:dynamodb",
            "dynamodb": body
        })
        .to_string()
    }

    /// One stream carrying two tables' changes (no `source.table`): the same key in another table is
    /// another item, so its newer change must not make this one stale.
    #[test]
    fn newest_wins_tells_items_of_two_tables_apart() {
        let mut memory = super::super::recency::Recency::new(10);
        let change = |table: &str, seq: &str, millis: f64| {
            let text = modify(None, millis).replace("\"Pets\"", &format!("{table:?}"));
            record(&wire(seq, text.as_bytes()), None, ARN).unwrap()
        };
        let newer_in_owners = change("Owners", "2", 1_700_000_000_002.0);
        let older_in_pets = change("Pets", "3", 1_700_000_000_001.0);
        assert_ne!(newer_in_owners.key, older_in_pets.key);
        for d in [newer_in_owners, older_in_pets] {
            let verdict =
                memory.admit(&d.key, d.created_micros, &d.record.dynamodb.sequence_number, &d.record.event_id);
            assert_eq!(verdict, super::super::recency::Verdict::Keep, "{}", d.key);
        }
        // The serde reader (for what the one-pass reader leaves to it) keys the same way.
        let text = modify(None, 1.0);
        assert_eq!(change("Pets", "4", 1.0).key, super::change(&text, "4", None, ARN).unwrap().key);
    }

    #[test]
    fn a_dynamodb_change_becomes_lambdas_record_shape() {
        let d = record(
            &wire("4959033827149025660855969253836157109592157598913658", modify(None, 1_700_000_000_123.0).as_bytes()),
            Some("Pets"),
            ARN,
        )
        .unwrap();
        assert_eq!(d.created_micros, Some(1_700_000_000_123_000));
        assert_eq!(d.key, "Pets\u{1f}{\"pk\":{\"S\":\"dog#1\"},\"sk\":{\"N\":\"1\"}}");
        let r = d.record;
        assert_eq!(r.event_name, EventName::Modify);
        assert_eq!(r.event_id, "e-1");
        assert_eq!(r.aws_region, "eu-central-1");
        assert_eq!(r.event_source_arn, ARN);
        assert_eq!(r.dynamodb.sequence_number, "4959033827149025660855969253836157109592157598913658");
        assert_eq!(r.dynamodb.approximate_creation_date_time, Some(1_700_000_000));
        assert_eq!(r.dynamodb.stream_view_type, StreamViewType::NewAndOldImages);
        assert_eq!(r.dynamodb.size_bytes, 59);
        let new = r.dynamodb.new_image.as_ref().unwrap();
        assert_eq!(new.get("name"), Some(&AttributeValue::S("Rex".into())));
        assert_eq!(new.get("n"), Some(&AttributeValue::N("12345678901234567890123456789012345678".into())));
        assert_eq!(new.get("b"), Some(&AttributeValue::B(vec![0, 1])));
        let old = r.dynamodb.old_image.as_ref().unwrap();
        assert_eq!(old.get("name"), Some(&AttributeValue::S("Max".into())));
    }

    /// Edits of a change's text, each making something the one-pass reader must either read as
    /// the serde reader does, or leave to it.
    const EDITS: &[(&str, &str)] = &[
        (r#""eventID":"#, r#""eventID":"dup","eventID":"#),
        (r#""eventID":"#, r#""event\u0049D":"#),
        (r#""eventName":"MODIFY""#, r#""eventName":"REMOVE""#),
        (r#""eventName":"MODIFY""#, r#""eventName":"TRUNCATE""#),
        (r#""eventName":"MODIFY""#, r#""eventName":null"#),
        (r#""eventVersion""#, r#""eventVersion":"1.1","x""#),
        (r#""tableName":"Pets""#, r#""tableName":"Other""#),
        (r#""tableName":"Pets""#, r#""tableName":"P\u0065ts""#),
        (r#""tableName":"Pets""#, r#""tableName":null"#),
        (r#""recordFormat":"application/json""#, r#""recordFormat":"application\/json""#),
        (r#""recordFormat":"application/json""#, r#""recordFormat":"ion""#),
        (r#""userIdentity":null"#, r#""userIdentity":{"principalId":"dynamodb.amazonaws.com","type":"Service"}"#),
        (r#""userIdentity":null"#, r#""userIdentity":{"PrincipalId":"p","principalId":"q"}"#),
        (r#""userIdentity":null"#, r#""userIdentity":{"Type":"Service","x":[1,{"y":null}]}"#),
        (
            r#""ApproximateCreationDateTimePrecision":"MILLISECOND""#,
            r#""ApproximateCreationDateTimePrecision":"MICROSECOND""#,
        ),
        (
            r#""ApproximateCreationDateTimePrecision":"MILLISECOND""#,
            r#""ApproximateCreationDateTimePrecision":"SECOND""#,
        ),
        (r#""ApproximateCreationDateTimePrecision":"MILLISECOND""#, r#""ApproximateCreationDateTimePrecision":null"#),
        (r#""ApproximateCreationDateTime":"#, r#""ApproximateCreationDateTime":null,"t":"#),
        (r#""ApproximateCreationDateTime":"#, r#""ApproximateCreationDateTime":-0,"t":"#),
        (r#""Keys":"#, r#""Keys":{},"k":"#),
        (r#""Keys":"#, r#""Keys":null,"k":"#),
        (r#""Keys":{"#, r#""Keys":{"l":{"L":[]},"#),
        (r#""NewImage":"#, r#""NewImage":null,"n":"#),
        (r#""SizeBytes":59"#, r#""SizeBytes":-0"#),
        (r#""SizeBytes":59"#, r#""SizeBytes":5.9"#),
        (r#""dynamodb":"#, r#""dynamodb":null,"d":"#),
        (r#"{"S":"#, r#"{"\u0053":"#),
        ("\"Rex\"", "\"R\\u00e9x \\\"q\\\"\""),
        (",", " ,\n"),
        ("}", "},"),
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

        /// Whatever the text, the one-pass reader either gives what the serde reader gives, or
        /// leaves the change to it.
        #[test]
        fn the_one_pass_reader_agrees_with_the_serde_reader_or_leaves_the_change_to_it(
            edits in proptest::sample::subsequence((0..EDITS.len()).collect::<Vec<_>>(), 0..4),
            all in proptest::prelude::any::<bool>(),
            table in proptest::prop_oneof![proptest::prelude::Just(None), proptest::prelude::Just(Some("Pets"))],
        ) {
            let mut text = modify(Some("MILLISECOND"), 1_700_000_000_123.0).replace(r#""eventID""#, r#""eventVersion":"1.1","eventID""#);
            for &e in &edits {
                let (from, to) = EDITS[e];
                text = if all { text.replace(from, to) } else { text.replacen(from, to, 1) };
            }
            let slow = change(&text, "7", table, ARN);
            match super::super::one_pass::change(&text, "7", table, ARN) {
                Some(fast) => {
                    let slow = slow.map_err(|e| proptest::test_runner::TestCaseError::fail(format!("one pass accepted what serde refuses ({e}): {text}")))?;
                    proptest::prop_assert_eq!(&fast.record, &slow.record, "{}", text);
                    proptest::prop_assert_eq!(fast.created_micros, slow.created_micros);
                    proptest::prop_assert_eq!(&fast.key, &slow.key);
                }
                None => proptest::prop_assert!(!edits.is_empty(), "an unedited change takes the one-pass path: {}", text),
            }
        }
    }

    #[test]
    fn microsecond_precision_is_kept() {
        let d = record(&wire("1", modify(Some("MICROSECOND"), 1_700_000_000_123_456.0).as_bytes()), None, ARN).unwrap();
        assert_eq!(d.created_micros, Some(1_700_000_000_123_456));
        assert_eq!(d.record.dynamodb.approximate_creation_date_time, Some(1_700_000_000));
    }

    #[test]
    fn what_is_not_a_change_of_the_table_goes_to_the_dead_letter_with_the_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json at all".to_vec(), "not a DynamoDB change record"),
            (br#"{"hello": "world"}"#.to_vec(), "no eventName"),
            (br#"{"eventName": "INSERT"}"#.to_vec(), "no `dynamodb` part"),
            (modify(None, 1.0).replace("\"Pets\"", "\"Other\"").into_bytes(), "a change of table \"Other\""),
            (modify(None, 1.0).replace("application/json", "application/x-amz-ion").into_bytes(), "recordFormat"),
            ([&KPL_MAGIC[..], b"rest"].concat(), "Kinesis Producer Library"),
            (vec![0x1F, 0x8B, 8, 0], "gzip"),
            (vec![0xFF, 0xFE, 0x00], "not UTF-8"),
        ];
        for (data, reason) in cases {
            let u = match record(&wire("77", &data), Some("Pets"), ARN) {
                Ok(_) => panic!("{data:?} decoded"),
                Err(u) => u,
            };
            assert!(u.reason.contains(reason), "{:?}: {}", String::from_utf8_lossy(&data), u.reason);
            assert_eq!(u.sequence_number.as_deref(), Some("77"));
            assert!(!u.raw.is_empty());
        }
        let not_base64 = WireRecord { sequence_number: "78".into(), data: Cow::Borrowed("%%%") };
        let u = record(&not_base64, None, ARN).err().unwrap();
        assert!(u.reason.contains("not base64"), "{}", u.reason);
    }

    #[test]
    fn a_page_without_records_or_with_a_record_without_a_sequence_number_is_an_error() {
        assert!(page(b"{\"Records\": [{\"Data\": \"e30=\"}]}").is_err());
        assert!(page(b"{\"NextShardIterator\": \"x\"").is_err());
        let p = page(br#"{"Records": [], "NextShardIterator": null, "MillisBehindLatest": 0,
            "ChildShards": [{"ShardId": "shardId-000000000003", "ParentShards": ["shardId-000000000001", "shardId-000000000002"], "HashKeyRange": {}}]}"#)
        .unwrap();
        assert!(p.next_shard_iterator.is_none());
        assert_eq!(p.child_shards[0].parent_shards.len(), 2);
    }
}
