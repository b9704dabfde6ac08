//! Every verdict kind end to end, from a Rust component and from a Python one (componentize-py):
//! each record names its verdict in its `action` attribute, and the sinks and the dead letter get
//! exactly what the verdicts say, in shard order.

use std::path::Path;
use std::time::Duration;

use eddy_e2e::process::{js_component, python_component, test_component, Eddy};
use serde_json::{json, Value};

const ACTIONS: [Option<&str>; 7] =
    [None, Some("pass"), Some("drop"), Some("replace"), Some("route:side"), Some("fan-out"), Some("fail")];
const RECORDS: usize = 70;

fn action(i: usize) -> Option<&'static str> {
    ACTIONS[i % ACTIONS.len()]
}

fn record(i: usize) -> Value {
    let mut image = json!({"pk": {"S": format!("pet-{i}")}, "name": {"S": format!("Rex {i}")}});
    if let Some(a) = action(i) {
        image["action"] = json!({"S": a});
    }
    json!({
        "eventID": format!("e{i}"), "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": {"S": format!("pet-{i}")}}, "NewImage": image,
            "SequenceNumber": format!("{}", 1000 + i), "SizeBytes": 80, "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

fn lines(path: &Path) -> Vec<Value> {
    eddy_e2e::complete_lines(path).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// What a sink should hold: (event id, `processed_by`, `copy`) per record, in order.
fn expected(with_routed: bool, processed_by: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let mut out = Vec::new();
    for i in 0..RECORDS {
        let id = format!("e{i}");
        match action(i) {
            None | Some("pass") => out.push((id, None, None)),
            Some("replace") => out.push((id, Some(processed_by.to_owned()), None)),
            Some("route:side") if with_routed => out.push((id, None, None)),
            Some("fan-out") => {
                out.push((format!("{id}-1"), None, Some("1".to_owned())));
                out.push((format!("{id}-2"), None, Some("2".to_owned())));
            }
            _ => {}
        }
    }
    out
}

fn got(path: &Path) -> Vec<(String, Option<String>, Option<String>)> {
    lines(path)
        .iter()
        .map(|r| {
            let image = &r["dynamodb"]["NewImage"];
            (
                r["eventID"].as_str().unwrap().to_owned(),
                image["processed_by"]["S"].as_str().map(str::to_owned),
                image["copy"]["N"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn every_verdict(wasm: &Path, processed_by: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input: Vec<String> = (0..RECORDS).map(|i| record(i).to_string()).collect();
    std::fs::write(dir.path().join("in.jsonl"), input.join("\n") + "\n").unwrap();
    let config = format!(
        "source: {{type: file, path: in.jsonl, max_records_per_poll: 20}}
processors:
  p: {{wasm: {wasm}, config: {{processed_by: {processed_by}}}}}
sinks:
  main: {{type: file, path: main.jsonl}}
  side: {{type: file, path: side.jsonl}}
routes:
  - {{name: r, processors: [p], sinks: [main, side]}}
dead_letter: {{type: file, path: dead.jsonl}}
",
        wasm = wasm.display()
    );
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, config).unwrap();
    let mut eddy = Eddy::start(&path);
    let status = eddy.wait(Duration::from_secs(300));
    assert!(status.success(), "{processed_by}: {}", eddy.log());

    assert_eq!(got(&dir.path().join("main.jsonl")), expected(false, processed_by), "{processed_by}: main");
    assert_eq!(got(&dir.path().join("side.jsonl")), expected(true, processed_by), "{processed_by}: side");
    let dead = lines(&dir.path().join("dead.jsonl"));
    let failed: Vec<String> =
        (0..RECORDS).filter(|i| action(*i) == Some("fail")).map(|i| format!("{}", 1000 + i)).collect();
    let dead_seqs: Vec<String> = dead.iter().map(|d| d["sequence_number"].as_str().unwrap().to_owned()).collect();
    assert_eq!(dead_seqs, failed, "{processed_by}: exactly the fail records are dead-lettered");
    for d in &dead {
        assert_eq!(d["error"], "fail verdict: asked to fail (action 'fail')", "{processed_by}: {d}");
        assert_eq!(d["record"]["dynamodb"]["NewImage"]["action"]["S"], "fail", "{processed_by}: the full record");
    }
}

#[test]
fn every_verdict_from_a_rust_component() {
    every_verdict(&test_component("every_verdict"), "rust");
}

#[test]
fn every_verdict_from_a_python_component() {
    every_verdict(&python_component("every-verdict"), "python");
}

#[test]
fn every_verdict_from_a_javascript_component() {
    every_verdict(&js_component("every-verdict"), "js");
}
