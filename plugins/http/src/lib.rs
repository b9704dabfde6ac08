//! The `http` sink: sends changes to an HTTP endpoint (a webhook), as a Lambda function calling
//! `fetch` or `requests.post` would, in batches.
//!
//! - **A request** carries up to `batch.max_records` changes and `batch.max_bytes` of body, in
//!   the order read, as a JSON array (`body: array`, default, `Content-Type: application/json`)
//!   or one JSON value a line (`body: ndjson`, `application/x-ndjson`); each value is the change
//!   in `format` (`record` or `item`, as the other forwarding sinks). Requests go one after the
//!   other, each once acknowledged, so a key's changes arrive in order.
//! - **Headers** (`headers: {Authorization: "Bearer ${TOKEN}"}`): `${VAR}` is replaced by the
//!   environment variable `VAR` when the sink is built (a missing one is an error naming it); the
//!   values are never logged or previewed.
//! - **Answers**: 2xx acknowledges the request's changes; 429, 5xx, timeouts and connection
//!   errors are retried under the pipeline's retry policy, waiting at least what `Retry-After`
//!   asks (in seconds, at most [`MAX_RETRY_AFTER`]); any other status refuses the request's
//!   changes for good: they go to the dead letter with the status and the start of the answer.

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use eddy_record::ChangeRecord;
use eddy_sink_api::forward::Format;
use eddy_sink_api::{Rejected, RetryPolicy, Sink, SinkError, Timeouts, WriteOutcome};
use serde::Deserialize;

/// `sinks.NAME` with `type: http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The endpoint, `http://` or `https://` (rustls).
    pub url: String,
    /// `POST` (default) or `PUT`.
    #[serde(default)]
    pub method: Method,
    /// Request headers; `${VAR}` in a value is the environment variable `VAR`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How many changes and bytes one request carries.
    #[serde(default)]
    pub batch: BatchLimits,
    /// `array` (default): a JSON array; `ndjson`: one JSON value a line.
    #[serde(default)]
    pub body: Body,
    /// Each change as `record` (default) or `item`.
    #[serde(default)]
    pub format: Format,
}

/// `method:`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Method {
    /// `POST`.
    #[default]
    #[serde(rename = "POST")]
    Post,
    /// `PUT`.
    #[serde(rename = "PUT")]
    Put,
}

/// `body:`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// A JSON array of the changes.
    #[default]
    Array,
    /// One change a line.
    Ndjson,
}

/// `batch: {max_records, max_bytes}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchLimits {
    /// The most changes a request carries. Default 100.
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// The most body bytes a request carries (a single larger change still goes alone). Default
    /// 1 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self { max_records: default_max_records(), max_bytes: default_max_bytes() }
    }
}

fn default_max_records() -> usize {
    100
}

fn default_max_bytes() -> usize {
    1 << 20
}

/// The longest wait a `Retry-After` may ask for before a retry.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl HttpConfig {
    /// The options' problems a parser cannot see, as (key, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => out.push(("url", format!("{:?} is not an http:// or https:// URL", eddy_sink_api::redact(&self.url)))),
        }
        if self.batch.max_records == 0 {
            out.push(("batch.max_records", "must be at least 1".to_owned()));
        }
        if self.batch.max_bytes == 0 {
            out.push(("batch.max_bytes", "must be at least 1".to_owned()));
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                out.push(("headers", format!("{name:?} is not a header name")));
            }
            if let Err(e) = variables(value) {
                out.push(("headers", format!("{name}: {e}")));
            }
        }
        out
    }

    /// The headers with `${VAR}` replaced from the environment.
    ///
    /// # Errors
    /// A missing variable or a value that is not a valid header value, naming the header (never
    /// its value).
    pub fn resolved_headers(&self) -> Result<reqwest::header::HeaderMap, String> {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, template) in &self.headers {
            let mut value = template.clone();
            for var in variables(template)? {
                let got = std::env::var(&var)
                    .map_err(|_| format!("header {name}: the environment variable {var} is not set"))?;
                value = value.replace(&format!("${{{var}}}"), &got);
            }
            let mut value = reqwest::header::HeaderValue::from_str(&value)
                .map_err(|_| format!("header {name}: its value is not a valid header value"))?;
            value.set_sensitive(true);
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name:?} is not a header name"))?;
            map.insert(name, value);
        }
        Ok(map)
    }
}

