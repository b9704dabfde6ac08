//! The pipeline file's shell: loading the YAML, finding each problem's line, and the sections
//! that belong to no component (`name`, `routes`, `metrics`, `retry`, `timeouts`). Each
//! component owns its section (its type, defaults and checks) in its own folder, and is found by
//! its `type:` in a registry: sources (`crate::source::TYPES`), checkpoint stores
//! (`crate::lease::TYPES`), sinks (`crate::sinks::TYPES`), dead letters
//! (`crate::dead_letter::TYPES`); processors in `crate::wasm::config`. What components inherit
//! from the source (endpoint, region) is filled here, once. README.md documents every key.
//!
//! Loading is strict: unknown keys and wrong types are errors, and every error names the file,
//! the line and the key path (`pipeline.yaml:12: routes[0].sinks[1]: unknown sink "replca"`).
//! All problems are reported at once. Relative paths in the file resolve against the file's
//! directory, so a pipeline runs the same from any working directory.

mod duplicates;
mod locate;
mod routes;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::dead_letter::DeadLetterConfig;
use crate::lease::CheckpointConfig;
use crate::sinks::SinkConfig;
use crate::source::SourceConfig;
use crate::spec::{path, units, Malformed, Problem, Seg};
use crate::wasm::config::{ProcessorConfig, ProcessorSection};
pub use routes::{AfterSinkFailure, Batching, OnSinkFailure, RouteConfig};

/// A loaded, validated pipeline configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `name:` — the pipeline's name (KCL's application name): it keys the pipeline's leases,
    /// checkpoints, snapshot segments and plan, so two pipelines on one stream and one lease table
    /// (or one checkpoints folder) each get every record. Required with a lease table; optional
    /// with local checkpoints (without it, the folder's unnamed positions are used).
    pub name: Option<String>,
    /// Where the stream comes from.
    pub source: SourceConfig,
    /// Where shard checkpoints are kept.
    pub checkpoints: CheckpointConfig,
    /// Wasm processors by name.
    pub processors: BTreeMap<String, ProcessorConfig>,
    /// Sinks by name.
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Routes, in file order.
    pub routes: Vec<RouteConfig>,
    /// Where records that cannot be delivered go.
    pub dead_letter: DeadLetterConfig,
    /// `metrics:` — where to serve Prometheus metrics; `None`: not served.
    pub metrics: Option<MetricsConfig>,
    /// `retry:` — the one retry policy for every call (streams API, sinks, lease table).
    pub retry: eddy_sink_api::RetryPolicy,
    /// `timeouts:` — connect and per-attempt timeouts of every network call.
    pub timeouts: eddy_sink_api::Timeouts,
}

/// `metrics: {listen: ADDR}`: serve `/metrics` (Prometheus text format) and `/health` over HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `IP:port` to listen on, e.g. `0.0.0.0:9100` or `127.0.0.1:9100`.
    pub listen: std::net::SocketAddr,
}

/// `retry: {attempts, base_delay, max_delay}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default)]
    attempts: Option<u32>,
    #[serde(default, deserialize_with = "units::opt_duration")]
    base_delay: Option<Duration>,
    #[serde(default, deserialize_with = "units::opt_duration")]
    max_delay: Option<Duration>,
}

/// `timeouts: {connect, request}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    #[serde(default, deserialize_with = "units::opt_duration")]
    connect: Option<Duration>,
    #[serde(default, deserialize_with = "units::opt_duration")]
    request: Option<Duration>,
}

/// The smallest values of the shell's own keys (components declare theirs).
pub mod minimums {
    use std::time::Duration;
    /// `retry.base_delay`.
    pub const RETRY_DELAY: Duration = Duration::from_millis(1);
    /// `timeouts.connect` and `timeouts.request`.
    pub const TIMEOUT: Duration = Duration::from_millis(100);
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The key path, e.g. `routes[0].sinks`; empty for the whole file.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All the problems found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The file's top level, with the tagged sections kept as raw YAML until their `type` is known.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    name: Option<String>,
    source: serde_norway::Value,
    #[serde(default)]
    checkpoints: Option<serde_norway::Value>,
    #[serde(default)]
    processors: BTreeMap<String, ProcessorSection>,
    sinks: BTreeMap<String, serde_norway::Value>,
    routes: Vec<routes::RawRoute>,
    #[serde(default)]
    dead_letter: Option<serde_norway::Value>,
    #[serde(default)]
    metrics: Option<serde_norway::Value>,
    #[serde(default)]
    retry: Option<serde_norway::Value>,
    #[serde(default)]
    timeouts: Option<serde_norway::Value>,
}

