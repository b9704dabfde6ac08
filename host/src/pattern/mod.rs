//! Event patterns: the EventBridge pattern language as Lambda `FilterCriteria` apply it to
//! DynamoDB stream records.
//!
//! A pattern is a JSON object. A key whose value is an object descends into that field; a key
//! whose value is a list holds match conditions, any of which may match the field's value (exact
//! values, `prefix`, `suffix`, `equals-ignore-case`, `wildcard`, `anything-but`, `numeric`,
//! `exists`, `cidr`). Every key of an object must match (`$or` takes a list of alternatives).
//! When the event holds a list, a condition matches if any element does. Keys with dots are
//! paths, in patterns and in events alike, because EventBridge flattens the event before
//! matching: `{"state.status": "running"}` and `{"state": {"status": "running"}}` are the same
//! field, and `{"state": {"status": ["running"]}}` matches both.
//!
//! On DynamoDB records (Lambda's JSON shape), the type key is part of the path
//! (`{"NewImage": {"species": {"S": ["dog"]}}}`), `N` values are strings (so `numeric` never
//! matches them), and `ApproximateCreationDateTime` is a number. `exists` looks at leaves only:
//! an object is "absent" to it.
//!
//! Patterns are compiled once ([`Pattern::compile`]); matching walks the record in place and
//! allocates nothing.

mod compile;
mod leaf;
mod view;

use eddy_record::ChangeRecord;
use serde_json::Value;

use leaf::Condition;
use view::Shape;
pub use view::View;

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    root: Node,
}

#[derive(Debug, Clone)]
struct Node {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    /// The field `name` must satisfy the target.
    Field(String, Target),
    /// One of these must match the same object.
    Or(Vec<Node>),
}

#[derive(Debug, Clone)]
enum Target {
    /// Descend into the field.
    Nested(Node),
    /// Any of these conditions on the field's value.
    Leaf(Vec<Condition>),
}

impl Pattern {
    /// Compiles a pattern given as JSON: an object, or a string holding one (Lambda's
    /// `Filters[].Pattern` is a JSON string).
    ///
    /// # Errors
    /// The path in the pattern and the reason, e.g. `detail.c-count: numeric: two lower bounds`.
    pub fn compile(pattern: &Value) -> Result<Self, String> {
        match pattern {
            Value::Object(m) => Ok(Self { root: compile::object(m, "")? }),
            Value::String(text) => {
                let inner: Value =
                    serde_json::from_str(text).map_err(|e| format!("the pattern is not valid JSON: {e}"))?;
                match inner {
                    Value::Object(_) => Self::compile(&inner),
                    _ => Err("a pattern must be a JSON object".into()),
                }
            }
            _ => Err("a pattern must be a JSON object".into()),
        }
    }

    /// Whether the pattern matches `event`.
    pub fn matches(&self, event: View<'_>) -> bool {
        node_matches(&self.root, Some(event))
    }

    /// Whether the pattern matches a JSON event.
    pub fn matches_json(&self, event: &Value) -> bool {
        self.matches(View::Json(event))
    }

    /// Whether the pattern matches a change record (in Lambda's JSON shape).
    pub fn matches_record(&self, record: &ChangeRecord) -> bool {
        self.matches(View::Record(record))
    }
}

/// A route's `filter`: one pattern or several, ORed (Lambda's `FilterCriteria.Filters`).
#[derive(Debug, Clone)]
pub struct Filter {
    patterns: Vec<Pattern>,
}

impl Filter {
    /// Compiles a `filter:` value: a pattern, or a list of patterns.
    ///
    /// # Errors
    /// Which pattern and why.
    pub fn compile(value: &Value) -> Result<Self, String> {
        let patterns = match value {
            Value::Array(list) if list.is_empty() => {
                return Err("an empty list of patterns matches nothing; remove `filter` to take every record".into())
            }
            Value::Array(list) => list
                .iter()
                .enumerate()
                .map(|(i, p)| Pattern::compile(p).map_err(|e| format!("pattern {i}: {e}")))
                .collect::<Result<_, _>>()?,
            one => vec![Pattern::compile(one)?],
        };
        Ok(Self { patterns })
    }

    /// Whether any pattern matches a JSON event.
    pub fn matches_json(&self, event: &Value) -> bool {
        self.patterns.iter().any(|p| p.matches_json(event))
    }

    /// Whether any pattern matches the record.
    pub fn matches_record(&self, record: &ChangeRecord) -> bool {
        self.patterns.iter().any(|p| p.matches_record(record))
    }
}

fn node_matches(node: &Node, value: Option<View<'_>>) -> bool {
    node_at(node, Cursor { base: value, prefix: None })
}

/// Where a pattern node is matched: the event object `base`, seen through the dotted path
/// `prefix` when the node lies below a dotted event key (`{"a.b": ...}` seen as `a` → `b`).
#[derive(Clone, Copy)]
struct Cursor<'a, 'p> {
    base: Option<View<'a>>,
    prefix: Option<&'p Prefix<'p>>,
}

/// A path of pattern field names, innermost last (a list on the stack: no allocation).
struct Prefix<'p> {
    seg: &'p str,
    parent: Option<&'p Prefix<'p>>,
}

impl<'p> Prefix<'p> {
    /// The path's first (outermost) segment.
    fn outermost(&self) -> &'p str {
        let mut p = self;
        while let Some(parent) = p.parent {
            p = parent;
        }
        p.seg
    }
}

