//! The pipeline: what happens to a batch of one shard between reading and checkpointing.
//!
//! For each route, in file order: the route's processors run in order (each batch crosses the
//! Wasm boundary once per processor), then every sink of the route writes what the processors
//! kept, concurrently. A batch is done when every sink acknowledged and every record that could
//! not be delivered is in the dead letter; only then may the shard checkpoint.
//!
//! [`Pipeline`] is built once per process; each shard reader gets its own [`Worker`], which owns
//! that reader's warm Wasm instances.

pub(crate) mod deliver;
pub(crate) mod isolate;
pub mod lanes;
mod route;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use eddy_record::ChangeRecord;

use crate::config::Config;
use crate::dead_letter::{DeadLetterStore, Entry, Stage};
use crate::events::stats::Stats;
use crate::source::Undecodable;
use crate::stop::Stop;
use crate::wasm;
pub use deliver::SinkSlot;
pub use route::RouteSpec;

/// How long a sink write still in flight when stopping is asked may take before it is abandoned
/// (its batch is not checkpointed and is read again on the next start).
pub const STOP_GRACE: std::time::Duration = crate::stop::GRACE;

/// Everything a worker needs, shared by all shards.
pub struct Pipeline {
    routes: Vec<Arc<RouteSpec>>,
    dead_letter: Arc<dyn DeadLetterStore>,
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
            let sink = s.build(config.retry, &config.timeouts).await.with_context(|| format!("sink {name}"))?;
            sinks.insert(name.clone(), SinkSlot { name: name.clone(), kind: s.kind(), sink });
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
                    on_sink_failure: r.on_sink_failure,
                    retry: config.retry,
                    batching: r.batching,
                })
            })
            .collect();
        Ok(Self::new(
            routes,
            crate::dead_letter::open(&config.dead_letter, &config.timeouts, config.retry, crate::access::Access::Work)
                .await
                .context("dead_letter")?,
            Arc::new(Stats::new(config.sinks.keys(), config.routes.iter().map(|r| &r.name))),
        ))
    }

    /// A pipeline of ready-made parts (tests, benchmarks).
    pub fn new(routes: Vec<Arc<RouteSpec>>, dead_letter: Arc<dyn DeadLetterStore>, stats: Arc<Stats>) -> Self {
        Self { routes, dead_letter, stats }
    }

    /// The routes' names, in file order.
    pub fn route_names(&self) -> Vec<String> {
        self.routes.iter().map(|r| r.name.clone()).collect()
    }

    /// The types (`alternator`, `file`, ...) of the sinks a record sent through `route` (`None`:
    /// every route) reaches: sink `sink` alone when given (a sink's refusal), else every sink of
    /// the route(s).
    pub fn sink_kinds(&self, route: Option<&str>, sink: Option<&str>) -> Vec<&'static str> {
        let mut kinds: Vec<&'static str> = self
            .routes
            .iter()
            .filter(|r| route.is_none_or(|name| r.name == name))
            .flat_map(|r| &r.sinks)
            .filter(|s| sink.is_none_or(|name| s.name == name))
            .map(|s| s.kind)
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }

    /// The failure destination.
    pub fn dead_letter(&self) -> &Arc<dyn DeadLetterStore> {
        &self.dead_letter
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
            next_page: 0,
        }
    }
}

/// One shard's view of the pipeline, with its own Wasm instances.
pub struct Worker {
    pipeline: Arc<Pipeline>,
    routes: Vec<route::RouteWorker>,
    records_in: metrics::Counter,
    /// The number the next batch gets (for batching routes' holds).
    next_page: u64,
}

/// What [`Worker::process`] did with a batch.
#[derive(Debug, Default)]
pub struct Processed {
    /// The ids ([`Entry::id`]) of the dead-letter entries written.
    pub dead_letter_ids: Vec<String>,
    /// The number this worker gave the batch (counting from 0).
    pub page: u64,
    /// The oldest batch whose records a batching route still holds: the shard may checkpoint
    /// only the batches before it. `None`: nothing is held.
    pub oldest_held: Option<u64>,
}

