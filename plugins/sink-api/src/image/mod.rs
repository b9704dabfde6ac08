//! An item image (`NewImage`, `OldImage`) that is decoded only when something needs its
//! attributes.
//!
//! Records read from GetRecords keep each image as its DynamoDB JSON text, checked when it was
//! read (so it decodes without error later), and turn it into an [`Item`] the first time a
//! filter, a processor or a sink asks for an attribute ([`Image::item`], or through `Deref`).
//! Sinks that write DynamoDB JSON (the Alternator sink, the dead letter, the file sink) copy the
//! text as it is ([`Image::write_json`]), so a record that only passes through is never decoded.

mod scan;

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::value::{AttributeValue, Item};

/// An item image: DynamoDB JSON text decoded on first use, or an [`Item`] built in memory.
pub struct Image {
    /// The item's DynamoDB JSON, valid by construction; `None` for images built from an item.
    text: Option<Box<str>>,
    item: OnceLock<Item>,
}

impl Image {
    /// An image of DynamoDB JSON `text` (`{"name": {"S": "x"}, ...}`), checked but not decoded.
    ///
    /// # Errors
    /// When `text` is not an item in DynamoDB JSON; the message says what and where.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        CheckedItem::deserialize(&mut de).and_then(|_| de.end()).map_err(|e| e.to_string())?;
        Ok(Self { text: Some(text.into()), item: OnceLock::new() })
    }

    /// An image of `raw`, valid JSON read from a GetRecords answer: its DynamoDB JSON is checked
    /// by a fast scan, and by the full check of [`Image::from_json`] when the scan cannot tell.
    ///
    /// # Errors
    /// As [`Image::from_json`].
    pub fn from_raw(raw: &serde_json::value::RawValue) -> Result<Self, String> {
        if scan::is_item(raw.get().as_bytes()) {
            return Ok(Self { text: Some(raw.get().into()), item: OnceLock::new() });
        }
        Self::from_json(raw.get())
    }

    /// The item, decoded from its text on first use.
    pub fn item(&self) -> &Item {
        self.item.get_or_init(|| match &self.text {
            Some(text) => serde_json::from_str(text).expect("image text is checked when the image is made"),
            None => Item::new(),
        })
    }

    /// One top-level attribute. An image not decoded yet stays so: its text is scanned for
    /// `name` and only that attribute is decoded (what a processor reading one attribute pays).
    pub fn attribute(&self, name: &str) -> Option<std::borrow::Cow<'_, AttributeValue>> {
        use std::borrow::Cow;
        match (self.item.get(), &self.text) {
            (Some(item), _) => item.get(name).map(Cow::Borrowed),
            (None, Some(text)) => {
                let mut de = serde_json::Deserializer::from_str(text);
                de::DeserializeSeed::deserialize(Find(name), &mut de)
                    .expect("image text is checked when the image is made")
                    .map(Cow::Owned)
            }
            (None, None) => None,
        }
    }

    /// The item, owned.
    pub fn into_item(mut self) -> Item {
        match self.item.take() {
            Some(item) => item,
            None => self.item().clone(),
        }
    }

    /// Whether the attributes were decoded (for tests and benchmarks of the lazy path).
    pub fn is_decoded(&self) -> bool {
        self.item.get().is_some()
    }

    /// Appends the image's DynamoDB JSON to `out`: its text as read when it has one, else the
    /// item serialized.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match &self.text {
            Some(text) => out.extend_from_slice(text.as_bytes()),
            None => serde_json::to_writer(out, self.item()).expect("attribute values serialize"),
        }
    }
}

impl Default for Image {
    /// An empty item.
    fn default() -> Self {
        Item::new().into()
    }
}

impl From<Item> for Image {
    fn from(item: Item) -> Self {
        Self { text: None, item: OnceLock::from(item) }
    }
}

impl Deref for Image {
    type Target = Item;

    fn deref(&self) -> &Item {
        self.item()
    }
}

impl Clone for Image {
    fn clone(&self) -> Self {
        Self { text: self.text.clone(), item: self.item.clone() }
    }
}

impl PartialEq for Image {
    fn eq(&self, other: &Self) -> bool {
        match (&self.text, &other.text) {
            (Some(a), Some(b)) if a == b => true,
            _ => self.item() == other.item(),
        }
    }
}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.item(), f)
    }
}

impl Serialize for Image {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (&self.text, self.item.get()) {
            (_, Some(item)) => item.serialize(s),
            (Some(text), None) => {
                let raw: &serde_json::value::RawValue =
                    serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
                raw.serialize(s)
            }
            (None, None) => Item::new().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Image {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Item::deserialize(d).map(Image::from)
    }
}

/// Finds one attribute in an item's text, skipping the others without decoding them.
struct Find<'n>(&'n str);

