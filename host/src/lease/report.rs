//! `eddy leases`: the lease table as an operator needs it: per shard, its owner, counter,
//! checkpoint, parent, and how far behind the checkpoint is.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::manager::LeaseManager;
use super::store::Lease;
use crate::checkpoint::Checkpoint;
use crate::source::{IteratorPosition, StreamsApi};

/// How far behind a shard is, measured by reading one page (up to 1,000 records) after its
/// checkpoint.
fn behind(page: &crate::source::RecordsPage) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let n = page.records.len() + page.undecodable.len();
    let oldest = page.records.iter().filter_map(|r| r.dynamodb.approximate_creation_date_time).min();
    match (n, oldest) {
        (0, _) => "caught up".to_owned(),
        (n, Some(t)) => format!("{}{n} records, oldest {}s old", if n >= 1000 { "≥" } else { "" }, (now - t).max(0)),
        (n, None) => format!("{}{n} records", if n >= 1000 { "≥" } else { "" }),
    }
}

/// The report, one line per lease, in shard order. With `api`, the `behind` column reads one page
/// after each checkpoint; without it (snapshot segments, whose checkpoint is a Scan key) it says
/// only `done` or `in progress`.
///
/// # Errors
/// When the lease table cannot be read.
pub async fn report(table: &LeaseManager, api: Option<&dyn StreamsApi>) -> anyhow::Result<String> {
    let mut leases: Vec<Lease> = table.list().await?;
    leases.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    let mut out = String::new();
    writeln!(out, "{:<28} {:<30} {:>8} {:<26} {:<28} behind", "shard", "owner", "counter", "checkpoint", "parent")?;
    for l in &leases {
        let (checkpoint, position) = match &l.checkpoint {
            Some(Checkpoint::ShardEnd) => ("SHARD_END".to_owned(), None),
            Some(Checkpoint::After(seq)) => (seq.clone(), Some(IteratorPosition::AfterSequence(seq.clone()))),
            None => ("-".to_owned(), Some(IteratorPosition::TrimHorizon)),
        };
        let lag = match (position, api) {
            (None, _) => "done".to_owned(),
            (Some(_), None) => "in progress".to_owned(),
            (Some(p), Some(api)) => match api.get_shard_iterator(&l.shard_id, &p).await {
                Ok(it) => match api.get_records(&it, 1000).await {
                    Ok(page) => behind(&page),
                    Err(e) => format!("unknown ({e})"),
                },
                Err(e) => format!("unknown ({e})"),
            },
        };
        let owner = match (&l.owner, &l.handoff_to) {
            (Some(o), Some(to)) => format!("{o} → {to}"),
            (Some(o), None) => o.clone(),
            (None, _) => "-".to_owned(),
        };
        writeln!(
            out,
            "{:<28} {:<30} {:>8} {:<26} {:<28} {lag}",
            l.shard_id,
            owner,
            l.counter,
            checkpoint,
            l.parent.as_deref().unwrap_or("-")
        )?;
    }
    Ok(out)
}