/// Collects errors with their lines while a file is checked.
pub(crate) struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, path: &[Seg], message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: locate::line_of(self.text, path),
            key: path::render(path),
            message: eddy_sink_api::redact(&message.into()),
        });
    }

    /// Records `problems` of the section at `at`.
    fn problems(&mut self, at: &[Seg], problems: Vec<Problem>) {
        for p in problems {
            let mut key = at.to_vec();
            key.extend(p.path);
            self.error(&key, p.message);
        }
    }

    /// Records a section (at `at`) that did not deserialize.
    fn malformed(&mut self, at: &[Seg], e: Malformed) {
        let (path, message) = explain(at, &e.path, &e.message);
        self.error(&path, message);
    }

    /// Deserializes the untagged section `value` (found at `at`) into `T`, recording an error on
    /// failure.
    fn typed<T: serde::de::DeserializeOwned>(&mut self, at: &[Seg], value: serde_norway::Value) -> Option<T> {
        crate::spec::deserialize(value).map_err(|e| self.malformed(at, e)).ok()
    }

    /// The tagged section `value` at `at`, read by the registry entry its `type` names in
    /// `types`; records the problems and returns `None` when there are any.
    fn tagged<T>(
        &mut self,
        at: &[Seg],
        value: serde_norway::Value,
        types: &[(&str, crate::spec::Parse<T>)],
    ) -> Option<T> {
        // `type: null` unquoted is YAML's null value; it can only mean the null sink.
        let kind = value
            .get("type")
            .and_then(|t| t.as_str())
            .or_else(|| value.get("type").filter(|t| t.is_null()).map(|_| "null"));
        let Some((_, parse)) = kind.and_then(|kind| types.iter().find(|(name, _)| *name == kind)) else {
            let names: Vec<&str> = types.iter().map(|(name, _)| *name).collect();
            let mut key = at.to_vec();
            key.push(k("type"));
            self.error(&key, type_message(kind, &names));
            return None;
        };
        parse(value).map_err(|e| self.malformed(at, e)).ok()
    }
}

fn k(s: &str) -> Seg {
    Seg::Key(s.to_owned())
}

/// The key path and message of a deserialization error found at `base`: serde_norway's own
/// location and path prefixes are removed (the error reports them), and an unknown field is
/// appended to the path so its line is found.
fn explain(base: &[Seg], path: &str, message: &str) -> (Vec<Seg>, String) {
    let mut key = base.to_vec();
    key.extend(path::parse(path));
    let mut message = strip_location(message);
    if let Some((prefix, rest)) = message.split_once(": ") {
        if !prefix.contains(' ') && path::render(&key).contains(prefix) {
            message = rest;
        }
    }
    if let Some(field) = unknown_field(message) {
        if key.last() != Some(&Seg::Key(field.clone())) {
            key.push(Seg::Key(field));
        }
    }
    (key, message.to_owned())
}

/// The field an "unknown field `x`" message names.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// serde_norway appends "at line L column C"; the error already carries the line.
fn strip_location(message: &str) -> &str {
    message.find(" at line ").map_or(message, |i| &message[..i])
}

