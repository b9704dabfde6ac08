//! Change records across the Wasm boundary: host records → the guest's `change` (everything
//! borrowed from the records; images lent as `image` handles), and the guest's verdicts back.

use eddy_sink_api::{AttributeValue, ChangeRecord, EventName, Item, StreamRecord};

use super::bindings::eddy::processor::types as wit;
use super::HostState;

/// The keys of a batch, borrowed from its records, ready to lower.
pub(super) fn keys<'a>(records: &[&'a ChangeRecord]) -> Vec<Vec<(&'a str, wit::KeyValueParam<'a>)>> {
    records
        .iter()
        .map(|r| r.dynamodb.keys.iter().filter_map(|(k, v)| Some((k.as_str(), key_param(v)?))).collect())
        .collect()
}

/// The `process` argument for `records`; `keys` from [`keys`]. Makes the image handles in
/// `state`'s table, for the call about to start.
///
/// # Errors
/// When the resource table is full.
pub(super) fn params<'a>(
    records: &[&'a ChangeRecord],
    keys: &'a [Vec<(&'a str, wit::KeyValueParam<'a>)>],
    state: &mut HostState,
) -> wasmtime::Result<Vec<wit::Change<'a>>> {
    let mut image = |i: usize, image: &Option<eddy_sink_api::Image>, old: bool| {
        image.as_ref().map(|_| state.image_handle(i, old)).transpose()
    };
    records
        .iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (r, keys))| {
            Ok(wit::Change {
                event_id: &r.event_id,
                event_name: event_name(r.event_name),
                sequence_number: &r.dynamodb.sequence_number,
                approximate_creation_time: r.dynamodb.approximate_creation_date_time,
                size_bytes: r.dynamodb.size_bytes,
                keys,
                new_image: image(i, &r.dynamodb.new_image, false)?,
                old_image: image(i, &r.dynamodb.old_image, true)?,
            })
        })
        .collect()
}

fn event_name(e: EventName) -> wit::EventName {
    match e {
        EventName::Insert => wit::EventName::Insert,
        EventName::Modify => wit::EventName::Modify,
        EventName::Remove => wit::EventName::Remove,
    }
}

fn key_param(v: &AttributeValue) -> Option<wit::KeyValueParam<'_>> {
    match v {
        AttributeValue::S(s) => Some(wit::KeyValueParam::S(s)),
        AttributeValue::N(n) => Some(wit::KeyValueParam::N(n)),
        AttributeValue::B(b) => Some(wit::KeyValueParam::B(b)),
        _ => None,
    }
}

/// A change the guest built (`replace`, `fan-out`).
pub type GuestChange = wit::Replacement;

/// A processor's decision about one record.
#[derive(Debug)]
pub enum Verdict {
    /// Forward unchanged.
    Pass,
    /// Forward nowhere.
    Drop,
    /// Forward this instead.
    Replace(GuestChange),
    /// Forward only to these sinks of the route.
    Route(Vec<String>),
    /// Forward these instead, in order.
    FanOut(Vec<GuestChange>),
    /// Send to the dead letter with this message.
    Fail(String),
}

impl From<wit::Verdict> for Verdict {
    fn from(v: wit::Verdict) -> Self {
        match v {
            wit::Verdict::Pass => Self::Pass,
            wit::Verdict::Drop => Self::Drop,
            wit::Verdict::Replace(c) => Self::Replace(c),
            wit::Verdict::Route(names) => Self::Route(names),
            wit::Verdict::FanOut(cs) => Self::FanOut(cs),
            wit::Verdict::Fail(m) => Self::Fail(m),
        }
    }
}

/// Turns a guest-built change into a record. Fields the contract does not carry (`awsRegion`,
/// `eventSourceARN`, the stream view type, ...) come from `original`, the input record.
///
/// # Errors
/// When an image is not valid DynamoDB JSON (the message names which).
pub fn to_record(change: GuestChange, original: &ChangeRecord) -> Result<ChangeRecord, String> {
    let image = |text: Option<String>, which: &str| -> Result<Option<Item>, String> {
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| format!("the {which} the processor returned is not DynamoDB JSON: {e}"))
        })
        .transpose()
    };
    let keys = change
        .keys
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                wit::KeyValueResult::S(s) => AttributeValue::S(s),
                wit::KeyValueResult::N(n) => AttributeValue::N(n),
                wit::KeyValueResult::B(b) => AttributeValue::B(b),
            };
            (k, v)
        })
        .collect();
    Ok(ChangeRecord {
        event_id: change.event_id,
        event_name: match change.event_name {
            wit::EventName::Insert => EventName::Insert,
            wit::EventName::Modify => EventName::Modify,
            wit::EventName::Remove => EventName::Remove,
        },
        event_version: original.event_version.clone(),
        event_source: original.event_source.clone(),
        aws_region: original.aws_region.clone(),
        dynamodb: StreamRecord {
            approximate_creation_date_time: change.approximate_creation_time,
            keys,
            new_image: image(change.new_image, "NewImage")?.map(Into::into),
            old_image: image(change.old_image, "OldImage")?.map(Into::into),
            sequence_number: change.sequence_number,
            size_bytes: change.size_bytes,
            stream_view_type: original.dynamodb.stream_view_type,
        },
        event_source_arn: original.event_source_arn.clone(),
        user_identity: original.user_identity.clone(),
    })
}
