//! Defects found by trying to break eddy as a hostile user would (issue 10), each reproduced end
//! to end against the real binary: bad records, bad configs, hanging servers, a flood of
//! connections.

use std::path::Path;
use std::time::Duration;

use eddy_e2e::process::{eddy, Eddy};
use serde_json::{json, Value};

fn record(i: usize) -> Value {
    json!({
        "eventID": format!("e{i}"), "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": {"S": format!("pet-{i}")}}, "NewImage": {"pk": {"S": format!("pet-{i}")}},
            "SequenceNumber": format!("{}", 1000 + i), "SizeBytes": 20, "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: torn line {l:?}: {e}", path.display())))
        .collect()
}

/// A file-source pipeline in `dir` reading `input` into a file sink, with `extra` YAML appended.
fn file_pipeline(dir: &Path, input: &Path, poll: u32, extra: &str) -> std::path::PathBuf {
    let config = dir.join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "source: {{type: file, path: {}, max_records_per_poll: {poll}}}\n\
             checkpoints: {{type: local, path: state}}\n\
             sinks:\n  out: {{type: file, path: out.jsonl}}\n\
             routes:\n  - name: all\n    sinks: [out]\n\
             dead_letter: {{type: file, path: dead.jsonl}}\n{extra}",
            input.display()
        ),
    )
    .unwrap();
    config
}

/// Defects 6 and 11: every line read reaches the sink or the dead letter, whatever the batch
/// looks like: a batch of undecodable lines only (no sequence number to checkpoint), and a line
/// that is not UTF-8 (named by its line number; the rest of the file flows).
#[test]
fn every_line_of_a_file_reaches_the_sink_or_the_dead_letter() {
    for poll in [1, 2, 1000] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        let mut bytes = Vec::new();
        for i in 0..3 {
            bytes.extend_from_slice(record(i).to_string().as_bytes());
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(b"{\"eventName\": \"INSERT\", \"bad\": \"\xff\xfe\"}\n");
        bytes.extend_from_slice(b"not json at all\n\n");
        bytes.extend_from_slice(record(3).to_string().as_bytes());
        bytes.extend_from_slice(b"\n{\"truncated\": \n[1, 2]\n");
        std::fs::write(&input, bytes).unwrap();
        let config = file_pipeline(dir.path(), &input, poll, "");
        let mut eddy = Eddy::start(&config);
        let status = eddy.wait(Duration::from_secs(60));
        assert!(status.success(), "max_records_per_poll {poll}: {}", eddy.log());
        let out = jsonl(&dir.path().join("out.jsonl"));
        let dead = jsonl(&dir.path().join("dead.jsonl"));
        let ids: Vec<&str> = out.iter().map(|r| r["eventID"].as_str().unwrap()).collect();
        assert_eq!(ids, ["e0", "e1", "e2", "e3"], "max_records_per_poll {poll}");
        let reasons: Vec<&str> = dead.iter().map(|e| e["error"].as_str().unwrap()).collect();
        assert_eq!(reasons.len(), 4, "max_records_per_poll {poll}: {reasons:?}");
        assert!(reasons[0].starts_with("line 4: not UTF-8"), "{reasons:?}");
        assert!(reasons[1].starts_with("line 5: not a change record"), "{reasons:?}");
        assert!(reasons[2].starts_with("line 8: not a change record"), "{reasons:?}");
        assert!(reasons[3].starts_with("line 9: not a change record"), "{reasons:?}");
    }
}
