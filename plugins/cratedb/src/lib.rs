//! The `cratedb` sink: writes changes into a CrateDB table over HTTP (`POST /_sql` with
//! `bulk_args`), in the table layout of commons-codec / cratedb-toolkit's DynamoDB CDC relay, so
//! existing tables keep working. See [`translate`] for the layout and where eddy differs from the
//! reference.

#![deny(missing_docs)]

mod sink;
pub mod translate;

use std::time::Duration;

use serde::Deserialize;

pub use sink::{CrateDbSink, Plan, Statements};

/// `sinks.NAME` with `type: cratedb`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrateDbConfig {
    /// The HTTP endpoint, e.g. `http://localhost:4200` or `https://user@cluster.cratedb.net:4200`.
    /// Credentials come from `CRATEDB_USERNAME`/`CRATEDB_PASSWORD`, else from the URL's user
    /// info; they are never logged.
    pub url: String,
    /// The table, schema-qualified (`doc.pets`).
    pub table: String,
    /// The most rows one request carries. Default 1000.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Create the table (`CREATE TABLE IF NOT EXISTS`, commons-codec's DDL) from the key
    /// attributes of the first record. Default false.
    #[serde(default)]
    pub create_table: bool,
    /// How long one request may take. Default 30s.
    #[serde(default = "default_timeout", deserialize_with = "eddy_sink_api::duration::deserialize")]
    pub timeout: Duration,
}

/// `batch_size`'s default: rows per bulk request.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// `timeout`'s default: how long one request may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
