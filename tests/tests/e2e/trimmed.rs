//! Trimmed data, against the scripted streams endpoint: when the position to resume from is
//! older than the trim horizon, the default stops with an error naming the shard and the gap;
//! `on_trimmed: skip` continues from the oldest record still there and counts the loss.

use std::time::{Duration, Instant};

use eddy_e2e::fakes::FakeStreams;
use eddy_e2e::process::Eddy;
use serde_json::{json, Value};

const ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/Pets/stream/2026-01-01T00:00:00.000";

fn script() -> Value {
    let records: Vec<Value> = (100..120)
        .map(|seq| {
            json!({"seq": seq.to_string(), "name": "INSERT", "keys": {"pk": {"S": format!("pet-{seq}")}},
                   "new": {"pk": {"S": format!("pet-{seq}")}}})
        })
        .collect();
    json!({"stream_arn": ARN, "shards": [{"id": "shardId-t0", "closed": true, "trim": "110", "records": records}]})
}

fn seqs(path: &std::path::Path) -> Vec<u64> {
    eddy_e2e::complete_lines(path)
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["dynamodb"]["SequenceNumber"].as_str().unwrap().parse().unwrap()
        })
        .collect()
}

fn start(dir: &std::path::Path, streams: &FakeStreams, on_trimmed: &str) -> Eddy {
    let text = format!(
        "source: {{type: dynamodb, stream_arn: \"{ARN}\", endpoint: \"{endpoint}\", region: us-east-1, poll_interval: 50ms,
          start: {{after_sequence: \"105\"}}, on_trimmed: {on_trimmed}}}
checkpoints: {{type: local, path: state}}
sinks:
  out: {{type: file, path: out.jsonl}}
routes:
  - {{name: main, sinks: [out]}}
",
        endpoint = streams.endpoint
    );
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    Eddy::start(&path)
}

#[tokio::test(flavor = "multi_thread")]
async fn trimmed_data_stops_with_the_named_gap_by_default() {
    let streams = FakeStreams::start(&script()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut eddy = start(dir.path(), &streams, "fail");
    let status = eddy.wait(Duration::from_secs(60));
    let log = eddy.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("shard shardId-t0: records after sequence number 105 were trimmed"), "{log}");
    assert!(log.contains("on_trimmed: skip"), "the error says how to go on anyway: {log}");
    assert!(seqs(&dir.path().join("out.jsonl")).is_empty(), "nothing is read past the gap");
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_continues_from_the_trim_horizon_and_counts_the_loss() {
    let streams = FakeStreams::start(&script()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut eddy = start(dir.path(), &streams, "skip");
    let out = dir.path().join("out.jsonl");
    let started = Instant::now();
    while seqs(&out).len() < 10 {
        assert!(started.elapsed() < Duration::from_secs(60), "{}", eddy.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = eddy.interrupt();
    assert!(status.success(), "{}", eddy.log());
    assert_eq!(seqs(&out), (110..120).collect::<Vec<u64>>(), "from the oldest record still there, in order");
    assert!(
        eddy.log().contains("were trimmed before eddy read them; continuing from the trim horizon"),
        "{}",
        eddy.log()
    );
}
