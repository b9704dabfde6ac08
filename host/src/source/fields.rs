//! Reading a change record's fields with the strict scanner ([`eddy_record::scan`]): what the
//! one-pass readers of DynamoDB Streams pages (`wire::one_pass`) and of Kinesis records
//! (`kinesis::one_pass`) share. Each reader answers `None` (leave it to the serde path, which
//! decides and gives the reason) where serde's derived readers would not read the same value,
//! so every helper here reads exactly what serde reads, or refuses.

use eddy_record::scan::{JsonStr, Scanner};
use eddy_record::{AttributeValue, EventName, Image, Item};

/// `eventName`'s value; `None` for a name the slow path sends to the dead letter.
pub(super) fn event_name_of(name: &JsonStr<'_>) -> Option<EventName> {
    match name.raw() {
        "INSERT" => Some(EventName::Insert),
        "MODIFY" => Some(EventName::Modify),
        "REMOVE" => Some(EventName::Remove),
        _ => None,
    }
}

/// Fills `slot` with `value`: whether it was read and the field was not seen before (serde's
/// derived readers refuse a duplicate field).
pub(super) fn once<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    slot.is_none() && value.map(|v| *slot = Some(v)).is_some()
}

/// `null` (→ `None`), or a value `read` accepts (→ `Some`), as serde reads an `Option` field.
pub(super) fn optional<'a, T>(
    s: &mut Scanner<'a>,
    read: impl FnOnce(&mut Scanner<'a>) -> Option<T>,
) -> Option<Option<T>> {
    if s.peek() == Some(b'n') {
        return s.literal("null").then_some(None);
    }
    read(s).map(Some)
}

pub(super) fn string(s: &mut Scanner<'_>) -> Option<String> {
    s.string().map(|v| v.to_owned_string())
}

/// A number as `serde_json` reads it into an `f64` (the same parser, so the same rounding).
pub(super) fn float(s: &mut Scanner<'_>) -> Option<f64> {
    serde_json::from_str(s.number()?).ok()
}

/// A number as `serde_json` reads it into an `i64`: integers in range only (`-0`, which
/// `serde_json` reads as a float, is left to the slow path).
pub(super) fn integer(s: &mut Scanner<'_>) -> Option<i64> {
    Some(s.number()?).filter(|n| *n != "-0")?.parse().ok()
}

/// Keys, decoded as read when they are what a key schema allows (S, N and B attributes):
/// `{"name": {"S" | "N" | "B": "..."}, ...}`. Anything else is read as an image and decoded.
pub(super) fn keys(s: &mut Scanner<'_>) -> Option<Item> {
    let at = s.clone();
    scalar_keys(s).or_else(|| {
        *s = at;
        Image::scan(s).map(Image::into_item)
    })
}

/// Scalar keys decoded as read; `None` for any other type, or a type key or binary written with
/// escapes. A name given twice keeps its last value, as serde's map reader does.
fn scalar_keys(s: &mut Scanner<'_>) -> Option<Item> {
    use base64::Engine as _;
    let mut keys = Item::new();
    let whole = s.members(|s, name| {
        let mut value = None;
        let one = s.single_member(|s, tag| {
            value = match tag {
                "S" => s.string().map(|v| AttributeValue::S(v.to_owned_string())),
                "N" => s.string().map(|v| AttributeValue::N(v.to_owned_string())),
                "B" => s
                    .string()
                    .filter(|v| !v.is_escaped())
                    .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.raw()).ok())
                    .map(AttributeValue::B),
                _ => None,
            };
            value.is_some()
        });
        one && value.map(|v| keys.insert(name.to_owned_string(), v)).is_some()
    });
    whole.then_some(keys)
}

/// Whether `key` names one of `fields`: a duplicate, or a field written with escapes
/// (`"event\u0049D"` is `eventID`), both left to the slow path.
pub(crate) fn is_field(key: JsonStr<'_>, fields: &[&str]) -> bool {
    if key.is_escaped() {
        fields.contains(&key.to_owned_string().as_str())
    } else {
        fields.contains(&key.raw())
    }
}
