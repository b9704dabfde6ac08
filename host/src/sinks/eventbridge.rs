//! `type: eventbridge`: each change forwarded to an EventBridge event bus (`eddy-sink-eventbridge`).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use eddy_record::ChangeRecord;
use eddy_sink_api::{RetryPolicy, Sink, Timeouts};
use eddy_sink_eventbridge::{EventBridgeConfig, EventBridgeSink};
use serde_json::{json, Value};

use super::SinkSpec;
use crate::spec::{Inherited, Problem};

#[async_trait]
impl SinkSpec for EventBridgeConfig {
    fn kind(&self) -> &'static str {
        "eventbridge"
    }

    fn problems(&self) -> Vec<Problem> {
        EventBridgeConfig::problems(self).into_iter().map(|(key, message)| Problem::at(key, message)).collect()
    }

    /// The endpoint and region default to the source's (one emulator serves both).
    fn complete(&mut self, _base: &Path, inherited: &Inherited<'_>) {
        inherited.fill(&mut self.endpoint, &mut self.region);
    }

    async fn check_environment(&self, name: &str, timeouts: &Timeouts) -> anyhow::Result<()> {
        super::require_region(self.region.as_deref(), name, "for the event bus", timeouts).await
    }

    async fn build(&self, retry: RetryPolicy, timeouts: &Timeouts) -> anyhow::Result<Arc<dyn Sink>> {
        let target = crate::aws::Target { region: self.region.as_deref(), endpoint: self.endpoint.as_deref() };
        let client = crate::aws::json_client(eddy_aws_json::EVENTBRIDGE, "events", &target, timeouts).await?;
        Ok(Arc::new(EventBridgeSink::new(client, self.clone(), retry)))
    }

    /// Each record's `PutEvents` entry, or `{"op": "reject", "reason"}`.
    fn preview(&self, batch: &[&ChangeRecord]) -> Vec<Value> {
        batch
            .iter()
            .map(|r| match self.entry(r) {
                Ok((entry, _)) => entry,
                Err(reason) => json!({"op": "reject", "reason": reason}),
            })
            .collect()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
