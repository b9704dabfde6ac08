//! A strict, allocation-free forward scanner of JSON text (RFC 8259), for readers that take a
//! document apart in one pass instead of parsing it into a tree first: the GetRecords decoder
//! reads a page's records and checks their images with it, and [`crate::Image`] checks DynamoDB
//! JSON with it.
//!
//! Strict means it accepts exactly what `serde_json` accepts when it decodes the same text into
//! strings and numbers: no control characters inside strings, only the escapes JSON defines,
//! `\u` escapes that pair their surrogates, the JSON number grammar, no trailing commas, only
//! JSON's four whitespace characters. UTF-8 is the caller's part: the scanner reads a `&str`.
//! Nesting deeper than [`MAX_DEPTH`] is refused, below `serde_json`'s own limit (127), so text
//! the scanner accepts always decodes.
//!
//! Every method answers `None` or `false` on anything it does not accept, and then the scanner's
//! position is unspecified: a caller that needs the reason decodes the text with `serde_json`.

/// The deepest nesting of objects and arrays accepted.
pub const MAX_DEPTH: u32 = 100;

/// A position in JSON text and the nesting depth there. A clone is a saved position to go back
/// to.
#[derive(Clone)]
pub struct Scanner<'a> {
    text: &'a str,
    i: usize,
    depth: u32,
}

/// A JSON string as it appears in the text: its content between the quotes, and whether that
/// content has escapes (checked to be valid).
#[derive(Clone, Copy, Debug)]
pub struct JsonStr<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The content between the quotes, escapes as written.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether the content has escapes; when not, [`JsonStr::raw`] is the string's value.
    pub fn is_escaped(&self) -> bool {
        self.escaped
    }

    /// The string's value, escapes decoded.
    pub fn to_owned_string(&self) -> String {
        if !self.escaped {
            return self.raw.to_owned();
        }
        let b = self.raw.as_bytes();
        let mut out = String::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let Some(at) = memchr::memchr(b'\\', &b[i..]) else {
                out.push_str(&self.raw[i..]);
                break;
            };
            out.push_str(&self.raw[i..i + at]);
            i += at + 1;
            let c = match b[i] {
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let hi = hex4(&b[i + 1..]).expect("escapes are checked when scanned");
                    i += 4;
                    let code = if (0xD800..0xDC00).contains(&hi) {
                        let lo = hex4(&b[i + 3..]).expect("escapes are checked when scanned");
                        i += 6;
                        0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00)
                    } else {
                        u32::from(hi)
                    };
                    char::from_u32(code).expect("surrogates are checked when scanned")
                }
                other => char::from(other), // `"`, `\`, `/`
            };
            out.push(c);
            i += 1;
        }
        out
    }
}

