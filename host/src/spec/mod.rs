//! How a component declares its section of the pipeline file, independently of the file itself:
//! a serde type (unknown keys refused) deserialized from the section's YAML, checked for what a
//! parser cannot see ([`Problem`]s), and filled with what it inherits from the source
//! ([`Inherited`]). Components (sources, sinks, dead letters, the lease table, processors) own
//! their section types and depend on this module only; `config` (the file's shell) finds each
//! problem's line and reports them all at once, as `file:line: key: message`.

pub mod path;
pub mod units;

use serde::de::DeserializeOwned;

pub use path::Seg;

/// A problem in a section that its parser cannot see (a value out of range, two keys that
/// exclude each other), at `path` below the section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path below the section (empty: the section itself).
    pub path: Vec<Seg>,
    /// What is wrong, and what to write instead.
    pub message: String,
}

impl Problem {
    /// A problem of key `key` (a dotted path below the section, e.g. `snapshot.segments`; empty:
    /// the section itself).
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        Self { path: path::parse(key), message: message.into() }
    }
}

/// A section that does not deserialize: serde's path to the culprit (`snapshot.segmnts`) and its
/// message, for the shell to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// serde_path_to_error's rendering of the path below the section.
    pub path: String,
    /// The deserializer's message.
    pub message: String,
}

/// How one type of a tagged section (`type: dynamodb`, `type: alternator`, ...) is read: a
/// component registry is a list of `(type name, Parse)` pairs.
pub type Parse<T> = fn(serde_norway::Value) -> Result<T, Malformed>;

/// Deserializes a section (without its `type` key, which chose the type) into `T`.
///
/// # Errors
/// [`Malformed`]: an unknown key, a wrong type, a value out of its syntax.
pub fn deserialize<T: DeserializeOwned>(mut value: serde_norway::Value) -> Result<T, Malformed> {
    if let Some(map) = value.as_mapping_mut() {
        map.remove("type");
    }
    serde_path_to_error::deserialize::<_, T>(value)
        .map_err(|e| Malformed { path: e.path().to_string(), message: e.inner().to_string() })
}

/// What components inherit from the source when they do not say: its endpoint and region (the
/// lease table, the dead letter's table, bucket or queue), or its region alone (an Alternator
/// sink signs for it). Written once here, applied by the shell to every component.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inherited<'a> {
    /// The source's `endpoint`.
    pub endpoint: Option<&'a str>,
    /// The source's `region`.
    pub region: Option<&'a str>,
}

impl Inherited<'_> {
    /// Fills `endpoint` and `region` that are not set with the source's.
    pub fn fill(&self, endpoint: &mut Option<String>, region: &mut Option<String>) {
        if endpoint.is_none() {
            *endpoint = self.endpoint.map(str::to_owned);
        }
        self.fill_region(region);
    }

    /// Fills a `region` that is not set with the source's.
    pub fn fill_region(&self, region: &mut Option<String>) {
        if region.is_none() {
            *region = self.region.map(str::to_owned);
        }
    }
}

/// A duration that must be at least `minimum` (no setting may turn a wait into a busy loop).
pub fn at_least(key: &str, value: std::time::Duration, minimum: std::time::Duration) -> Option<Problem> {
    (value < minimum).then(|| Problem::at(key, format!("{value:?} is below the minimum of {minimum:?}")))
}
