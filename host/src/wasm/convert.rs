//! Change records across the Wasm boundary: host records → the guest's arguments, and the
//! guest's verdicts back.
//!
//! - 0.4.0 ([`current`]): only each record's fixed-size fields are lowered (`change`); the rest is
//!   read by index through the call's `batch` (`batch.rs`).
//! - 0.3.0 and 0.2.0: every record's strings and keys are lowered from borrows and its images lent
//!   as `image` handles; [`lowering!`] writes the same conversions for each, so that the versions
//!   differ only where their WIT does (0.3.0's `change` carries `event-source`).
//!
//! [`lifting!`] writes the verdict conversion for every version (the `verdict` and
//! `replacement` types are the same in all of them).

use eddy_record::{AttributeValue, ChangeRecord, EventName, Item, StreamRecord};

/// Defines `From<$wit::Verdict> for Verdict` (and for `$wit::Replacement`) for the generated
/// types `$wit` of one contract version; `$key` is its name for a returned `key-value`
/// (`KeyValueResult` where the type also appears in `process`'s parameters, else `KeyValue`).
macro_rules! lifting {
    ($wit:path, $key:ident) => {
        const _: () = {
            use eddy_record::{AttributeValue, EventName};
            use $wit as wit;

            use crate::wasm::convert::{GuestChange, Verdict};

            impl From<wit::Replacement> for GuestChange {
                fn from(c: wit::Replacement) -> Self {
                    GuestChange {
                        event_id: c.event_id,
                        event_name: match c.event_name {
                            wit::EventName::Insert => EventName::Insert,
                            wit::EventName::Modify => EventName::Modify,
                            wit::EventName::Remove => EventName::Remove,
                        },
                        sequence_number: c.sequence_number,
                        approximate_creation_time: c.approximate_creation_time,
                        size_bytes: c.size_bytes,
                        keys: c
                            .keys
                            .into_iter()
                            .map(|(k, v)| {
                                let v = match v {
                                    wit::$key::S(s) => AttributeValue::S(s),
                                    wit::$key::N(n) => AttributeValue::N(n),
                                    wit::$key::B(b) => AttributeValue::B(b),
                                };
                                (k, v)
                            })
                            .collect(),
                        new_image: c.new_image,
                        old_image: c.old_image,
                    }
                }
            }

            impl From<wit::Verdict> for Verdict {
                fn from(v: wit::Verdict) -> Self {
                    match v {
                        wit::Verdict::Pass => Self::Pass,
                        wit::Verdict::Drop => Self::Drop,
                        wit::Verdict::Replace(c) => Self::Replace(c.into()),
                        wit::Verdict::Route(names) => Self::Route(names),
                        wit::Verdict::FanOut(cs) => Self::FanOut(cs.into_iter().map(Into::into).collect()),
                        wit::Verdict::Fail(m) => Self::Fail(m),
                    }
                }
            }
        };
    };
}

lifting!(crate::wasm::bindings::current::eddy::processor::types, KeyValue);
lifting!(crate::wasm::bindings::v0_3::eddy::processor::types, KeyValueResult);
lifting!(crate::wasm::bindings::v0_2::eddy::processor::types, KeyValueResult);

/// 0.4.0: the `changes` argument of `process`.
pub(super) mod current {
    use eddy_record::{ChangeRecord, EventName};

    use crate::wasm::bindings::current::eddy::processor::types as wit;

    /// Each record's fixed-size fields, index-aligned with `records`; the `batch` handle reads the
    /// rest. Reuses `out`'s allocation.
    pub(in crate::wasm) fn changes(records: &[&ChangeRecord], out: &mut Vec<wit::Change>) {
        out.clear();
        out.extend(records.iter().map(|r| wit::Change {
            event_name: match r.event_name {
                EventName::Insert => wit::EventName::Insert,
                EventName::Modify => wit::EventName::Modify,
                EventName::Remove => wit::EventName::Remove,
            },
            approximate_creation_time: r.dynamodb.approximate_creation_date_time,
            size_bytes: r.dynamodb.size_bytes,
            has_new_image: r.dynamodb.new_image.is_some(),
            has_old_image: r.dynamodb.old_image.is_some(),
        }));
    }
}

