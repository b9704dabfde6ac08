//! The `cratedb` sink: writes changes into a CrateDB table over HTTP (`POST /_sql` with
//! `bulk_args`), in the table layout of commons-codec / cratedb-toolkit's DynamoDB CDC relay, so
//! existing tables keep working. See [`translate`] for the layout and where eddy differs from the
//! reference.

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
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

fn default_batch_size() -> usize {
    1000
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("invalid duration {text:?}; write e.g. 500ms, 30s")))
}

fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = text[..split].parse().ok()?;
    match &text[split..] {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        _ => None,
    }
}
