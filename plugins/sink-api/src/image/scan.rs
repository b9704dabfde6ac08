//! A fast structural check of DynamoDB JSON over text that is already known to be valid JSON (a
//! `serde_json::value::RawValue`): one forward scan, no allocation, no decoding.
//!
//! It is conservative: it accepts only what decoding the item ([`super::Image::from_json`])
//! also accepts, and answers `false` for anything else, including valid inputs it does not
//! bother with (a type key or a base64 value written with escapes, a long binary); the caller then
//! decodes, which decides and gives the reason.

use base64::Engine as _;

/// Whether `text`, valid JSON, is an item in DynamoDB JSON.
pub(super) fn is_item(text: &[u8]) -> bool {
    let mut s = Scanner { b: text, i: 0 };
    s.item() && {
        s.ws();
        s.i == s.b.len()
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// Consumes `c` after optional whitespace.
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// A string: its raw content (between the quotes) and whether it has escapes.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        let mut escaped = false;
        loop {
            let at = memchr::memchr2(b'"', b'\\', self.b.get(self.i..)?)? + self.i;
            if self.b[at] == b'"' {
                self.i = at + 1;
                return Some((&self.b[start..at], escaped));
            }
            escaped = true;
            self.i = at + 2; // past the escaped character (\uXXXX's hex digits are plain)
        }
    }

    /// `{ "name": value, ... }`
    fn item(&mut self) -> bool {
        if !self.eat(b'{') {
            return false;
        }
        if self.eat(b'}') {
            return true;
        }
        loop {
            if self.string().is_none() || !self.eat(b':') || !self.value() {
                return false;
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return true;
                }
                _ => return false,
            }
        }
    }

    /// `{ "TYPE": ... }` with exactly one known type key.
    fn value(&mut self) -> bool {
        if !self.eat(b'{') {
            return false;
        }
        let Some((tag, false)) = self.string() else { return false };
        if !self.eat(b':') {
            return false;
        }
        let ok = match tag {
            b"S" | b"N" => self.string().is_some(),
            b"B" => self.base64(),
            b"SS" | b"NS" => self.list(|s| s.string().is_some()),
            b"BS" => self.list(Self::base64),
            b"M" => self.item(),
            b"L" => self.list(Self::value),
            b"NULL" | b"BOOL" => self.boolean(),
            _ => false,
        };
        ok && self.eat(b'}')
    }

    fn list(&mut self, mut element: impl FnMut(&mut Self) -> bool) -> bool {
        if !self.eat(b'[') {
            return false;
        }
        if self.eat(b']') {
            return true;
        }
        loop {
            if !element(self) {
                return false;
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return true;
                }
                _ => return false,
            }
        }
    }

    fn boolean(&mut self) -> bool {
        self.ws();
        for word in [&b"true"[..], b"false"] {
            if self.b[self.i..].starts_with(word) {
                self.i += word.len();
                return true;
            }
        }
        false
    }

    fn base64(&mut self) -> bool {
        match self.string() {
            Some((text, false)) => {
                // Decoding into a stack buffer checks the text without allocating; longer values
                // are left to the decoder.
                let mut buf = [0u8; 768];
                text.len() <= 1024 && base64::engine::general_purpose::STANDARD.decode_slice(text, &mut buf).is_ok()
            }
            _ => false,
        }
    }
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
            if is_item(text.as_bytes()) {
                prop_assert!(super::super::Image::from_json(&text).is_ok(), "scan accepted {text}");
                prop_assert!(serde_json::from_str::<Item>(&text).is_ok(), "scan accepted {text}");
            }
        }

        /// Items as DynamoDB writes them (no escapes in type keys, short binaries) take the fast
        /// path.
        #[test]
        fn items_take_the_fast_path(item in prop::collection::btree_map("\\PC{0,6}", value(), 0..6)) {
            let text = serde_json::to_string(&item).unwrap();
            prop_assert!(is_item(text.as_bytes()), "{text}");
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
        ] {
            assert!(!is_item(text.as_bytes()), "{text}");
        }
        assert!(is_item(br#" { "a" : { "L" : [ { "NULL" : true } , { "M" : { } } ] } } "#));
    }
}
