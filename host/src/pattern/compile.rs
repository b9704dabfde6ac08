//! Pattern JSON → compiled conditions, with EventBridge's validation rules. Every error names the
//! pattern path and the reason.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::leaf::{AnythingBut, Condition, Range, Scalar};
use super::{Node, Rule, Target};

/// The most `*` one wildcard may hold (EventBridge rejects more as "too complex").
const MAX_WILDCARDS: usize = 5;

pub(super) fn object(map: &Map<String, Value>, at: &str) -> Result<Node, String> {
    let mut rules = Vec::with_capacity(map.len());
    for (key, value) in map {
        let here = join(at, key);
        if key == "$or" {
            let Value::Array(alternatives) = value else {
                return Err(format!("{here}: $or takes a list of patterns"));
            };
            if alternatives.len() < 2 {
                return Err(format!("{here}: $or takes at least two patterns"));
            }
            let nodes = alternatives
                .iter()
                .enumerate()
                .map(|(i, alt)| match alt {
                    Value::Object(m) if !m.is_empty() => object(m, &format!("{here}[{i}]")),
                    _ => Err(format!("{here}[{i}]: each $or alternative must be a non-empty object")),
                })
                .collect::<Result<_, _>>()?;
            rules.push(Rule::Or(nodes));
            continue;
        }
        if key.is_empty() {
            return Err(format!("{at}: empty field name"));
        }
        let target = match value {
            Value::Object(m) if !m.is_empty() => Target::Nested(object(m, &here)?),
            Value::Array(conditions) if !conditions.is_empty() => {
                Target::Leaf(conditions.iter().map(|c| condition(c, &here)).collect::<Result<_, _>>()?)
            }
            Value::Array(_) => return Err(format!("{here}: a list of match conditions may not be empty")),
            other => {
                return Err(format!(
                    "{here}: expected an object of fields or a list of match conditions, found {}",
                    kind(other)
                ))
            }
        };
        // `"a.b": [...]` means `"a": {"b": [...]}`: pattern keys split on dots (event keys don't).
        let mut segments = key.split('.').rev();
        let last = segments.next().expect("split yields at least one part");
        let mut rule = Rule::Field(last.to_owned(), target);
        for parent in segments {
            rule = Rule::Field(parent.to_owned(), Target::Nested(Node { rules: vec![rule] }));
        }
        rules.push(rule);
    }
    Ok(Node { rules })
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn scalar(v: &Value) -> Option<Scalar> {
    Some(match v {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => Scalar::Num(n.as_f64()?),
        Value::String(s) => Scalar::Str(s.clone()),
        _ => return None,
    })
}

fn condition(v: &Value, at: &str) -> Result<Condition, String> {
    let Value::Object(m) = v else {
        return scalar(v)
            .map(Condition::Exact)
            .ok_or_else(|| format!("{at}: a list inside a list of match conditions"));
    };
    let mut entries = m.iter();
    let (Some((op, arg)), None) = (entries.next(), entries.next()) else {
        return Err(format!("{at}: a match condition is an object with exactly one operator"));
    };
    let here = format!("{at}: {op}");
    match op.as_str() {
        "prefix" => match arg {
            Value::String(s) => Ok(Condition::Prefix(s.clone())),
            Value::Object(_) => Ok(Condition::PrefixIgnoreCase(ignore_case_arg(arg, &here)?)),
            _ => Err(format!("{here} takes a string or {{\"equals-ignore-case\": string}}")),
        },
        "suffix" => match arg {
            Value::String(s) => Ok(Condition::Suffix(s.clone())),
            Value::Object(_) => Ok(Condition::SuffixIgnoreCase(ignore_case_arg(arg, &here)?)),
            _ => Err(format!("{here} takes a string or {{\"equals-ignore-case\": string}}")),
        },
        "equals-ignore-case" => match arg {
            Value::String(s) => Ok(Condition::EqualsIgnoreCase(s.clone())),
            _ => Err(format!("{here} takes a string")),
        },
        "wildcard" => match arg {
            Value::String(s) => Ok(Condition::Wildcard(check_wildcard(s, &here)?)),
            _ => Err(format!("{here} takes a string")),
        },
        "anything-but" => anything_but(arg, &here).map(Condition::AnythingBut),
        "numeric" => numeric(arg, &here).map(Condition::Numeric),
        "exists" => match arg {
            Value::Bool(b) => Ok(Condition::Exists(*b)),
            _ => Err(format!("{here} takes true or false")),
        },
        "cidr" => match arg {
            Value::String(s) => cidr(s).map(|(ip, len)| Condition::Cidr(ip, len)).ok_or_else(|| {
                format!("{here}: {s:?} is not an IPv4 or IPv6 network such as 10.0.0.0/24")
            }),
            _ => Err(format!("{here} takes a string such as \"10.0.0.0/24\"")),
        },
        other => Err(format!(
            "{at}: unknown operator {other:?} (operators: prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, exists, cidr)"
        )),
    }
}

fn ignore_case_arg(arg: &Value, here: &str) -> Result<String, String> {
    match arg {
        Value::Object(m) if m.len() == 1 => match m.get("equals-ignore-case") {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(format!("{here} takes a string or {{\"equals-ignore-case\": string}}")),
        },
        _ => Err(format!("{here} takes a string or {{\"equals-ignore-case\": string}}")),
    }
}

fn check_wildcard(s: &str, here: &str) -> Result<String, String> {
    if let Some(pos) = s.find("**") {
        return Err(format!("{here}: consecutive wildcard characters at position {pos}"));
    }
    if s.matches('*').count() > MAX_WILDCARDS {
        return Err(format!("{here}: pattern {s:?} is too complex: use at most {MAX_WILDCARDS} wildcard characters"));
    }
    Ok(s.to_owned())
}

/// One string or a non-empty list of strings.
fn strings(arg: &Value, here: &str, non_empty: bool) -> Result<Vec<String>, String> {
    let list: Vec<&Value> = match arg {
        Value::Array(a) if !a.is_empty() => a.iter().collect(),
        Value::Array(_) => return Err(format!("{here}: the list may not be empty")),
        v => vec![v],
    };
    list.into_iter()
        .map(|v| match v {
            Value::String(s) if non_empty && s.is_empty() => Err(format!("{here}: the value may not be empty")),
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("{here}: expected strings, found {}", kind(other))),
        })
        .collect()
}

