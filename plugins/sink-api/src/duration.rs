//! Durations in sink configs: `500ms`, `30s`, `1m` (the units the pipeline YAML uses).

use std::time::Duration;

use serde::Deserialize;

/// Deserializes a duration written as a whole number and a unit (`ms`, `s` or `m`), for
/// `#[serde(deserialize_with = "eddy_sink_api::duration::deserialize")]`.
///
/// # Errors
/// Any other text, with the expected form in the message.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).ok_or_else(|| serde::de::Error::custom(format!("invalid duration {text:?}; write e.g. 500ms, 30s")))
}

/// `500ms`, `30s`, `1m`; `None` for anything else.
pub fn parse(text: &str) -> Option<Duration> {
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
