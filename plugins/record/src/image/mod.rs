//! An item image (`NewImage`, `OldImage`) that is decoded only when something needs its
//! attributes.
//!
//! Records read from GetRecords keep each image as its DynamoDB JSON text, checked when it was
//! read (so it decodes without error later), and turn it into an [`Item`] the first time a
//! filter, a processor or a sink asks for an attribute ([`Image::item`], or through `Deref`).
//! Sinks that write DynamoDB JSON (the Alternator sink, the dead letter, the file sink) copy the
//! text as it is ([`Image::write_json`], `Serialize`), so a record that only passes through is
//! never decoded.
//!
//! An image read from a GetRecords page ([`Image::scan_in`]) does not copy its text: it keeps a
//! slice of the page's buffer (`bytes::Bytes`), and the buffer is freed when the last image read
//! from it is dropped. A record kept past its page is detached first ([`Image::detached`],
//! `ChangeRecord::detached`; a batching route does so), or a few records a filter let through
//! would each keep a whole page's buffer alive.

mod scan;

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::scan::Scanner;
use crate::value::{AttributeValue, Item};

/// An item image: DynamoDB JSON text decoded on first use, or an [`Item`] built in memory.
pub struct Image {
    /// The item's DynamoDB JSON, valid by construction; `None` for images built from an item.
    text: Option<Text>,
    item: OnceLock<Item>,
}

/// An image's DynamoDB JSON: UTF-8 by construction (made only from a `&str`, or from a slice of
/// a buffer at a `&str`'s place), so it reads back as `&str` without a check.
#[derive(Clone)]
struct Text(Bytes);

