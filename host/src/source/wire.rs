//! GetRecords answers decoded straight from their bytes into [`ChangeRecord`]s.
//!
//! The answer is `{"NextShardIterator": "...", "Records": [...]}` (the DynamoDB Streams API
//! reference, GetRecords). The page is split into its records without decoding them (each is kept
//! as borrowed raw JSON), then each record is decoded on its own into eddy's types: attribute
//! values go from JSON text to [`eddy_sink_api::AttributeValue`] in one step, with no
//! intermediate tree. A record that does not decode becomes an [`Undecodable`] carrying its JSON
//! text and the reason, for the dead letter; the rest of the page is unaffected. A page that is not
//! JSON at all is an error for the reader to retry.
//!
//! Fields the API may add later are ignored, as the SDK ignores them.

use std::borrow::Cow;

use eddy_sink_api::{ChangeRecord, EventName, Item, StreamRecord, UserIdentity};
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
    #[serde(default)]
    new_image: Option<Item>,
    #[serde(default)]
    old_image: Option<Item>,
    #[serde(default)]
    sequence_number: Option<String>,
    #[serde(default)]
    size_bytes: Option<i64>,
    #[serde(default, borrow)]
    stream_view_type: Option<Cow<'a, str>>,
}

/// Decodes a GetRecords answer; `stream_arn` becomes each record's `eventSourceARN`, as Lambda
/// adds it.
///
/// # Errors
/// When `body` is not a GetRecords answer (not JSON, or `Records` is not a list); the message
/// says where it broke.
pub fn decode_page(body: &[u8], stream_arn: &str) -> Result<RecordsPage, String> {
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
    let Some(stream_view_type) = stream.stream_view_type.as_deref().and_then(super::decode::view_type) else {
        return Err(fail(format!("unknown StreamViewType {:?}", stream.stream_view_type), Some(sequence_number)));
    };
    Ok(ChangeRecord {
        event_id: record.event_id,
        event_name,
        event_version: record.event_version.unwrap_or_else(|| "1.1".into()),
        event_source: record.event_source.unwrap_or_else(|| "aws:dynamodb".into()),
        aws_region: record.aws_region.unwrap_or_default(),
        dynamodb: StreamRecord {
            approximate_creation_date_time: stream.approximate_creation_date_time.map(|t| t.floor() as i64),
            keys: stream.keys.unwrap_or_default(),
            new_image: stream.new_image,
            old_image: stream.old_image,
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
