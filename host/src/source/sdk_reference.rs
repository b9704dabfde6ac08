//! The AWS SDK's stream records → [`ChangeRecord`]s, as eddy decoded GetRecords before it read
//! the answers itself: the reference the GetRecords decoder ([`super::wire`]) is checked
//! against in tests.

use aws_sdk_dynamodbstreams::types::{AttributeValue as Sdk, OperationType, Record};
use eddy_record::{AttributeValue, ChangeRecord, EventName, Item, StreamRecord, UserIdentity};
use std::collections::HashMap;

use super::Undecodable;

/// Decodes one record; `stream_arn` becomes its `eventSourceARN`, as Lambda adds it.
///
/// # Errors
/// An [`Undecodable`] naming the missing or unknown field; the record goes to the dead letter.
pub fn decode_record(record: Record, stream_arn: &str) -> Result<ChangeRecord, Undecodable> {
    let seq = record.dynamodb.as_ref().and_then(|d| d.sequence_number.clone());
    let fail = |reason: String, record: &Record| Undecodable {
        sequence_number: seq.clone(),
        reason,
        raw: format!("{record:?}"),
    };
    let event_name = match &record.event_name {
        Some(OperationType::Insert) => EventName::Insert,
        Some(OperationType::Modify) => EventName::Modify,
        Some(OperationType::Remove) => EventName::Remove,
        other => return Err(fail(format!("unknown eventName {other:?}"), &record)),
    };
    let Some(stream) = record.dynamodb.as_ref() else {
        return Err(fail("record has no `dynamodb` part".into(), &record));
    };
    let Some(sequence_number) = stream.sequence_number.clone() else {
        return Err(fail("record has no SequenceNumber".into(), &record));
    };
    let stream_view_type = match stream.stream_view_type.as_ref().map(|v| v.as_str()).and_then(super::wire::view_type) {
        Some(v) => v,
        None => return Err(fail(format!("unknown StreamViewType {:?}", stream.stream_view_type), &record)),
    };
    let convert =
        |m: &Option<HashMap<String, Sdk>>| -> Result<Option<Item>, String> { m.as_ref().map(item).transpose() };
    let (keys, new_image, old_image) =
        match (convert(&stream.keys), convert(&stream.new_image), convert(&stream.old_image)) {
            (Ok(k), Ok(n), Ok(o)) => (k.unwrap_or_default(), n, o),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(fail(e, &record)),
        };
    let dynamodb = StreamRecord {
        approximate_creation_date_time: stream.approximate_creation_date_time.map(|t| t.secs()),
        keys,
        new_image: new_image.map(Into::into),
        old_image: old_image.map(Into::into),
        sequence_number,
        size_bytes: stream.size_bytes.unwrap_or_default().max(0) as u64,
        stream_view_type,
    };
    Ok(ChangeRecord {
        event_id: record.event_id.unwrap_or_default(),
        event_name,
        event_version: record.event_version.unwrap_or_else(|| "1.1".into()),
        event_source: record.event_source.unwrap_or_else(|| "aws:dynamodb".into()),
        aws_region: record.aws_region.unwrap_or_default(),
        dynamodb,
        event_source_arn: stream_arn.to_owned(),
        user_identity: record.user_identity.map(|u| UserIdentity {
            kind: u.r#type.unwrap_or_default(),
            principal_id: u.principal_id.unwrap_or_default(),
        }),
    })
}

fn item(m: &HashMap<String, Sdk>) -> Result<Item, String> {
    m.iter().map(|(k, v)| Ok((k.clone(), value(v)?))).collect()
}

/// Converts one SDK attribute value, exactly.
fn value(v: &Sdk) -> Result<AttributeValue, String> {
    Ok(match v {
        Sdk::S(s) => AttributeValue::S(s.clone()),
        Sdk::N(n) => AttributeValue::N(n.clone()),
        Sdk::B(b) => AttributeValue::B(b.as_ref().to_vec()),
        Sdk::Ss(v) => AttributeValue::Ss(v.clone()),
        Sdk::Ns(v) => AttributeValue::Ns(v.clone()),
        Sdk::Bs(v) => AttributeValue::Bs(v.iter().map(|b| b.as_ref().to_vec()).collect()),
        Sdk::M(m) => AttributeValue::M(item(m)?),
        Sdk::L(l) => AttributeValue::L(l.iter().map(value).collect::<Result<_, _>>()?),
        Sdk::Null(_) => AttributeValue::Null,
        Sdk::Bool(b) => AttributeValue::Bool(*b),
        other => return Err(format!("unknown attribute value type {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::primitives::{Blob, DateTime};
    use aws_sdk_dynamodbstreams::types::StreamRecord as SdkStream;

    #[test]
    fn every_attribute_type_decodes_exactly() {
        let image: HashMap<String, Sdk> = [
            ("s".to_owned(), Sdk::S("x".into())),
            ("n".to_owned(), Sdk::N("-12345678901234567890123456789012345678".into())),
            ("b".to_owned(), Sdk::B(Blob::new(vec![0u8, 255]))),
            ("ss".to_owned(), Sdk::Ss(vec!["a".into(), "b".into()])),
            ("ns".to_owned(), Sdk::Ns(vec!["1".into(), "1.5E+3".into()])),
            ("bs".to_owned(), Sdk::Bs(vec![Blob::new(vec![1u8]), Blob::new(vec![2u8])])),
            ("m".to_owned(), Sdk::M([("deep".to_owned(), Sdk::L(vec![Sdk::Null(true), Sdk::Bool(false)]))].into())),
            ("null".to_owned(), Sdk::Null(true)),
            ("bool".to_owned(), Sdk::Bool(true)),
        ]
        .into();
        let record = Record::builder()
            .event_id("e1")
            .event_name(OperationType::Insert)
            .aws_region("eu-west-1")
            .dynamodb(
                SdkStream::builder()
                    .approximate_creation_date_time(DateTime::from_secs(1_700_000_000))
                    .keys("s", Sdk::S("x".into()))
                    .set_new_image(Some(image))
                    .sequence_number("100")
                    .size_bytes(42)
                    .stream_view_type(aws_sdk_dynamodbstreams::types::StreamViewType::NewAndOldImages)
                    .build(),
            )
            .build();
        let rec = decode_record(record, "arn:stream").unwrap();
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["eventName"], "INSERT");
        assert_eq!(json["eventSourceARN"], "arn:stream");
        assert_eq!(json["dynamodb"]["ApproximateCreationDateTime"], 1_700_000_000);
        let img = &json["dynamodb"]["NewImage"];
        assert_eq!(img["n"]["N"], "-12345678901234567890123456789012345678");
        assert_eq!(img["b"]["B"], "AP8=");
        assert_eq!(img["bs"]["BS"], serde_json::json!(["AQ==", "Ag=="]));
        assert_eq!(img["ns"]["NS"], serde_json::json!(["1", "1.5E+3"]));
        assert_eq!(img["m"]["M"]["deep"]["L"], serde_json::json!([{"NULL": true}, {"BOOL": false}]));
        assert_eq!(img["bool"]["BOOL"], true);
    }

    #[test]
    fn a_record_without_sequence_number_is_undecodable() {
        let record = Record::builder().event_name(OperationType::Remove).dynamodb(SdkStream::builder().build()).build();
        let err = decode_record(record, "arn").unwrap_err();
        assert!(err.reason.contains("no SequenceNumber"), "{}", err.reason);
    }
}
