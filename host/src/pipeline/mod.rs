//! The pipeline: what happens to a batch of one shard between reading and checkpointing.
//!
//! For each route, in file order: the route's processors run in order (each batch crosses the
//! Wasm boundary once per processor), then every sink of the route writes what the processors
//! kept, concurrently. A batch is done when every sink acknowledged and every record that could
//! not be delivered is in the dead letter; only then may the shard checkpoint.
//!
//! [`Pipeline`] is built once per process; each shard reader gets its own [`Worker`], which owns
//! that reader's warm Wasm instances.

pub mod dead_letter;
pub(crate) mod deliver;
pub(crate) mod isolate;
mod route;
pub mod stats;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use eddy_sink_api::ChangeRecord;

use crate::config::Config;
use crate::source::Undecodable;
use crate::stop::Stop;
use crate::wasm;
use dead_letter::{DeadLetter, Entry, Stage};
pub use route::{RouteSpec, SinkSlot};
use stats::Stats;

/// How long a sink write still in flight when stopping is asked may take before it is abandoned
/// (its batch is not checkpointed and is read again on the next start).
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Everything a worker needs, shared by all shards.
pub struct Pipeline {
    routes: Vec<Arc<RouteSpec>>,
    dead_letter: DeadLetter,
    stats: Arc<Stats>,
}

/// Why a batch could not be completed. The shard must not checkpoint it.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Stopping was asked while a sink was being written (an unanswered write is given
    /// [`STOP_GRACE`] to finish first).
    #[error("stopped while writing to sink {sink}")]
    Interrupted {
        /// The sink.
        sink: String,
    },
    /// A sink failed for good (`fatal`), or transiently past its retries.
    #[error("sink {sink} failed: {message}")]
    SinkFailed {
        /// The sink.
        sink: String,
        /// Its last error (it says how often it was tried).
        message: String,
        /// The sink said retrying cannot help (bad credentials, a missing table, ...).
        fatal: bool,
    },
    /// The dead letter could not be written.
    #[error(transparent)]
    DeadLetter(#[from] anyhow::Error),
}

/// Loads every processor of `config` (compiled once, its `init` run with its config): what can
/// fail here fails before eddy creates anything (a state folder, a lease table).
///
/// # Errors
/// When a component is missing, does not load, or rejects its config.
pub fn load_processors(config: &Config) -> anyhow::Result<BTreeMap<String, Arc<wasm::Processor>>> {
    let max_memory = config.processors.values().map(|p| p.limits.memory_bytes).max();
    let runtime = max_memory.map(wasm::Runtime::new).transpose()?;
    let mut components = BTreeMap::new();
    for (name, p) in &config.processors {
        let runtime = runtime.as_ref().expect("created when there are processors");
        components.insert(name.clone(), wasm::Processor::load(runtime, name, p)?);
    }
    Ok(components)
}

impl Pipeline {
    /// Assembles the pipeline from loaded `processors`: builds the sinks (nothing connects yet)
    /// and opens the dead letter.
    ///
    /// # Errors
    /// When a sink cannot be built or the dead letter cannot be opened.
    pub async fn build(config: &Config, processors: BTreeMap<String, Arc<wasm::Processor>>) -> anyhow::Result<Self> {
        let mut sinks = BTreeMap::new();
        for (name, s) in &config.sinks {
            let sink =
                crate::sinks::build(s, config.retry, &config.timeouts).await.with_context(|| format!("sink {name}"))?;
            sinks.insert(name.clone(), SinkSlot { name: name.clone(), kind: crate::sinks::kind(s), sink });
        }
        let routes = config
            .routes
            .iter()
            .map(|r| {
                Arc::new(RouteSpec {
                    name: r.name.clone(),
                    filter: r.filter.clone(),
                    processors: r.processors.iter().map(|p| Arc::clone(&processors[p])).collect(),
                    sinks: r.sinks.iter().map(|s| sinks[s].clone()).collect(),
                })
            })
            .collect();
        let crate::config::DeadLetterConfig::File { path } = &config.dead_letter;
        Ok(Self::new(
            routes,
            DeadLetter::open(path)?,
            Arc::new(Stats::new(config.sinks.keys(), config.routes.iter().map(|r| &r.name))),
        ))
    }

    /// A pipeline of ready-made parts (tests, benchmarks).
    pub fn new(routes: Vec<Arc<RouteSpec>>, dead_letter: DeadLetter, stats: Arc<Stats>) -> Self {
        Self { routes, dead_letter, stats }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Every processor used by a route, once each (for hot reload).
    pub fn processors(&self) -> Vec<Arc<wasm::Processor>> {
        let mut all: Vec<Arc<wasm::Processor>> = Vec::new();
        for p in self.routes.iter().flat_map(|r| &r.processors) {
            if !all.iter().any(|q| Arc::ptr_eq(p, q)) {
                all.push(Arc::clone(p));
            }
        }
        all
    }

    /// A worker for one shard reader.
    pub fn worker(self: &Arc<Self>) -> Worker {
        Worker {
            pipeline: Arc::clone(self),
            routes: self.routes.iter().map(|r| route::RouteWorker::new(Arc::clone(r))).collect(),
            records_in: metrics::counter!(crate::metrics::RECORDS_IN),
        }
    }
}

/// One shard's view of the pipeline, with its own Wasm instances.
pub struct Worker {
    pipeline: Arc<Pipeline>,
    routes: Vec<route::RouteWorker>,
    records_in: metrics::Counter,
}

impl Worker {
    /// Runs one batch of `shard_id` through every route and returns once every sink acknowledged
    /// and the dead letter holds every record that could not be delivered (including
    /// `undecodable` ones).
    ///
    /// # Errors
    /// A [`PipelineError`]: the batch is not done and must not be checkpointed.
    pub async fn process(
        &mut self,
        shard_id: &str,
        batch: &[ChangeRecord],
        undecodable: &[Undecodable],
        stop: &Stop,
    ) -> Result<(), PipelineError> {
        if batch.is_empty() && undecodable.is_empty() {
            // A page whose records were all skipped (older than a snapshot): nothing to write.
            return Ok(());
        }
        let p = &self.pipeline;
        let n = (batch.len() + undecodable.len()) as u64;
        p.stats.read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        self.records_in.increment(n);
        let mut dead: Vec<Entry> = undecodable
            .iter()
            .map(|u| {
                let mut e = Entry::new(shard_id, Stage::Decode, u.reason.clone());
                e.sequence_number = u.sequence_number.clone();
                e.raw = Some(u.raw.clone());
                e
            })
            .collect();
        for route in &mut self.routes {
            route.process(shard_id, batch, &p.stats, stop, &mut dead).await?;
        }
        if !dead.is_empty() {
            for e in &dead {
                let stage = match e.stage {
                    Stage::Decode => "decode",
                    Stage::Processor => "processor",
                    Stage::Sink => "sink",
                };
                let route = e.route.clone().unwrap_or_default();
                metrics::counter!(crate::metrics::RECORDS_DEAD_LETTERED, "route" => route, "stage" => stage)
                    .increment(1);
                tracing::warn!(shard = shard_id, route = e.route.as_deref(), stage = ?e.stage, name = e.name.as_deref(), sequence = e.sequence_number.as_deref(), "dead letter: {}", e.error);
            }
            p.dead_letter.write(&dead).await?;
            p.stats.dead_lettered.fetch_add(dead.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }
}
