//! One route's work on a batch: processors in order, then the sinks.

use std::borrow::Cow;
use std::sync::Arc;

use eddy_record::ChangeRecord;
use futures::future::join_all;

use super::deliver::{self, SinkSlot};
use super::isolate;
use super::PipelineError;
use crate::dead_letter::{Entry, Stage};
use crate::events::stats::Stats;
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
    /// Sinks, in the route's order.
    pub sinks: Vec<SinkSlot>,
    /// What a failed sink write leads to (`routes[i].on_sink_failure`).
    pub on_sink_failure: crate::config::OnSinkFailure,
    /// The waits between in-place retries of a failed write (`retry:`).
    pub retry: eddy_sink_api::RetryPolicy,
    /// `batch_size` / `batching_window`: gather records across pages before the processors and
    /// sinks; `None`: each page as it comes.
    pub batching: Option<crate::config::Batching>,
}

/// A route with one worker's instances (created on first use, and again when their processor is
/// reloaded), each with the processor generation it was made from.
pub(super) struct RouteWorker {
    spec: Arc<RouteSpec>,
    instances: Vec<Option<(u64, Instance)>>,
    metrics: RouteMetrics,
    gather: Option<Gather>,
}

/// Records a batching route holds until its batch is full or its window ends (Lambda's BatchSize
/// and MaximumBatchingWindowInSeconds).
struct Gather {
    records: Vec<ChangeRecord>,
    /// The worker's page number of the oldest record held: the shard may not checkpoint it.
    first_page: u64,
    since: std::time::Instant,
}

/// A record on its way through a route.
struct InFlight<'a> {
    record: Cow<'a, ChangeRecord>,
    /// The record as read, before the processors: what a sink's refusal puts in the dead letter,
    /// so that a replay runs it through the route's processors once, not twice.
    origin: &'a ChangeRecord,
    /// Which of the route's sinks it goes to (indices); `None`: all of them.
    sinks: Option<Vec<usize>>,
}

impl RouteWorker {
    pub(super) fn new(spec: Arc<RouteSpec>) -> Self {
        let instances = spec.processors.iter().map(|_| None).collect();
        let sinks: Vec<&str> = spec.sinks.iter().map(|s| s.name.as_str()).collect();
        let metrics = RouteMetrics::new(&spec.name, &sinks);
        Self { spec, instances, metrics, gather: None }
    }

    /// The oldest page whose records this route still holds (batching), if any.
    pub(super) fn held_from(&self) -> Option<u64> {
        self.gather.as_ref().map(|g| g.first_page)
    }

    /// When this route's batching window ends for the records it holds, if it holds any.
    pub(super) fn due_at(&self) -> Option<std::time::Instant> {
        Some(self.gather.as_ref()?.since + self.spec.batching?.window)
    }

    /// Drops the records held (the shard rewinds to a checkpoint before them).
    pub(super) fn discard_held(&mut self) {
        self.gather = None;
    }

    /// The route's name.
    pub(super) fn name(&self) -> &str {
        &self.spec.name
    }

