//! `eddy dead-letter list` and `eddy dead-letter replay`: look at a failure destination, and send
//! its records through the pipeline again once the cause is fixed (a sink back up, a processor
//! corrected), removing the entries whose records were delivered.
//!
//! A replayed record goes through the route it failed on (its `route`), or through every route
//! when the entry has none (a `record_age` entry). Records are replayed per route and shard in
//! sequence-number order, in batches of up to 1,000. An entry is removed only after its batch is
//! done: delivered, or dead-lettered again (a new entry with the new reason; in a keyed
//! destination such as DynamoDB a failure at the same place replaces the entry). Entries without
//! a record (undecodable input) cannot be replayed and stay.
//!
//! A replay never takes an item back to an older version: an entry whose change is no longer its
//! key's newest (see [`newest`]) is skipped, reported and left in the dead letter, unless
//! the replay is forced.

use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_record::{ChangeRecord, StreamRecord};

pub mod newest;

use crate::dead_letter::{DeadLetterStore, Intent, Stored};
use crate::pattern::Filter;
use crate::pipeline::{Batch, Pipeline};
use crate::stop::Stop;
use newest::{Freshness, NewestCheck};

/// Records per pipeline batch during a replay (GetRecords' page size).
const BATCH: usize = 1000;

/// The entries of `store` that `filter` selects (every entry when `None`; an entry without a
/// record is selected only without a filter). To replay, the entries not selected are handed
/// back at once ([`DeadLetterStore::release`]); to look, the store hands back what it read itself.
///
/// # Errors
/// When the destination cannot be read, or `stop` is set while it is.
pub async fn selected(
    store: &dyn DeadLetterStore,
    filter: Option<&Filter>,
    intent: Intent,
    stop: &Stop,
) -> anyhow::Result<Vec<Stored>> {
    let all = store.list(intent, stop).await?;
    let (chosen, others): (Vec<Stored>, Vec<Stored>) = all.into_iter().partition(|s| match (filter, &s.entry.record) {
        (None, _) => true,
        (Some(f), Some(r)) => f.matches_record(r),
        (Some(_), None) => false,
    });
    if intent == Intent::Replay {
        release(store, others.into_iter().map(|s| s.id).collect()).await;
    }
    Ok(chosen)
}

/// Hands back listed entries that were not removed ([`DeadLetterStore::release`]); a failure is
/// only logged, since such entries come back by themselves once their visibility timeout ends.
async fn release(store: &dyn DeadLetterStore, ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    if let Err(e) = store.release(&ids).await {
        tracing::warn!("{e:#}");
    }
}

/// `eddy dead-letter list`: one line per entry, `time  stage  route/name  shard  sequence  error`,
/// then a count, and a note on entries other readers hold at the moment.
///
/// # Errors
/// When the destination cannot be read.
pub async fn list(store: &dyn DeadLetterStore, filter: Option<&Filter>, stop: &Stop) -> anyhow::Result<String> {
    // Entries others hold when the list starts (a killed replay's) are noted, with when they return.
    let in_flight = store.in_flight().await?;
    let entries = selected(store, filter, Intent::Look, stop).await?;
    let mut out = String::new();
    for Stored { entry: e, .. } in &entries {
        let place = match (&e.route, &e.name) {
            (Some(r), Some(n)) => format!("{r}/{n}"),
            (Some(r), None) => r.clone(),
            (None, _) => "-".to_owned(),
        };
        let error = e.error.replace('\n', " ");
        out.push_str(&format!(
            "{}  {:<10} {:<24} {} {}  {}\n",
            e.time,
            e.stage.as_str(),
            place,
            e.shard_id,
            e.sequence_number.as_deref().unwrap_or("-"),
            error
        ));
    }
    out.push_str(&format!("{} entries in {}\n", entries.len(), store.describe()));
    if let Some(note) = in_flight {
        out.push_str(&format!("{note}\n"));
    }
    Ok(out)
}

/// A replay that stopped before every entry was done: a batch failed again (a sink still down)
/// or stopping was asked. The entries not yet done stay. `eddy dead-letter replay` exits 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReplayStopped(pub String);

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Entries whose records went through the pipeline (and were removed).
    pub replayed: usize,
    /// New entries the replay wrote (records that failed again, now with the new reason).
    pub new_entries: usize,
    /// Entries left as they were: no record to replay, or a route the pipeline no longer has.
    pub left: usize,
    /// Keys whose entries were left because the newest of them is not (or not known to be) the
    /// key's newest change: one line each, naming that entry, the key and why.
    pub skipped: Vec<String>,
}

/// How a replay treats entries whose change may not be its key's newest.
pub struct Guard<'a> {
    /// The check.
    pub check: &'a dyn NewestCheck,
    /// Replay every entry as it is (`--force`).
    pub force: bool,
}

