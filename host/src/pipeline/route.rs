//! One route's work on a batch: processors in order, then the sinks.

use std::borrow::Cow;
use std::sync::Arc;

use eddy_sink_api::{ChangeRecord, Sink, SinkError};
use futures::future::join_all;

use super::backoff::Backoff;
use super::dead_letter::{Entry, Stage};
use super::isolate;
use super::stats::Stats;
use super::PipelineError;
use crate::metrics::RouteMetrics;
use crate::stop::Stop;
use crate::wasm::{self, Component, Instance, Processor, Verdict};

/// A route as loaded: its processors (compiled) and sinks (connected).
pub struct RouteSpec {
    /// The route's name.
    pub name: String,
    /// Which records the route takes; `None`: all.
    pub filter: Option<crate::pattern::Filter>,
    /// Processors, in order.
    pub processors: Vec<Arc<Processor>>,
    /// Sinks with their names.
    pub sinks: Vec<(String, Arc<dyn Sink>)>,
}

/// A route with one worker's instances (created on first use, and again when their processor is
/// reloaded), each with the processor generation it was made from.
pub(super) struct RouteWorker {
    spec: Arc<RouteSpec>,
    instances: Vec<Option<(u64, Instance)>>,
    metrics: RouteMetrics,
}

/// A record on its way through a route.
struct InFlight<'a> {
    record: Cow<'a, ChangeRecord>,
    /// Which of the route's sinks it goes to (indices); `None`: all of them.
    sinks: Option<Vec<usize>>,
}

impl RouteWorker {
    pub(super) fn new(spec: Arc<RouteSpec>) -> Self {
        let instances = spec.processors.iter().map(|_| None).collect();
        let sinks: Vec<&str> = spec.sinks.iter().map(|(s, _)| s.as_str()).collect();
        let metrics = RouteMetrics::new(&spec.name, &sinks);
        Self { spec, instances, metrics }
    }

    pub(super) async fn process(
        &mut self,
        shard_id: &str,
        batch: &[ChangeRecord],
        stats: &Stats,
        max_attempts: u32,
        stop: &Stop,
        dead: &mut Vec<Entry>,
    ) -> Result<(), PipelineError> {
        let mut items: Vec<InFlight> = batch
            .iter()
            .filter(|r| self.spec.filter.as_ref().is_none_or(|f| f.matches_record(r)))
            .map(|r| InFlight { record: Cow::Borrowed(r), sinks: None })
            .collect();
        let filtered = (batch.len() - items.len()) as u64;
        stats.add_filtered(&self.spec.name, filtered);
        self.metrics.filtered.increment(filtered);
        if !self.spec.processors.is_empty() {
            // Wasm calls are CPU work: keep them off the async scheduler's toes.
            items = tokio::task::block_in_place(|| self.run_processors(shard_id, items, stats, dead));
        }
        let spec = &self.spec;
        let writes = spec.sinks.iter().enumerate().map(|(s, (name, sink))| {
            let records: Vec<&ChangeRecord> = items
                .iter()
                .filter(|i| i.sinks.as_ref().is_none_or(|set| set.contains(&s)))
                .map(|i| &*i.record)
                .collect();
            write_with_retry(name, sink.as_ref(), records, max_attempts, stop, &self.metrics.write_duration[s])
        });
        for (s, (result, (name, _))) in join_all(writes).await.into_iter().zip(&spec.sinks).enumerate() {
            let (written, rejected) = result?;
            stats.add_written(name, written as u64);
            self.metrics.out[s].increment(written as u64);
            for (record, reason) in rejected {
                let mut e = Entry::new(shard_id, Stage::Sink, reason).with_record(record);
                e.route = Some(spec.name.clone());
                e.name = Some(name.clone());
                dead.push(e);
            }
        }
        Ok(())
    }

