//! The Rust twin of `examples/python/every-verdict`: each record names its verdict in its image's
//! `action` attribute (absent or `pass`, `drop`, `replace`, `route:NAME`, `fan-out`, `fail`);
//! `replace` adds `processed_by` (`config: {processed_by: NAME}`, default `rust`), `fan-out`
//! forwards two copies with `copy` 1 and 2.

use std::sync::OnceLock;

use eddy_guest::{Attribute, Batch, Change, Guest, Record, Replacement, Verdict};
use serde_json::{json, Value};

static PROCESSED_BY: OnceLock<String> = OnceLock::new();

fn action(record: &Record<'_>) -> String {
    match record.image().and_then(|i| i.get("action")) {
        Some(Attribute::S(s)) => s,
        _ => "pass".to_owned(),
    }
}

/// The change as a replacement, with `added` attributes (DynamoDB JSON) in its new image.
fn replacement(change: &Record<'_>, added: &[(&str, Value)]) -> Replacement {
    let mut r = change.to_replacement();
    if let Some(text) = &r.new_image {
        let mut image = eddy_guest::parse_image(text).expect("the host sends valid JSON");
        for (name, value) in added {
            image.insert((*name).to_owned(), value.clone());
        }
        r.new_image = Some(Value::Object(image).to_string());
    }
    r
}

struct EveryVerdict;

impl Guest for EveryVerdict {
    fn init(config: String) -> Result<(), String> {
        let config: Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        let by = match config.get("processed_by") {
            None => "rust".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(format!("processed_by must be a string, got {other}")),
        };
        PROCESSED_BY.set(by).map_err(|_| "init called twice".to_owned())
    }

    fn process(batch: &Batch, changes: Vec<Change>) -> Vec<Verdict> {
        let by = PROCESSED_BY.get().expect("init ran");
        eddy_guest::records(batch, &changes)
            .map(|change| match action(&change).as_str() {
                "pass" => Verdict::Pass,
                "drop" => Verdict::Drop,
                "replace" => Verdict::Replace(replacement(&change, &[("processed_by", json!({"S": by}))])),
                "fan-out" => Verdict::FanOut(
                    (1..=2)
                        .map(|n| {
                            let mut copy = replacement(&change, &[("copy", json!({"N": n.to_string()}))]);
                            copy.event_id = format!("{}-{n}", change.event_id());
                            copy
                        })
                        .collect(),
                ),
                "fail" => Verdict::Fail("asked to fail (action 'fail')".to_owned()),
                other => match other.strip_prefix("route:") {
                    Some(sink) => Verdict::Route(vec![sink.to_owned()]),
                    None => Verdict::Pass,
                },
            })
            .collect()
    }
}

eddy_guest::export!(EveryVerdict);
