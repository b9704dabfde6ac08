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
use eddy_sink_api::{AttributeValue, ChangeRecord, EventName, Item};
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
