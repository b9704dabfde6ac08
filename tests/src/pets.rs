//! The `Pets` table and what the Lambda-feature tests (`failure_destinations`,
//! `dead_letter_destinations`) do with it: put versioned items, write a pipeline, read what a
//! sink holds, and set up a dead letter that fails until healed.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as Av;

use crate::fakes::FaultProxy;
use crate::moto::Moto;
use crate::process::Eddy;

/// Puts item `pk` (sort key 1) with version `v` into the table `Pets`.
pub async fn put(moto: &Moto, pk: &str, v: u32) {
    moto.client
        .put_item()
        .table_name("Pets")
        .item("pk", Av::S(pk.to_owned()))
        .item("sk", Av::N("1".into()))
        .item("v", Av::N(v.to_string()))
        .send()
        .await
        .unwrap();
}

/// Writes the pipeline `text` to `dir/pipeline.yaml` and returns its path.
pub fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Items of `table` by `pk`, with their `v`.
pub async fn versions(moto: &Moto, table: &str) -> HashMap<String, String> {
    let items = moto.client.scan().table_name(table).send().await.unwrap().items.unwrap_or_default();
    items
        .into_iter()
        .map(|i| (i["pk"].as_s().unwrap().clone(), i.get("v").map(|v| v.as_n().unwrap().clone()).unwrap_or_default()))
        .collect()
}

/// Polls `check` every 200 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_for<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The set-up of the destination-down tests: a proxy in front of `moto` whose `fail_target`
/// requests carrying `record_age` entries fail until healed, a wait until the records already
/// in `Pets` are older than the pipeline's 4 s `maximum_record_age`, and that pipeline (a file
/// sink `out.jsonl`, the dead letter `dead_letter`, in which `{proxy}` is the proxy's address).
pub async fn aged_records_and_a_failing_dead_letter(
    moto: &Moto,
    fail_target: &str,
    dead_letter: &str,
) -> (FaultProxy, tempfile::TempDir, std::path::PathBuf) {
    let proxy = FaultProxy::start(
        &moto.endpoint,
        &["--rate", "0", "--fail-containing", "record_age", "--fail-target", fail_target],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        &format!(
            "source: {{type: dynamodb, table: Pets, endpoint: \"{moto}\", region: us-east-1, poll_interval: 50ms,
          maximum_record_age: 4s, max_consecutive_errors: 1000}}
checkpoints: {{type: local, path: state}}
sinks:
  out: {{type: file, path: out.jsonl}}
routes:
  - {{name: main, sinks: [out]}}
dead_letter: {dead_letter}
retry: {{attempts: 2, base_delay: 10ms, max_delay: 100ms}}
",
            moto = moto.endpoint,
            dead_letter = dead_letter.replace("{proxy}", &proxy.endpoint)
        ),
    );
    (proxy, dir, config)
}

/// Waits until `run` rewinds because its dead letter cannot be written, and checks that no shard
/// checkpoint (`state/<shard>.json`) was saved meanwhile.
pub async fn held_while_down(run: &Eddy, dir: &Path) {
    wait_for("the dead letter to fail", Duration::from_secs(30), || async {
        run.log().contains("rewinding to the checkpoint")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let state_files = walk(&dir.join("state"));
    assert!(
        state_files.iter().all(|f| f.extension().is_none_or(|e| e != "json")),
        "checkpointed while the dead letter was down: {state_files:?}"
    );
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Each (key, version) line of a file sink, in the order written.
pub fn versions_in(path: &Path) -> Vec<(String, u32)> {
    crate::complete_lines(path)
        .iter()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            let key = r["dynamodb"]["Keys"]["pk"]["S"].as_str().unwrap().to_owned();
            (key, r["dynamodb"]["NewImage"]["v"]["N"].as_str().unwrap().parse().unwrap())
        })
        .collect()
}
