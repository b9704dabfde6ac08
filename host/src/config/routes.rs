//! `routes:`: which records go through which processors to which sinks, and what a failed write
//! leads to; checked against the processors and sinks the file declares.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{k, Checker};
use crate::sinks::SinkConfig;
use crate::spec::{units, Seg};
use crate::wasm::config::ProcessorConfig;

/// `routes[i]`: which records go through which processors to which sinks.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The route's name, unique in the file.
    pub name: String,
    /// Which records the route takes (Lambda `FilterCriteria` patterns, ORed); `None`: all.
    pub filter: Option<crate::pattern::Filter>,
    /// Processor names, applied in order. May be empty.
    pub processors: Vec<String>,
    /// Sink names; every record the processors keep goes to each.
    pub sinks: Vec<String>,
    /// What a failed sink write leads to.
    pub on_sink_failure: OnSinkFailure,
    /// `batch_size` / `batching_window`; `None`: each page as read.
    pub batching: Option<Batching>,
}

/// `routes[i].batch_size` and `routes[i].batching_window` (Lambda's BatchSize and
/// MaximumBatchingWindowInSeconds): the route gathers the records its filter takes, across
/// polls, and runs them through its processors and sinks once it holds `size` records or its
/// oldest has waited `window`, in writes of at most `size`. The shard checkpoints only past
/// records the route no longer holds; a stop leaves the held records to be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// `batch_size`, 1 to 10,000. Default (with only a window): 1,000.
    pub size: usize,
    /// `batching_window`, at most 300s (Lambda's limit). Default (with only a size): 0, which
    /// splits each page into writes of `size` without waiting.
    pub window: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    name: String,
    #[serde(default)]
    filter: Option<serde_json::Value>,
    #[serde(default)]
    processors: Vec<String>,
    sinks: Vec<String>,
    #[serde(default)]
    on_sink_failure: OnSinkFailure,
    #[serde(default)]
    batch_size: Option<usize>,
    #[serde(default, deserialize_with = "units::opt_duration")]
    batching_window: Option<Duration>,
}

/// `routes[i].on_sink_failure: {retries, then}`: what happens when a write to one of the route's
/// sinks fails after the sink's own retries of its requests (Lambda's MaximumRetryAttempts with
/// BisectBatchOnFunctionError and an on-failure destination). Default `{retries: 0, then: stop}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnSinkFailure {
    /// How many more times the failed write is tried in place, with the retry policy's waits,
    /// before `then` applies. Default 0.
    #[serde(default)]
    pub retries: u32,
    /// `stop` (default): the shard rewinds to its checkpoint and reads the batch again, and stops
    /// after `source.max_consecutive_errors` failed batches in a row; nothing is skipped.
    /// `dead_letter`: the batch is bisected, each half written (with the same retries), down to
    /// the single records that still fail: those go to the dead letter with the sink's error, the
    /// rest are delivered, and the shard moves on. A sink that fails for good (refused
    /// credentials, a missing table) stops the shard either way: that is not a record's fault.
    #[serde(default)]
    pub then: AfterSinkFailure,
}

impl Default for OnSinkFailure {
    fn default() -> Self {
        Self { retries: 0, then: AfterSinkFailure::Stop }
    }
}

/// `routes[i].on_sink_failure.then`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterSinkFailure {
    /// Rewind and read again; never skip (default).
    #[default]
    Stop,
    /// Bisect, dead-letter the records that still fail, deliver the rest.
    DeadLetter,
}

/// Checks the routes (filters compile, names unique, processors and sinks declared, batching in
/// range) and returns them as loaded.
pub(super) fn check(
    c: &mut Checker,
    routes: &[RawRoute],
    processors: &BTreeMap<String, ProcessorConfig>,
    sinks: &BTreeMap<String, SinkConfig>,
) -> Vec<RouteConfig> {
    if routes.is_empty() {
        c.error(&[k("routes")], "declare at least one route");
    }
    let mut seen = BTreeMap::new();
    for (i, route) in routes.iter().enumerate() {
        let at = |rest: &[Seg]| {
            let mut p = vec![k("routes"), Seg::Index(i)];
            p.extend_from_slice(rest);
            p
        };
        if let Some(pattern) = &route.filter {
            if let Err(reason) = crate::pattern::Filter::compile(pattern) {
                c.error(&at(&[k("filter")]), format!("invalid pattern: {reason}"));
            }
        }
        if let Some(first) = seen.insert(route.name.clone(), i) {
            c.error(&at(&[k("name")]), format!("route name {:?} is already used by routes[{first}]", route.name));
        }
        for (j, p) in route.processors.iter().enumerate() {
            if !processors.contains_key(p) {
                c.error(
                    &at(&[k("processors"), Seg::Index(j)]),
                    format!("unknown processor {p:?}{}", known(processors.keys())),
                );
            }
        }
        if route.sinks.is_empty() {
            c.error(&at(&[k("sinks")]), "name at least one sink");
        }
        if route.batch_size.is_some_and(|n| !(1..=10_000).contains(&n)) {
            c.error(&at(&[k("batch_size")]), "must be between 1 and 10000");
        }
        if route.batching_window.is_some_and(|w| w > Duration::from_secs(300)) {
            c.error(&at(&[k("batching_window")]), "must be at most 300s (as Lambda's MaximumBatchingWindowInSeconds)");
        }
        for (j, s) in route.sinks.iter().enumerate() {
            if !sinks.contains_key(s)
                && !c.errors.iter().any(|e| e.key == format!("sinks.{s}") || e.key.starts_with(&format!("sinks.{s}.")))
            {
                c.error(&at(&[k("sinks"), Seg::Index(j)]), format!("unknown sink {s:?}{}", known(sinks.keys())));
            }
        }
    }

    routes
        .iter()
        .map(|r| RouteConfig {
            filter: r.filter.as_ref().and_then(|p| crate::pattern::Filter::compile(p).ok()),
            name: r.name.clone(),
            processors: r.processors.clone(),
            sinks: r.sinks.clone(),
            on_sink_failure: r.on_sink_failure,
            batching: (r.batch_size.is_some() || r.batching_window.is_some()).then(|| Batching {
                size: r.batch_size.unwrap_or(1000),
                window: r.batching_window.unwrap_or_default(),
            }),
        })
        .collect()
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        " (none are declared)".to_owned()
    } else {
        format!(" (declared: {})", names.join(", "))
    }
}
