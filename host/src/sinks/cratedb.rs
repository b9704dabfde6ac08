//! `type: cratedb`: CrateDB over HTTP `/_sql`, in commons-codec's table layout
//! (`eddy-sink-cratedb`).

use std::sync::Arc;

use async_trait::async_trait;
use eddy_record::ChangeRecord;
use eddy_sink_api::{RetryPolicy, Sink, Timeouts};
use eddy_sink_cratedb::CrateDbConfig;
use serde_json::{json, Value};

use super::{superseded, SinkSpec};
use crate::spec::Problem;

#[async_trait]
impl SinkSpec for CrateDbConfig {
    fn kind(&self) -> &'static str {
        "cratedb"
    }

    /// The URL and options, checked as the sink checks them when it is built.
    fn problems(&self) -> Vec<Problem> {
        match eddy_sink_cratedb::CrateDbSink::new(self, &Timeouts::default(), RetryPolicy::default()) {
            Ok(_) => Vec::new(),
            Err(e) => vec![Problem::at("url", e)],
        }
    }

    async fn build(&self, retry: RetryPolicy, timeouts: &Timeouts) -> anyhow::Result<Arc<dyn Sink>> {
        Ok(Arc::new(eddy_sink_cratedb::CrateDbSink::new(self, timeouts, retry).map_err(anyhow::Error::msg)?))
    }

    fn preview(&self, batch: &[&ChangeRecord]) -> Vec<Value> {
        let plan = eddy_sink_cratedb::CrateDbSink::plan(batch);
        let statements = eddy_sink_cratedb::Statements::new(&self.table);
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

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