impl<'de> de::DeserializeSeed<'de> for Find<'_> {
    type Value = Option<AttributeValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Find<'_> {
    type Value = Option<AttributeValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an item in DynamoDB JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if found.is_none() && key == self.0 {
                found = Some(map.next_value::<AttributeValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Checks that a JSON map is an item in DynamoDB JSON, without building it: the same rules as
/// [`crate::AttributeValue`]'s decoder (one known type key per value, the right JSON type under
/// it, base64 in binaries), so that a checked image always decodes.
struct CheckedItem;

impl<'de> Deserialize<'de> for CheckedItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = CheckedItem;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an item in DynamoDB JSON (a map of attribute values)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CheckedItem, A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value::<CheckedValue>()?;
        }
        Ok(CheckedItem)
    }
}

struct CheckedValue;

impl<'de> Deserialize<'de> for CheckedValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = CheckedValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DynamoDB JSON value with one type key, such as {\"S\": \"text\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CheckedValue, A::Error> {
        let Some(tag) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
            return Err(de::Error::custom("empty DynamoDB JSON value: expected one type key"));
        };
        match tag.as_ref() {
            "S" | "N" => {
                map.next_value::<std::borrow::Cow<'de, str>>()?;
            }
            "B" => {
                map.next_value::<Base64>()?;
            }
            "SS" | "NS" => {
                map.next_value::<Strings>()?;
            }
            "BS" => {
                map.next_value::<Vec<Base64>>()?;
            }
            "M" => {
                map.next_value::<CheckedItem>()?;
            }
            "L" => {
                map.next_value::<CheckedList>()?;
            }
            "NULL" | "BOOL" => {
                map.next_value::<bool>()?;
            }
            other => {
                return Err(de::Error::custom(format!(
                    "unknown DynamoDB type {other:?} (expected S, N, B, SS, NS, BS, M, L, NULL or BOOL)"
                )))
            }
        }
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("a DynamoDB JSON value has exactly one type key"));
        }
        Ok(CheckedValue)
    }
}

/// A list of strings, checked without keeping them.
struct Strings;

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                while seq.next_element::<std::borrow::Cow<'de, str>>()?.is_some() {}
                Ok(Strings)
            }
        }
        d.deserialize_seq(V)
    }
}

/// A list of attribute values, checked.
struct CheckedList;

impl<'de> Deserialize<'de> for CheckedList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CheckedList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of DynamoDB JSON values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CheckedList, A::Error> {
                while seq.next_element::<CheckedValue>()?.is_some() {}
                Ok(CheckedList)
            }
        }
        d.deserialize_seq(V)
    }
}

/// A base64 string, checked by decoding it (binary attributes are rare and small).
struct Base64;

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let text: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(|_| Base64)
            .map_err(|e| de::Error::custom(format!("invalid base64 in a binary value: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{"b":{"B":"AAEC/w=="},"bool":{"BOOL":false},"bs":{"BS":["AA==","/w=="]},"l":{"L":[{"N":"1"},{"S":"x"},{"M":{}}]},"m":{"M":{"deep":{"L":[{"NULL":true}]}}},"n":{"N":"12345678901234567890123456789012345678"},"ns":{"NS":["1","-2.5"]},"null":{"NULL":true},"s":{"S":"h\u00e9llo \"q\""},"ss":{"SS":["a","b"]}}"#;

    #[test]
    fn an_image_is_decoded_only_when_its_attributes_are_asked_for() {
        let image = Image::from_json(TEXT).unwrap();
        assert!(!image.is_decoded());
        let mut out = Vec::new();
        image.write_json(&mut out);
        assert_eq!(out, TEXT.as_bytes(), "the text is copied as it was read");
        assert_eq!(serde_json::to_string(&image).unwrap(), TEXT, "serializes as its text");
        assert!(!image.is_decoded());
        assert_eq!(image.attribute("s").as_deref().and_then(|v| v.as_s()), Some("héllo \"q\""));
        assert_eq!(image.attribute("missing"), None);
        assert!(!image.is_decoded(), "one attribute is found without decoding the image");
        assert_eq!(image.get("s").and_then(|v| v.as_s()), Some("héllo \"q\""));
        assert!(image.is_decoded());
        assert_eq!(image.attribute("n").as_deref(), image.get("n"));
        let item: Item = serde_json::from_str(TEXT).unwrap();
        assert_eq!(image, Image::from(item));
    }

    #[test]
    fn what_the_decoder_refuses_the_check_refuses() {
        for (text, reason) in [
            (r#"{"a":{"X":"1"}}"#, "unknown DynamoDB type \"X\""),
            (r#"{"a":{"S":"1","N":"1"}}"#, "exactly one type key"),
            (r#"{"a":{"B":"***"}}"#, "invalid base64"),
            (r#"{"a":{"S":1}}"#, "invalid type"),
            (r#"{"a":{"L":[{"M":{"b":{}}}]}}"#, "empty DynamoDB JSON value"),
            (r#"{"a":{"SS":["x",2]}}"#, "invalid type"),
            (r#"["a"]"#, "invalid type"),
            (r#"{"a":{"S":"x"}} trailing"#, "trailing characters"),
        ] {
            let err = Image::from_json(text).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
            assert!(serde_json::from_str::<Item>(text).is_err(), "{text} decodes");
        }
    }
}
