//! GetRecords answers decoded straight from their bytes into [`ChangeRecord`]s.
//!
//! The answer is `{"NextShardIterator": "...", "Records": [...]}` (the DynamoDB Streams API
//! reference, GetRecords). It is read in one of two ways:
//!
//! - **One pass** ([`one_pass`]), the path every page the API writes takes: one strict forward
//!   scan of the bytes fills the records' fields, checks each image as DynamoDB JSON and keeps it
//!   as its text (decoded only if something reads it), and decodes the keys. It accepts only
//!   pages the second way decodes whole, to the same records, and hands anything else to it.
//! - **Record by record** (here): the page is split into its records' raw JSON, and each record
//!   is decoded on its own with `serde_json`. A record that does not decode becomes an
//!   [`Undecodable`] carrying its JSON text and the reason, for the dead letter; the rest of the
//!   page is unaffected. A page that is not JSON at all is an error for the reader to retry.
//!
//! Fields the API may add later are ignored, as the SDK ignores them.

mod one_pass;

use std::borrow::Cow;

use bytes::Bytes;
use eddy_record::{ChangeRecord, EventName, Image, Item, StreamRecord, StreamViewType, UserIdentity};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{RecordsPage, Undecodable};

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(rename = "NextShardIterator", default)]
    next_shard_iterator: Option<String>,
    #[serde(rename = "Records", default, borrow)]
    records: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRecord<'a> {
    #[serde(rename = "eventID", default)]
    event_id: String,
    #[serde(default, borrow)]
    event_name: Option<Cow<'a, str>>,
    #[serde(default)]
    event_version: Option<String>,
    #[serde(default)]
    event_source: Option<String>,
    #[serde(default)]
    aws_region: Option<String>,
    #[serde(default)]
    dynamodb: Option<WireStream<'a>>,
    #[serde(default)]
    user_identity: Option<WireIdentity>,
}

/// The API's `Identity` (`{"PrincipalId", "Type"}`), which Lambda renames to
/// `{"principalId", "type"}`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireIdentity {
    #[serde(default)]
    principal_id: String,
    #[serde(rename = "Type", default)]
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireStream<'a> {
    #[serde(default)]
    approximate_creation_date_time: Option<f64>,
    #[serde(default)]
    keys: Option<Item>,
    #[serde(default, borrow)]
    new_image: Option<&'a RawValue>,
    #[serde(default, borrow)]
    old_image: Option<&'a RawValue>,
    #[serde(default)]
    sequence_number: Option<String>,
    #[serde(default)]
    size_bytes: Option<i64>,
    #[serde(default, borrow)]
    stream_view_type: Option<Cow<'a, str>>,
}

/// Parses a `StreamViewType` wire name.
pub fn view_type(name: &str) -> Option<StreamViewType> {
    match name {
        "KEYS_ONLY" => Some(StreamViewType::KeysOnly),
        "NEW_IMAGE" => Some(StreamViewType::NewImage),
        "OLD_IMAGE" => Some(StreamViewType::OldImage),
        "NEW_AND_OLD_IMAGES" => Some(StreamViewType::NewAndOldImages),
        _ => None,
    }
}

/// Decodes a GetRecords answer; `stream_arn` becomes each record's `eventSourceARN`, as Lambda
/// adds it. Images read in the one pass share `body`'s buffer ([`Image::scan_in`]).
///
/// # Errors
/// When `body` is not a GetRecords answer (not JSON, or `Records` is not a list); the message
/// says where it broke.
pub fn decode_page(body: &Bytes, stream_arn: &str) -> Result<RecordsPage, String> {
    // Fast path: the whole page in one pass. Any problem, and the page is read again record by
    // record, so that only the records at fault go to the dead letter, each with its reason.
    match one_pass::decode(body, stream_arn) {
        Some(page) => Ok(page),
        None => decode_each(body, stream_arn),
    }
}

/// The slow path of [`decode_page`]: the page split into its records' JSON text, each decoded on
/// its own.
fn decode_each(body: &[u8], stream_arn: &str) -> Result<RecordsPage, String> {
    let page: Page<'_> =
        serde_json::from_slice(body).map_err(|e| format!("GetRecords answered with malformed JSON: {e}"))?;
    let mut out = RecordsPage { next_iterator: page.next_shard_iterator, ..RecordsPage::default() };
    out.records.reserve(page.records.len());
    for raw in page.records {
        match decode_record(raw.get(), stream_arn) {
            Ok(r) => out.records.push(r),
            Err(u) => out.undecodable.push(u),
        }
    }
    Ok(out)
}