/// Defines, in module `$name`, the lowering for the generated types `$wit` of a contract
/// version before 0.4.0: `keys` and `params` (the `process` argument). `$field` lists the
/// `change` fields beyond 0.2.0's, each taken from the record field of the same name
/// (`event_source`).
macro_rules! lowering {
    ($name:ident, $wit:path $(, $field:ident)*) => {
        pub(super) mod $name {
            use eddy_record::{AttributeValue, ChangeRecord, EventName};
            use $wit as wit;

            use crate::wasm::HostState;

            /// The keys of a batch, borrowed from its records, ready to lower.
            pub(in crate::wasm) fn keys<'a>(
                records: &[&'a ChangeRecord],
            ) -> Vec<Vec<(&'a str, wit::KeyValueParam<'a>)>> {
                records
                    .iter()
                    .map(|r| r.dynamodb.keys.iter().filter_map(|(k, v)| Some((k.as_str(), key_param(v)?))).collect())
                    .collect()
            }

            /// The `process` argument for `records`; `keys` from [`keys`]. Makes the image
            /// handles in `state`'s table, for the call about to start.
            ///
            /// # Errors
            /// When the resource table is full.
            pub(in crate::wasm) fn params<'a>(
                records: &[&'a ChangeRecord],
                keys: &'a [Vec<(&'a str, wit::KeyValueParam<'a>)>],
                state: &mut HostState,
            ) -> wasmtime::Result<Vec<wit::Change<'a>>> {
                let mut image = |i: usize, image: &Option<eddy_record::Image>, old: bool| {
                    image.as_ref().map(|_| state.image_handle(i, old)).transpose()
                };
                records
                    .iter()
                    .zip(keys)
                    .enumerate()
                    .map(|(i, (r, keys))| {
                        Ok(wit::Change {
                            event_id: &r.event_id,
                            event_name: match r.event_name {
                                EventName::Insert => wit::EventName::Insert,
                                EventName::Modify => wit::EventName::Modify,
                                EventName::Remove => wit::EventName::Remove,
                            },
                            $($field: &r.$field,)*
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

            fn key_param(v: &AttributeValue) -> Option<wit::KeyValueParam<'_>> {
                match v {
                    AttributeValue::S(s) => Some(wit::KeyValueParam::S(s)),
                    AttributeValue::N(n) => Some(wit::KeyValueParam::N(n)),
                    AttributeValue::B(b) => Some(wit::KeyValueParam::B(b)),
                    _ => None,
                }
            }
        }
    };
}

lowering!(v0_3, crate::wasm::bindings::v0_3::eddy::processor::types, event_source);
lowering!(v0_2, crate::wasm::bindings::v0_2::eddy::processor::types);

/// A change the guest built (`replace`, `fan-out`): the `replacement` record, in eddy's types.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestChange {
    /// `eventID`
    pub event_id: String,
    /// `eventName`
    pub event_name: EventName,
    /// `dynamodb.SequenceNumber`
    pub sequence_number: String,
    /// `dynamodb.ApproximateCreationDateTime`, epoch seconds.
    pub approximate_creation_time: Option<i64>,
    /// `dynamodb.SizeBytes`
    pub size_bytes: u64,
    /// `dynamodb.Keys`, attribute name → value.
    pub keys: Vec<(String, AttributeValue)>,
    /// `dynamodb.NewImage` as DynamoDB JSON text.
    pub new_image: Option<String>,
    /// `dynamodb.OldImage` as DynamoDB JSON text.
    pub old_image: Option<String>,
}

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
    let keys: Item = change.keys.into_iter().collect();
    Ok(ChangeRecord {
        event_id: change.event_id,
        event_name: change.event_name,
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