/// The batches a [`Worker`] processed, oldest first, each with what its caller attached (the
/// sequence number to checkpoint, the lanes' page numbers), until no batching route holds
/// records of it or of an earlier batch.
#[derive(Debug)]
pub struct Held<T>(std::collections::VecDeque<(u64, T)>);

impl<T> Default for Held<T> {
    fn default() -> Self {
        Self(std::collections::VecDeque::new())
    }
}

impl<T> Held<T> {
    /// Adds batch `page` (with `value`) as processed, and returns the values of the batches now
    /// released, oldest first: those before `oldest_held` ([`Processed::oldest_held`]), or every
    /// one when nothing is held.
    pub fn release(&mut self, page: u64, value: T, oldest_held: Option<u64>) -> Vec<T> {
        self.0.push_back((page, value));
        let mut released = Vec::new();
        while self.0.front().is_some_and(|(p, _)| oldest_held.is_none_or(|h| *p < h)) {
            released.extend(self.0.pop_front().map(|(_, value)| value));
        }
        released
    }

    /// Forgets every batch (the shard rewinds to its checkpoint).
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// One page of a shard, as the pipeline takes it.
#[derive(Default, Clone, Copy)]
pub struct Batch<'a> {
    /// Decoded records, in sequence order: through the routes.
    pub records: &'a [ChangeRecord],
    /// Records that could not be decoded: to the dead letter (stage `decode`).
    pub undecodable: &'a [Undecodable],
    /// Records over `source.maximum_record_age`: to the dead letter (stage `record_age`).
    pub expired: &'a [ChangeRecord],
    /// `source.maximum_record_age`, for the entries' reason.
    pub maximum_record_age: Option<std::time::Duration>,
    /// Deliver everything batching routes hold, whatever their windows (the shard ended, or a
    /// dead-letter replay).
    pub flush: bool,
}

impl<'a> Batch<'a> {
    /// A batch of decoded records only.
    pub fn of(records: &'a [ChangeRecord]) -> Self {
        Self { records, ..Self::default() }
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.undecodable.is_empty() && self.expired.is_empty()
    }

    fn len(&self) -> usize {
        self.records.len() + self.undecodable.len() + self.expired.len()
    }
}

impl Worker {
    /// Runs one batch of `shard_id` through every route and returns once every sink acknowledged
    /// and the dead letter holds every record that could not be delivered (including the
    /// undecodable and expired ones), except the records batching routes hold for a later write
    /// (see [`Processed::oldest_held`]). An empty batch delivers what batching routes hold past
    /// their windows.
    ///
    /// # Errors
    /// A [`PipelineError`]: the batch is not done and must not be checkpointed; call
    /// [`Worker::discard_held`] before the shard rewinds.
    pub async fn process(&mut self, shard_id: &str, batch: Batch<'_>, stop: &Stop) -> Result<Processed, PipelineError> {
        self.process_on(None, shard_id, batch, stop).await
    }

    /// Whether a batching route holds records.
    pub fn holding(&self) -> bool {
        self.routes.iter().any(|r| r.held_from().is_some())
    }

    /// When the first batching window of the records held ends (an empty batch then delivers
    /// them), if any are held.
    pub fn next_due(&self) -> Option<std::time::Instant> {
        self.routes.iter().filter_map(route::RouteWorker::due_at).min()
    }

    /// Drops what batching routes hold (the shard rewinds to its checkpoint, before them).
    pub fn discard_held(&mut self) {
        for route in &mut self.routes {
            route.discard_held();
        }
    }

