//! Keys written twice in one mapping (two sinks or processors of one name, a repeated field in a
//! filter pattern). A YAML loader keeps the last one and drops the other without a word; eddy
//! refuses the file instead and names both lines.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::spec::Seg;

/// The key path of every key that appears a second (or later) time in its mapping, in file
/// order. Text that is not valid YAML yields what was walked before the error (the parse that
/// follows reports the syntax error).
pub fn find(text: &str) -> Vec<Vec<Seg>> {
    let found = RefCell::new(Vec::new());
    let _ = Walk { path: Vec::new(), found: &found }.deserialize(serde_norway::Deserializer::from_str(text));
    found.into_inner()
}

/// Visits a node at `path`, recording repeated keys in `found`.
struct Walk<'a> {
    path: Vec<Seg>,
    found: &'a RefCell<Vec<Vec<Seg>>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!Tag x`): its content is not walked.
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(variant).map(|_| ())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let mut path = self.path.clone();
            path.push(Seg::Index(i));
            if seq.next_element_seed(Walk { path, found: self.found })?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(KeyText)? {
            let mut path = self.path.clone();
            path.push(Seg::Key(key.clone()));
            if !seen.insert(key) {
                self.found.borrow_mut().push(path.clone());
            }
            map.next_value_seed(Walk { path, found: self.found })?;
        }
        Ok(())
    }
}

/// A mapping key as text (`1`, `true` and `"1"` differ in YAML but name the same config key).
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok("null".to_owned())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok("(a list as a key)".to_owned())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok("(a mapping as a key)".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::path::{parse, render};

    #[test]
    fn finds_repeated_keys_at_any_depth() {
        let text = "sinks:\n  a: {type: null}\n  a: {type: stdout}\nroutes:\n  - name: r\n    filter: {\"eventName\": [\"INSERT\"], \"eventName\": [\"REMOVE\"]}\n    sinks: [a]\n";
        let found: Vec<String> = find(text).iter().map(|p| render(p)).collect();
        assert_eq!(found, ["sinks.a", "routes[0].filter.eventName"]);
        assert!(find("a: 1\nb: {a: 1}\nc: [{a: 1}, {a: 2}]\n").is_empty());
        assert_eq!(find("a: 1\na: 2\n").iter().map(|p| render(p)).collect::<Vec<_>>(), ["a"]);
        let _ = parse("a");
    }
}