impl Config {
    /// Reads and checks the config file at `path`.
    ///
    /// # Errors
    /// Every problem found: unreadable file, YAML syntax, unknown keys, wrong types, references to
    /// undeclared processors or sinks, duplicate route names. Each names file, line and key.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                line: None,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        Self::parse(path, &text)
    }

    /// Checks config `text` as if read from `path` (relative paths inside resolve against
    /// `path`'s directory).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigErrors> {
        // Editors on Windows may start a UTF-8 file with a byte-order mark; YAML allows it.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let repeated = duplicates::find(text);
        if !repeated.is_empty() {
            return Err(ConfigErrors(repeated.iter().map(|key| repeated_key(path, text, key)).collect()));
        }
        let mut c = Checker { file: path, text, errors: Vec::new() };
        let base = path.parent().map(Path::to_owned).unwrap_or_default();

        let raw: RawConfig = match serde_path_to_error::deserialize(serde_norway::Deserializer::from_str(text)) {
            Ok(raw) => raw,
            Err(e) => {
                let (key, message) = explain(&[], &e.path().to_string(), &e.inner().to_string());
                let line = e.inner().location().map(|l| l.line()).or_else(|| locate::line_of(text, &key));
                return Err(ConfigErrors(vec![ConfigError {
                    file: path.to_owned(),
                    line,
                    key: path::render(&key),
                    message: eddy_sink_api::redact(&message),
                }]));
            }
        };

        // The source, then what the other components inherit from it.
        let source = c.tagged(&[k("source")], raw.source, crate::source::TYPES).map(|mut s| {
            c.problems(&[k("source")], s.problems());
            s.resolve_paths(&base);
            s
        });
        let inherited = source.as_ref().map(SourceConfig::inherited).unwrap_or_default();

        let checkpoints = match raw.checkpoints {
            None => Some(CheckpointConfig::default()),
            Some(v) => c.tagged(&[k("checkpoints")], v, crate::lease::TYPES),
        }
        .map(|mut cp| {
            c.problems(&[k("checkpoints")], cp.problems());
            cp.complete(&base, &inherited);
            cp
        });

        if let Some(name) = &raw.name {
            if let Err(message) = check_name(name) {
                c.error(&[k("name")], message);
            }
        } else if matches!(checkpoints, Some(CheckpointConfig::Dynamodb(_))) {
            c.error(
                &[k("checkpoints")],
                "a lease table needs the pipeline's name: add `name: <pipeline>` (letters, digits, `.`, `_`, `-`) at \
                 the top of the file. It keys this pipeline's leases, checkpoints and snapshot in the table, so \
                 pipelines sharing it never take each other's work; rows written before names existed are adopted \
                 by the first named pipeline that starts",
            );
        }

        let mut processors = BTreeMap::new();
        for (name, section) in raw.processors {
            let (processor, problems) = section.into_config(&base);
            c.problems(&[k("processors"), k(&name)], problems);
            processors.insert(name, processor);
        }

        let mut sinks = BTreeMap::new();
        for (name, v) in raw.sinks {
            let at = [k("sinks"), k(&name)];
            if let Some(mut sink) = c.tagged(&at, v, crate::sinks::TYPES) {
                let problems = sink.problems();
                let valid = problems.is_empty();
                c.problems(&at, problems);
                sink.complete(&base, &inherited);
                if valid {
                    sinks.insert(name, SinkConfig::from(sink));
                }
            }
        }

        let routes = routes::check(&mut c, &raw.routes, &processors, &sinks);

        let dead_letter = match raw.dead_letter {
            None => Some(DeadLetterConfig::default()),
            Some(v) => c.tagged(&[k("dead_letter")], v, crate::dead_letter::TYPES),
        }
        .and_then(|mut d| {
            let problems = d.problems();
            let valid = problems.is_empty();
            c.problems(&[k("dead_letter")], problems);
            d.complete(&base, &inherited);
            valid.then_some(d)
        });

        // Two writers of one file would interleave their lines (and the dead letter's repair
        // would cut the other's off).
        let mut files: Vec<(&Path, Vec<Seg>)> = sinks
            .iter()
            .filter_map(|(name, sink)| sink.file().map(|f| (f, vec![k("sinks"), k(name), k("path")])))
            .collect();
        if let Some(f) = dead_letter.as_ref().and_then(DeadLetterConfig::file) {
            files.push((f, vec![k("dead_letter"), k("path")]));
        }
        for (i, (file, at)) in files.iter().enumerate() {
            if let Some((_, first)) = files[..i].iter().find(|(f, _)| f == file) {
                let message = format!(
                    "{} is written by {} too: give each sink and the dead letter its own file",
                    file.display(),
                    path::render(first)
                );
                c.error(at, message);
            }
        }

        let metrics = match raw.metrics {
            None => Some(None),
            Some(v) => c.typed::<MetricsConfig>(&[k("metrics")], v).map(Some),
        };
        let retry = match raw.retry {
            None => Some(eddy_sink_api::RetryPolicy::default()),
            Some(v) => c.typed::<RawRetry>(&[k("retry")], v).map(|r| retry_policy(&mut c, &r)),
        };
        let timeouts = match raw.timeouts {
            None => Some(eddy_sink_api::Timeouts::default()),
            Some(v) => c.typed::<RawTimeouts>(&[k("timeouts")], v).map(|t| call_timeouts(&mut c, &t)),
        };

        if !c.errors.is_empty() {
            c.errors.sort_by_key(|e| e.line.unwrap_or(0));
            return Err(ConfigErrors(c.errors));
        }
        Ok(Config {
            name: raw.name,
            source: source.expect("checked"),
            checkpoints: checkpoints.expect("checked"),
            processors,
            sinks,
            routes,
            dead_letter: dead_letter.expect("checked"),
            metrics: metrics.expect("checked"),
            retry: retry.expect("checked"),
            timeouts: timeouts.expect("checked"),
        })
    }
}

