//! The change record: one item-level change read from a DynamoDB stream, in the shape a Lambda
//! function receives it (`Records[i]` of a DynamoDB stream event), so that existing Lambda filter
//! patterns and handler logic carry over unchanged.

use serde::{Deserialize, Deserializer, Serialize};

use crate::image::Image;
use crate::value::Item;

/// What happened to the item: `INSERT`, `MODIFY` or `REMOVE` (the stream record's `eventName`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventName {
    /// A new item was added.
    Insert,
    /// An existing item was changed.
    Modify,
    /// An item was deleted (by a request or by TTL).
    Remove,
}

impl EventName {
    /// The wire name: `"INSERT"`, `"MODIFY"` or `"REMOVE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "INSERT",
            Self::Modify => "MODIFY",
            Self::Remove => "REMOVE",
        }
    }
}

/// Which images the stream carries (the stream's `StreamViewType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamViewType {
    /// Only the key attributes.
    KeysOnly,
    /// The item as it is after the change.
    NewImage,
    /// The item as it was before the change.
    OldImage,
    /// Both.
    NewAndOldImages,
}

/// Who made the change, present only for deletes done by DynamoDB itself (TTL expiry):
/// `{"type": "Service", "principalId": "dynamodb.amazonaws.com"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `"Service"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `"dynamodb.amazonaws.com"`.
    pub principal_id: String,
}

/// One change record, as Lambda delivers it (`eventID`, `eventName`, `eventVersion`,
/// `eventSource`, `awsRegion`, `dynamodb`, `eventSourceARN`, `userIdentity`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeRecord {
    /// A unique identifier of this record (`eventID`).
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// INSERT, MODIFY or REMOVE.
    pub event_name: EventName,
    /// The record format version, `"1.1"` on DynamoDB Streams.
    #[serde(default = "default_event_version")]
    pub event_version: String,
    /// Always `"aws:dynamodb"`.
    #[serde(default = "default_event_source")]
    pub event_source: String,
    /// The region of the table, e.g. `"us-east-1"`.
    #[serde(default)]
    pub aws_region: String,
    /// The change itself.
    pub dynamodb: StreamRecord,
    /// The stream's ARN; Lambda adds it to every record. Empty when unknown.
    #[serde(rename = "eventSourceARN", default, skip_serializing_if = "String::is_empty")]
    pub event_source_arn: String,
    /// Set for TTL deletes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_identity: Option<UserIdentity>,
}

/// The `dynamodb` part of a change record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StreamRecord {
    /// When the change was made, in whole epoch seconds (a number, as Lambda gives it to filters).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "epoch_seconds")]
    pub approximate_creation_date_time: Option<i64>,
    /// The key attributes of the changed item (always present).
    pub keys: Item,
    /// The item after the change (stream views NEW_IMAGE and NEW_AND_OLD_IMAGES; not on REMOVE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_image: Option<Image>,
    /// The item before the change (stream views OLD_IMAGE and NEW_AND_OLD_IMAGES; not on INSERT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_image: Option<Image>,
    /// The record's position in its shard: a decimal string of up to 40 digits. Within a shard,
    /// later records have larger numbers (compare with [`StreamRecord::sequence_cmp`]).
    pub sequence_number: String,
    /// The size of the record in bytes, as DynamoDB reports it.
    #[serde(default)]
    pub size_bytes: u64,
    /// The stream's view type.
    pub stream_view_type: StreamViewType,
}

impl ChangeRecord {
    /// A copy whose images share nothing with the GetRecords page they were read from
    /// ([`Image::detached`]): for a record kept past its page (a batching route's gather), so that
    /// the few records a filter lets through do not each keep a whole page's buffer alive.
    pub fn detached(&self) -> Self {
        let mut copy = self.clone();
        for image in [&mut copy.dynamodb.new_image, &mut copy.dynamodb.old_image].into_iter().flatten() {
            *image = image.detached();
        }
        copy
    }
}

impl StreamRecord {
    /// Orders two sequence numbers numerically. They are decimal strings without leading zeros,
    /// so a longer one is larger, and equal lengths compare as text.
    pub fn sequence_cmp(a: &str, b: &str) -> std::cmp::Ordering {
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

fn default_event_version() -> String {
    "1.1".to_owned()
}

fn default_event_source() -> String {
    "aws:dynamodb".to_owned()
}

/// Accepts whole or fractional epoch seconds (`1479499740` or `1.47949974E9`) and keeps whole
/// seconds.
fn epoch_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v: Option<f64> = Option::deserialize(d)?;
    Ok(v.map(|s| s.floor() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_record_parses_and_serializes_back() {
        let text = r#"{"eventID":"c4ca4238a0b923820dcc509a6f75849b","eventName":"INSERT","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{"ApproximateCreationDateTime":1479499740,"Keys":{"Id":{"N":"101"}},"NewImage":{"Id":{"N":"101"},"Message":{"S":"New item!"}},"SequenceNumber":"111","SizeBytes":26,"StreamViewType":"NEW_AND_OLD_IMAGES"},"eventSourceARN":"arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2015-06-27T00:48:05.899"}"#;
        let rec: ChangeRecord = serde_json::from_str(text).unwrap();
        assert_eq!(rec.event_name, EventName::Insert);
        assert_eq!(rec.dynamodb.approximate_creation_date_time, Some(1479499740));
        assert_eq!(serde_json::to_string(&rec).unwrap(), text);
    }

    #[test]
    fn sequence_numbers_compare_numerically() {
        use std::cmp::Ordering::*;
        assert_eq!(StreamRecord::sequence_cmp("99", "100"), Less);
        assert_eq!(StreamRecord::sequence_cmp("200", "100"), Greater);
        assert_eq!(StreamRecord::sequence_cmp("100", "100"), Equal);
    }
}
