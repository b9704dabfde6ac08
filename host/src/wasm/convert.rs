//! Change records across the Wasm boundary: host records → the guest's `change` (images as
//! DynamoDB JSON text, borrowed where possible), and the guest's verdicts back.

use eddy_sink_api::{AttributeValue, ChangeRecord, EventName, Item};

use super::bindings::eddy::processor::types as wit;

/// A batch prepared for one `process` call: the images serialized once, everything else
/// borrowed from the records.
pub struct GuestBatch<'a> {
    records: &'a [&'a ChangeRecord],
    keys: Vec<Vec<(&'a str, wit::KeyValueParam<'a>)>>,
    new_images: Vec<Option<String>>,
    old_images: Vec<Option<String>>,
}

/// Prepares `records` for the guest.
pub fn to_guest_batch<'a>(records: &'a [&'a ChangeRecord]) -> GuestBatch<'a> {
    let json = |i: &Option<Item>| i.as_ref().map(|i| serde_json::to_string(i).expect("an item always serializes"));
    GuestBatch {
        records,
        keys: records
            .iter()
            .map(|r| r.dynamodb.keys.iter().filter_map(|(k, v)| Some((k.as_str(), key_param(v)?))).collect())
            .collect(),
        new_images: records.iter().map(|r| json(&r.dynamodb.new_image)).collect(),
        old_images: records.iter().map(|r| json(&r.dynamodb.old_image)).collect(),
    }
}

impl<'a> GuestBatch<'a> {
    /// The call's argument.
    pub(super) fn params(&self) -> Vec<wit::ChangeParam<'_>> {
        self.records
            .iter()
            .enumerate()
            .map(|(i, r)| wit::ChangeParam {
                event_id: &r.event_id,
                event_name: event_name(r.event_name),
                sequence_number: &r.dynamodb.sequence_number,
                approximate_creation_time: r.dynamodb.approximate_creation_date_time,
                size_bytes: r.dynamodb.size_bytes,
                keys: &self.keys[i],
                new_image: self.new_images[i].as_deref(),
                old_image: self.old_images[i].as_deref(),
            })
            .collect()
    }
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
pub type GuestChange = wit::ChangeResult;

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
    let mut record = original.clone();
    record.event_id = change.event_id;
    record.event_name = match change.event_name {
        wit::EventName::Insert => EventName::Insert,
        wit::EventName::Modify => EventName::Modify,
        wit::EventName::Remove => EventName::Remove,
    };
    record.dynamodb.sequence_number = change.sequence_number;
    record.dynamodb.approximate_creation_date_time = change.approximate_creation_time;
    record.dynamodb.size_bytes = change.size_bytes;
    record.dynamodb.keys = change
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
    record.dynamodb.new_image = image(change.new_image, "NewImage")?;
    record.dynamodb.old_image = image(change.old_image, "OldImage")?;
    Ok(record)
}
