//! Change records → CrateDB rows in the layout of commons-codec's `DynamoDBCDCTranslator` (the
//! translator behind cratedb-toolkit's `ctk load ... kinesis+dynamodb+cdc`), so existing tables
//! keep working:
//!
//! - `pk` (`OBJECT(STRICT)`): the key attributes, decoded;
//! - `data` (`OBJECT(DYNAMIC)`): every other attribute, decoded;
//! - `aux` (`OBJECT(IGNORED)`): top-level lists whose elements have different DynamoDB types
//!   (CrateDB arrays must be homogeneous).
//!
//! Decoding follows commons-codec: `S` → string, `B` → base64 text, `SS`/`NS`/`BS` → arrays, `M` →
//! object, `L` → array, `NULL` → null, `BOOL` → boolean. Two deliberate differences: integral
//! numbers that fit in 64 bits stay exact integers (the reference makes every number, keys
//! included, a double), and INSERT and MODIFY are both upserts (the reference's MODIFY is a plain
//! `UPDATE`, which silently changes nothing when the row is missing).

use base64::Engine as _;
use eddy_record::scan::{JsonStr, Scanner};
use eddy_record::{AttributeValue, ChangeRecord, EventName, Item};
use serde_json::{Map, Number, Value};

/// What a change does to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Insert the row, or replace `data` and `aux` of the existing one (INSERT, MODIFY).
    Upsert,
    /// Delete the row (REMOVE).
    Delete,
}

impl Op {
    /// `"upsert"` or `"delete"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Upsert => "upsert",
            Op::Delete => "delete",
        }
    }
}

/// One row operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Upsert or delete.
    pub op: Op,
    /// The `pk` object.
    pub pk: Map<String, Value>,
    /// The `data` object (empty for deletes).
    pub data: Map<String, Value>,
    /// The `aux` object (empty for deletes).
    pub aux: Map<String, Value>,
}

/// Translates one change record.
///
/// # Errors
/// When an upsert has no `NewImage` (a KEYS_ONLY or OLD_IMAGE stream).
pub fn row(record: &ChangeRecord) -> Result<Row, String> {
    let pk = object(&record.dynamodb.keys);
    match record.event_name {
        EventName::Remove => Ok(Row { op: Op::Delete, pk, data: Map::new(), aux: Map::new() }),
        EventName::Insert | EventName::Modify => {
            let image = record.dynamodb.new_image.as_ref().ok_or_else(|| {
                format!(
                    "{} without a NewImage (stream view type {:?}): the cratedb sink needs NEW_IMAGE or NEW_AND_OLD_IMAGES",
                    record.event_name.as_str(),
                    record.dynamodb.stream_view_type
                )
            })?;
            let (mut data, mut aux) = (Map::new(), Map::new());
            for (name, value) in image.item() {
                if record.dynamodb.keys.contains_key(name) {
                    continue;
                }
                let target = if is_mixed_list(value) { &mut aux } else { &mut data };
                target.insert(name.clone(), decode(value));
            }
            Ok(Row { op: Op::Upsert, pk, data, aux })
        }
    }
}

/// A list whose elements do not all have the same DynamoDB type.
fn is_mixed_list(value: &AttributeValue) -> bool {
    match value {
        AttributeValue::L(items) => items.windows(2).any(|w| w[0].type_name() != w[1].type_name()),
        _ => false,
    }
}

fn object(item: &Item) -> Map<String, Value> {
    item.iter().map(|(k, v)| (k.clone(), decode(v))).collect()
}

/// Decodes one attribute value to plain JSON.
pub fn decode(value: &AttributeValue) -> Value {
    let b64 = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => number(n),
        AttributeValue::B(b) => b64(b),
        AttributeValue::Ss(v) => Value::Array(v.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(v) => Value::Array(v.iter().map(|n| number(n)).collect()),
        AttributeValue::Bs(v) => Value::Array(v.iter().map(|b| b64(b)).collect()),
        AttributeValue::M(m) => Value::Object(object(m)),
        AttributeValue::L(l) => Value::Array(l.iter().map(decode).collect()),
        AttributeValue::Null => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
    }
}