/// `retry:` with its defaults, checked.
fn retry_policy(c: &mut Checker, r: &RawRetry) -> eddy_sink_api::RetryPolicy {
    let defaults = eddy_sink_api::RetryPolicy::default();
    let policy = eddy_sink_api::RetryPolicy {
        attempts: r.attempts.unwrap_or(defaults.attempts),
        backoff: eddy_sink_api::Backoff {
            base_delay: r.base_delay.unwrap_or(defaults.backoff.base_delay),
            max_delay: r.max_delay.unwrap_or(defaults.backoff.max_delay),
        },
    };
    if policy.attempts == 0 {
        c.error(&[k("retry"), k("attempts")], "must be at least 1");
    }
    let problems = crate::spec::at_least("base_delay", policy.backoff.base_delay, minimums::RETRY_DELAY);
    c.problems(&[k("retry")], problems.into_iter().collect());
    if policy.backoff.max_delay < policy.backoff.base_delay {
        c.error(&[k("retry"), k("max_delay")], "must not be below base_delay");
    }
    policy
}

/// `timeouts:` with its defaults, checked.
fn call_timeouts(c: &mut Checker, t: &RawTimeouts) -> eddy_sink_api::Timeouts {
    let d = eddy_sink_api::Timeouts::default();
    let t =
        eddy_sink_api::Timeouts { connect: t.connect.unwrap_or(d.connect), request: t.request.unwrap_or(d.request) };
    let problems = [
        crate::spec::at_least("connect", t.connect, minimums::TIMEOUT),
        crate::spec::at_least("request", t.request, minimums::TIMEOUT),
    ];
    c.problems(&[k("timeouts")], problems.into_iter().flatten().collect());
    t
}

/// A pipeline name: 1 to 64 characters of ASCII letters, digits, `.`, `_` and `-`, not starting
/// with `.` (it names a folder and a key prefix in the lease table).
fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a pipeline name: use 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`"
        ))
    }
}

/// The error for a key written twice in one mapping: at the second line, naming the first.
fn repeated_key(file: &Path, text: &str, key: &[Seg]) -> ConfigError {
    let name = match key.last() {
        Some(Seg::Key(k)) => k.as_str(),
        _ => "",
    };
    let first = locate::line_of_occurrence(text, key, 0);
    let second = locate::line_of_occurrence(text, key, 1).or(first);
    let lines = match (first, second) {
        (Some(a), Some(b)) if a != b => format!(" (lines {a} and {b})"),
        (Some(a), _) => format!(" (both on line {a})"),
        _ => String::new(),
    };
    ConfigError {
        file: file.to_owned(),
        line: second,
        key: path::render(key),
        message: format!(
            "duplicate key {name:?}{lines}: a second entry would silently replace the first; rename or remove one"
        ),
    }
}

fn type_message(found: Option<&str>, expected: &[&str]) -> String {
    let list = expected.join(", ");
    match found {
        None => format!("missing `type` (one of: {list})"),
        Some(t) => format!("unknown type {t:?} (one of: {list})"),
    }
}

#[cfg(test)]
mod tests;
