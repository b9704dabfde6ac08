//! The `alternator` sink: replays changes through the DynamoDB API into ScyllaDB Alternator (or
//! DynamoDB itself).
//!
//! INSERT and MODIFY put the record's `NewImage`; REMOVE deletes its `Keys`. Writes go out as
//! `BatchWriteItem` requests of up to 25 operations (the API's limit). Because one request may not
//! hold two operations on one key, and the requests of one write run concurrently, a write first
//! keeps only the last operation per key: the final state is the same as applying them all in
//! order. `UnprocessedItems` are retried under the host's retry policy; the host builds the
//! client ([`eddy_aws_json::AwsJsonClient`]: SigV4 from the AWS chain, the pipeline's
//! timeouts, no retries of its own).

#![deny(missing_docs)]

pub mod nodes;
mod sink;

use serde::Deserialize;

pub use sink::{AlternatorSink, Plan, Request, THROTTLING_CODES};

/// `sinks.NAME` with `type: alternator`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlternatorConfig {
    /// The target table; it must exist, with the source's key schema.
    pub table: String,
    /// The endpoint URL, e.g. `http://scylla-node1:8000`. Without `endpoint`, `endpoints` and
    /// `discovery`, the sink writes to AWS DynamoDB of the region (and says so at start).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Alternator nodes, e.g. `[http://scylla-node1:8000, http://scylla-node2:8000]`: requests go
    /// round-robin over the live ones and fail over ([`nodes`]). A list of one node is used as
    /// that node; an empty list is a config error (never a silent fall-back to AWS).
    #[serde(default)]
    pub endpoints: Option<Vec<String>>,
    /// Find the nodes through Alternator's `GET /localnodes` ([`nodes::Discovery`]).
    #[serde(default)]
    pub discovery: Option<nodes::Discovery>,
    /// The region to sign requests for; default: the source's, else the AWS chain. Alternator
    /// accepts any.
    #[serde(default)]
    pub region: Option<String>,
    /// How many `BatchWriteItem` requests one write may have in flight. Default 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

/// `concurrency`'s default: `BatchWriteItem` requests one write may have in flight.
pub const DEFAULT_CONCURRENCY: usize = 8;

fn default_concurrency() -> usize {
    DEFAULT_CONCURRENCY
}

impl AlternatorConfig {
    /// The node URLs given, `endpoint` first, then `endpoints`, each once. Empty when neither key
    /// is set: then the sink writes to `discovery`'s nodes, or to AWS DynamoDB.
    pub fn node_urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = Vec::new();
        for url in self.endpoint.iter().chain(self.endpoints.iter().flatten()) {
            if !urls.contains(url) {
                urls.push(url.clone());
            }
        }
        urls
    }

    /// Whether the sink writes to AWS DynamoDB: no `endpoint`, `endpoints` or `discovery` key.
    pub fn writes_to_aws(&self) -> bool {
        self.endpoint.is_none() && self.endpoints.is_none() && self.discovery.is_none()
    }

    /// The options' problems a parser cannot see, as (key, message): an empty `endpoints` list
    /// (which once sent the writes to AWS), a URL that is not http(s), a concurrency of 0.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.endpoints.as_ref().is_some_and(Vec::is_empty) {
            problems.push((
                "endpoints",
                "is empty: list at least one node, or remove the key to write to AWS DynamoDB".to_owned(),
            ));
        }
        for url in self.node_urls() {
            let key = if self.endpoint.as_deref() == Some(url.as_str()) { "endpoint" } else { "endpoints" };
            match reqwest::Url::parse(&url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => problems.push((key, format!("{url:?} is not an http:// or https:// URL"))),
            }
        }
        if self.concurrency == 0 {
            problems.push(("concurrency", "must be at least 1".to_owned()));
        }
        problems
    }
}