/// A DynamoDB number: an exact integer when it is integral and fits in 64 bits, else a double.
pub fn number(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Value::Number(u.into());
    }
    match text.parse::<f64>().ok().and_then(Number::from_f64) {
        Some(n) => Value::Number(n),
        // Not representable as a finite double: keep the text rather than lose it.
        None => Value::String(text.to_owned()),
    }
}

/// Appends the `bulk_args` entry of `record` to `out`: `[pk, data, aux]` for an upsert,
/// `[pk]` for a delete, each written straight from the attributes (the same JSON that
/// serializing [`row`]'s maps gives, without building them).
///
/// # Errors
/// As [`row`]: an upsert without a `NewImage`; nothing is appended then.
pub fn write_args(record: &ChangeRecord, out: &mut Vec<u8>) -> Result<Op, String> {
    let keys = &record.dynamodb.keys;
    if record.event_name == EventName::Remove {
        out.push(b'[');
        write_object(keys.iter(), out);
        out.push(b']');
        return Ok(Op::Delete);
    }
    let Some(image) = record.dynamodb.new_image.as_ref() else {
        return row(record).map(|r| r.op);
    };
    if let Some(text) = image.text().filter(|_| !image.is_decoded()) {
        let start = out.len();
        if write_upsert_from_text(text, keys, out) {
            return Ok(Op::Upsert);
        }
        out.truncate(start);
    }
    let image = image.item();
    out.push(b'[');
    write_object(keys.iter(), out);
    out.push(b',');
    write_object(image.iter().filter(|(name, value)| !keys.contains_key(*name) && !is_mixed_list(value)), out);
    out.push(b',');
    write_object(image.iter().filter(|(name, value)| !keys.contains_key(*name) && is_mixed_list(value)), out);
    out.push(b']');
    Ok(Op::Upsert)
}

/// The upsert's `[pk, data, aux]` translated straight from the image's DynamoDB JSON text, one
/// attribute at a time, with no tree: the same JSON values [`write_args`] writes from the
/// decoded item (attributes in the text's order, strings with the escapes they were read with).
/// `false` when the text is nested deeper than the scanner reads; the caller then decodes.
fn write_upsert_from_text(text: &str, keys: &Item, out: &mut Vec<u8>) -> bool {
    let mut mixed: Vec<(JsonStr<'_>, &str)> = Vec::new();
    out.push(b'[');
    write_object(keys.iter(), out);
    out.extend_from_slice(b",{");
    let mut first = true;
    let mut s = Scanner::new(text);
    let whole = s.members(|s, name| {
        let is_key =
            if name.is_escaped() { keys.contains_key(&name.to_owned_string()) } else { keys.contains_key(name.raw()) };
        s.skip_whitespace();
        let start = s.position();
        if !s.skip_value() {
            return false;
        }
        if is_key {
            return true;
        }
        let value = s.text_between(start, s.position());
        if is_mixed_list_text(value) {
            mixed.push((name, value));
            return true;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_member(name, value, out)
    });
    out.extend_from_slice(b"},{");
    let aux = mixed.iter().enumerate().all(|(n, (name, value))| {
        if n > 0 {
            out.push(b',');
        }
        write_member(*name, value, out)
    });
    out.extend_from_slice(b"}]");
    whole && aux
}

/// `"name":value`, the value translated from its DynamoDB JSON text.
fn write_member(name: JsonStr<'_>, value: &str, out: &mut Vec<u8>) -> bool {
    write_json_str(name, out);
    out.push(b':');
    text_value(&mut Scanner::new(value), out)
}

/// A string as it was read: its escapes are JSON's, so the text is copied.
fn write_json_str(text: JsonStr<'_>, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(text.raw().as_bytes());
    out.push(b'"');
}

/// [`write_value`] for a value's DynamoDB JSON text.
fn text_value(s: &mut Scanner<'_>, out: &mut Vec<u8>) -> bool {
    fn list(
        s: &mut Scanner<'_>,
        out: &mut Vec<u8>,
        mut each: impl FnMut(&mut Scanner<'_>, &mut Vec<u8>) -> bool,
    ) -> bool {
        out.push(b'[');
        let mut first = true;
        let ok = s.elements(|s| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            each(s, out)
        });
        out.push(b']');
        ok
    }
    let string = |s: &mut Scanner<'_>, out: &mut Vec<u8>| s.string().map(|v| write_json_str(v, out)).is_some();
    let number = |s: &mut Scanner<'_>, out: &mut Vec<u8>| {
        s.string()
            .map(|v| if v.is_escaped() { write_number(&v.to_owned_string(), out) } else { write_number(v.raw(), out) })
            .is_some()
    };
    s.single_member(|s, tag| match tag {
        // Base64 text is canonical once checked (padding and trailing bits), so it is copied.
        "S" | "B" => string(s, out),
        "N" => number(s, out),
        "SS" | "BS" => list(s, out, string),
        "NS" => list(s, out, number),
        "M" => {
            out.push(b'{');
            let mut first = true;
            let ok = s.members(|s, name| {
                if !std::mem::take(&mut first) {
                    out.push(b',');
                }
                write_json_str(name, out);
                out.push(b':');
                text_value(s, out)
            });
            out.push(b'}');
            ok
        }
        "L" => list(s, out, text_value),
        "NULL" => s.boolean().map(|_| out.extend_from_slice(b"null")).is_some(),
        "BOOL" => s.boolean().map(|b| out.extend_from_slice(if b { b"true" } else { b"false" })).is_some(),
        _ => false,
    })
}

/// [`is_mixed_list`] for a value's DynamoDB JSON text.
fn is_mixed_list_text(value: &str) -> bool {
    let mut s = Scanner::new(value);
    let mut first: Option<&str> = None;
    let mut mixed = false;
    // Only a list can be mixed: any other value stops at its type key, unread.
    s.single_member(|s, tag| {
        tag == "L"
            && s.elements(|s| {
                s.single_member(|s, element| {
                    mixed |= *first.get_or_insert(element) != element;
                    s.skip_value()
                })
            })
    });
    mixed
}

fn write_object<'a>(attributes: impl Iterator<Item = (&'a String, &'a AttributeValue)>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (n, (name, value)) in attributes.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_str(name, out);
        out.push(b':');
        write_value(value, out);
    }
    out.push(b'}');
}