/// `eddy dead-letter replay`: sends the records of the entries of `from` that `filter` selects
/// through `pipeline` and removes their entries (see the module documentation).
///
/// # Errors
/// When the destination cannot be read or changed, or a batch fails (a sink still down): the
/// entries of that batch and of the batches after it stay.
pub async fn replay(
    pipeline: &Arc<Pipeline>,
    from: &dyn DeadLetterStore,
    filter: Option<&Filter>,
    guard: &Guard<'_>,
    stop: &Stop,
) -> anyhow::Result<Replayed> {
    if let Some(note) = from.in_flight().await? {
        tracing::warn!("{note}");
    }
    let listed = selected(from, filter, Intent::Replay, stop).await?;
    let ids: Vec<String> = listed.iter().map(|s| s.id.clone()).collect();
    let mut removed = std::collections::HashSet::new();
    let result = replay_listed(pipeline, from, listed, &mut removed, guard, stop).await;
    release(from, ids.into_iter().filter(|id| !removed.contains(id)).collect()).await;
    result
}

/// [`replay`] of the entries listed, adding the ids it removed to `removed`.
async fn replay_listed(
    pipeline: &Arc<Pipeline>,
    from: &dyn DeadLetterStore,
    listed: Vec<Stored>,
    removed: &mut std::collections::HashSet<String>,
    guard: &Guard<'_>,
    stop: &Stop,
) -> anyhow::Result<Replayed> {
    let routes = pipeline.route_names();
    let mut report = Replayed::default();
    // (route, shard) → entries, in list order; sorted by sequence number below.
    let mut groups: BTreeMap<(Option<String>, String), Vec<Stored>> = BTreeMap::new();
    for stored in listed {
        let known = stored.entry.route.as_ref().is_none_or(|r| routes.iter().any(|n| n == r));
        if stored.entry.record.is_none() || !known {
            if !known {
                tracing::warn!(
                    route = stored.entry.route.as_deref(),
                    "the entry's route is not in the pipeline; leaving it"
                );
            }
            report.left += 1;
            continue;
        }
        groups.entry((stored.entry.route.clone(), stored.entry.shard_id.clone())).or_default().push(stored);
    }
    // Writing an entry with the same id replaces it in a keyed destination: a record that fails
    // again at the same place must then keep its (new) entry.
    let replaced_in_place = from.keyed() && from.describe() == pipeline.dead_letter().describe();
    let mut worker = pipeline.worker();
    for ((route, shard), mut entries) in groups {
        entries.sort_by(|a, b| {
            let seq = |s: &Stored| s.entry.sequence_number.clone().unwrap_or_default();
            StreamRecord::sequence_cmp(&seq(a), &seq(b))
        });
        // Only the keys whose newest entry here is still the key's newest change (or all,
        // forced); a key's older entries go along with it, in order, as they were read.
        let key_of = |s: &Stored| {
            serde_json::to_string(
                &s.entry.record.as_ref().expect("entries without a record are left above").dynamodb.keys,
            )
            .unwrap_or_default()
        };
        let mut newest: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, stored) in entries.iter().enumerate() {
            newest.insert(key_of(stored), i);
        }
        let mut replay_key: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        let mut keys: Vec<(&String, &usize)> = newest.iter().collect();
        keys.sort_by_key(|(_, i)| **i);
        for (key, &i) in keys {
            let stored = &entries[i];
            let record = stored.entry.record.as_ref().expect("entries without a record are left above");
            let sinks = pipeline.sink_kinds(route.as_deref(), stored.entry.name.as_deref());
            let verdict = if guard.force { Freshness::Newest } else { guard.check.check(record, &sinks).await? };
            let go = match verdict {
                Freshness::Newest => true,
                Freshness::Superseded(why) | Freshness::Unknown(why) => {
                    report.skipped.push(format!("{} (key {key}): {why}", stored.entry.id()));
                    false
                }
            };
            replay_key.insert(key.clone(), go);
        }
        let chosen: Vec<Stored> = entries.into_iter().filter(|s| replay_key[&key_of(s)]).collect();
        for chunk in chosen.chunks(BATCH) {
            if stop.is_set() {
                anyhow::bail!(ReplayStopped(format!("stopped; {} entries replayed so far", report.replayed)));
            }
            let records: Vec<ChangeRecord> = chunk.iter().filter_map(|s| s.entry.record.clone()).collect();
            // `flush`: a batching route delivers now instead of holding the records.
            let batch = Batch { flush: true, ..Batch::of(&records) };
            let new_ids = worker
                .process_on(route.as_deref(), &shard, batch, stop)
                .await
                .map_err(|e| {
                    ReplayStopped(format!("replay stopped: {e}; {} entries replayed so far", report.replayed))
                })?
                .dead_letter_ids;
            let done: Vec<String> = chunk
                .iter()
                .filter(|s| !(replaced_in_place && new_ids.contains(&s.entry.id())))
                .map(|s| s.id.clone())
                .collect();
            from.remove(&done).await?;
            removed.extend(done);
            report.replayed += chunk.len();
            report.new_entries += new_ids.len();
        }
    }
    Ok(report)
}
