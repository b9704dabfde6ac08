//! Event patterns: the EventBridge pattern language as Lambda `FilterCriteria` apply it to
//! DynamoDB stream records.
//!
//! A pattern is a JSON object. A key whose value is an object descends into that field; a key
//! whose value is a list holds match conditions, any of which may match the field's value (exact
//! values, `prefix`, `suffix`, `equals-ignore-case`, `wildcard`, `anything-but`, `numeric`,
//! `exists`, `cidr`). Every key of an object must match (`$or` takes a list of alternatives).
//! When the event holds a list, a condition matches if any element does. Pattern keys with dots
//! (`"state.status"`) are paths; event keys are taken literally.
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

use eddy_sink_api::ChangeRecord;
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
    node.rules.iter().all(|rule| match rule {
        Rule::Or(alternatives) => alternatives.iter().any(|n| node_matches(n, value)),
        Rule::Field(name, target) => {
            let field = value.and_then(|v| v.field(name));
            target_matches(target, field)
        }
    })
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
