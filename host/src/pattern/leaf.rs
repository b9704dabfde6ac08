//! Conditions on one leaf value: exact values, `prefix`, `suffix`, `equals-ignore-case`,
//! `wildcard`, `anything-but`, `numeric`, `exists` and `cidr`, as EventBridge defines them.

use std::net::IpAddr;

use base64::Engine as _;

use super::view::Leaf;

/// An exact value in a pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// `null`
    Null,
    /// A boolean.
    Bool(bool),
    /// A number (compared numerically: `300` equals `300.0`).
    Num(f64),
    /// A string (never equal to a number, even `"300"` and `300`).
    Str(String),
}

/// A condition on one leaf.
#[derive(Debug, Clone)]
pub enum Condition {
    /// Equal to this value.
    Exact(Scalar),
    /// A string starting with this.
    Prefix(String),
    /// A string starting with this, ignoring case.
    PrefixIgnoreCase(String),
    /// A string ending with this.
    Suffix(String),
    /// A string ending with this, ignoring case.
    SuffixIgnoreCase(String),
    /// A string equal to this, ignoring case.
    EqualsIgnoreCase(String),
    /// A string matching this `*` pattern.
    Wildcard(String),
    /// Anything (including `null`) except what this describes.
    AnythingBut(AnythingBut),
    /// A number in this range.
    Numeric(Range),
    /// The field is present (`true`) or absent (`false`); handled by the matcher, not here.
    Exists(bool),
    /// An IP address in this network.
    Cidr(IpAddr, u8),
}

/// What `anything-but` excludes.
#[derive(Debug, Clone)]
pub enum AnythingBut {
    /// These values.
    Values(Vec<Scalar>),
    /// Strings with any of these prefixes.
    Prefix(Vec<String>),
    /// Strings with any of these suffixes.
    Suffix(Vec<String>),
    /// Strings equal to any of these, ignoring case.
    IgnoreCase(Vec<String>),
    /// Strings matching any of these wildcards.
    Wildcard(Vec<String>),
}

/// A numeric range; bounds are `(value, inclusive)`.
#[derive(Debug, Clone, Default)]
pub struct Range {
    /// The lower bound.
    pub lower: Option<(f64, bool)>,
    /// The upper bound.
    pub upper: Option<(f64, bool)>,
}

impl Condition {
    /// Whether `leaf` satisfies this condition.
    pub fn matches(&self, leaf: Leaf<'_>) -> bool {
        match self {
            Condition::Exact(s) => exact(s, leaf),
            Condition::Prefix(p) => with_str(leaf, |s| s.starts_with(p.as_str())),
            Condition::PrefixIgnoreCase(p) => with_str(leaf, |s| starts_with_ignore_case(s, p)),
            Condition::Suffix(p) => with_str(leaf, |s| s.ends_with(p.as_str())),
            Condition::SuffixIgnoreCase(p) => with_str(leaf, |s| ends_with_ignore_case(s, p)),
            Condition::EqualsIgnoreCase(p) => with_str(leaf, |s| eq_ignore_case(s, p)),
            Condition::Wildcard(w) => with_str(leaf, |s| wildcard(w, s)),
            Condition::AnythingBut(a) => !a.excludes(leaf),
            Condition::Numeric(r) => matches!(leaf, Leaf::Num(n) if r.contains(n)),
            Condition::Exists(present) => *present,
            Condition::Cidr(net, len) => {
                with_str(leaf, |s| s.parse::<IpAddr>().is_ok_and(|ip| in_network(ip, *net, *len)))
            }
        }
    }
}

impl AnythingBut {
    fn excludes(&self, leaf: Leaf<'_>) -> bool {
        match self {
            AnythingBut::Values(v) => v.iter().any(|s| exact(s, leaf)),
            AnythingBut::Prefix(v) => with_str(leaf, |s| v.iter().any(|p| s.starts_with(p.as_str()))),
            AnythingBut::Suffix(v) => with_str(leaf, |s| v.iter().any(|p| s.ends_with(p.as_str()))),
            AnythingBut::IgnoreCase(v) => with_str(leaf, |s| v.iter().any(|p| eq_ignore_case(s, p))),
            AnythingBut::Wildcard(v) => with_str(leaf, |s| v.iter().any(|w| wildcard(w, s))),
        }
    }
}

impl Range {
    fn contains(&self, n: f64) -> bool {
        let above = self.lower.is_none_or(|(l, incl)| if incl { n >= l } else { n > l });
        let below = self.upper.is_none_or(|(u, incl)| if incl { n <= u } else { n < u });
        above && below
    }
}

fn exact(s: &Scalar, leaf: Leaf<'_>) -> bool {
    match (s, leaf) {
        (Scalar::Null, Leaf::Null) => true,
        (Scalar::Bool(a), Leaf::Bool(b)) => *a == b,
        (Scalar::Num(a), Leaf::Num(b)) => *a == b,
        (Scalar::Str(a), _) => with_str(leaf, |s| s == a),
        _ => false,
    }
}

/// Applies `f` to a string leaf (binary leaves as their base64 text); other leaves fail.
fn with_str(leaf: Leaf<'_>, f: impl FnOnce(&str) -> bool) -> bool {
    match leaf {
        Leaf::Str(s) => f(s),
        // Rare: only when a pattern reaches into a B attribute.
        Leaf::Bytes(b) => f(&base64::engine::general_purpose::STANDARD.encode(b)),
        _ => false,
    }
}

fn lower(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    lower(a).eq(lower(b))
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    let mut s = lower(s);
    lower(prefix).all(|p| s.next() == Some(p))
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    let mut s = s.chars().rev().flat_map(char::to_lowercase);
    suffix.chars().rev().flat_map(char::to_lowercase).all(|p| s.next() == Some(p))
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters (greedy with
/// one backtrack point, linear in practice, no allocation).
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("/Users/*/doc.txt", "/Users/a/b/c/doc.txt"));
        assert!(!wildcard("/Users/*/doc.txt", "/Users/a/notdoc.txt2"));
        assert!(wildcard("*", ""));
        assert!(wildcard("", ""));
        assert!(!wildcard("", "x"));
        assert!(wildcard("a*b*c", "aXXbYYc"));
        assert!(!wildcard("a*b*c", "aXXbYY"));
    }

    #[test]
    fn case_insensitive_comparisons() {
        assert!(eq_ignore_case("ÄBC", "äbc"));
        assert!(starts_with_ignore_case("EvEnTb", "eventb"));
        assert!(ends_with_ignore_case("image.PNG", ".png"));
        assert!(!starts_with_ignore_case("Ev", "event"));
    }

    #[test]
    fn networks() {
        let net: IpAddr = "10.0.0.0".parse().unwrap();
        assert!(in_network("10.0.0.255".parse().unwrap(), net, 24));
        assert!(!in_network("10.0.1.0".parse().unwrap(), net, 24));
        assert!(in_network("1.2.3.4".parse().unwrap(), net, 0));
    }
}
