//! `type: sns`: each change published to an Amazon SNS topic (`eddy-sink-sns`).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use eddy_record::ChangeRecord;
use eddy_sink_api::forward::{deduplication_id, group_id};
use eddy_sink_api::{RetryPolicy, Sink, Timeouts};
use eddy_sink_sns::{attributes, SnsConfig, SnsSink};
use serde_json::{json, Map, Value};

use super::SinkSpec;
use crate::spec::{Inherited, Problem};

#[async_trait]
impl SinkSpec for SnsConfig {
    fn kind(&self) -> &'static str {
        "sns"
    }

    fn problems(&self) -> Vec<Problem> {
        SnsConfig::problems(self).into_iter().map(|(key, message)| Problem::at(key, message)).collect()
    }

    /// The endpoint and region default to the source's (one emulator serves both).
    fn complete(&mut self, _base: &Path, inherited: &Inherited<'_>) {
        inherited.fill(&mut self.endpoint, &mut self.region);
    }

    async fn check_environment(&self, name: &str, timeouts: &Timeouts) -> anyhow::Result<()> {
        super::require_region(self.region.as_deref(), name, "for the topic", timeouts).await
    }

    async fn build(&self, retry: RetryPolicy, timeouts: &Timeouts) -> anyhow::Result<Arc<dyn Sink>> {
        let target = crate::aws::Target { region: self.region.as_deref(), endpoint: self.endpoint.as_deref() };
        let client = aws_sdk_sns::Client::new(&crate::aws::sdk_config(&target, timeouts).await);
        Ok(Arc::new(SnsSink::new(client, self.clone(), retry)))
    }

    /// `{"TopicArn", "Message", "MessageAttributes"}`, with `MessageGroupId` and
    /// `MessageDeduplicationId` for a FIFO topic.
    fn preview(&self, batch: &[&ChangeRecord]) -> Vec<Value> {
        batch
            .iter()
            .map(|r| {
                let attrs: Map<String, Value> = attributes(r)
                    .0
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), json!({"DataType": "String", "StringValue": value})))
                    .collect();
                let mut entry =
                    json!({"TopicArn": self.topic_arn, "Message": self.format.body(r), "MessageAttributes": attrs});
                if self.fifo() {
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
