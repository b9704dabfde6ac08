//! `type: http`: batches of changes sent to an HTTP endpoint (`eddy-sink-http`).

use std::sync::Arc;

use async_trait::async_trait;
use eddy_record::ChangeRecord;
use eddy_sink_api::{RetryPolicy, Sink, Timeouts};
use eddy_sink_http::{chunks, request_body, HttpConfig, HttpSink};
use serde_json::{json, Value};

use super::SinkSpec;
use crate::spec::Problem;

#[async_trait]
impl SinkSpec for HttpConfig {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn problems(&self) -> Vec<Problem> {
        HttpConfig::problems(self).into_iter().map(|(key, message)| Problem::at(key, message)).collect()
    }

    /// Every `${VAR}` of the headers is set.
    async fn check_environment(&self, name: &str, _timeouts: &Timeouts) -> anyhow::Result<()> {
        self.resolved_headers().map(|_| ()).map_err(|e| anyhow::anyhow!("sinks.{name}: {e}"))
    }

    async fn build(&self, retry: RetryPolicy, timeouts: &Timeouts) -> anyhow::Result<Arc<dyn Sink>> {
        Ok(Arc::new(HttpSink::new(self, timeouts, retry).map_err(anyhow::Error::msg)?))
    }

    /// For the first record of each request: `{"request": N, "url", "method", "headers": [names],
    /// "body"}`; for the others `{"request": N}` (header values are never shown).
    fn preview(&self, batch: &[&ChangeRecord]) -> Vec<Value> {
        let bodies: Vec<String> = batch.iter().map(|r| self.format.body(r)).collect();
        let sizes: Vec<usize> = bodies.iter().map(|b| b.len() + 1).collect();
        let mut out = vec![Value::Null; batch.len()];
        for (n, range) in chunks(&sizes, self.batch).into_iter().enumerate() {
            for i in range.clone() {
                out[i] = json!({"request": n});
            }
            let first = range.start;
            out[first] = json!({
                "request": n,
                "url": eddy_sink_api::redact(&self.url),
                "method": format!("{:?}", self.method).to_uppercase(),
                "headers": self.headers.keys().collect::<Vec<_>>(),
                "body": request_body(self.body, &bodies[range]),
            });
        }
        out
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