fn write_str(text: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, text).expect("a string serializes");
}

fn write_list<T>(items: &[T], out: &mut Vec<u8>, mut each: impl FnMut(&T, &mut Vec<u8>)) {
    out.push(b'[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        each(item, out);
    }
    out.push(b']');
}

fn write_base64(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    // Base64 needs no JSON escaping.
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .expect("the buffer is sized for the encoding");
    out.truncate(start + written);
    out.push(b'"');
}

/// [`decode`], written as JSON text.
fn write_value(value: &AttributeValue, out: &mut Vec<u8>) {
    match value {
        AttributeValue::S(s) => write_str(s, out),
        AttributeValue::N(n) => write_number(n, out),
        AttributeValue::B(b) => write_base64(b, out),
        AttributeValue::Ss(v) => write_list(v, out, |s, out| write_str(s, out)),
        AttributeValue::Ns(v) => write_list(v, out, |n, out| write_number(n, out)),
        AttributeValue::Bs(v) => write_list(v, out, |b, out| write_base64(b, out)),
        AttributeValue::M(m) => write_object(m.iter(), out),
        AttributeValue::L(l) => write_list(l, out, write_value),
        AttributeValue::Null => out.extend_from_slice(b"null"),
        AttributeValue::Bool(true) => out.extend_from_slice(b"true"),
        AttributeValue::Bool(false) => out.extend_from_slice(b"false"),
    }
}

/// [`number`], written as JSON text.
fn write_number(text: &str, out: &mut Vec<u8>) {
    use std::io::Write as _;
    if let Ok(i) = text.parse::<i64>() {
        write!(out, "{i}").expect("writing to a Vec");
    } else if let Ok(u) = text.parse::<u64>() {
        write!(out, "{u}").expect("writing to a Vec");
    } else {
        match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => serde_json::to_writer(&mut *out, &n).expect("a number serializes"),
            None => write_str(text, out),
        }
    }
}