impl Text {
    /// A copy of `text`.
    fn copied(text: &str) -> Self {
        Self(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// `text`, a slice of `page` (the scanner's text is `page`'s bytes), shared, not copied.
    fn shared(page: &Bytes, text: &str) -> Self {
        Self(page.slice_ref(text.as_bytes()))
    }

    fn as_str(&self) -> &str {
        // SAFETY: `Text` is made only from the bytes of a `&str` (`copied`, `shared`), so it is
        // UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl Image {
    /// An image of DynamoDB JSON `text` (`{"name": {"S": "x"}, ...}`). It is checked by decoding
    /// it (the decoder is the one definition of valid DynamoDB JSON), and keeps both the text and
    /// the item.
    ///
    /// # Errors
    /// When `text` is not an item in DynamoDB JSON; the message says what and where.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let item: Item = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(Self { text: Some(Text::copied(text)), item: OnceLock::from(item) })
    }

    /// An image of `raw`, JSON read from a GetRecords answer, not decoded: its DynamoDB JSON is
    /// checked by a one-pass scan, or by decoding it ([`Image::from_json`]) when the scan cannot
    /// tell.
    ///
    /// # Errors
    /// As [`Image::from_json`].
    pub fn from_raw(raw: &RawValue) -> Result<Self, String> {
        if scan::is_item(raw.get()) {
            return Ok(Self { text: Some(Text::copied(raw.get())), item: OnceLock::new() });
        }
        Self::from_json(raw.get())
    }

    /// Reads the image at the scanner's position (after optional whitespace), not decoded, and
    /// leaves the scanner just past it: the one-pass path of a reader that takes a whole
    /// document apart with [`Scanner`] (the GetRecords decoder).
    ///
    /// `None` when the text there is not an item in DynamoDB JSON, or is one the scan does not
    /// bother with (a type key written with escapes); the scanner's position is then
    /// unspecified, and the caller decodes the text some other way to learn which, and why.
    pub fn scan(s: &mut Scanner<'_>) -> Option<Self> {
        Self::scan_text(s, Text::copied)
    }

    /// As [`Image::scan`], for a scanner reading `page`'s bytes: the image keeps a slice of
    /// `page` instead of a copy of its text (see the module's docs for what that keeps alive).
    ///
    /// # Panics
    /// When the scanner does not read `page`'s own bytes (a caller's bug).
    pub fn scan_in(s: &mut Scanner<'_>, page: &Bytes) -> Option<Self> {
        Self::scan_text(s, |text| Text::shared(page, text))
    }

    /// As [`Image::scan_in`] for a whole item read from a Scan page (a snapshot), with the
    /// top-level attributes named in `key_names` (the table's key schema) decoded into `keys` in
    /// the same pass, so that the record's `Keys` cost no second look at the item.
    ///
    /// `None` as [`Image::scan`] does, and also when a key attribute is not a scalar (`S`, `N`,
    /// `B`) or is written with escapes; `keys` may then hold some of the keys.
    ///
    /// # Panics
    /// When the scanner does not read `page`'s own bytes (a caller's bug).
    pub fn scan_keyed_in(s: &mut Scanner<'_>, page: &Bytes, key_names: &[String], keys: &mut Item) -> Option<Self> {
        s.skip_whitespace();
        let start = s.position();
        scan::item_with_keys(s, key_names, keys).then(|| Self {
            text: Some(Text::shared(page, s.text_between(start, s.position()))),
            item: OnceLock::new(),
        })
    }

    /// [`Image::scan`] with the image's text kept by `keep`.
    fn scan_text(s: &mut Scanner<'_>, keep: impl FnOnce(&str) -> Text) -> Option<Self> {
        s.skip_whitespace();
        let start = s.position();
        scan::item(s).then(|| Self { text: Some(keep(s.text_between(start, s.position()))), item: OnceLock::new() })
    }

    /// A copy with its own copy of the text (and of the item, if decoded): unlike a clone, it
    /// does not keep alive the page buffer an image read by [`Image::scan_in`] is a slice of.
    pub fn detached(&self) -> Self {
        Self { text: self.text.as_ref().map(|t| Text::copied(t.as_str())), item: self.item.clone() }
    }

    /// The item, decoded from its text on first use.
    pub fn item(&self) -> &Item {
        self.item.get_or_init(|| match &self.text {
            Some(text) => serde_json::from_str(text.as_str()).expect("image text is checked when the image is made"),
            None => Item::new(),
        })
    }

    /// One top-level attribute. An image not decoded yet stays so: its text is scanned for
    /// `name` and only that attribute is decoded (what a processor reading one attribute pays).
    pub fn attribute(&self, name: &str) -> Option<std::borrow::Cow<'_, AttributeValue>> {
        use std::borrow::Cow;
        match (self.item.get(), &self.text) {
            (Some(item), _) => item.get(name).map(Cow::Borrowed),
            (None, Some(text)) => match find(text.as_str(), name) {
                Some(found) => found.map(Cow::Owned),
                // Nested deeper than the scan goes (an image checked by decoding it).
                None => self.item().get(name).map(Cow::Borrowed),
            },
            (None, None) => None,
        }
    }

    /// The item, owned.
    pub fn into_item(mut self) -> Item {
        match (self.item.take(), &self.text) {
            (Some(item), _) => item,
            (None, Some(text)) => {
                serde_json::from_str(text.as_str()).expect("image text is checked when the image is made")
            }
            (None, None) => Item::new(),
        }
    }

    /// The image's DynamoDB JSON text as it was read, when it was read from text (checked as
    /// DynamoDB JSON then; [`crate::scan::Scanner`] reads it). `None` for images built from an
    /// [`Item`]. For sinks that translate an image straight from its text, without decoding it.
    pub fn text(&self) -> Option<&str> {
        self.text.as_ref().map(Text::as_str)
    }

    /// Whether the attributes were decoded (for tests and benchmarks of the lazy path).
    pub fn is_decoded(&self) -> bool {
        self.item.get().is_some()
    }

    /// Appends the image's DynamoDB JSON to `out`: its text as read when it has one, else the
    /// item serialized.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match &self.text {
            Some(text) => out.extend_from_slice(text.as_str().as_bytes()),
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
            (Some(a), Some(b)) if a.as_str() == b.as_str() => true,
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
    /// The text as read when there is one (with serde_json, copied as it is), else the item.
    /// Off the hot path (the dead letter, the file sink): the text is handed to serde_json as a
    /// `RawValue`, which checks it again; sinks that write DynamoDB JSON use
    /// [`Image::write_json`].
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.text {
            Some(text) => {
                serde_json::from_str::<&RawValue>(text.as_str()).map_err(serde::ser::Error::custom)?.serialize(s)
            }
            None => self.item().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Image {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Item::deserialize(d).map(Image::from)
    }
}

/// One attribute of an item's text, found by a scan that skips the others without decoding them;
/// a name given twice gives its last value, as decoding the whole item does. `None` when the scan
/// cannot read the text (nested deeper than [`crate::scan::MAX_DEPTH`]).
fn find(text: &str, name: &str) -> Option<Option<AttributeValue>> {
    let mut s = Scanner::new(text);
    let mut found = None;
    let whole = s.members(|s, key| {
        let matches = if key.is_escaped() { key.to_owned_string() == name } else { key.raw() == name };
        if !matches {
            return s.skip_value();
        }
        s.skip_whitespace();
        let start = s.position();
        let ok = s.skip_value();
        found = Some(s.text_between(start, s.position()));
        ok
    });
    whole.then(|| found.map(|value| serde_json::from_str(value).expect("image text is checked when the image is made")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{"b":{"B":"AAEC/w=="},"bool":{"BOOL":false},"bs":{"BS":["AA==","/w=="]},"l":{"L":[{"N":"1"},{"S":"x"},{"M":{}}]},"m":{"M":{"deep":{"L":[{"NULL":true}]}}},"n":{"N":"12345678901234567890123456789012345678"},"ns":{"NS":["1","-2.5"]},"null":{"NULL":true},"s":{"S":"h\u00e9llo \"q\""},"ss":{"SS":["a","b"]}}"#;

    #[test]
    fn an_image_is_decoded_only_when_its_attributes_are_asked_for() {
        let raw: &RawValue = serde_json::from_str(TEXT).unwrap();
        let image = Image::from_raw(raw).unwrap();
        assert!(!image.is_decoded());
        let mut out = Vec::new();
        image.write_json(&mut out);
        assert_eq!(out, TEXT.as_bytes(), "the text is copied as it was read");
        assert_eq!(serde_json::to_string(&image).unwrap(), TEXT, "serializes as its text");
        assert!(!image.is_decoded());
        assert_eq!(image.attribute("s").as_deref().and_then(|v| v.as_s()), Some("héllo \"q\""));
        assert_eq!(image.attribute("missing"), None);
        assert_eq!(
            image.attribute("m").as_deref(),
            Some(&AttributeValue::M([("deep".to_owned(), AttributeValue::L(vec![AttributeValue::Null]))].into()))
        );
        assert!(!image.is_decoded(), "one attribute is found without decoding the image");
        assert_eq!(image.get("s").and_then(|v| v.as_s()), Some("héllo \"q\""));
        assert!(image.is_decoded());
        assert_eq!(image.attribute("n").as_deref(), image.get("n"));
        let item: Item = serde_json::from_str(TEXT).unwrap();
        assert_eq!(image, Image::from(item));
    }

    #[test]
    fn an_image_scanned_in_a_page_shares_the_pages_buffer_and_outlives_it() {
        let page = Bytes::from(format!(r#"{{"NewImage": {TEXT}, "n": 1}}"#));
        let text = std::str::from_utf8(&page).unwrap();
        let mut s = Scanner::new(text);
        let mut image = None;
        assert!(s.members(|s, key| match key.raw() {
            "NewImage" => Image::scan_in(s, &page).map(|i| image = Some(i)).is_some(),
            _ => s.skip_value(),
        }));
        let image = image.expect("the image was read");
        let kept = image.text().unwrap();
        assert_eq!(kept, TEXT);
        assert!(page.as_ptr_range().contains(&kept.as_ptr()), "a slice of the page, not a copy");
        let copy = image.clone();
        let detached = image.detached();
        let own = detached.text().unwrap();
        assert!(!page.as_ptr_range().contains(&own.as_ptr()), "a detached image has its own copy");
        drop(page);
        drop(image);
        assert_eq!(copy.text(), Some(TEXT), "the buffer lives as long as an image of it");
        assert_eq!(copy, Image::from_json(TEXT).unwrap());
        assert_eq!(detached.text(), Some(TEXT));
    }

    #[test]
    fn one_attribute_is_found_at_any_depth_and_a_repeated_name_gives_its_last_value() {
        let deep = (0..60).fold(r#"{"S":"bottom"}"#.to_owned(), |inner, _| format!(r#"{{"L":[{inner}]}}"#));
        let text = format!(r#"{{"a":{deep},"b":{{"N":"1"}}}}"#);
        let image = Image::from_json(&text).unwrap();
        let raw = Image::from_raw(serde_json::from_str(&text).unwrap()).unwrap();
        assert!(raw.is_decoded(), "an image nested deeper than the scan goes is checked by decoding it");
        assert_eq!(raw.attribute("a").as_deref(), image.get("a"));
        let shallow = (0..40).fold(r#"{"S":"bottom"}"#.to_owned(), |inner, _| format!(r#"{{"M":{{"x":{inner}}}}}"#));
        let text = format!(r#"{{"a":{shallow},"b":{{"N":"1"}}}}"#);
        let lazy = Image::from_raw(serde_json::from_str(&text).unwrap()).unwrap();
        assert!(!lazy.is_decoded());
        assert_eq!(lazy.attribute("a").as_deref(), Image::from_json(&text).unwrap().get("a"));
        assert!(!lazy.is_decoded(), "found by the scan");
        let twice = Image::from_raw(serde_json::from_str(r#"{"a":{"N":"1"},"\u0061":{"N":"2"}}"#).unwrap()).unwrap();
        assert_eq!(twice.attribute("a").as_deref(), Some(&AttributeValue::N("2".into())));
        assert_eq!(twice.attribute("a").as_deref(), twice.get("a"));
    }

    #[test]
    fn an_image_that_is_not_dynamodb_json_is_refused_with_the_reason() {
        for (text, reason) in [
            (r#"{"a":{"X":"1"}}"#, "unknown DynamoDB type \"X\""),
            (r#"{"a":{"S":"1","N":"1"}}"#, "exactly one type key"),
            (r#"{"a":{"B":"***"}}"#, "invalid base64"),
            (r#"{"a":{"S":1}}"#, "invalid type"),
            (r#"{"a":{"L":[{"M":{"b":{}}}]}}"#, "empty DynamoDB JSON value"),
            (r#"{"a":{"SS":["x",2]}}"#, "invalid type"),
            (r#"["a"]"#, "invalid type"),
            (r#"{"a":{"S":"x"}} trailing"#, "trailing characters"),
            (r#"{"a":{"S":"lone \ud800"}}"#, "hex escape"),
        ] {
            let err = Image::from_json(text).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
            if let Ok(raw) = serde_json::from_str::<&RawValue>(text) {
                assert_eq!(Image::from_raw(raw).unwrap_err(), err, "{text}");
            }
        }
    }
}
