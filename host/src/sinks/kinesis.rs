//! `type: kinesis`: each change forwarded to a Kinesis data stream (`eddy-sink-kinesis`).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use eddy_record::ChangeRecord;
use eddy_sink_api::{RetryPolicy, Sink, Timeouts};
use eddy_sink_kinesis::{partition_key, KinesisSink, KinesisSinkConfig};
use serde_json::{json, Value};

use super::SinkSpec;
use crate::spec::{Inherited, Problem};

#[async_trait]
impl SinkSpec for KinesisSinkConfig {
    fn kind(&self) -> &'static str {
        "kinesis"
    }

    fn problems(&self) -> Vec<Problem> {
        KinesisSinkConfig::problems(self).into_iter().map(|(key, message)| Problem::at(key, message)).collect()
    }

    /// The endpoint and region default to the source's (one emulator serves both).
    fn complete(&mut self, _base: &Path, inherited: &Inherited<'_>) {
        inherited.fill(&mut self.endpoint, &mut self.region);
    }

    async fn check_environment(&self, name: &str, timeouts: &Timeouts) -> anyhow::Result<()> {
        super::require_region(self.region.as_deref(), name, "for the stream", timeouts).await
    }

    async fn build(&self, retry: RetryPolicy, timeouts: &Timeouts) -> anyhow::Result<Arc<dyn Sink>> {
        let target = crate::aws::Target { region: self.region.as_deref(), endpoint: self.endpoint.as_deref() };
        let client = aws_sdk_kinesis::Client::new(&crate::aws::sdk_config(&target, timeouts).await);
        Ok(Arc::new(KinesisSink::new(client, self.clone(), retry)))
    }

    /// `{"Stream", "PartitionKey", "Data"}`: each record of the `PutRecords` request.
    fn preview(&self, batch: &[&ChangeRecord]) -> Vec<Value> {
        batch
            .iter()
            .map(|r| json!({"Stream": self.stream(), "PartitionKey": partition_key(r), "Data": self.format.body(r)}))
            .collect()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
