//! Items as plain JSON, for consumers that do not read DynamoDB JSON (the forwarding sinks'
//! `format: item`): numbers as JSON numbers when JSON carries them exactly (integers within
//! ±2^53, and decimals whose text a double reads back unchanged) and as strings otherwise (so a
//! 38-digit number is never rounded: Redpanda Connect's users complain that it turns every number
//! into a string, and a JavaScript consumer would round the large ones), sets as arrays (in
//! DynamoDB's order), binary as base64, maps and lists recursively, `NULL` as `null`.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::{AttributeValue, ChangeRecord, EventName, Item};

/// The largest integer a double holds exactly: 2^53.
const EXACT: i128 = 1 << 53;

/// A DynamoDB number as JSON: a JSON number when JSON (read as a double) carries it exactly, else
/// its decimal text as a string.
pub fn number(text: &str) -> Value {
    if let Ok(i) = text.parse::<i128>() {
        if (-EXACT..=EXACT).contains(&i) {
            return Value::Number(Number::from(i as i64));
        }
        return Value::String(text.to_owned());
    }
    match text.parse::<f64>() {
        // Exact when the shortest text of the double is the number's own (`1.5`, `0.25`).
        Ok(f) if f.is_finite() && crate::compare::compare_numbers(&f.to_string(), text).is_some_and(|o| o.is_eq()) => {
            Number::from_f64(f).map_or_else(|| Value::String(text.to_owned()), Value::Number)
        }
        _ => Value::String(text.to_owned()),
    }
}

/// One attribute value as plain JSON.
pub fn value(v: &AttributeValue) -> Value {
    let b64 = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
    match v {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => number(n),
        AttributeValue::B(b) => b64(b),
        AttributeValue::Ss(v) => Value::Array(v.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(v) => Value::Array(v.iter().map(|n| number(n)).collect()),
        AttributeValue::Bs(v) => Value::Array(v.iter().map(|b| b64(b)).collect()),
        AttributeValue::M(m) => item(m),
        AttributeValue::L(l) => Value::Array(l.iter().map(value).collect()),
        AttributeValue::Null => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
    }
}

/// An item as a plain JSON object.
pub fn item(item: &Item) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), value(v))).collect::<Map<_, _>>())
}

/// [`change`] as JSON text, written directly (no [`Value`] tree in between: this is what the
/// forwarding sinks send for every change).
pub fn change_text(record: &ChangeRecord) -> String {
    let mut out = String::with_capacity(256);
    match (record.event_name, &record.dynamodb.new_image) {
        (EventName::Insert | EventName::Modify, Some(image)) => write_item(&mut out, image.item(), None),
        _ => write_item(&mut out, &record.dynamodb.keys, Some(r#""deleted":true"#)),
    }
    out
}

/// Writes `item` as a plain JSON object, with `extra` (a `"name":value` member) last.
fn write_item(out: &mut String, item: &Item, extra: Option<&str>) {
    out.push('{');
    for (i, (name, value)) in item.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, name);
        out.push(':');
        write_value(out, value);
    }
    if let Some(extra) = extra {
        if !item.is_empty() {
            out.push(',');
        }
        out.push_str(extra);
    }
    out.push('}');
}

fn write_string(out: &mut String, s: &str) {
    // serde_json's escaping, into the same buffer.
    out.push_str(&serde_json::to_string(s).expect("strings serialize"));
}

fn write_value(out: &mut String, v: &AttributeValue) {
    use std::fmt::Write as _;
    let list = |out: &mut String, n: usize, each: &mut dyn FnMut(&mut String, usize)| {
        out.push('[');
        for i in 0..n {
            if i > 0 {
                out.push(',');
            }
            each(out, i);
        }
        out.push(']');
    };
    match v {
        AttributeValue::S(s) => write_string(out, s),
        AttributeValue::N(n) => match number(n) {
            Value::Number(x) => {
                let _ = write!(out, "{x}");
            }
            other => out.push_str(&other.to_string()),
        },
        AttributeValue::B(b) => {
            out.push('"');
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            out.push('"');
        }
        AttributeValue::Ss(v) => list(out, v.len(), &mut |out, i| write_string(out, &v[i])),
        AttributeValue::Ns(v) => list(out, v.len(), &mut |out, i| write_value(out, &AttributeValue::N(v[i].clone()))),
        AttributeValue::Bs(v) => list(out, v.len(), &mut |out, i| write_value(out, &AttributeValue::B(v[i].clone()))),
        AttributeValue::M(m) => write_item(out, m, None),
        AttributeValue::L(l) => list(out, l.len(), &mut |out, i| write_value(out, &l[i])),
        AttributeValue::Null => out.push_str("null"),
        AttributeValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
    }
}

/// A change as plain JSON: the new image of an INSERT or MODIFY; for a REMOVE (or a change
/// without a new image), the keys and `"deleted": true`.
pub fn change(record: &ChangeRecord) -> Value {
    match (record.event_name, &record.dynamodb.new_image) {
        (EventName::Insert | EventName::Modify, Some(image)) => item(image.item()),
        _ => {
            let mut keys = item(&record.dynamodb.keys);
            if let Value::Object(map) = &mut keys {
                map.insert("deleted".to_owned(), Value::Bool(true));
            }
            keys
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_json_numbers_only_when_exact() {
        assert_eq!(number("42"), serde_json::json!(42));
        assert_eq!(number("-9007199254740992"), serde_json::json!(-9_007_199_254_740_992_i64));
        assert_eq!(number("9007199254740993"), serde_json::json!("9007199254740993"));
        assert_eq!(number("1.5"), serde_json::json!(1.5));
        assert_eq!(number("1.50"), serde_json::json!(1.5), "the same number");
        assert_eq!(number("0.1"), serde_json::json!(0.1));
        assert_eq!(
            number("3.14159265358979323846264338327950288"),
            serde_json::json!("3.14159265358979323846264338327950288")
        );
        assert_eq!(number("1E+3"), serde_json::json!(1000.0));
    }

    #[test]
    fn items_and_removes_as_plain_json() {
        let record: ChangeRecord = serde_json::from_value(serde_json::json!({
            "eventID": "e1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "eventSourceARN": "arn",
            "dynamodb": {"Keys": {"pk": {"S": "a"}}, "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "NEW_IMAGE",
                "NewImage": {"pk": {"S": "a"}, "n": {"N": "7"}, "ss": {"SS": ["x", "y"]}, "b": {"B": "AAE="},
                             "m": {"M": {"l": {"L": [{"NULL": true}, {"BOOL": true}, {"NS": ["1", "2.5"]}]}}}}}
        }))
        .unwrap();
        assert_eq!(
            change(&record),
            serde_json::json!({"b": "AAE=", "m": {"l": [null, true, [1, 2.5]]}, "n": 7, "pk": "a", "ss": ["x", "y"]})
        );
        let mut remove = record.clone();
        remove.event_name = EventName::Remove;
        remove.dynamodb.new_image = None;
        assert_eq!(change(&remove), serde_json::json!({"pk": "a", "deleted": true}));
        // The text written directly is the same JSON.
        for r in [&record, &remove] {
            let text: Value = serde_json::from_str(&change_text(r)).unwrap();
            assert_eq!(text, change(r));
        }
    }
}
