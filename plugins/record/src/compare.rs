//! Comparing items as DynamoDB does: numbers by value (`1.50` equals `1.5`, up to 38 significant
//! digits, exactly, never through a float), sets without order, binary by bytes, maps and lists
//! deeply. Used to tell whether a dead-letter entry is still its key's newest change, and to
//! compare a replica with its source.

use std::cmp::Ordering;

use crate::{AttributeValue, Item};

/// Whether items `a` and `b` are equal by DynamoDB's rules.
pub fn equal_items(a: &Item, b: &Item) -> bool {
    a.len() == b.len() && a.iter().all(|(name, va)| b.get(name).is_some_and(|vb| equal_values(va, vb)))
}

/// Whether values `a` and `b` are equal by DynamoDB's rules.
pub fn equal_values(a: &AttributeValue, b: &AttributeValue) -> bool {
    use AttributeValue as V;
    match (a, b) {
        (V::S(x), V::S(y)) => x == y,
        (V::N(x), V::N(y)) => compare_numbers(x, y) == Some(Ordering::Equal) || x == y,
        (V::B(x), V::B(y)) => x == y,
        (V::Ss(x), V::Ss(y)) => same_set(x, y, |p, q| p == q),
        (V::Ns(x), V::Ns(y)) => same_set(x, y, |p, q| compare_numbers(p, q) == Some(Ordering::Equal) || p == q),
        (V::Bs(x), V::Bs(y)) => same_set(x, y, |p, q| p == q),
        (V::M(x), V::M(y)) => equal_items(x, y),
        (V::L(x), V::L(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal_values(p, q)),
        (V::Null, V::Null) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        _ => false,
    }
}

/// The attribute paths where `a` and `b` differ (`name`, `map.key`, `list[2]`), in name order; a
/// value of another type, a set with other members or a list of another length is one path.
pub fn differences(a: &Item, b: &Item) -> Vec<String> {
    let mut out = Vec::new();
    diff_items("", a, b, &mut out);
    out
}

fn diff_items(prefix: &str, a: &Item, b: &Item, out: &mut Vec<String>) {
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match (a.get(name), b.get(name)) {
            (Some(AttributeValue::M(x)), Some(AttributeValue::M(y))) => diff_items(&path, x, y, out),
            (Some(AttributeValue::L(x)), Some(AttributeValue::L(y))) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    let at = format!("{path}[{i}]");
                    match (p, q) {
                        (AttributeValue::M(m), AttributeValue::M(n)) => diff_items(&at, m, n, out),
                        _ if !equal_values(p, q) => out.push(at),
                        _ => {}
                    }
                }
            }
            (Some(x), Some(y)) if equal_values(x, y) => {}
            _ => out.push(path),
        }
    }
}

fn same_set<T>(a: &[T], b: &[T], eq: impl Fn(&T, &T) -> bool) -> bool {
    // Sets hold distinct members, so equal sizes and every member of one in the other suffice.
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| eq(x, y)))
}

/// A DynamoDB number as sign, significant digits (no leading or trailing zeros) and the exponent
/// of the first digit: `-12.30` is `(true, "123", 2)` (0.123 × 10²). Zero is `(false, "", 0)`.
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let text = text.trim();
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int}{frac}");
    let leading = digits.bytes().take_while(|b| *b == b'0').count();
    let significant = digits[leading..].trim_end_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    // The first significant digit's place: digits before the point, less the leading zeros.
    let place = int.len() as i64 - leading as i64 + exponent;
    Some((negative, significant.to_owned(), place))
}

/// Compares two DynamoDB numbers by value; `None` when either is not a number.
pub fn compare_numbers(a: &str, b: &str) -> Option<Ordering> {
    let (na, da, pa) = decimal(a)?;
    let (nb, db, pb) = decimal(b)?;
    let sign = |n: bool, d: &str| {
        if d.is_empty() {
            0
        } else if n {
            -1
        } else {
            1
        }
    };
    let (sa, sb) = (sign(na, &da), sign(nb, &db));
    if sa != sb {
        return Some(sa.cmp(&sb));
    }
    if sa == 0 {
        return Some(Ordering::Equal);
    }
    let magnitude = pa.cmp(&pb).then_with(|| {
        let width = da.len().max(db.len());
        format!("{da:0<width$}").cmp(&format!("{db:0<width$}"))
    });
    Some(if sa < 0 { magnitude.reverse() } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: &str) -> Item {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn numbers_compare_by_value_exactly() {
        for (a, b) in [
            ("1.50", "1.5"),
            ("0", "-0.000"),
            ("1e2", "100"),
            ("12345678901234567890123456789012345678", "1.2345678901234567890123456789012345678E37"),
            ("-0.01", "-1e-2"),
        ] {
            assert_eq!(compare_numbers(a, b), Some(Ordering::Equal), "{a} = {b}");
        }
        assert_eq!(
            compare_numbers("12345678901234567890123456789012345678", "12345678901234567890123456789012345679"),
            Some(Ordering::Less)
        );
        assert_eq!(compare_numbers("-2", "1"), Some(Ordering::Less));
        assert_eq!(compare_numbers("-2", "-10"), Some(Ordering::Greater));
        assert_eq!(compare_numbers("0.1", "0.09"), Some(Ordering::Greater));
        assert_eq!(compare_numbers("x", "1"), None);
    }

    #[test]
    fn items_are_equal_by_dynamodbs_rules_and_differences_name_their_paths() {
        let a = item(
            r#"{"n": {"N": "1.50"}, "s": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.0"]}, "b": {"B": "AAE="},
                         "m": {"M": {"x": {"L": [{"N": "1"}, {"M": {"y": {"S": "z"}}}]}}}}"#,
        );
        let b = item(
            r#"{"n": {"N": "1.5"}, "s": {"SS": ["b", "a"]}, "ns": {"NS": ["2", "1"]}, "b": {"B": "AAE="},
                         "m": {"M": {"x": {"L": [{"N": "1.0"}, {"M": {"y": {"S": "z"}}}]}}}}"#,
        );
        assert!(equal_items(&a, &b));
        assert!(differences(&a, &b).is_empty());
        let c = item(
            r#"{"n": {"S": "1.5"}, "s": {"SS": ["a"]}, "ns": {"NS": ["1", "2"]}, "b": {"B": "AAI="},
                         "m": {"M": {"x": {"L": [{"N": "1"}, {"M": {"y": {"S": "w"}}}]}}}, "extra": {"NULL": true}}"#,
        );
        assert!(!equal_items(&a, &c));
        assert_eq!(differences(&a, &c), ["b", "extra", "m.x[1].y", "n", "s"]);
    }
}
