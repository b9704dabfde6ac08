//! `type: sqs`: each change forwarded to an Amazon SQS queue (`eddy-sink-sqs`).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use eddy_record::ChangeRecord;
use eddy_sink_api::forward::{deduplication_id, group_id};
use eddy_sink_api::{RetryPolicy, Sink, Timeouts};
use eddy_sink_sqs::{SqsConfig, SqsSink};
use serde_json::{json, Value};

use super::SinkSpec;
use crate::spec::{Inherited, Problem};

#[async_trait]
impl SinkSpec for SqsConfig {
    fn kind(&self) -> &'static str {
        "sqs"
    }

    fn problems(&self) -> Vec<Problem> {
        SqsConfig::problems(self).into_iter().map(|(key, message)| Problem::at(key, message)).collect()
    }

    /// The endpoint and region default to the source's (one emulator serves both).
    fn complete(&mut self, _base: &Path, inherited: &Inherited<'_>) {
        inherited.fill(&mut self.endpoint, &mut self.region);
    }

    async fn check_environment(&self, name: &str, timeouts: &Timeouts) -> anyhow::Result<()> {
        super::require_region(self.region.as_deref(), name, "for the queue", timeouts).await
    }

    async fn build(&self, retry: RetryPolicy, timeouts: &Timeouts) -> anyhow::Result<Arc<dyn Sink>> {
        let target = crate::aws::Target { region: self.region.as_deref(), endpoint: self.endpoint.as_deref() };
        let client = aws_sdk_sqs::Client::new(&crate::aws::sdk_config(&target, timeouts).await);
        Ok(Arc::new(SqsSink::new(client, self.clone(), retry)))
    }

    /// `{"QueueUrl", "MessageBody"}` (the queue as configured), with `MessageGroupId` and
    /// `MessageDeduplicationId` for a queue whose name ends in `.fifo`.
    fn preview(&self, batch: &[&ChangeRecord]) -> Vec<Value> {
        batch
            .iter()
            .map(|r| {
                let mut entry = json!({"QueueUrl": self.queue, "MessageBody": self.format.body(r)});
                if self.fifo_by_name() {
                    entry["MessageGroupId"] = json!(group_id(&r.dynamodb.keys));
                    entry["MessageDeduplicationId"] = json!(deduplication_id(r));
                }
                entry
            })
            .collect()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