/// The `${VAR}` names in `template`.
fn variables(template: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| "a `${` without its `}`".to_owned())?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{name}}}` is not a variable name"));
        }
        out.push(name.to_owned());
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// Cuts `sizes` (the bodies' sizes, in order) into requests of at most `max_records` and
/// `max_bytes` (a single larger body goes alone), as index ranges.
pub fn chunks(sizes: &[usize], limits: BatchLimits) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == limits.max_records || bytes + size > limits.max_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// The body of one request holding `bodies`.
pub fn request_body(kind: Body, bodies: &[String]) -> String {
    match kind {
        Body::Array => format!("[{}]", bodies.join(",")),
        Body::Ndjson => bodies.iter().map(|b| format!("{b}\n")).collect(),
    }
}

/// The `http` sink.
pub struct HttpSink {
    client: reqwest::Client,
    config: HttpConfig,
    headers: reqwest::header::HeaderMap,
    retry: RetryPolicy,
}

/// What one attempt at a request came to.
enum Answer {
    Done,
    Refused(String),
}

impl HttpSink {
    /// The sink of `config` with the pipeline's `timeouts` and `retry` policy; nothing connects
    /// yet.
    ///
    /// # Errors
    /// A header whose variable is not set, or a client that cannot be built.
    pub fn new(config: &HttpConfig, timeouts: &Timeouts, retry: RetryPolicy) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { client, headers: config.resolved_headers()?, config: config.clone(), retry })
    }

    /// Sends one request, retrying 429, 5xx and failed connections; `Refused` for other statuses.
    async fn send(&self, body: String, throttled: &mut u32) -> Result<Answer, SinkError> {
        let content_type = match self.config.body {
            Body::Array => "application/json",
            Body::Ndjson => "application/x-ndjson",
        };
        let shown = eddy_sink_api::redact(&self.config.url);
        let mut attempt = 0u32;
        loop {
            let request = match self.config.method {
                Method::Post => self.client.post(&self.config.url),
                Method::Put => self.client.put(&self.config.url),
            };
            let sent = request
                .headers(self.headers.clone())
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.clone())
                .send()
                .await;
            let (error, wait_at_least) = match sent {
                Ok(answer) if answer.status().is_success() => return Ok(Answer::Done),
                Ok(answer) => {
                    let status = answer.status();
                    let retry_after = answer
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                    let text = answer.text().await.unwrap_or_default();
                    let text: String = text.chars().take(500).collect();
                    if status.as_u16() == 429 {
                        *throttled += 1;
                        (SinkError::Throttled(format!("{shown}: HTTP 429: {text}")), retry_after)
                    } else if status.is_server_error() {
                        (SinkError::Retryable(format!("{shown}: HTTP {}: {text}", status.as_u16())), retry_after)
                    } else {
                        return Ok(Answer::Refused(format!("{shown} answered HTTP {}: {text}", status.as_u16())));
                    }
                }
                Err(e) => (SinkError::Retryable(format!("{shown}: {e}")), None),
            };
            attempt += 1;
            if attempt >= self.retry.attempts.max(1) {
                return Err(error.tried(attempt));
            }
            let wait = self.retry.backoff.wait(attempt - 1).max(wait_at_least.unwrap_or_default());
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait]
impl Sink for HttpSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        let mut outcome = WriteOutcome::default();
        let bodies: Vec<String> = batch.iter().map(|r| self.config.format.body(r)).collect();
        let sizes: Vec<usize> = bodies.iter().map(|b| b.len() + 1).collect();
        for range in chunks(&sizes, self.config.batch) {
            let body = request_body(self.config.body, &bodies[range.clone()]);
            if let Answer::Refused(reason) = self.send(body, &mut outcome.throttled).await? {
                outcome.rejected.extend(range.map(|index| Rejected { index, reason: reason.clone() }));
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_hold_the_records_and_bytes_allowed_in_order() {
        let limits = BatchLimits { max_records: 3, max_bytes: 100 };
        assert_eq!(chunks(&[10; 7], limits), vec![0..3, 3..6, 6..7]);
        assert_eq!(chunks(&[60, 60, 200, 10], limits), vec![0..1, 1..2, 2..3, 3..4], "one over the bytes alone");
        assert!(chunks(&[], limits).is_empty());
        assert_eq!(request_body(Body::Array, &["1".into(), "{}".into()]), "[1,{}]");
        assert_eq!(request_body(Body::Ndjson, &["1".into(), "{}".into()]), "1\n{}\n");
    }

    #[test]
    fn header_variables_come_from_the_environment_and_missing_ones_are_named() {
        let config: HttpConfig = serde_json::from_value(serde_json::json!({
            "url": "http://127.0.0.1:1/hook",
            "headers": {"Authorization": "Bearer ${EDDY_TEST_HTTP_TOKEN}", "X-Static": "a"}
        }))
        .unwrap();
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        let e = config.resolved_headers().unwrap_err();
        assert_eq!(e, "header Authorization: the environment variable EDDY_TEST_HTTP_TOKEN is not set");
        std::env::set_var("EDDY_TEST_HTTP_TOKEN", "s3cret");
        let headers = config.resolved_headers().unwrap();
        assert_eq!(headers["authorization"], "Bearer s3cret");
        assert!(headers["authorization"].is_sensitive());
        let bad: HttpConfig =
            serde_json::from_value(serde_json::json!({"url": "ftp://x", "headers": {"A": "${}"}})).unwrap();
        let problems = bad.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
