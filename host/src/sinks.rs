//! The sink registry: the one place that turns a sink's `type` into a running sink
//! ([`build`]), a preview of its writes ([`preview`]) and a metrics label ([`kind`]). Parsing
//! each type's options lives with the rest of the config (`config::SinkConfig`).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use eddy_record::{ChangeRecord, EventName, Item};
use eddy_sink_api::{RetryPolicy, Sink, Timeouts};
use serde_json::{json, Value};

use crate::config::SinkConfig;

/// The sink's type name, as written in the file (`alternator`, `cratedb`, ...); the `api` label
/// of its throttling count.
pub fn kind(config: &SinkConfig) -> &'static str {
    match config {
        SinkConfig::Alternator(_) => "alternator",
        SinkConfig::CrateDb(_) => "cratedb",
        SinkConfig::File { .. } => "file",
        SinkConfig::Stdout => "stdout",
        SinkConfig::Null => "null",
    }
}

/// Builds a sink from its config. Network sinks get the pipeline's `timeouts` and its `retry`
/// policy for each request; nothing connects yet.
///
/// # Errors
/// When a file sink cannot be opened or a URL is invalid.
pub async fn build(config: &SinkConfig, retry: RetryPolicy, timeouts: &Timeouts) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(match config {
        SinkConfig::Alternator(c) => {
            use eddy_sink_alternator::nodes::Nodes;
            let urls = c.node_urls();
            let nodes = match (urls.as_slice(), &c.discovery) {
                // No endpoint key at all: AWS DynamoDB itself, said once at start.
                ([], None) => {
                    let target = crate::aws::Target { region: c.region.as_deref(), endpoint: None };
                    let client =
                        crate::aws::json_client(eddy_aws_json::DYNAMODB, "dynamodb", &target, timeouts).await?;
                    tracing::info!(
                        table = c.table,
                        region = c.region.as_deref().unwrap_or("from the AWS chain"),
                        "alternator sink: no endpoint, endpoints or discovery set: writing to AWS DynamoDB"
                    );
                    Nodes::single("aws:dynamodb", client)
                }
                // One node, whichever key named it.
                ([url], None) => {
                    let target = crate::aws::Target { region: c.region.as_deref(), endpoint: Some(url) };
                    let client =
                        crate::aws::json_client(eddy_aws_json::DYNAMODB, "dynamodb", &target, timeouts).await?;
                    Nodes::single(url, client)
                }
                _ => {
                    let target = crate::aws::Target { region: c.region.as_deref(), endpoint: None };
                    let (_, make) = crate::aws::json_clients(eddy_aws_json::DYNAMODB, &target, timeouts).await?;
                    let nodes = Nodes::new(&urls, c.discovery.clone(), make).await.map_err(anyhow::Error::msg)?;
                    tokio::spawn(Nodes::maintain(Arc::downgrade(&nodes)));
                    nodes
                }
            };
            Arc::new(eddy_sink_alternator::AlternatorSink::new(nodes, c, retry))
        }
        SinkConfig::CrateDb(c) => {
            Arc::new(eddy_sink_cratedb::CrateDbSink::new(c, timeouts, retry).map_err(anyhow::Error::msg)?)
        }
        SinkConfig::File { path } => {
            Arc::new(eddy_sink_basic::FileSink::open(path).with_context(|| format!("cannot open {}", path.display()))?)
        }
        SinkConfig::Stdout => Arc::new(eddy_sink_basic::StdoutSink),
        SinkConfig::Null => Arc::new(eddy_sink_basic::NullSink::default()),
    })
}

/// `eddy sink preview`: for each record of `batch` (one write), what the sink would do with it,
/// as one JSON value, without connecting to anything. The sink's own planning is used, so a
/// change that a later change of the same key replaces in the batch shows as
/// `{"op": "superseded", "by": J}` (J: the 0-based index of that later change).
///
/// - cratedb: `{"op": "upsert" | "delete", "row": {"pk", "data", "aux"}, "stmt", "args"}` (a
///   delete's row holds `pk` only), or `{"op": "reject", "reason"}`;
/// - alternator: `{"TableName", "PutRequest": {"Item"}}` or `{"TableName", "DeleteRequest":
///   {"Key"}}` in DynamoDB JSON, or `{"op": "reject", "reason"}`;
/// - file, stdout, null: the record as they would store it.
pub fn preview(sink: &SinkConfig, batch: &[&ChangeRecord]) -> Vec<Value> {
    match sink {
        SinkConfig::CrateDb(c) => {
            let plan = eddy_sink_cratedb::CrateDbSink::plan(batch);
            let statements = eddy_sink_cratedb::Statements::new(&c.table);
            let mut out = superseded(batch);
            for (i, _) in &plan.rows {
                let Ok(row) = eddy_sink_cratedb::translate::row(batch[*i]) else { continue };
                let (stmt, _) = statements.for_row(&row);
                // The arguments exactly as the sink writes them.
                let mut bytes = Vec::new();
                let _ = eddy_sink_cratedb::translate::write_args(batch[*i], &mut bytes);
                let args: Value = serde_json::from_slice(&bytes).expect("bulk_args entries are JSON");
                let row_json = match row.op {
                    eddy_sink_cratedb::translate::Op::Delete => json!({"pk": row.pk}),
                    _ => json!({"pk": row.pk, "data": row.data, "aux": row.aux}),
                };
                out[*i] = json!({"op": row.op.as_str(), "row": row_json, "stmt": stmt, "args": args});
            }
            for r in &plan.rejected {
                out[r.index] = json!({"op": "reject", "reason": r.reason});
            }
            out
        }
        SinkConfig::Alternator(c) => {
            let plan = eddy_sink_alternator::AlternatorSink::plan(batch);
            let mut out = superseded(batch);
            for (i, _) in &plan.requests {
                let record = batch[*i];
                out[*i] = match (record.event_name, &record.dynamodb.new_image) {
                    (EventName::Remove, _) => {
                        json!({"TableName": c.table, "DeleteRequest": {"Key": record.dynamodb.keys}})
                    }
                    (_, image) => json!({"TableName": c.table, "PutRequest": {"Item": image}}),
                };
            }
            for r in &plan.rejected {
                out[r.index] = json!({"op": "reject", "reason": r.reason});
            }
            out
        }
        SinkConfig::File { .. } | SinkConfig::Stdout | SinkConfig::Null => {
            batch.iter().map(|r| serde_json::to_value(r).expect("records serialize")).collect()
        }
    }
}

/// For each record, `{"op": "superseded", "by": J}` naming the last change of its key; the
/// entries of the changes that are kept are overwritten by the caller.
fn superseded(batch: &[&ChangeRecord]) -> Vec<Value> {
    let mut last: HashMap<&Item, usize> = HashMap::with_capacity(batch.len());
    for (i, r) in batch.iter().enumerate() {
        last.insert(&r.dynamodb.keys, i);
    }
    batch.iter().map(|r| json!({"op": "superseded", "by": last[&r.dynamodb.keys]})).collect()
}
