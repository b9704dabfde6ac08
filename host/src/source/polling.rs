//! What both stream sources (`dynamodb`, `kinesis`) share in their sections: where a shard
//! without a checkpoint starts, what trimmed data leads to, and the polling keys, each default
//! and minimum declared once here.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;

use crate::spec::{at_least, Problem};

/// The defaults of the polling keys (README's key table shows the same; a test compares them).
pub mod defaults {
    use std::time::Duration;

    /// `poll_interval` of a DynamoDB stream.
    pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
    /// `max_records_per_poll`: GetRecords' `Limit`.
    pub const MAX_RECORDS_PER_POLL: u32 = 1000;
    /// `shard_discovery_interval`.
    pub const SHARD_DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);
    /// `max_consecutive_errors`.
    pub const MAX_CONSECUTIVE_ERRORS: u32 = 20;
    /// `parallelization_factor`.
    pub const PARALLELIZATION_FACTOR: u32 = 1;
    /// `stall_after`.
    pub const STALL_AFTER: Duration = Duration::from_secs(300);
    /// `max_inflight_bytes`: 256 MiB.
    pub const MAX_INFLIGHT_BYTES: u64 = 256 << 20;

    pub(crate) fn poll_interval() -> Duration {
        POLL_INTERVAL
    }
    pub(crate) fn max_records_per_poll() -> u32 {
        MAX_RECORDS_PER_POLL
    }
    pub(crate) fn shard_discovery_interval() -> Duration {
        SHARD_DISCOVERY_INTERVAL
    }
    pub(crate) fn max_consecutive_errors() -> u32 {
        MAX_CONSECUTIVE_ERRORS
    }
    pub(crate) fn parallelization_factor() -> u32 {
        PARALLELIZATION_FACTOR
    }
    pub(crate) fn stall_after() -> Duration {
        STALL_AFTER
    }
    pub(crate) fn max_inflight_bytes() -> u64 {
        MAX_INFLIGHT_BYTES
    }
}

/// The smallest values eddy accepts, so that no setting turns an idle shard into a busy loop
/// against the API (a `0s` poll interval would send hundreds of requests a second).
pub mod minimums {
    use std::time::Duration;
    /// `source.poll_interval` of a DynamoDB stream (Lambda polls an idle shard 4 times a second).
    pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
    /// `source.shard_discovery_interval`.
    pub const SHARD_DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);
}

/// The polling keys both stream sources have, with the same meaning.
#[derive(Debug, Clone)]
pub struct StreamPolling {
    /// `poll_interval`.
    pub poll_interval: Duration,
    /// `max_records_per_poll`.
    pub max_records_per_poll: u32,
    /// `max_consecutive_errors`.
    pub max_consecutive_errors: u32,
    /// `on_trimmed`.
    pub on_trimmed: OnTrimmed,
    /// `max_records_per_second`.
    pub max_records_per_second: Option<NonZeroU32>,
    /// `maximum_record_age`.
    pub maximum_record_age: Option<Duration>,
    /// `parallelization_factor`.
    pub parallelization_factor: u32,
    /// `shard_discovery_interval`.
    pub shard_discovery_interval: Duration,
    /// `stall_after`.
    pub stall_after: Duration,
    /// `max_inflight_bytes`.
    pub max_inflight_bytes: u64,
}

impl StreamPolling {
    /// The problems of the keys both stream sources share (besides `poll_interval` and
    /// `max_records_per_poll`, whose limits differ).
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.max_consecutive_errors == 0 {
            out.push(Problem::at("max_consecutive_errors", "must be at least 1"));
        }
        out.extend(at_least(
            "shard_discovery_interval",
            self.shard_discovery_interval,
            minimums::SHARD_DISCOVERY_INTERVAL,
        ));
        if let Some(age) = self.maximum_record_age {
            out.extend(at_least("maximum_record_age", age, Duration::from_secs(1)));
        }
        out.extend(at_least("stall_after", self.stall_after, Duration::from_secs(1)));
        if self.max_inflight_bytes < 1 << 20 {
            out.push(Problem::at("max_inflight_bytes", "must be at least 1MiB"));
        }
        if !(1..=10).contains(&self.parallelization_factor) {
            out.push(Problem::at(
                "parallelization_factor",
                "must be between 1 and 10 (as Lambda's ParallelizationFactor)",
            ));
        }
        out
    }
}

/// `source.start`: where a shard without a checkpoint starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record still in the shard (`TRIM_HORIZON`). Default.
    #[default]
    TrimHorizon,
    /// Only records written after eddy first starts (`LATEST`) in the shards open at that time;
    /// shards that appear later start at their beginning, so no change is missed.
    Latest,
    /// `{after_sequence: "N"}`: after the record with this sequence number.
    AfterSequence(String),
    /// `{at_sequence: "N"}`: at the record with this sequence number.
    AtSequence(String),
    /// `{at_timestamp: "2026-11-23T10:00:00Z"}` (RFC 3339, UTC): at the first record that
    /// arrived at or after this time, in epoch milliseconds. Kinesis only (`AT_TIMESTAMP`).
    AtTimestamp(i64),
}

impl<'de> Deserialize<'de> for StartPosition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The names are the YAML keys.
        #[allow(clippy::enum_variant_names)]
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case", deny_unknown_fields)]
        enum At {
            AfterSequence(String),
            AtSequence(String),
            AtTimestamp(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            At(At),
        }
        let err = || {
            serde::de::Error::custom(
                "expected trim_horizon, latest, {after_sequence: \"...\"}, {at_sequence: \"...\"} or \
                 {at_timestamp: \"2026-11-23T10:00:00Z\"}",
            )
        };
        match Raw::deserialize(d).map_err(|_| err())? {
            Raw::Name(n) if n == "trim_horizon" => Ok(Self::TrimHorizon),
            Raw::Name(n) if n == "latest" => Ok(Self::Latest),
            Raw::Name(_) => Err(err()),
            Raw::At(At::AfterSequence(s)) => Ok(Self::AfterSequence(s)),
            Raw::At(At::AtSequence(s)) => Ok(Self::AtSequence(s)),
            Raw::At(At::AtTimestamp(t)) => {
                let at = humantime::parse_rfc3339_weak(&t).map_err(|e| {
                    serde::de::Error::custom(format!(
                        "at_timestamp {t:?} is not an RFC 3339 time in UTC such as 2026-11-23T10:00:00Z: {e}"
                    ))
                })?;
                let millis = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
                Ok(Self::AtTimestamp(millis))
            }
        }
    }
}

/// `source.on_trimmed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTrimmed {
    /// Stop with an error naming the shard and the gap.
    #[default]
    Fail,
    /// Continue from the trim horizon and count the loss.
    Skip,
}