    /// Takes the records of page `page` the filter lets through: through the processors and
    /// sinks at once, or, on a batching route, into its gather, delivered (in writes of at most
    /// `batch_size`) once it holds `batch_size` records, its oldest waited `batching_window`, or
    /// `flush` is set.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn process(
        &mut self,
        shard_id: &str,
        batch: &[ChangeRecord],
        page: u64,
        flush: bool,
        stats: &Stats,
        stop: &Stop,
        dead: &mut Vec<Entry>,
    ) -> Result<(), PipelineError> {
        let taken: Vec<&ChangeRecord> =
            batch.iter().filter(|r| self.spec.filter.as_ref().is_none_or(|f| f.matches_record(r))).collect();
        let filtered = (batch.len() - taken.len()) as u64;
        crate::events::Filtered { route: &self.spec.name, n: filtered, counter: &self.metrics.filtered }.emit(stats);
        let Some(batching) = self.spec.batching else {
            return self.deliver(shard_id, taken, stats, stop, dead).await;
        };
        if !taken.is_empty() {
            let gather = self.gather.get_or_insert_with(|| Gather {
                records: Vec::new(),
                first_page: page,
                since: std::time::Instant::now(),
            });
            // Held past this page: copies that do not keep the page's buffer alive.
            gather.records.extend(taken.into_iter().map(ChangeRecord::detached));
        }
        let due = self
            .gather
            .as_ref()
            .is_some_and(|g| flush || g.records.len() >= batching.size || g.since.elapsed() >= batching.window);
        if !due {
            return Ok(());
        }
        let gathered = self.gather.take().expect("due").records;
        for chunk in gathered.chunks(batching.size) {
            self.deliver(shard_id, chunk.iter().collect(), stats, stop, dead).await?;
        }
        Ok(())
    }

    /// Runs `records` through the processors, then writes what they keep to every sink.
    async fn deliver(
        &mut self,
        shard_id: &str,
        records: Vec<&ChangeRecord>,
        stats: &Stats,
        stop: &Stop,
        dead: &mut Vec<Entry>,
    ) -> Result<(), PipelineError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut items: Vec<InFlight> =
            records.into_iter().map(|r| InFlight { record: Cow::Borrowed(r), origin: r, sinks: None }).collect();
        if !self.spec.processors.is_empty() {
            // Wasm calls are CPU work: keep them off the async scheduler's toes.
            items = tokio::task::block_in_place(|| self.run_processors(shard_id, items, stats, dead));
        }
        let spec = &self.spec;
        let writes = spec.sinks.iter().enumerate().map(|(s, slot)| {
            let records: Vec<&ChangeRecord> = items
                .iter()
                .filter(|i| i.sinks.as_ref().is_none_or(|set| set.contains(&s)))
                .map(|i| &*i.record)
                .collect();
            let policy = &spec.on_sink_failure;
            let m = deliver::SinkMetrics {
                write_duration: &self.metrics.write_duration[s],
                errors: &self.metrics.errors[s],
            };
            deliver::deliver_with_policy(slot, records, policy, &spec.retry, stop, m)
        });
        let attempts = spec.on_sink_failure.retries + 1;
        for (s, (result, slot)) in join_all(writes).await.into_iter().zip(&spec.sinks).enumerate() {
            let delivered = result?;
            let counter = &self.metrics.out[s];
            crate::events::Delivered { sink: &slot.name, n: delivered.written as u64, counter }.emit(stats);
            let refused = delivered.refused.into_iter().map(|(r, reason)| (r, reason, 1));
            let failed = delivered.failed.into_iter().map(|(r, error)| (r, format!("write failed: {error}"), attempts));
            for (record, reason, attempts) in refused.chain(failed) {
                let origin = items.iter().find(|i| std::ptr::eq(&*i.record, record)).map_or(record, |i| i.origin);
                let mut e = Entry::new(shard_id, Stage::Sink, reason).with_record(origin);
                e.route = Some(spec.name.clone());
                e.name = Some(slot.name.clone());
                e.attempts = attempts;
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
                            dead.push(self.dead_entry(shard_id, component, item.origin, message.clone(), 1));
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
                        crate::events::Dropped { counter: &self.metrics.dropped }.emit(stats);
                    }
                    Ok(Verdict::Replace(change)) => match wasm::to_record(change, &item.record) {
                        Ok(r) => next.push(InFlight { record: Cow::Owned(r), origin: item.origin, sinks: item.sinks }),
                        Err(e) => dead.push(self.dead_entry(shard_id, component, item.origin, e, 1)),
                    },
                    Ok(Verdict::FanOut(changes)) => {
                        for change in changes {
                            match wasm::to_record(change, &item.record) {
                                Ok(r) => next.push(InFlight {
                                    record: Cow::Owned(r),
                                    origin: item.origin,
                                    sinks: item.sinks.clone(),
                                }),
                                Err(e) => dead.push(self.dead_entry(shard_id, component, item.origin, e, 1)),
                            }
                        }
                    }
                    Ok(Verdict::Route(names)) => match self.sink_indices(&names) {
                        Ok(set) => {
                            let sinks = match item.sinks {
                                Some(prev) => prev.into_iter().filter(|s| set.contains(s)).collect(),
                                None => set,
                            };
                            next.push(InFlight { record: item.record, origin: item.origin, sinks: Some(sinks) });
                        }
                        Err(e) => dead.push(self.dead_entry(shard_id, component, item.origin, e, 1)),
                    },
                    Ok(Verdict::Fail(message)) => dead.push(self.dead_entry(
                        shard_id,
                        component,
                        item.origin,
                        format!("fail verdict: {message}"),
                        1,
                    )),
                    Err((message, attempts)) => {
                        dead.push(self.dead_entry(shard_id, component, item.origin, message, attempts))
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
                self.spec.sinks.iter().position(|s| s.name == *n).ok_or_else(|| {
                    let declared: Vec<&str> = self.spec.sinks.iter().map(|s| s.name.as_str()).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batching_route_holds_records_that_do_not_keep_their_page_alive() {
        let page = crate::testing::get_records_page(10);
        let decoded = crate::source::decode_get_records(&page, "arn").unwrap();
        // Whether the record's images (it has one or two) are slices of the page's buffer.
        let in_page = |r: &ChangeRecord| {
            let images = [&r.dynamodb.new_image, &r.dynamodb.old_image];
            let texts: Vec<&str> = images.into_iter().flatten().map(|i| i.text().expect("read as text")).collect();
            assert!(!texts.is_empty(), "every sample record has an image");
            texts.iter().all(|t| page.as_ptr_range().contains(&t.as_ptr()))
        };
        assert!(decoded.records.iter().all(in_page), "records read from a page share its buffer");
        let spec = RouteSpec {
            name: "gathering".into(),
            filter: None,
            processors: Vec::new(),
            sinks: Vec::new(),
            on_sink_failure: crate::config::OnSinkFailure::default(),
            retry: eddy_sink_api::RetryPolicy::default(),
            batching: Some(crate::config::Batching { size: 100, window: std::time::Duration::from_secs(60) }),
        };
        let mut route = RouteWorker::new(Arc::new(spec));
        let stats = Stats::new(&[], &["gathering".to_owned()]);
        let (_handle, stop) = crate::stop::channel();
        let mut dead = Vec::new();
        route.process("shard", &decoded.records, 1, false, &stats, &stop, &mut dead).await.unwrap();
        let held = &route.gather.as_ref().expect("10 records wait for a batch of 100").records;
        assert_eq!(held.len(), 10);
        assert_eq!(held, &decoded.records, "the same records");
        assert!(!held.iter().any(in_page), "held records have their own copies of their images");
    }
}