    fn run_processors<'a>(
        &mut self,
        shard_id: &str,
        mut items: Vec<InFlight<'a>>,
        stats: &Stats,
        dead: &mut Vec<Entry>,
    ) -> Vec<InFlight<'a>> {
        let spec = Arc::clone(&self.spec);
        for (p, processor) in spec.processors.iter().enumerate() {
            if items.is_empty() {
                break;
            }
            // Between batches, an instance of an older build gives way to the reloaded one.
            let generation = processor.generation();
            if self.instances[p].as_ref().is_some_and(|(g, _)| *g != generation) {
                self.instances[p] = None;
            }
            let component = processor.current();
            let component = &component;
            let instance = match &mut self.instances[p] {
                Some((_, i)) => i,
                slot => match component.instantiate() {
                    Ok(i) => &mut slot.insert((generation, i)).1,
                    Err(e) => {
                        let message = format!("{e:#}");
                        for item in items.drain(..) {
                            dead.push(self.dead_entry(shard_id, component, &item.record, message.clone(), 1));
                        }
                        break;
                    }
                },
            };
            let outcomes = {
                let records: Vec<&ChangeRecord> = items.iter().map(|i| &*i.record).collect();
                isolate::run(instance, &records)
            };
            let mut next = Vec::with_capacity(items.len());
            for (item, outcome) in items.into_iter().zip(outcomes) {
                match outcome {
                    Ok(Verdict::Pass) => next.push(item),
                    Ok(Verdict::Drop) => {
                        stats.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        self.metrics.dropped.increment(1);
                    }
                    Ok(Verdict::Replace(change)) => match wasm::to_record(change, &item.record) {
                        Ok(r) => next.push(InFlight { record: Cow::Owned(r), sinks: item.sinks }),
                        Err(e) => dead.push(self.dead_entry(shard_id, component, &item.record, e, 1)),
                    },
                    Ok(Verdict::FanOut(changes)) => {
                        for change in changes {
                            match wasm::to_record(change, &item.record) {
                                Ok(r) => next.push(InFlight { record: Cow::Owned(r), sinks: item.sinks.clone() }),
                                Err(e) => dead.push(self.dead_entry(shard_id, component, &item.record, e, 1)),
                            }
                        }
                    }
                    Ok(Verdict::Route(names)) => match self.sink_indices(&names) {
                        Ok(set) => {
                            let sinks = match item.sinks {
                                Some(prev) => prev.into_iter().filter(|s| set.contains(s)).collect(),
                                None => set,
                            };
                            next.push(InFlight { record: item.record, sinks: Some(sinks) });
                        }
                        Err(e) => dead.push(self.dead_entry(shard_id, component, &item.record, e, 1)),
                    },
                    Ok(Verdict::Fail(message)) => dead.push(self.dead_entry(
                        shard_id,
                        component,
                        &item.record,
                        format!("fail verdict: {message}"),
                        1,
                    )),
                    Err((message, attempts)) => {
                        dead.push(self.dead_entry(shard_id, component, &item.record, message, attempts))
                    }
                }
            }
            items = next;
        }
        items
    }

    /// Resolves sink names from a `route` verdict against this route's sinks.
    fn sink_indices(&self, names: &[String]) -> Result<Vec<usize>, String> {
        names
            .iter()
            .map(|n| {
                self.spec.sinks.iter().position(|(s, _)| s == n).ok_or_else(|| {
                    let declared: Vec<&str> = self.spec.sinks.iter().map(|(s, _)| s.as_str()).collect();
                    format!(
                        "route verdict names sink {n:?}, which route {} does not have (its sinks: {})",
                        self.spec.name,
                        declared.join(", ")
                    )
                })
            })
            .collect()
    }

    fn dead_entry(
        &self,
        shard_id: &str,
        component: &Component,
        record: &ChangeRecord,
        error: String,
        attempts: u32,
    ) -> Entry {
        let mut e = Entry::new(shard_id, Stage::Processor, error).with_record(record);
        e.route = Some(self.spec.name.clone());
        e.name = Some(component.name().to_owned());
        e.attempts = attempts;
        e
    }
}

/// Writes `records` to `sink`, retrying retryable failures with backoff. Returns how many were
/// written and which were rejected (with the reason).
async fn write_with_retry<'a>(
    name: &str,
    sink: &dyn Sink,
    records: Vec<&'a ChangeRecord>,
    max_attempts: u32,
    stop: &Stop,
    write_duration: &metrics::Histogram,
) -> Result<(usize, Vec<(&'a ChangeRecord, String)>), PipelineError> {
    if records.is_empty() {
        return Ok((0, Vec::new()));
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = std::time::Instant::now();
        let outcome = sink.write(&records).await;
        write_duration.record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(outcome) => {
                let rejected: Vec<_> = outcome.rejected.into_iter().map(|r| (records[r.index], r.reason)).collect();
                return Ok((records.len() - rejected.len(), rejected));
            }
            Err(SinkError::Fatal(message)) => {
                return Err(PipelineError::SinkFailed {
                    sink: name.to_owned(),
                    attempts: attempt,
                    message,
                    fatal: true,
                })
            }
            Err(SinkError::Retryable(message)) => {
                if attempt >= max_attempts {
                    return Err(PipelineError::SinkFailed {
                        sink: name.to_owned(),
                        attempts: attempt,
                        message,
                        fatal: false,
                    });
                }
                let wait = Backoff::DEFAULT.wait(attempt - 1);
                tracing::warn!(sink = name, attempt, "write failed, retrying in {wait:?}: {message}");
                if stop.sleep(wait).await {
                    return Err(PipelineError::Interrupted { sink: name.to_owned() });
                }
            }
        }
    }
}