/// The value of four hex digits.
fn hex4(b: &[u8]) -> Option<u16> {
    let digits = b.get(..4)?;
    let mut v = 0u16;
    for &d in digits {
        let n = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        v = v << 4 | u16::from(n);
    }
    Some(v)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The bytes of `w` that end a string's plain run (`"`, `\`, or a control character below
/// 0x20), as high bits; exact for the lowest such byte, which is all the caller uses.
#[inline]
fn stops(w: u64) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    ((quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash)
        | (w.wrapping_sub(ONES * 0x20) & !w))
        & HIGH
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Self { text, i: 0, depth: 0 }
    }

    /// The current byte offset. It is always at a character boundary: the scanner stops only
    /// next to JSON's ASCII punctuation.
    pub fn position(&self) -> usize {
        self.i
    }

    /// The text between two positions the scanner has been at.
    pub fn text_between(&self, start: usize, end: usize) -> &'a str {
        &self.text[start..end]
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips JSON whitespace.
    #[inline]
    pub fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes().get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes().get(self.i).copied()
    }

    /// Consumes `c` after optional whitespace; whether it was there.
    #[inline]
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Whether only whitespace remains.
    pub fn at_end(&mut self) -> bool {
        self.skip_whitespace();
        self.i == self.text.len()
    }

    /// A string, checked strictly.
    pub fn string(&mut self) -> Option<JsonStr<'a>> {
        if !self.eat(b'"') {
            return None;
        }
        let b = self.bytes();
        let start = self.i;
        let mut escaped = false;
        loop {
            while let Some(chunk) = b.get(self.i..self.i + 8) {
                let m = stops(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
                if m != 0 {
                    self.i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
                self.i += 8;
            }
            match *b.get(self.i)? {
                b'"' => {
                    let raw = &self.text[start..self.i];
                    self.i += 1;
                    return Some(JsonStr { raw, escaped });
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    /// One escape, at its backslash.
    fn escape(&mut self) -> Option<()> {
        let b = self.bytes();
        match *b.get(self.i + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
            b'u' => {
                let code = hex4(b.get(self.i + 2..)?)?;
                self.i += 6;
                match code {
                    0xD800..=0xDBFF => {
                        // A leading surrogate must be followed by an escaped trailing one.
                        if b.get(self.i..self.i + 2)? != b"\\u" {
                            return None;
                        }
                        if !(0xDC00..=0xDFFF).contains(&hex4(b.get(self.i + 2..)?)?) {
                            return None;
                        }
                        self.i += 6;
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => {}
                }
            }
            _ => return None,
        }
        Some(())
    }

    /// A number in JSON's grammar (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`): its text.
    pub fn number(&mut self) -> Option<&'a str> {
        self.skip_whitespace();
        let b = self.bytes();
        let start = self.i;
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        let mut i = self.i;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                digits(&mut i);
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                return None;
            }
        }
        self.i = i;
        Some(&self.text[start..i])
    }

    /// `true` or `false`: its value.
    pub fn boolean(&mut self) -> Option<bool> {
        if self.literal("true") {
            Some(true)
        } else if self.literal("false") {
            Some(false)
        } else {
            None
        }
    }

    /// Consumes `word` (`true`, `false`, `null`) after optional whitespace; whether it was there.
    pub fn literal(&mut self, word: &str) -> bool {
        self.skip_whitespace();
        if self.bytes()[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    /// Any JSON value, checked and skipped.
    pub fn skip_value(&mut self) -> bool {
        match self.peek() {
            Some(b'"') => self.string().is_some(),
            Some(b'{') => self.members(|s, _| s.skip_value()),
            Some(b'[') => self.elements(Self::skip_value),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number().is_some(),
            _ => false,
        }
    }

    /// An object: `member` is called with each key, the scanner just past its `:`, and must
    /// consume the value. Whether the object was read whole and every call answered `true`.
    pub fn members(&mut self, mut member: impl FnMut(&mut Self, JsonStr<'a>) -> bool) -> bool {
        self.delimited(b'{', b'}', |s| match s.string() {
            Some(key) => s.eat(b':') && member(s, key),
            None => false,
        })
    }

    /// An object of exactly one member whose key has no escapes, as DynamoDB JSON's
    /// `{"TYPE": value}`: `member` is called with the key, the scanner just past its `:`, and
    /// must consume the value. A short key is read with a plain loop, cheaper than
    /// [`Scanner::string`]'s. Whether the object was read whole and `member` answered `true`;
    /// an empty object, a second member, or an escape in the key answers `false`.
    pub fn single_member(&mut self, member: impl FnOnce(&mut Self, &'a str) -> bool) -> bool {
        if !self.eat(b'{') || !self.enter() || !self.eat(b'"') {
            return false;
        }
        let b = self.bytes();
        let start = self.i;
        loop {
            match *b.get(self.i).unwrap_or(&b'\\') {
                b'"' => break,
                b'\\' | 0..=0x1f => return false,
                _ => self.i += 1,
            }
        }
        let key = &self.text[start..self.i];
        self.i += 1;
        if !self.eat(b':') || !member(self, key) || !self.eat(b'}') {
            return false;
        }
        self.depth -= 1;
        true
    }

    /// An array: `element` is called at each element and must consume it. Whether the array was
    /// read whole and every call answered `true`.
    pub fn elements(&mut self, element: impl FnMut(&mut Self) -> bool) -> bool {
        self.delimited(b'[', b']', element)
    }

    /// `open`, then items separated by commas, then `close`; `item` consumes one item.
    fn delimited(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> bool) -> bool {
        if !self.eat(open) || !self.enter() {
            return false;
        }
        if self.eat(close) {
            self.depth -= 1;
            return true;
        }
        loop {
            if !item(self) {
                return false;
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {
                    self.i += 1;
                    self.depth -= 1;
                    return true;
                }
                _ => return false,
            }
        }
    }

    fn enter(&mut self) -> bool {
        self.depth += 1;
        self.depth <= MAX_DEPTH
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether the scanner reads `text` whole as one value.
    fn scans(text: &str) -> bool {
        let mut s = Scanner::new(text);
        s.skip_value() && s.at_end()
    }

    fn json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
            "[\"\\\\\u{0}-\u{1f}\u{7f}é😀]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// What serde_json writes, compact or pretty, the scanner reads, and strings decode to
        /// the same text.
        #[test]
        fn it_reads_what_serde_json_writes(doc in json(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&doc) } else { serde_json::to_string(&doc) }.unwrap();
            prop_assert!(scans(&text), "{text}");
            if let serde_json::Value::String(s) = &doc {
                let mut scanner = Scanner::new(&text);
                prop_assert_eq!(&scanner.string().unwrap().to_owned_string(), s);
            }
        }

        /// Arbitrary short texts: the scanner accepts one only if serde_json decodes it.
        #[test]
        fn it_accepts_only_what_serde_json_decodes(text in "[ \\[\\]{}\",:0-9eE.+\\-tfrulnasb\\\\/\u{1}\u{7f}é]{0,16}") {
            if scans(&text) {
                prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{text:?}");
            }
        }
    }

    #[test]
    fn strings_are_checked_strictly_and_decoded() {
        for (text, value) in [
            (r#""plain""#, Some("plain")),
            (r#""a \"q\" \\ \/ \b\f\n\r\t""#, Some("a \"q\" \\ / \u{8}\u{c}\n\r\t")),
            (r#""\u00e9\u20AC\ud83d\ude00""#, Some("é€😀")),
            ("\"é and 😀 unescaped\"", Some("é and 😀 unescaped")),
            ("\"tab\tinside\"", None),
            ("\"nul\u{0}\"", None),
            (r#""\x""#, None),
            (r#""\u12""#, None),
            (r#""\ud800""#, None),
            (r#""\ud800\u0041""#, None),
            (r#""\udc00""#, None),
            (r#""unterminated"#, None),
        ] {
            let mut s = Scanner::new(text);
            let got = s.string().map(|j| j.to_owned_string());
            assert_eq!(got.as_deref(), value, "{text}");
            assert_eq!(got, serde_json::from_str::<String>(text).ok(), "serde_json agrees on {text}");
        }
    }

    #[test]
    fn numbers_follow_the_json_grammar() {
        for good in ["0", "-0", "12", "-1.5", "1e9", "1.7000000125E9", "2E-3", "1e+2"] {
            let mut s = Scanner::new(good);
            assert_eq!(s.number(), Some(good), "{good}");
        }
        for bad in ["01", "-", "1.", ".5", "1e", "+1", "1.e3"] {
            assert!(!scans(bad), "{bad}");
            assert!(serde_json::from_str::<serde_json::Value>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_single_member_object_is_read_whole() {
        let read = |text: &str| {
            let mut s = Scanner::new(text);
            let mut key = None;
            let ok = s.single_member(|s, k| {
                key = Some(k.to_owned());
                s.skip_value()
            });
            (ok && s.at_end()).then_some(key).flatten()
        };
        assert_eq!(read(r#"{"S":"x"}"#).as_deref(), Some("S"));
        assert_eq!(read(r#" { "NULL" : true } "#).as_deref(), Some("NULL"));
        assert_eq!(read(r#"{"é":1}"#).as_deref(), Some("é"));
        for bad in [
            r#"{}"#,
            r#"{"S":"x","N":"1"}"#,
            r#"{"S":"x",}"#,
            r#"{"\u0053":"x"}"#,
            "{\"S\t\":1}",
            r#"{"S""#,
            r#"{"S":}"#,
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
    }

    #[test]
    fn structure_is_checked() {
        for good in ["{}", "[]", r#" { "a" : [ 1 , true , null , { } ] } "#] {
            assert!(scans(good), "{good}");
        }
        for bad in ["{,}", "[1,]", r#"{"a":1,}"#, r#"{"a" 1}"#, "{1:2}", "[1 2]", "nul", "\u{a0}[]"] {
            assert!(!scans(bad), "{bad}");
        }
        let deep = "[".repeat(MAX_DEPTH as usize) + &"]".repeat(MAX_DEPTH as usize);
        assert!(scans(&deep));
        let deeper = "[".repeat(MAX_DEPTH as usize + 1) + &"]".repeat(MAX_DEPTH as usize + 1);
        assert!(!scans(&deeper), "nesting is bounded");
    }
}
