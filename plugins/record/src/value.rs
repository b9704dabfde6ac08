//! DynamoDB attribute values and their DynamoDB-JSON text form (`{"S": "x"}`, `{"N": "1"}`, ...),
//! the form Lambda hands to functions and that the AWS CLI prints.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An item (or an image, or a key): attribute name → value, in name order so that its JSON text
/// is deterministic.
pub type Item = BTreeMap<String, AttributeValue>;

/// One DynamoDB attribute value, as in the DynamoDB data model.
///
/// Numbers (`N`, `NS`) are kept as the decimal text DynamoDB sends (up to 38 significant digits),
/// never converted to a float, so they round-trip exactly. Binary values (`B`, `BS`) are raw bytes;
/// their JSON form is base64, as in the DynamoDB JSON wire protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttributeValue {
    /// `S`: a UTF-8 string.
    S(String),
    /// `N`: a number, as decimal text.
    N(String),
    /// `B`: binary data.
    B(Vec<u8>),
    /// `SS`: a string set.
    Ss(Vec<String>),
    /// `NS`: a number set, each as decimal text.
    Ns(Vec<String>),
    /// `BS`: a binary set.
    Bs(Vec<Vec<u8>>),
    /// `M`: a map of attribute values.
    M(Item),
    /// `L`: a list of attribute values.
    L(Vec<AttributeValue>),
    /// `NULL`: the null value (always `true` in DynamoDB JSON).
    Null,
    /// `BOOL`: a boolean.
    Bool(bool),
}

impl AttributeValue {
    /// The DynamoDB type descriptor: `"S"`, `"N"`, `"B"`, `"SS"`, `"NS"`, `"BS"`, `"M"`, `"L"`,
    /// `"NULL"` or `"BOOL"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::S(_) => "S",
            Self::N(_) => "N",
            Self::B(_) => "B",
            Self::Ss(_) => "SS",
            Self::Ns(_) => "NS",
            Self::Bs(_) => "BS",
            Self::M(_) => "M",
            Self::L(_) => "L",
            Self::Null => "NULL",
            Self::Bool(_) => "BOOL",
        }
    }

    /// The string if this is an `S`.
    pub fn as_s(&self) -> Option<&str> {
        match self {
            Self::S(s) => Some(s),
            _ => None,
        }
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

struct B64<'a>(&'a [u8]);

impl Serialize for B64<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&b64().encode(self.0))
    }
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self {
            Self::S(v) | Self::N(v) => map.serialize_entry(self.type_name(), v)?,
            Self::B(v) => map.serialize_entry("B", &B64(v))?,
            Self::Ss(v) | Self::Ns(v) => map.serialize_entry(self.type_name(), v)?,
            Self::Bs(v) => map.serialize_entry("BS", &B64List(v))?,
            Self::M(v) => map.serialize_entry("M", v)?,
            Self::L(v) => map.serialize_entry("L", v)?,
            Self::Null => map.serialize_entry("NULL", &true)?,
            Self::Bool(v) => map.serialize_entry("BOOL", v)?,
        }
        map.end()
    }
}

struct B64List<'a>(&'a [Vec<u8>]);

impl Serialize for B64List<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for b in self.0 {
            seq.serialize_element(&B64(b))?;
        }
        seq.end()
    }
}

struct Base64Bytes(Vec<u8>);

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        b64()
            .decode(text.as_bytes())
            .map(Base64Bytes)
            .map_err(|e| de::Error::custom(format!("invalid base64 in a binary value: {e}")))
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AttributeValueVisitor)
    }
}

struct AttributeValueVisitor;

impl<'de> Visitor<'de> for AttributeValueVisitor {
    type Value = AttributeValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DynamoDB JSON value with one type key, such as {\"S\": \"text\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttributeValue, A::Error> {
        let Some(tag) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
            return Err(de::Error::custom("empty DynamoDB JSON value: expected one type key"));
        };
        let value = match tag.as_ref() {
            "S" => AttributeValue::S(map.next_value()?),
            "N" => AttributeValue::N(map.next_value()?),
            "B" => AttributeValue::B(map.next_value::<Base64Bytes>()?.0),
            "SS" => AttributeValue::Ss(map.next_value()?),
            "NS" => AttributeValue::Ns(map.next_value()?),
            "BS" => AttributeValue::Bs(map.next_value::<Vec<Base64Bytes>>()?.into_iter().map(|b| b.0).collect()),
            "M" => AttributeValue::M(map.next_value()?),
            "L" => AttributeValue::L(map.next_value()?),
            "NULL" => {
                let _: bool = map.next_value()?;
                AttributeValue::Null
            }
            "BOOL" => AttributeValue::Bool(map.next_value()?),
            other => {
                return Err(de::Error::custom(format!(
                    "unknown DynamoDB type {other:?} (expected S, N, B, SS, NS, BS, M, L, NULL or BOOL)"
                )))
            }
        };
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("a DynamoDB JSON value has exactly one type key"));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_dynamodb_json() {
        let text = r#"{"b":{"B":"AAEC/w=="},"bool":{"BOOL":false},"bs":{"BS":["AA==","/w=="]},"l":{"L":[{"N":"1"},{"S":"x"},{"M":{}}]},"m":{"M":{"deep":{"L":[{"NULL":true}]}}},"n":{"N":"12345678901234567890123456789012345678"},"ns":{"NS":["1","-2.5"]},"null":{"NULL":true},"s":{"S":"héllo"},"ss":{"SS":["a","b"]}}"#;
        let item: Item = serde_json::from_str(text).unwrap();
        assert_eq!(item["b"], AttributeValue::B(vec![0, 1, 2, 255]));
        assert_eq!(item["n"].type_name(), "N");
        assert_eq!(serde_json::to_string(&item).unwrap(), text);
    }

    #[test]
    fn malformed_values_are_rejected_with_the_reason() {
        let err = serde_json::from_str::<AttributeValue>(r#"{"X":"1"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown DynamoDB type \"X\""), "{err}");
        let err = serde_json::from_str::<AttributeValue>(r#"{"S":"a","N":"1"}"#).unwrap_err();
        assert!(err.to_string().contains("exactly one type key"), "{err}");
        let err = serde_json::from_str::<AttributeValue>(r#"{"B":"***"}"#).unwrap_err();
        assert!(err.to_string().contains("invalid base64"), "{err}");
    }
}
