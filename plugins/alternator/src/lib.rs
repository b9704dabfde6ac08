//! The `alternator` sink: replays changes through the DynamoDB API into ScyllaDB Alternator (or
//! DynamoDB itself).
//!
//! INSERT and MODIFY put the record's `NewImage`; REMOVE deletes its `Keys`. Writes go out as
//! `BatchWriteItem` requests of up to 25 operations (the API's limit). Because one request may not
//! hold two operations on one key, and the requests of one write run concurrently, a write first
//! keeps only the last operation per key: the final state is the same as applying them all in
//! order. `UnprocessedItems` are retried under the host's retry policy; the host builds the
//! client ([`eddy_sink_api::aws_json::AwsJsonClient`]: SigV4 from the AWS chain, the pipeline's
//! timeouts, no retries of its own).

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
    /// The endpoint URL, e.g. `http://scylla-node1:8000`; default: AWS DynamoDB of the region.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Several Alternator nodes, e.g. `[http://scylla-node1:8000, http://scylla-node2:8000]`:
    /// requests go round-robin over the live ones and fail over ([`nodes`]).
    #[serde(default)]
    pub endpoints: Vec<String>,
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

fn default_concurrency() -> usize {
    8
}
