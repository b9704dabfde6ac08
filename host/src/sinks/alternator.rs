//! `type: alternator`: the DynamoDB API (ScyllaDB Alternator, or DynamoDB itself), one node, a
//! list of nodes or the nodes `/localnodes` names (`eddy-sink-alternator`).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use eddy_record::{ChangeRecord, EventName};
use eddy_sink_alternator::AlternatorConfig;
use eddy_sink_api::{RetryPolicy, Sink, Timeouts};
use serde_json::{json, Value};

use super::{superseded, SinkSpec};
use crate::spec::{Inherited, Problem};

#[async_trait]
impl SinkSpec for AlternatorConfig {
    fn kind(&self) -> &'static str {
        "alternator"
    }

    fn problems(&self) -> Vec<Problem> {
        AlternatorConfig::problems(self).into_iter().map(|(key, message)| Problem::at(key, message)).collect()
    }

    /// The region defaults to the source's (Alternator signs with any; DynamoDB needs it).
    fn complete(&mut self, _base: &Path, inherited: &Inherited<'_>) {
        inherited.fill_region(&mut self.region);
    }

    async fn check_environment(&self, name: &str, timeouts: &Timeouts) -> anyhow::Result<()> {
        super::require_region(self.region.as_deref(), name, "to sign requests with", timeouts).await
    }

    async fn build(&self, retry: RetryPolicy, timeouts: &Timeouts) -> anyhow::Result<Arc<dyn Sink>> {
        use eddy_sink_alternator::nodes::Nodes;
        let urls = self.node_urls();
        let nodes = match (urls.as_slice(), &self.discovery) {
            // No endpoint key at all: AWS DynamoDB itself, said once at start.
            ([], None) => {
                let target = crate::aws::Target { region: self.region.as_deref(), endpoint: None };
                let client = crate::aws::json_client(eddy_aws_json::DYNAMODB, "dynamodb", &target, timeouts).await?;
                tracing::info!(
                    table = self.table,
                    region = self.region.as_deref().unwrap_or("from the AWS chain"),
                    "alternator sink: no endpoint, endpoints or discovery set: writing to AWS DynamoDB"
                );
                Nodes::single("aws:dynamodb", client)
            }
            // One node, whichever key named it.
            ([url], None) => {
                let target = crate::aws::Target { region: self.region.as_deref(), endpoint: Some(url) };
                let client = crate::aws::json_client(eddy_aws_json::DYNAMODB, "dynamodb", &target, timeouts).await?;
                Nodes::single(url, client)
            }
            _ => {
                let target = crate::aws::Target { region: self.region.as_deref(), endpoint: None };
                let (_, make) = crate::aws::json_clients(eddy_aws_json::DYNAMODB, &target, timeouts).await?;
                let nodes = Nodes::new(&urls, self.discovery.clone(), make).await.map_err(anyhow::Error::msg)?;
                tokio::spawn(Nodes::maintain(Arc::downgrade(&nodes)));
                nodes
            }
        };
        Ok(Arc::new(eddy_sink_alternator::AlternatorSink::new(nodes, self, retry)))
    }

    fn preview(&self, batch: &[&ChangeRecord]) -> Vec<Value> {
        let plan = eddy_sink_alternator::AlternatorSink::plan(batch);
        let mut out = superseded(batch);
        for (i, _) in &plan.requests {
            let record = batch[*i];
            out[*i] = match (record.event_name, &record.dynamodb.new_image) {
                (EventName::Remove, _) => {
                    json!({"TableName": self.table, "DeleteRequest": {"Key": record.dynamodb.keys}})
                }
                (_, image) => json!({"TableName": self.table, "PutRequest": {"Item": image}}),
            };
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