/// The CrateDB column type for a key attribute, as commons-codec's DDL writes it.
pub fn key_type(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::N(n) if n.parse::<i64>().is_ok() => "BIGINT",
        AttributeValue::N(_) => "DOUBLE PRECISION",
        _ => "TEXT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_record::{Image, StreamRecord, StreamViewType};
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = AttributeValue> {
        let text = prop_oneof!["[a-z]{0,8}", "\\PC{0,8}", Just("q\" b\\ / \u{1} é 😀".to_owned())];
        let number =
            prop_oneof!["-?[1-9][0-9]{0,25}", "-?[0-9]\\.[0-9]{1,8}", "[1-9]E[-+]?[1-9]", Just("0".to_owned())];
        let leaf = prop_oneof![
            text.clone().prop_map(AttributeValue::S),
            number.clone().prop_map(AttributeValue::N),
            prop::collection::vec(any::<u8>(), 0..12).prop_map(AttributeValue::B),
            prop::collection::btree_set(text, 1..3).prop_map(|s| AttributeValue::Ss(s.into_iter().collect())),
            prop::collection::btree_set(number, 1..3).prop_map(|s| AttributeValue::Ns(s.into_iter().collect())),
            prop::collection::btree_set(prop::collection::vec(any::<u8>(), 1..6), 1..3)
                .prop_map(|s| AttributeValue::Bs(s.into_iter().collect())),
            Just(AttributeValue::Null),
            any::<bool>().prop_map(AttributeValue::Bool),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::btree_map("[a-z\"\\\\é]{1,4}", inner.clone(), 0..3).prop_map(AttributeValue::M),
                prop::collection::vec(inner, 0..4).prop_map(AttributeValue::L),
            ]
        })
    }

    fn record(keys: Item, image: Image) -> ChangeRecord {
        ChangeRecord {
            event_id: "e".into(),
            event_name: EventName::Modify,
            event_version: "1.1".into(),
            event_source: "aws:dynamodb".into(),
            aws_region: "us-east-1".into(),
            dynamodb: StreamRecord {
                approximate_creation_date_time: None,
                keys,
                new_image: Some(image),
                old_image: None,
                sequence_number: "1".into(),
                size_bytes: 1,
                stream_view_type: StreamViewType::NewImage,
            },
            event_source_arn: String::new(),
            user_identity: None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        /// An image read from text (as GetRecords gives it) translates straight from its text to
        /// the same `[pk, data, aux]` as from the decoded item.
        #[test]
        fn an_image_translates_from_its_text_as_from_its_item(
            item in prop::collection::btree_map("[a-zé\"]{1,5}", value(), 1..8),
            key_count in 0usize..3,
        ) {
            let keys: Item = item.iter().take(key_count).map(|(k, v)| (k.clone(), v.clone())).collect();
            let text = serde_json::to_string(&item).unwrap();
            let lazy = Image::from_raw(serde_json::from_str(&text).unwrap()).unwrap();
            prop_assert!(!lazy.is_decoded());
            let (mut from_text, mut from_item) = (Vec::new(), Vec::new());
            write_args(&record(keys.clone(), lazy), &mut from_text).unwrap();
            write_args(&record(keys, Image::from(item)), &mut from_item).unwrap();
            let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
            prop_assert_eq!(parse(&from_text), parse(&from_item), "{}", String::from_utf8_lossy(&from_text));
        }
    }

    #[test]
    fn a_list_of_mixed_types_goes_to_aux_from_text_too() {
        let text = r#"{"id":{"S":"a"},"mixed":{"L":[{"S":"x"},{"N":"1"}]},"same":{"L":[{"N":"1"},{"N":"2.5"}]},"n":{"N":"12345678901234567890123"}}"#;
        let keys: Item = [("id".to_owned(), AttributeValue::S("a".into()))].into();
        let mut out = Vec::new();
        write_args(&record(keys, Image::from_raw(serde_json::from_str(text).unwrap()).unwrap()), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"id":"a"},{"same":[1,2.5],"n":1.2345678901234568e+22},{"mixed":["x",1]}]"#
        );
    }
}