/// Decodes one record of a GetRecords answer (its JSON text).
///
/// # Errors
/// An [`Undecodable`] with the record's text, its sequence number when it has one, and the reason.
pub fn decode_record(text: &str, stream_arn: &str) -> Result<ChangeRecord, Undecodable> {
    let fail = |reason: String, sequence_number: Option<String>| Undecodable {
        sequence_number: sequence_number.or_else(|| sequence_of(text)),
        reason,
        raw: text.to_owned(),
    };
    let record: WireRecord<'_> =
        serde_json::from_str(text).map_err(|e| fail(format!("not a stream record: {e}"), None))?;
    convert(record, stream_arn).map_err(|(reason, sequence_number)| fail(reason, sequence_number))
}

/// A decoded wire record → a change record, or why not (and its sequence number if it has one).
fn convert(record: WireRecord<'_>, stream_arn: &str) -> Result<ChangeRecord, (String, Option<String>)> {
    let fail = |reason: String, sequence_number: Option<String>| (reason, sequence_number);
    let event_name = match record.event_name.as_deref() {
        Some("INSERT") => EventName::Insert,
        Some("MODIFY") => EventName::Modify,
        Some("REMOVE") => EventName::Remove,
        other => return Err(fail(format!("unknown eventName {other:?}"), None)),
    };
    let Some(stream) = record.dynamodb else {
        return Err(fail("record has no `dynamodb` part".into(), None));
    };
    let Some(sequence_number) = stream.sequence_number else {
        return Err(fail("record has no SequenceNumber".into(), None));
    };
    let Some(stream_view_type) = stream.stream_view_type.as_deref().and_then(view_type) else {
        return Err(fail(format!("unknown StreamViewType {:?}", stream.stream_view_type), Some(sequence_number)));
    };
    // Images stay DynamoDB JSON text, checked here and decoded only if something reads them.
    let image = |raw: Option<&RawValue>, name: &str| -> Result<Option<Image>, (String, Option<String>)> {
        raw.map(Image::from_raw).transpose().map_err(|e| (format!("{name}: {e}"), Some(sequence_number.clone())))
    };
    let new_image = image(stream.new_image, "NewImage")?;
    let old_image = image(stream.old_image, "OldImage")?;
    Ok(ChangeRecord {
        event_id: record.event_id,
        event_name,
        event_version: record.event_version.unwrap_or_else(|| "1.1".into()),
        event_source: record.event_source.unwrap_or_else(|| "aws:dynamodb".into()),
        aws_region: record.aws_region.unwrap_or_default(),
        dynamodb: StreamRecord {
            approximate_creation_date_time: stream.approximate_creation_date_time.map(|t| t.floor() as i64),
            keys: stream.keys.unwrap_or_default(),
            new_image,
            old_image,
            sequence_number,
            size_bytes: stream.size_bytes.unwrap_or_default().max(0) as u64,
            stream_view_type,
        },
        event_source_arn: stream_arn.to_owned(),
        user_identity: record.user_identity.map(|u| UserIdentity { kind: u.kind, principal_id: u.principal_id }),
    })
}

