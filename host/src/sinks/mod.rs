//! The sink registry: each sink type in a file of its own (`alternator`, `cratedb`, the
//! forwarding sinks `sqs`, `sns`, `eventbridge`, `kinesis` and `http`, `basic` for file, stdout
//! and null) that reads its section of the pipeline file, checks it, builds the
//! sink and previews its writes ([`SinkSpec`]); [`TYPES`] maps each `type:` name to it. Adding a
//! sink is a crate under `plugins/`, a file here, and a line in [`TYPES`].

mod alternator;
mod basic;
mod cratedb;
mod eventbridge;
mod http;
mod kinesis;
mod sns;
mod sqs;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use eddy_record::{ChangeRecord, Item};
use eddy_sink_api::{RetryPolicy, Sink, Timeouts};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::spec::{Inherited, Malformed, Problem};

/// A sink's section of the pipeline file, read: what eddy needs to check it, build it and
/// preview it.
#[async_trait]
pub trait SinkSpec: std::fmt::Debug + Send + Sync + 'static {
    /// The type's name, as written in the file (`alternator`, `cratedb`, ...): also the `api`
    /// label of its throttling count.
    fn kind(&self) -> &'static str;

    /// What the section's parser cannot see (ranges, URLs, keys that exclude each other), below
    /// the section.
    fn problems(&self) -> Vec<Problem> {
        Vec::new()
    }

    /// Resolves relative paths against `base` (the pipeline file's folder) and fills what the
    /// sink inherits from the source when its section does not say (an Alternator sink's region).
    fn complete(&mut self, base: &Path, inherited: &Inherited<'_>) {
        let _ = (base, inherited);
    }

    /// The file the sink writes, if it writes one (two writers of one file are refused).
    fn file(&self) -> Option<&Path> {
        None
    }

    /// What `eddy validate` and `eddy run` check of this machine before anything is created,
    /// without the network: e.g. a region to sign with. `name` is the sink's name, for messages.
    ///
    /// # Errors
    /// The problem, naming the key.
    async fn check_environment(&self, name: &str, timeouts: &Timeouts) -> anyhow::Result<()> {
        let _ = (name, timeouts);
        Ok(())
    }

    /// Builds the sink with the pipeline's `retry` policy for each request and its `timeouts`;
    /// nothing connects yet.
    ///
    /// # Errors
    /// When a file cannot be opened, a URL is invalid, or no region or credentials are found.
    async fn build(&self, retry: RetryPolicy, timeouts: &Timeouts) -> anyhow::Result<Arc<dyn Sink>>;

    /// `eddy sink preview`: for each record of `batch` (one write), what the sink would do with
    /// it, as one JSON value, without connecting to anything (see [`preview`]).
    fn preview(&self, batch: &[&ChangeRecord]) -> Vec<Value>;

    /// The section as its type, for the few callers that need one sink type's options.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A sink's section, read and completed.
pub type SinkConfig = Arc<dyn SinkSpec>;

/// The sink types: each `type:` name and how its section is read.
pub const TYPES: &[(&str, crate::spec::Parse<Box<dyn SinkSpec>>)] = &[
    ("alternator", parse::<eddy_sink_alternator::AlternatorConfig>),
    ("cratedb", parse::<eddy_sink_cratedb::CrateDbConfig>),
    ("sqs", parse::<eddy_sink_sqs::SqsConfig>),
    ("sns", parse::<eddy_sink_sns::SnsConfig>),
    ("eventbridge", parse::<eddy_sink_eventbridge::EventBridgeConfig>),
    ("kinesis", parse::<eddy_sink_kinesis::KinesisSinkConfig>),
    ("http", parse::<eddy_sink_http::HttpConfig>),
    ("file", parse::<basic::FileConfig>),
    ("stdout", parse::<basic::StdoutConfig>),
    ("null", parse::<basic::NullConfig>),
];

/// `check_environment` of a sink that signs AWS requests: a region must be found (the sink's
/// `region`, else the AWS chain). `what` says what it is for, e.g. `to sign requests with`.
///
/// # Errors
/// No region, with the keys that would give one.
async fn require_region(region: Option<&str>, name: &str, what: &str, timeouts: &Timeouts) -> anyhow::Result<()> {
    let target = crate::aws::Target { region, endpoint: None };
    if crate::aws::sdk_config(&target, timeouts).await.region().is_none() {
        anyhow::bail!("sinks.{name}: no region {what}: set sinks.{name}.region (or source.region, or AWS_REGION)");
    }
    Ok(())
}

/// Reads a section of sink type `T`.
fn parse<T: SinkSpec + DeserializeOwned>(value: serde_norway::Value) -> Result<Box<dyn SinkSpec>, Malformed> {
    crate::spec::deserialize::<T>(value).map(|spec| Box::new(spec) as Box<dyn SinkSpec>)
}

/// `eddy sink preview`: for each record of `batch` (one write), what `sink` would do with it, as
/// one JSON value, without connecting to anything. The sink's own planning is used, so a change
/// that a later change of the same key replaces in the batch shows as
/// `{"op": "superseded", "by": J}` (J: the 0-based index of that later change).
///
/// - cratedb: `{"op": "upsert" | "delete", "row": {"pk", "data", "aux"}, "stmt", "args"}` (a
///   delete's row holds `pk` only), or `{"op": "reject", "reason"}`;
/// - alternator: `{"TableName", "PutRequest": {"Item"}}` or `{"TableName", "DeleteRequest":
///   {"Key"}}` in DynamoDB JSON, or `{"op": "reject", "reason"}`;
/// - sqs: `{"QueueUrl", "MessageBody"}`, with `MessageGroupId` and `MessageDeduplicationId` for a
///   FIFO queue;
/// - kinesis: `{"Stream", "PartitionKey", "Data"}`;
/// - sns: `{"TopicArn", "Message", "MessageAttributes"}`, with the FIFO ids for a FIFO topic;
/// - eventbridge: the `PutEvents` entry (`Source`, `DetailType`, `Detail`, `EventBusName`), or
///   `{"op": "reject", "reason"}`;
/// - http: `{"request": N, "url", "method", "headers": [names], "body"}` on each request's first
///   record, `{"request": N}` on the others;
/// - file, stdout, null: the record as they would store it.
pub fn preview(sink: &dyn SinkSpec, batch: &[&ChangeRecord]) -> Vec<Value> {
    sink.preview(batch)
}

/// For each record, `{"op": "superseded", "by": J}` naming the last change of its key; the
/// entries of the changes that are kept are overwritten by the caller.
fn superseded(batch: &[&ChangeRecord]) -> Vec<Value> {
    let mut last: HashMap<&Item, usize> = HashMap::with_capacity(batch.len());
    for (i, r) in batch.iter().enumerate() {
        last.insert(&r.dynamodb.keys, i);
    }
    batch.iter().map(|r| json!({"op": "superseded", "by": last[&r.dynamodb.keys]})).collect()
}