    /// [`Worker::process`] through the route named `only` alone (`None`: every route), as a
    /// dead-letter replay sends a record back to the route it failed on.
    ///
    /// # Errors
    /// As [`Worker::process`].
    pub async fn process_on(
        &mut self,
        only: Option<&str>,
        shard_id: &str,
        batch: Batch<'_>,
        stop: &Stop,
    ) -> Result<Processed, PipelineError> {
        let page = self.next_page;
        self.next_page += 1;
        if batch.is_empty() && !self.holding() {
            // A page whose records were all skipped (older than a snapshot): nothing to write.
            return Ok(Processed { page, ..Processed::default() });
        }
        let p = &self.pipeline;
        let n = batch.len() as u64;
        crate::events::RecordsRead { n, counter: &self.records_in }.emit(&p.stats);
        let mut dead: Vec<Entry> = batch
            .undecodable
            .iter()
            .map(|u| {
                let mut e = Entry::new(shard_id, Stage::Decode, u.reason.clone());
                e.sequence_number = u.sequence_number.clone();
                e.raw = Some(u.raw.clone());
                e
            })
            .collect();
        let limit = batch.maximum_record_age.map(|a| humantime::format_duration(a).to_string()).unwrap_or_default();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        dead.extend(batch.expired.iter().map(|r| {
            let age = r.dynamodb.approximate_creation_date_time.map_or(0, |t| now - t);
            let reason = format!("the record was {age}s old when read, over source.maximum_record_age ({limit})");
            Entry::new(shard_id, Stage::RecordAge, reason).with_record(r)
        }));
        for route in &mut self.routes {
            if only.is_some_and(|name| name != route.name()) {
                continue;
            }
            route.process(shard_id, batch.records, page, batch.flush, &p.stats, stop, &mut dead).await?;
        }
        if !dead.is_empty() {
            // A dead letter that does not answer must not hold up a stop: abandoned after the grace,
            // the batch is read again next time.
            let Some(written) = stop.within_grace(p.dead_letter.write(&dead)).await else {
                return Err(PipelineError::Interrupted { sink: format!("dead letter ({})", p.dead_letter.describe()) });
            };
            written.map_err(|e| {
                PipelineError::DeadLetter(e.context(format!("dead letter ({})", p.dead_letter.describe())))
            })?;
            crate::events::DeadLettered { shard: shard_id, entries: &dead }.emit(&p.stats);
        }
        let oldest_held = self.routes.iter().filter_map(route::RouteWorker::held_from).min();
        Ok(Processed { dead_letter_ids: dead.iter().map(Entry::id).collect(), page, oldest_held })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::{self, MemoryDeadLetter, RecordingSink};

    /// Every record of a batch ends in a sink or the dead letter: undecodable records and records
    /// over the maximum age go to the dead letter with their reason, the others to the sink.
    #[tokio::test]
    async fn every_record_of_a_batch_reaches_a_sink_or_the_dead_letter() {
        let (sink, dead) = (Arc::new(RecordingSink::default()), Arc::new(MemoryDeadLetter::default()));
        let pipeline = testing::pipeline(Arc::clone(&sink), Arc::clone(&dead));
        let records: Vec<ChangeRecord> = (1..=8).map(|i| testing::record(i, &format!("k{i}"), 1_700_000_000)).collect();
        let expired = vec![testing::record(9, "old", 1_600_000_000)];
        let undecodable =
            vec![Undecodable { sequence_number: Some("10".into()), reason: "not JSON".into(), raw: "{".into() }];
        let batch = Batch {
            records: &records,
            undecodable: &undecodable,
            expired: &expired,
            maximum_record_age: Some(std::time::Duration::from_secs(3600)),
            flush: false,
        };
        let (_handle, stop) = crate::stop::channel();
        let processed = pipeline.worker().process("shard", batch, &stop).await.unwrap();
        let written = sink.written.lock().unwrap().len();
        let entries = dead.entries.lock().unwrap().clone();
        assert_eq!(written + entries.len(), 10, "in = out + dead letter");
        assert_eq!(written, 8);
        let stages: Vec<&str> = entries.iter().map(|e| e.stage.as_str()).collect();
        assert_eq!(stages, ["decode", "record_age"]);
        assert!(entries[1].error.contains("over source.maximum_record_age (1h)"), "{}", entries[1].error);
        assert_eq!(processed.dead_letter_ids.len(), 2);
        let stats = pipeline.stats();
        assert_eq!(stats.read.load(std::sync::atomic::Ordering::Relaxed), 10);
        assert_eq!(stats.dead_lettered.load(std::sync::atomic::Ordering::Relaxed), 2);
    }
}