fn anything_but(arg: &Value, here: &str) -> Result<AnythingBut, String> {
    match arg {
        Value::String(_) | Value::Number(_) => Ok(AnythingBut::Values(vec![scalar(arg).expect("scalar")])),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|v| match v {
                Value::String(_) | Value::Number(_) => Ok(scalar(v).expect("scalar")),
                other => Err(format!("{here}: a list of strings or numbers, found {}", kind(other))),
            })
            .collect::<Result<_, _>>()
            .map(AnythingBut::Values),
        Value::Object(m) if m.len() == 1 => {
            let (op, inner) = m.iter().next().expect("one entry");
            let here = format!("{here}: {op}");
            match op.as_str() {
                "prefix" => strings(inner, &here, true).map(AnythingBut::Prefix),
                "suffix" => strings(inner, &here, true).map(AnythingBut::Suffix),
                "equals-ignore-case" => strings(inner, &here, false).map(AnythingBut::IgnoreCase),
                "wildcard" => strings(inner, &here, false)?
                    .iter()
                    .map(|w| check_wildcard(w, &here))
                    .collect::<Result<_, _>>()
                    .map(AnythingBut::Wildcard),
                other => Err(format!(
                    "{here}: unknown anything-but operator {other:?} (prefix, suffix, equals-ignore-case, wildcard)"
                )),
            }
        }
        other => Err(format!(
            "{here} takes a string, a number, a non-empty list of them, or one operator; found {}",
            kind(other)
        )),
    }
}

fn numeric(arg: &Value, here: &str) -> Result<Range, String> {
    let Value::Array(parts) = arg else {
        return Err(format!("{here} takes a list such as [\">\", 0, \"<=\", 5]"));
    };
    if parts.is_empty() || parts.len() % 2 != 0 || parts.len() > 4 {
        return Err(format!("{here} takes one or two (operator, number) pairs"));
    }
    let mut range = Range::default();
    for pair in parts.chunks(2) {
        let (Value::String(op), Value::Number(n)) = (&pair[0], &pair[1]) else {
            return Err(format!("{here}: expected an operator (<, <=, =, >=, >) followed by a number"));
        };
        let n = n.as_f64().ok_or_else(|| format!("{here}: {n} is not a finite number"))?;
        let slot = match op.as_str() {
            "=" if parts.len() == 2 => {
                range.lower = Some((n, true));
                range.upper = Some((n, true));
                continue;
            }
            "=" => return Err(format!("{here}: \"=\" cannot be combined with another comparison")),
            ">" | ">=" => &mut range.lower,
            "<" | "<=" => &mut range.upper,
            other => return Err(format!("{here}: unknown comparison {other:?} (use <, <=, =, >=, >)")),
        };
        if slot.is_some() {
            return Err(format!("{here}: two {} bounds", if op.starts_with('>') { "lower" } else { "upper" }));
        }
        *slot = Some((n, op.ends_with('=')));
    }
    if let (Some((l, _)), Some((u, _))) = (range.lower, range.upper) {
        if l >= u && !(l == u && parts.len() == 2) {
            return Err(format!("{here}: the lower bound {l} must be below the upper bound {u}"));
        }
    }
    Ok(range)
}

fn cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}