/// The `dynamodb.SequenceNumber` of a record that did not decode, when it can be found.
fn sequence_of(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Outer {
        dynamodb: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(rename = "SequenceNumber")]
        sequence_number: String,
    }
    serde_json::from_str::<Outer>(text).ok().map(|o| o.dynamodb.sequence_number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_record::AttributeValue;
    use proptest::prelude::*;
    use std::io::{Read as _, Write as _};
    use std::sync::{Arc, Mutex};

    const ARN: &str = "arn:aws:dynamodb:us-east-1:1:table/T/stream/2024";

    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            "-?[1-9][0-9]{0,37}",
            "-?[0-9]\\.[0-9]{1,20}",
            "[1-9](\\.[0-9]{1,5})?E[-+]?[1-9][0-9]?",
            Just("0".to_owned()),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z]{0,12}", "\\PC{0,16}", Just("quote \" backslash \\ tab \t newline \n é 😀 \u{1}".to_owned())]
    }

    fn value() -> impl Strategy<Value = AttributeValue> {
        let leaf = prop_oneof![
            text().prop_map(AttributeValue::S),
            number().prop_map(AttributeValue::N),
            prop::collection::vec(any::<u8>(), 0..24).prop_map(AttributeValue::B),
            prop::collection::btree_set(text(), 1..4).prop_map(|s| AttributeValue::Ss(s.into_iter().collect())),
            prop::collection::btree_set(number(), 1..4).prop_map(|s| AttributeValue::Ns(s.into_iter().collect())),
            prop::collection::btree_set(prop::collection::vec(any::<u8>(), 1..8), 1..4)
                .prop_map(|s| AttributeValue::Bs(s.into_iter().collect())),
            Just(AttributeValue::Null),
            any::<bool>().prop_map(AttributeValue::Bool),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::btree_map(text(), inner.clone(), 0..4).prop_map(AttributeValue::M),
                prop::collection::vec(inner, 0..4).prop_map(AttributeValue::L),
            ]
        })
    }

    /// Keys as a key schema allows them: S, N and B attributes.
    fn scalar_keys() -> impl Strategy<Value = Item> {
        let scalar = prop_oneof![
            text().prop_map(AttributeValue::S),
            number().prop_map(AttributeValue::N),
            prop::collection::vec(any::<u8>(), 1..24).prop_map(AttributeValue::B),
        ];
        prop::collection::btree_map("[A-Za-z_#.:-]{1,10}", scalar, 1..3)
    }

    fn item() -> impl Strategy<Value = Item> {
        prop::collection::btree_map("[A-Za-z_#.:-]{1,10}", value(), 1..8)
    }

    /// One GetRecords record in the API's form, with the given images.
    fn wire_record(seq: u64, keys: &Item, new: Option<&Item>, old: Option<&Item>, event: &str) -> serde_json::Value {
        let mut stream = serde_json::json!({
            "ApproximateCreationDateTime": 1.7000000125E9,
            "Keys": keys,
            "SequenceNumber": format!("{}", 100_000_000_000_000_000_000u128 + u128::from(seq)),
            "SizeBytes": 321,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(new) = new {
            stream["NewImage"] = serde_json::to_value(new).unwrap();
        }
        if let Some(old) = old {
            stream["OldImage"] = serde_json::to_value(old).unwrap();
        }
        serde_json::json!({
            "awsRegion": "us-east-1", "eventID": format!("e{seq}"), "eventName": event,
            "eventSource": "aws:dynamodb", "eventVersion": "1.1", "dynamodb": stream,
            "userIdentity": {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"},
        })
    }

    /// The canned server's address, the body it answers with, and a runtime for the SDK.
    type Canned = (String, Arc<Mutex<Vec<u8>>>, tokio::runtime::Runtime);

    /// A loopback server answering every request with the current `body` (as GetRecords would).
    fn canned_server(body: Arc<Mutex<Vec<u8>>>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the headers and the body (Content-Length) of one request.
                loop {
                    let n = stream.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let body = body.lock().unwrap().clone();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        format!("http://{address}")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Random items of every attribute type decode exactly as the AWS SDK's decoder (the
        /// SDK's GetRecords through `sdk_reference::decode_record`, eddy's path before) decodes them.
        #[test]
        fn pages_decode_exactly_as_the_sdk_decodes_them(keys in item(), new in item(), old in item()) {
            static SERVER: std::sync::OnceLock<Canned> = std::sync::OnceLock::new();
            let (url, body, runtime) = SERVER.get_or_init(|| {
                let body = Arc::new(Mutex::new(Vec::new()));
                let url = canned_server(Arc::clone(&body));
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                (url, body, runtime)
            });
            let page = serde_json::json!({
                "NextShardIterator": "next",
                "Records": [
                    wire_record(1, &keys, Some(&new), None, "INSERT"),
                    wire_record(2, &keys, Some(&new), Some(&old), "MODIFY"),
                    wire_record(3, &keys, None, Some(&old), "REMOVE"),
                ],
            });
            let bytes = serde_json::to_vec(&page).unwrap();
            *body.lock().unwrap() = bytes.clone();
            let bytes = Bytes::from(bytes);
            let ours = decode_page(&bytes, ARN).unwrap();
            prop_assert!(ours.undecodable.is_empty(), "{:?}", ours.undecodable);
            prop_assert!(one_pass::decode(&bytes, ARN).is_some(), "pages as the API writes them take the one-pass path");
            let config = aws_sdk_dynamodbstreams::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
                .endpoint_url(url.as_str())
                .credentials_provider(aws_sdk_dynamodbstreams::config::Credentials::new("a", "b", None, None, "test"))
                .build();
            let client = aws_sdk_dynamodbstreams::Client::from_conf(config);
            let out = runtime.block_on(client.get_records().shard_iterator("it").send()).unwrap();
            let sdk: Vec<ChangeRecord> = out
                .records
                .unwrap_or_default()
                .into_iter()
                .map(|r| super::super::sdk_reference::decode_record(r, ARN).unwrap())
                .collect();
            prop_assert_eq!(sdk.len(), 3);
            prop_assert_eq!(ours.next_iterator.as_deref(), out.next_shard_iterator.as_deref());
            prop_assert_eq!(&ours.records, &sdk);
            // What the Alternator sink sends is eddy's serialization of these values: it reads back
            // as the same item.
            let image = ours.records[1].dynamodb.new_image.as_ref().unwrap();
            let again: Item = serde_json::from_slice(&serde_json::to_vec(image).unwrap()).unwrap();
            prop_assert_eq!(&again, &new);
        }
    }

    /// Edits of a page's text, each making something the one-pass reader must either read as
    /// the slow path does, or leave to it: duplicates, escaped names, nulls, wrong types,
    /// unknown fields, numbers serde reads differently, broken text.
    const EDITS: &[(&str, &str)] = &[
        (r#""eventID":"#, r#""eventID":"dup","eventID":"#),
        (r#""eventID":"#, r#""event\u0049D":"#),
        (r#""eventID":"#, r#""eventID":null,"x":"#),
        (r#""SizeBytes":321"#, r#""SizeBytes":-0"#),
        (r#""SizeBytes":321"#, r#""SizeBytes":3.0"#),
        (r#""SizeBytes":321"#, r#""SizeBytes":null"#),
        (r#""SizeBytes":321"#, r#""SizeBytes":-9223372036854775808"#),
        (r#""SizeBytes":321"#, r#""SizeBytes":9223372036854775808"#),
        (r#""eventName":"INSERT""#, r#""eventName":"INS\u0045RT""#),
        (r#""eventName":"MODIFY""#, r#""eventName":null"#),
        (r#""eventName":"REMOVE""#, r#""eventName":"TRUNCATE""#),
        (r#""Keys":"#, r#""Keys":null,"Extra":"#),
        (r#""NewImage":"#, r#""NewImage":null,"Other":"#),
        (r#""OldImage":"#, r#""OldImage":"#),
        (r#"{"S":"#, r#"{"\u0053":"#),
        (r#"{"N":"#, r#"{"N":"1","S":"#),
        (r#"{"B":""#, r#"{"B":"\u0041"#),
        (r#"{"B":""#, r#"{"B":"A"#),
        (r#""Keys":{"#, r#""Keys":{"dup":{"S":"1"},"dup":{"N":"2"},"#),
        (r#""StreamViewType":"NEW_AND_OLD_IMAGES""#, r#""StreamViewType":null"#),
        (r#""StreamViewType":"NEW_AND_OLD_IMAGES""#, r#""StreamViewType":"NEW""#),
        (r#""dynamodb":"#, r#""dynamodb":null,"d2":"#),
        (r#""userIdentity":"#, r#""userIdentity":null,"u":"#),
        (r#""PrincipalId":"#, r#""PrincipalId":1,"p":"#),
        (r#""Type":"#, r#""Type":"Service","Type":"#),
        (r#""Records":["#, r#""Unknown":[1,{"a":[null,true,false,-1.5e3,"\ud83d\ude00"]}],"Records":["#),
        (r#""Records":["#, r#""Records":null,"R":["#),
        (r#""ApproximateCreationDateTime":1700000012.5"#, r#""ApproximateCreationDateTime":"x""#),
        (r#""ApproximateCreationDateTime":1700000012.5"#, r#""ApproximateCreationDateTime":-0"#),
        (r#""ApproximateCreationDateTime":1700000012.5"#, r#""ApproximateCreationDateTime":1e400"#),
        (r#""SequenceNumber":"#, r#""SequenceNumber":null,"s":"#),
        (r#""NextShardIterator":"next""#, r#""NextShardIterator":"ne\/xt""#),
        (r#""NextShardIterator":"next""#, r#""NextShardIterator":5"#),
        (r#""awsRegion":"us-east-1""#, r#""awsRegion":"us-\u0065ast-1""#),
        (",", " ,\n\t"),
        (":", " : "),
        ("}", "},"),
        ("\\", "\\u12"),
        ("\"", "\\ud800\""),
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Whatever the text, the one-pass reader either gives what the record-by-record reader
        /// gives for a page it decodes whole, or leaves the page to it.
        #[test]
        fn the_one_pass_reader_agrees_with_the_slow_path_or_leaves_the_page_to_it(
            keys in prop_oneof![item(), scalar_keys()],
            new in item(),
            edits in prop::sample::subsequence((0..EDITS.len()).collect::<Vec<_>>(), 0..4),
            all in any::<bool>(),
        ) {
            let mut record = wire_record(1, &keys, Some(&new), Some(&new), ["INSERT", "MODIFY", "REMOVE"][edits.len() % 3]);
            record["dynamodb"]["ApproximateCreationDateTime"] = serde_json::json!(1700000012.5);
            let page = serde_json::json!({"NextShardIterator": "next", "Records": [record.clone(), record]});
            let mut text = serde_json::to_string(&page).unwrap();
            for &e in &edits {
                let (from, to) = EDITS[e];
                text = if all { text.replace(from, to) } else { text.replacen(from, to, 1) };
            }
            let slow = decode_each(text.as_bytes(), ARN);
            match one_pass::decode(&Bytes::copy_from_slice(text.as_bytes()), ARN) {
                Some(fast) => {
                    let slow = slow.unwrap();
                    prop_assert!(slow.undecodable.is_empty(), "one pass accepted what the slow path refuses: {text}\n{:?}", slow.undecodable);
                    prop_assert_eq!(&fast.records, &slow.records, "{}", text);
                    prop_assert_eq!(fast.next_iterator, slow.next_iterator, "{}", text);
                }
                None => prop_assert!(!edits.is_empty(), "an unedited page takes the one-pass path: {text}"),
            }
        }
    }

    #[test]
    fn a_truncated_page_is_an_error_that_says_so() {
        let keys: Item = [("id".to_owned(), AttributeValue::S("a".into()))].into();
        let page = serde_json::json!({"Records": [wire_record(1, &keys, Some(&keys), None, "INSERT")]}).to_string();
        let err = decode_page(&Bytes::copy_from_slice(&page.as_bytes()[..page.len() / 2]), ARN).unwrap_err();
        assert!(err.contains("malformed JSON") && err.contains("EOF"), "{err}");
    }

    #[test]
    fn bad_records_become_dead_letters_with_the_reason_and_the_rest_decodes() {
        let keys: Item = [("id".to_owned(), AttributeValue::S("a".into()))].into();
        let good = wire_record(1, &keys, Some(&keys), None, "INSERT");
        let mut no_sequence = wire_record(2, &keys, Some(&keys), None, "INSERT");
        no_sequence["dynamodb"].as_object_mut().unwrap().remove("SequenceNumber");
        let mut wrong_type = wire_record(3, &keys, Some(&keys), None, "MODIFY");
        wrong_type["dynamodb"]["Keys"] = serde_json::json!("not a map");
        let mut unknown_type = wire_record(4, &keys, None, None, "REMOVE");
        unknown_type["dynamodb"]["Keys"] = serde_json::json!({"id": {"X": "1"}});
        let mut unknown_event = wire_record(5, &keys, None, None, "TRUNCATE");
        unknown_event["eventID"] = serde_json::json!("e5");
        let page = serde_json::json!({"NextShardIterator": "n", "Records": [good, no_sequence, wrong_type, unknown_type, unknown_event]});
        let page = decode_page(&Bytes::copy_from_slice(page.to_string().as_bytes()), ARN).unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].dynamodb.sequence_number, "100000000000000000001");
        let reasons: Vec<(Option<&str>, &str)> =
            page.undecodable.iter().map(|u| (u.sequence_number.as_deref(), u.reason.as_str())).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[0].0.is_none() && reasons[0].1.contains("no SequenceNumber"), "{reasons:?}");
        assert_eq!(reasons[1].0, Some("100000000000000000003"));
        assert!(reasons[1].1.contains("invalid type"), "{reasons:?}");
        assert!(reasons[2].1.contains("unknown DynamoDB type \"X\""), "{reasons:?}");
        assert!(reasons[3].1.contains("unknown eventName Some(\"TRUNCATE\")"), "{reasons:?}");
        assert!(page.undecodable.iter().all(|u| u.raw.starts_with('{') && u.raw.contains("eventID")));
    }

    #[test]
    fn a_six_megabyte_page_decodes_every_record() {
        let keys: Item = [("id".to_owned(), AttributeValue::S("a".into()))].into();
        let mut image = keys.clone();
        image.insert("blob".into(), AttributeValue::S("x".repeat(6000)));
        let records: Vec<serde_json::Value> =
            (0..1000).map(|i| wire_record(i, &keys, Some(&image), Some(&image), "MODIFY")).collect();
        let body = serde_json::json!({"Records": records}).to_string();
        assert!(body.len() > 6 << 20, "{} bytes", body.len());
        let page = decode_page(&Bytes::copy_from_slice(body.as_bytes()), ARN).unwrap();
        assert_eq!(page.records.len(), 1000);
        assert!(page.undecodable.is_empty());
        assert!(page.next_iterator.is_none(), "no NextShardIterator: the shard has ended");
    }
}
