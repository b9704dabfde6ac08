//! The structural check of DynamoDB JSON: one strict forward scan ([`crate::scan::Scanner`]), no
//! allocation, no decoding.
//!
//! It is conservative: it accepts only what decoding the item ([`super::Image::from_json`])
//! also accepts, and answers `false` for anything else, including valid inputs it does not
//! bother with (a type key or a base64 value written with escapes); the caller then decodes,
//! which decides and gives the reason.

use base64::Engine as _;

use crate::scan::Scanner;
use crate::value::{AttributeValue, Item};

/// Whether `text` is an item in DynamoDB JSON (and nothing after it).
pub(super) fn is_item(text: &str) -> bool {
    let mut s = Scanner::new(text);
    item(&mut s) && s.at_end()
}

/// `{ "name": value, ... }`
pub(super) fn item(s: &mut Scanner<'_>) -> bool {
    s.members(|s, _| value(s))
}

/// As [`item`], and the top-level attributes named in `names` decoded into `keys` as they are
/// read (a key schema's attributes: `S`, `N` or `B`). `false` as [`item`] does, and also when a
/// named attribute is of another type or written with escapes: the caller's slower path decides
/// and gives the reason.
pub(super) fn item_with_keys(s: &mut Scanner<'_>, names: &[String], keys: &mut Item) -> bool {
    s.members(|s, name| {
        if name.is_escaped() || !names.iter().any(|n| n == name.raw()) {
            return value(s);
        }
        let mut key = None;
        let one = s.single_member(|s, tag| {
            key = match tag {
                "S" => s.string().map(|v| AttributeValue::S(v.to_owned_string())),
                "N" => s.string().map(|v| AttributeValue::N(v.to_owned_string())),
                "B" => s
                    .string()
                    .filter(|v| !v.is_escaped())
                    .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.raw()).ok())
                    .map(AttributeValue::B),
                _ => None,
            };
            key.is_some()
        });
        one && key.map(|v| keys.insert(name.raw().to_owned(), v)).is_some()
    })
}

/// `{ "TYPE": ... }` with exactly one known type key.
fn value(s: &mut Scanner<'_>) -> bool {
    s.single_member(|s, tag| match tag {
        "S" | "N" => s.string().is_some(),
        "B" => base64(s),
        "SS" | "NS" => s.elements(|s| s.string().is_some()),
        "BS" => s.elements(base64),
        "M" => item(s),
        "L" => s.elements(value),
        "NULL" | "BOOL" => s.boolean().is_some(),
        _ => false,
    })
}

/// A base64 string (the standard alphabet, canonical padding), checked by decoding it into a
/// stack buffer a chunk at a time: chunks of 1,024 characters (a multiple of 4) decode on their
/// own, and only the last may hold padding.
fn base64(s: &mut Scanner<'_>) -> bool {
    let Some(text) = s.string().filter(|t| !t.is_escaped()) else { return false };
    let mut buf = [0u8; 768];
    let mut chunks = text.raw().as_bytes().chunks(1024).peekable();
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        if (!last && chunk.contains(&b'='))
            || base64::engine::general_purpose::STANDARD.decode_slice(chunk, &mut buf).is_err()
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttributeValue, Item};
    use proptest::prelude::*;
    use serde_json::Value;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            "[A-Za-z0-9+/=]{0,8}".prop_map(Value::String),
            "\\PC{0,6}".prop_map(Value::String),
        ];
        let key = prop_oneof![
            Just("S"),
            Just("N"),
            Just("B"),
            Just("SS"),
            Just("NS"),
            Just("BS"),
            Just("M"),
            Just("L"),
            Just("NULL"),
            Just("BOOL"),
            Just("X"),
            Just("a"),
            Just("b"),
        ]
        .prop_map(String::from);
        leaf.prop_recursive(5, 48, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..3)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn value() -> impl Strategy<Value = AttributeValue> {
        let leaf = prop_oneof![
            "\\PC{0,8}".prop_map(AttributeValue::S),
            "-?[0-9]{1,38}".prop_map(AttributeValue::N),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(AttributeValue::B),
            prop::collection::vec(any::<u8>(), 700..2500).prop_map(AttributeValue::B),
            prop::collection::vec("\\PC{0,4}", 1..3).prop_map(AttributeValue::Ss),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..5), 1..3).prop_map(AttributeValue::Bs),
            Just(AttributeValue::Null),
            any::<bool>().prop_map(AttributeValue::Bool),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::btree_map("\\PC{0,4}", inner.clone(), 0..3).prop_map(AttributeValue::M),
                prop::collection::vec(inner, 0..3).prop_map(AttributeValue::L),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// The scan never accepts what the decoder refuses (the one that decides).
        #[test]
        fn the_scan_accepts_only_what_the_full_check_accepts(doc in json(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&doc) } else { serde_json::to_string(&doc) }.unwrap();
            if is_item(&text) {
                prop_assert!(super::super::Image::from_json(&text).is_ok(), "scan accepted {text}");
                prop_assert!(serde_json::from_str::<Item>(&text).is_ok(), "scan accepted {text}");
            }
        }

        /// Items as DynamoDB writes them (no escapes in type keys, short binaries) take the fast
        /// path.
        #[test]
        fn items_take_the_fast_path(item in prop::collection::btree_map("\\PC{0,6}", value(), 0..6)) {
            let text = serde_json::to_string(&item).unwrap();
            prop_assert!(is_item(&text), "{text}");
        }
    }

    #[test]
    fn what_the_scan_leaves_to_the_full_check() {
        for text in [
            r#"{"a":{"X":"1"}}"#,
            r#"{"a":{"S":"1","N":"1"}}"#,
            r#"{"a":{"B":"***"}}"#,
            r#"{"a":{"S":1}}"#,
            r#"{"a":{}}"#,
            r#"{"a":{"NULL":null}}"#,
            r#"{"a":{"\u0053":"x"}}"#,
            r#"{"a":{"S":"x"}} {}"#,
            r#"[]"#,
            r#"{"a":{"S":"lone \ud800 surrogate"}}"#,
            r#"{"a":{"B":"AA==AAAA"}}"#,
        ] {
            assert!(!is_item(text), "{text}");
        }
        assert!(is_item(r#" { "a" : { "L" : [ { "NULL" : true } , { "M" : { } } ] } } "#));
    }
}
