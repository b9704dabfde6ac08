//! `eddy status` on moto: 0 when every shard is read to its newest record, 1 after a write eddy
//! has not read (eddy stopped) and while a snapshot has not started, 2 when the stream cannot be
//! read; it reads only (it runs beside the pipeline's folder lock and creates nothing).

use std::time::Duration;

use eddy_e2e::moto::Moto;
use eddy_e2e::pets::{put, versions_in, wait_for, write};
use eddy_e2e::process::{eddy, Eddy};

#[tokio::test(flavor = "multi_thread")]
async fn status_says_caught_up_or_behind_with_why_and_creates_nothing() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = |extra_source: &str, checkpoints: &str| {
        format!(
            "name: pets
source: {{type: dynamodb, table: Pets, endpoint: \"{moto}\", region: us-east-1, poll_interval: 50ms{extra_source}}}
checkpoints: {{type: local, path: {checkpoints}}}
sinks:
  out: {{type: file, path: out.jsonl}}
routes:
  - {{name: main, sinks: [out]}}
",
            moto = moto.endpoint
        )
    };
    let config = write(dir.path(), &pipeline("", "state"));
    let config_arg = config.to_str().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut run = Eddy::start(&config);
    for i in 0..3u32 {
        put(&moto, &format!("a{i}"), i).await;
    }
    wait_for("the changes delivered", Duration::from_secs(60), || async { versions_in(&out).len() == 3 }).await;
    // Beside the running pipeline (which holds the folder's lock): caught up once checkpointed.
    wait_for("status 0", Duration::from_secs(30), || async { eddy(&["status", "--config", config_arg]).0 == 0 }).await;
    let (code, text, err) = eddy(&["status", "--config", config_arg]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("pipeline pets, stream arn:") && text.contains(" open "), "{text}");
    assert!(text.lines().last().unwrap().starts_with("caught up"), "{text}");
    let (code, json, err) = eddy(&["status", "--config", config_arg, "--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["shards"][0]["behind"]["state"], "caught_up", "{json}");
    assert!(json["shards"][0]["checkpoint"].is_string(), "{json}");
    assert_eq!(json["behind_because"], serde_json::json!([]));

    // eddy stopped, one more write: behind, by that record.
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    put(&moto, "b", 1).await;
    let (code, text, err) = eddy(&["status", "--config", config_arg]);
    assert_eq!(code, 1, "{text}{err}");
    assert!(text.lines().last().unwrap().contains("has 1 records"), "{text}");

    // A snapshot that has not started is behind; nothing is created by looking.
    let snap = write(dir.path(), &pipeline(", snapshot: {mode: first_run}", "fresh"));
    let (code, text, err) = eddy(&["status", "--config", snap.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}{err}");
    assert!(text.contains("snapshot: not started") && text.contains("behind: the snapshot has not started"), "{text}");
    assert!(!dir.path().join("fresh").exists(), "status created the checkpoints folder");

    // A table that does not exist: an error, exit 2.
    let missing = write(dir.path(), &pipeline("", "state").replace("table: Pets", "table: Nope"));
    let (code, _, err) = eddy(&["status", "--config", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Nope"), "{err}");
}
