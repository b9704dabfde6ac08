//! The fast path of `decode::record`: the change JSON DynamoDB writes to Kinesis read in
//! one strict pass ([`eddy_record::scan::Scanner`]), each image checked as DynamoDB JSON and
//! kept as its text, the keys decoded as read. It accepts only what the serde reader
//! (`decode::change`) reads to the same change, and answers `None` for anything else (a change
//! for the dead letter, a duplicate field, an escaped field name, `-0` where serde reads a
//! float), which that reader then reads again and says what is wrong.

use eddy_record::scan::Scanner;
use eddy_record::{ChangeRecord, EventName, Image, Item, StreamRecord, StreamViewType, UserIdentity};

use super::change::Decoded;
use crate::source::fields::{event_name_of, float, integer, is_field, keys, once, optional, string};

/// The change in `text` (one Kinesis record's data), or `None` when the serde reader decides.
pub(super) fn change(text: &str, sequence: &str, table: Option<&str>, stream_arn: &str) -> Option<Decoded> {
    const FIELDS: &[&str] =
        &["eventID", "eventName", "eventSource", "awsRegion", "tableName", "recordFormat", "userIdentity", "dynamodb"];
    let mut event_id = None;
    let mut event_name: Option<Option<EventName>> = None;
    let mut event_source: Option<Option<String>> = None;
    let mut aws_region: Option<Option<String>> = None;
    let mut table_name: Option<Option<String>> = None;
    let mut format_ok: Option<Option<()>> = None;
    let mut user_identity: Option<Option<UserIdentity>> = None;
    let mut body: Option<Option<Body>> = None;
    let mut s = Scanner::new(text);
    let whole = s.members(|s, key| match key.raw() {
        "eventID" => once(&mut event_id, string(s)),
        // What the serde reader refuses (an unknown event name, another table, another record
        // format) is refused here too, and it gives the reason.
        "eventName" => once(&mut event_name, optional(s, |s| s.string().and_then(|n| event_name_of(&n)))),
        "eventSource" => once(&mut event_source, optional(s, string)),
        "awsRegion" => once(&mut aws_region, optional(s, string)),
        "tableName" => once(
            &mut table_name,
            optional(s, |s| {
                let found = s.string().filter(|t| !t.is_escaped())?;
                table.is_none_or(|expected| expected == found.raw()).then(|| found.raw().to_owned())
            }),
        ),
        "recordFormat" => {
            once(&mut format_ok, optional(s, |s| s.string().filter(|f| f.raw() == "application/json").map(|_| ())))
        }
        "userIdentity" => once(&mut user_identity, optional(s, identity)),
        "dynamodb" => once(&mut body, optional(s, self::body)),
        _ => !is_field(key, FIELDS) && s.skip_value(),
    });
    if !whole || !s.at_end() {
        return None;
    }
    let body = body.flatten()?;
    let record = ChangeRecord {
        event_id: event_id.unwrap_or_default(),
        event_name: event_name.flatten()?,
        event_version: "1.1".into(),
        event_source: event_source.flatten().unwrap_or_else(|| "aws:dynamodb".into()),
        aws_region: aws_region.flatten().unwrap_or_default(),
        dynamodb: StreamRecord {
            approximate_creation_date_time: body.created_micros.map(|us| us.div_euclid(1_000_000)),
            keys: body.keys,
            new_image: body.new_image,
            old_image: body.old_image,
            sequence_number: sequence.to_owned(),
            size_bytes: body.size_bytes.unwrap_or_default().max(0) as u64,
            stream_view_type: StreamViewType::NewAndOldImages,
        },
        event_source_arn: stream_arn.to_owned(),
        user_identity: user_identity.flatten(),
    };
    let key = super::change::recency_key(table_name.flatten().as_deref(), &record.dynamodb.keys).ok()?;
    Some(Decoded { record, created_micros: body.created_micros, key })
}

/// The `dynamodb` part, read.
struct Body {
    created_micros: Option<i64>,
    keys: Item,
    new_image: Option<Image>,
    old_image: Option<Image>,
    size_bytes: Option<i64>,
}

/// `{"ApproximateCreationDateTime", "ApproximateCreationDateTimePrecision", "Keys", "NewImage",
/// "OldImage", "SizeBytes"}`; keys must be there and not empty.
fn body(s: &mut Scanner<'_>) -> Option<Body> {
    const FIELDS: &[&str] = &[
        "ApproximateCreationDateTime",
        "ApproximateCreationDateTimePrecision",
        "Keys",
        "NewImage",
        "OldImage",
        "SizeBytes",
    ];
    let mut created: Option<Option<f64>> = None;
    let mut precision: Option<Option<i64>> = None;
    let mut keys: Option<Option<Item>> = None;
    let mut new_image: Option<Option<Image>> = None;
    let mut old_image: Option<Option<Image>> = None;
    let mut size_bytes: Option<Option<i64>> = None;
    let whole = s.members(|s, key| match key.raw() {
        "ApproximateCreationDateTime" => once(&mut created, optional(s, float)),
        // Microseconds per unit; an unknown precision goes to the dead letter.
        "ApproximateCreationDateTimePrecision" => once(
            &mut precision,
            optional(s, |s| match s.string()?.raw() {
                "MICROSECOND" => Some(1),
                "MILLISECOND" => Some(1000),
                _ => None,
            }),
        ),
        "Keys" => once(&mut keys, optional(s, self::keys)),
        "NewImage" => once(&mut new_image, optional(s, Image::scan)),
        "OldImage" => once(&mut old_image, optional(s, Image::scan)),
        "SizeBytes" => once(&mut size_bytes, optional(s, integer)),
        _ => !is_field(key, FIELDS) && s.skip_value(),
    });
    if !whole {
        return None;
    }
    let per_unit = precision.flatten().unwrap_or(1000);
    Some(Body {
        created_micros: created.flatten().map(|t| (t as i64).saturating_mul(per_unit)),
        keys: keys.flatten().filter(|k| !k.is_empty())?,
        new_image: new_image.flatten(),
        old_image: old_image.flatten(),
        size_bytes: size_bytes.flatten(),
    })
}

/// `userIdentity`: `{"principalId", "type"}`, or the API's `{"PrincipalId", "Type"}`.
fn identity(s: &mut Scanner<'_>) -> Option<UserIdentity> {
    const FIELDS: &[&str] = &["principalId", "PrincipalId", "type", "Type"];
    let mut principal_id = None;
    let mut kind = None;
    // serde's aliases name one field: a second spelling of it is a duplicate.
    let whole = s.members(|s, key| match key.raw() {
        "principalId" | "PrincipalId" => once(&mut principal_id, string(s)),
        "type" | "Type" => once(&mut kind, string(s)),
        _ => !is_field(key, FIELDS) && s.skip_value(),
    });
    whole.then(|| UserIdentity { kind: kind.unwrap_or_default(), principal_id: principal_id.unwrap_or_default() })
}