/// How a dotted event key relates to a pattern path.
#[derive(PartialEq)]
enum Relation {
    /// The key is the path (`a.b` and a → b).
    Equal,
    /// The key lies below the path (`a.b.c` and a → b).
    Below,
    /// Neither.
    Apart,
}

fn relation(key: &str, path: &Prefix) -> Relation {
    // The path's segments, outermost first; deeper paths than this are not compared.
    let mut segs: [&str; 16] = [""; 16];
    let mut depth = 0;
    let mut p = Some(path);
    while let Some(node) = p {
        if depth == segs.len() {
            return Relation::Apart;
        }
        segs[depth] = node.seg;
        depth += 1;
        p = node.parent;
    }
    segs[..depth].reverse();
    let mut parts = key.split('.');
    for seg in &segs[..depth] {
        if parts.next() != Some(*seg) {
            return Relation::Apart;
        }
    }
    if parts.next().is_some() {
        Relation::Below
    } else {
        Relation::Equal
    }
}

/// [`field_at`] on an item (an image or the keys) with no dotted path pending: the member
/// `name`, or else the attributes named `name.…` (below `name` once flattened).
fn item_field(item: &eddy_record::Item, name: &str, target: &Target) -> bool {
    use std::ops::Bound;
    let real = item.get(name).map(View::Attr);
    if real.is_some() && target_matches(target, real) {
        return true;
    }
    // Only when the member does not match: the attributes right after `name` in key order.
    let dotted = item
        .range::<str, _>((Bound::Excluded(name), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(name))
        .any(|(k, _)| k.as_bytes().get(name.len()) == Some(&b'.'));
    match target {
        _ if !dotted => real.is_none() && target_matches(target, None),
        Target::Nested(node) => {
            let here = Prefix { seg: name, parent: None };
            let base = View::Item(item);
            node_at(node, Cursor { base: Some(base), prefix: Some(&here) })
        }
        // A leaf is never a dotted key's parent.
        Target::Leaf(_) => false,
    }
}

/// The value at `prefix` under `base`, following real members only.
fn resolve<'a>(base: Option<View<'a>>, prefix: Option<&Prefix>) -> Option<View<'a>> {
    match prefix {
        None => base,
        Some(p) => resolve(base, p.parent)?.field(p.seg),
    }
}

fn node_at(node: &Node, at: Cursor<'_, '_>) -> bool {
    node.rules.iter().all(|rule| match rule {
        Rule::Or(alternatives) => alternatives.iter().any(|n| node_at(n, at)),
        Rule::Field(name, target) => field_at(name, target, at),
    })
}

/// Whether field `name` at `at` satisfies `target`: the real member is tried first (the usual
/// case, no scan); otherwise dotted keys of the object that spell the same path count too.
fn field_at(name: &str, target: &Target, at: Cursor<'_, '_>) -> bool {
    if at.prefix.is_none() {
        match at.base {
            // The member first; dotted spellings only next to it in key order, and only if needed.
            Some(View::Item(item)) => return item_field(item, name, target),
            Some(View::Json(serde_json::Value::Object(_))) => {}
            // A record's own fields, an attribute value, a leaf: no key there holds a dot.
            other => return target_matches(target, other.and_then(|v| v.field(name))),
        }
    }
    let real = resolve(at.base, at.prefix).and_then(|v| v.field(name));
    if real.is_some() && target_matches(target, real) {
        return true;
    }
    let here = Prefix { seg: name, parent: at.prefix };
    let first = here.outermost();
    let (mut equal, mut below) = (false, false);
    if let Some(base) = at.base {
        base.any_dotted_member(first, &mut |key, _| {
            match relation(key, &here) {
                Relation::Equal => equal = true,
                Relation::Below => below = true,
                Relation::Apart => {}
            }
            false
        });
    }
    if !equal && !below {
        // No dotted spelling of this field: as without flattening.
        return real.is_none() && target_matches(target, None);
    }
    let base = at.base.expect("dotted members come from the base");
    if equal
        && base.any_dotted_member(first, &mut |key, v| {
            relation(key, &here) == Relation::Equal && target_matches(target, Some(v))
        })
    {
        return true;
    }
    match target {
        // Fields below a dotted key: match the node against the flattened view.
        Target::Nested(node) if below => node_at(node, Cursor { base: at.base, prefix: Some(&here) }),
        _ => false,
    }
}

fn target_matches(target: &Target, field: Option<View<'_>>) -> bool {
    match target {
        Target::Nested(node) => match field {
            Some(v) if matches!(v.shape(), Shape::Array) => v.any_element(&mut |e| node_matches(node, Some(e))),
            other => node_matches(node, other),
        },
        Target::Leaf(conditions) => conditions.iter().any(|c| leaf_matches(c, field)),
    }
}

fn leaf_matches(condition: &Condition, field: Option<View<'_>>) -> bool {
    match field.map(View::shape) {
        None | Some(Shape::Object) => matches!(condition, Condition::Exists(false)),
        Some(Shape::Leaf(leaf)) => condition.matches(leaf),
        Some(Shape::Array) => {
            let mut any = false;
            let v = field.expect("an array");
            let hit = v.any_element(&mut |e| {
                any = true;
                leaf_matches(condition, Some(e))
            });
            // `exists: false` holds for a list without leaves.
            hit || (!any && matches!(condition, Condition::Exists(false)))
        }
    }
}

#[cfg(test)]
mod tests;
