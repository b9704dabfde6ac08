//! The fast path of [`super::decode_page`]: a GetRecords answer read in one strict forward pass
//! ([`eddy_record::scan::Scanner`]) straight into [`ChangeRecord`]s. Each image is checked as
//! DynamoDB JSON in the same pass and kept as a slice of the page's buffer ([`Image::scan_in`]);
//! nothing is parsed twice or copied, and nothing but the record's own fields is allocated.
//!
//! It accepts only pages that the record-by-record decoder (the slow path, `serde_json` and
//! serde's derived readers) decodes whole, to the same records: on anything else (a record that
//! would go to the dead letter, a duplicate field, an escape in a type key, nesting deeper than
//! [`eddy_record::scan::MAX_DEPTH`]) it answers `None`, and the slow path reads the page again
//! and says what is wrong where.

use bytes::Bytes;
use eddy_record::scan::Scanner;
use eddy_record::{ChangeRecord, EventName, Image, Item, StreamRecord, UserIdentity};

use super::view_type;
use crate::source::fields::{event_name_of, float, integer, is_field, keys, once, optional, string};
use crate::source::RecordsPage;

/// Decodes `body` whole, or `None` when the slow path must decide.
pub(super) fn decode(body: &Bytes, stream_arn: &str) -> Option<RecordsPage> {
    // UTF-8 is checked once for the whole page (the scanner reads `&str`), with SIMD.
    let text = simdutf8::basic::from_utf8(body).ok()?;
    let mut s = Scanner::new(text);
    let mut next_iterator: Option<Option<String>> = None;
    let mut records: Option<Vec<ChangeRecord>> = None;
    let whole = s.members(|s, key| match key.raw() {
        "NextShardIterator" => once(&mut next_iterator, optional(s, string)),
        "Records" if records.is_none() => {
            // A page's records are about the same size; 1.5 KB is a typical record.
            let mut list = Vec::with_capacity(text.len() / 1536 + 1);
            let ok = s.elements(|s| record(s, stream_arn, body).map(|r| list.push(r)).is_some());
            records = Some(list);
            ok
        }
        _ => !is_field(key, &["NextShardIterator", "Records"]) && s.skip_value(),
    });
    (whole && s.at_end()).then(|| RecordsPage {
        records: records.unwrap_or_default(),
        next_iterator: next_iterator.flatten(),
        ..RecordsPage::default()
    })
}

/// One record: `{"eventID", "eventName", "eventVersion", "eventSource", "awsRegion",
/// "dynamodb", "userIdentity"}` (the API's `Record`); the slow path's `WireRecord` and `convert`
/// say what each may be.
fn record(s: &mut Scanner<'_>, stream_arn: &str, page: &Bytes) -> Option<ChangeRecord> {
    const FIELDS: &[&str] =
        &["eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb", "userIdentity"];
    let mut event_id = None;
    let mut event_name: Option<Option<EventName>> = None;
    let mut event_version: Option<Option<String>> = None;
    let mut event_source: Option<Option<String>> = None;
    let mut aws_region: Option<Option<String>> = None;
    let mut dynamodb: Option<Option<StreamRecord>> = None;
    let mut user_identity: Option<Option<UserIdentity>> = None;
    let whole = s.members(|s, key| match key.raw() {
        "eventID" => once(&mut event_id, string(s)),
        // An unknown event name goes to the dead letter: the slow path says so.
        "eventName" => once(&mut event_name, optional(s, |s| s.string().and_then(|n| event_name_of(&n)))),
        "eventVersion" => once(&mut event_version, optional(s, string)),
        "eventSource" => once(&mut event_source, optional(s, string)),
        "awsRegion" => once(&mut aws_region, optional(s, string)),
        "dynamodb" => once(&mut dynamodb, optional(s, |s| stream_record(s, page))),
        "userIdentity" => once(&mut user_identity, optional(s, identity)),
        _ => !is_field(key, FIELDS) && s.skip_value(),
    });
    if !whole {
        return None;
    }
    Some(ChangeRecord {
        event_id: event_id.unwrap_or_default(),
        // Unknown event names and records without their `dynamodb` part go to the dead letter.
        event_name: event_name.flatten()?,
        event_version: event_version.flatten().unwrap_or_else(|| "1.1".into()),
        event_source: event_source.flatten().unwrap_or_else(|| "aws:dynamodb".into()),
        aws_region: aws_region.flatten().unwrap_or_default(),
        dynamodb: dynamodb.flatten()?,
        event_source_arn: stream_arn.to_owned(),
        user_identity: user_identity.flatten(),
    })
}

/// The `dynamodb` part: `{"ApproximateCreationDateTime", "Keys", "NewImage", "OldImage",
/// "SequenceNumber", "SizeBytes", "StreamViewType"}`; the images are slices of `page`.
fn stream_record(s: &mut Scanner<'_>, page: &Bytes) -> Option<StreamRecord> {
    const FIELDS: &[&str] = &[
        "ApproximateCreationDateTime",
        "Keys",
        "NewImage",
        "OldImage",
        "SequenceNumber",
        "SizeBytes",
        "StreamViewType",
    ];
    let mut created: Option<Option<f64>> = None;
    let mut keys: Option<Option<Item>> = None;
    let mut new_image: Option<Option<Image>> = None;
    let mut old_image: Option<Option<Image>> = None;
    let mut sequence_number: Option<Option<String>> = None;
    let mut size_bytes: Option<Option<i64>> = None;
    let mut view: Option<Option<eddy_record::StreamViewType>> = None;
    let whole = s.members(|s, key| match key.raw() {
        "ApproximateCreationDateTime" => once(&mut created, optional(s, float)),
        "Keys" => once(&mut keys, optional(s, self::keys)),
        "NewImage" => once(&mut new_image, optional(s, |s| Image::scan_in(s, page))),
        "OldImage" => once(&mut old_image, optional(s, |s| Image::scan_in(s, page))),
        "SequenceNumber" => once(&mut sequence_number, optional(s, string)),
        "SizeBytes" => once(&mut size_bytes, optional(s, integer)),
        // An unknown view type goes to the dead letter.
        "StreamViewType" => once(&mut view, optional(s, |s| s.string().and_then(|v| view_type(v.raw())))),
        _ => !is_field(key, FIELDS) && s.skip_value(),
    });
    if !whole {
        return None;
    }
    Some(StreamRecord {
        approximate_creation_date_time: created.flatten().map(|t| t.floor() as i64),
        keys: keys.flatten().unwrap_or_default(),
        new_image: new_image.flatten(),
        old_image: old_image.flatten(),
        sequence_number: sequence_number.flatten()?,
        size_bytes: size_bytes.flatten().unwrap_or_default().max(0) as u64,
        stream_view_type: view.flatten()?,
    })
}

/// `userIdentity`: `{"PrincipalId", "Type"}`.
fn identity(s: &mut Scanner<'_>) -> Option<UserIdentity> {
    let mut principal_id = None;
    let mut kind = None;
    let whole = s.members(|s, key| match key.raw() {
        "PrincipalId" => once(&mut principal_id, string(s)),
        "Type" => once(&mut kind, string(s)),
        _ => !is_field(key, &["PrincipalId", "Type"]) && s.skip_value(),
    });
    whole.then(|| UserIdentity { kind: kind.unwrap_or_default(), principal_id: principal_id.unwrap_or_default() })
}
