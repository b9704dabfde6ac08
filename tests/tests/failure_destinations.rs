//! What Lambda's event source mapping offers for failures, on moto: `on_sink_failure` with a
//! retry limit and the dead letter as on-failure destination, `maximum_record_age`, durable
//! destinations (a file, a DynamoDB table, an S3 bucket, an SQS queue), each of them down for a
//! while, and `eddy dead-letter list` / `replay` once the cause is fixed.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as Av;
use eddy_e2e::fakes::FaultProxy;
use eddy_e2e::moto::Moto;
use eddy_e2e::process::{eddy, Eddy};

const POISON: &str = "poison-7";

async fn put(moto: &Moto, pk: &str, v: u32) {
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

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Items of `table` by `pk`, with their `v`.
async fn versions(moto: &Moto, table: &str) -> HashMap<String, String> {
    let items = moto.client.scan().table_name(table).send().await.unwrap().items.unwrap_or_default();
    items
        .into_iter()
        .map(|i| (i["pk"].as_s().unwrap().clone(), i.get("v").map(|v| v.as_n().unwrap().clone()).unwrap_or_default()))
        .collect()
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, timeout: Duration, mut check: impl FnMut() -> F) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_record_goes_to_the_dead_letter_after_its_retries_the_shard_moves_on_and_replay_delivers_it() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    moto.create_table("Replica", false).await;
    // Every BatchWriteItem holding the poison key fails with HTTP 500, until healed.
    let proxy = FaultProxy::start(
        &moto.endpoint,
        &["--rate", "0", "--fail-containing", POISON, "--fail-target", "BatchWriteItem"],
    )
    .await;
    // Four changes of the poison key among 40 others.
    for i in 0..40u32 {
        put(&moto, &format!("p{i}"), i).await;
        if i % 10 == 9 {
            put(&moto, POISON, i).await;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        &format!(
            "source: {{type: dynamodb, table: Pets, endpoint: \"{moto}\", region: us-east-1, poll_interval: 50ms}}
checkpoints: {{type: local, path: state}}
sinks:
  replica: {{type: alternator, endpoint: \"{proxy}\", region: us-east-1, table: Replica}}
routes:
  - name: main
    sinks: [replica]
    on_sink_failure: {{retries: 2, then: dead_letter}}
dead_letter: {{type: file, path: dead.jsonl}}
retry: {{attempts: 2, base_delay: 10ms, max_delay: 50ms}}
",
            moto = moto.endpoint,
            proxy = proxy.endpoint
        ),
    );
    let mut run = Eddy::start(&config);
    // Every other key is delivered: the shard did not stop at the poison record.
    wait_for("the 40 other items", Duration::from_secs(60), || async { versions(&moto, "Replica").await.len() == 40 })
        .await;
    let dead = dir.path().join("dead.jsonl");
    wait_for("4 dead-letter entries", Duration::from_secs(30), || async { eddy_e2e::complete_lines(&dead).len() == 4 })
        .await;
    // Later changes keep flowing after the poison.
    put(&moto, "late", 1).await;
    wait_for("a change written after the poison", Duration::from_secs(30), || async {
        versions(&moto, "Replica").await.contains_key("late")
    })
    .await;
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    let replica = versions(&moto, "Replica").await;
    assert!(!replica.contains_key(POISON));
    assert!((0..40u32).all(|i| replica[&format!("p{i}")] == i.to_string()), "{replica:?}");

    let entries: Vec<serde_json::Value> =
        eddy_e2e::complete_lines(&dead).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    for e in &entries {
        assert_eq!(
            (e["stage"].as_str(), e["route"].as_str(), e["name"].as_str()),
            (Some("sink"), Some("main"), Some("replica")),
            "{e}"
        );
        assert_eq!(e["attempts"], 3, "one write and on_sink_failure.retries 2: {e}");
        assert!(e["error"].as_str().unwrap().contains("write failed"), "{e}");
        assert_eq!(e["record"]["dynamodb"]["Keys"]["pk"]["S"], POISON, "{e}");
        assert_eq!(e["sequence_number"], e["record"]["dynamodb"]["SequenceNumber"]);
    }
    let values: Vec<&str> =
        entries.iter().map(|e| e["record"]["dynamodb"]["NewImage"]["v"]["N"].as_str().unwrap()).collect();
    assert_eq!(values, ["9", "19", "29", "39"], "in sequence order");

    let (code, out, err) = eddy(&["dead-letter", "list", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("4 entries in file") && out.matches("main/replica").count() == 4, "{out}");

    // Still poisoned: the replay fails again and keeps every entry (with the new reason).
    let (code, out, err) = eddy(&["dead-letter", "replay", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("replayed 4 entries") && out.contains("4 new dead-letter entries"), "{out}");
    assert_eq!(eddy_e2e::complete_lines(&dead).len(), 4, "replaced, not added to");
    assert!(!versions(&moto, "Replica").await.contains_key(POISON));

    // Fixed: the replay delivers the key's last version and empties the dead letter.
    proxy.heal().await;
    let (code, out, err) = eddy(&["dead-letter", "replay", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("replayed 4 entries") && out.contains("0 new dead-letter entries"), "{out}");
    assert_eq!(versions(&moto, "Replica").await[POISON], "39");
    assert!(eddy_e2e::complete_lines(&dead).is_empty());
}

/// Waits until `run` rewinds because its dead letter cannot be written, and checks that no shard
/// checkpoint (`state/<shard>.json`) was saved meanwhile.
async fn held_while_down(run: &Eddy, dir: &Path) {
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

#[tokio::test(flavor = "multi_thread")]
async fn old_records_go_to_a_dynamodb_dead_letter_which_when_down_holds_the_shard_and_loses_nothing() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    // The dead-letter table's writes fail while the proxy is poisoned by their stage.
    let proxy = FaultProxy::start(
        &moto.endpoint,
        &["--rate", "0", "--fail-containing", "record_age", "--fail-target", "BatchWriteItem"],
    )
    .await;
    for i in 0..20u32 {
        put(&moto, &format!("old{i}"), i).await;
    }
    // Old by the time eddy reads them.
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
dead_letter: {{type: dynamodb, table: DeadLetters, endpoint: \"{proxy}\"}}
retry: {{attempts: 2, base_delay: 10ms, max_delay: 100ms}}
",
            moto = moto.endpoint,
            proxy = proxy.endpoint
        ),
    );
    let mut run = Eddy::start(&config);
    let dead = || async {
        let scan = moto.client.scan().table_name("DeadLetters").send().await;
        scan.map(|s| s.items.unwrap_or_default().len()).unwrap_or(0)
    };
    // Down: the shard rewinds and does not move on.
    put(&moto, "fresh-while-down", 1).await;
    held_while_down(&run, dir.path()).await;
    assert_eq!(dead().await, 0);

    // Back: the old records are in the table, the fresh one in the sink, and the shard moves.
    proxy.heal().await;
    wait_for("20 dead-letter items", Duration::from_secs(30), || async { dead().await == 20 }).await;
    put(&moto, "fresh", 2).await;
    let out = dir.path().join("out.jsonl");
    let keys = || {
        eddy_e2e::complete_lines(&out)
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["dynamodb"]["Keys"]["pk"]["S"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect::<Vec<String>>()
    };
    wait_for("the fresh record", Duration::from_secs(30), || async { keys().contains(&"fresh".to_owned()) }).await;
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    assert!(keys().iter().all(|k| !k.starts_with("old")), "an expired record reached the sink: {:?}", keys());
    let items = moto.client.scan().table_name("DeadLetters").send().await.unwrap().items.unwrap_or_default();
    for item in &items {
        assert_eq!(item["stage"].as_s().unwrap(), "record_age");
        let entry: serde_json::Value = serde_json::from_str(item["entry"].as_s().unwrap()).unwrap();
        assert!(entry["error"].as_str().unwrap().contains("over source.maximum_record_age (4s)"), "{entry}");
        assert!(entry["record"]["dynamodb"]["Keys"]["pk"]["S"].as_str().unwrap().starts_with("old"));
    }

    // Replay (no age limit applies to a replay): every old record reaches the sink, the table empties.
    let (code, out_text, err) = eddy(&[
        "dead-letter",
        "list",
        "--config",
        config.to_str().unwrap(),
        "--filter",
        r#"{"dynamodb": {"Keys": {"pk": {"S": ["old3"]}}}}"#,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out_text.contains("1 entries in DynamoDB table DeadLetters") && out_text.contains("record_age"),
        "{out_text}"
    );
    let (code, out_text, err) = eddy(&["dead-letter", "replay", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{out_text}{err}");
    assert!(out_text.contains("replayed 20 entries"), "{out_text}");
    assert_eq!(dead().await, 0);
    let delivered = keys();
    assert!((0..20).all(|i| delivered.contains(&format!("old{i}"))), "{delivered:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
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
fn versions_in(path: &Path) -> Vec<(String, u32)> {
    eddy_e2e::complete_lines(path)
        .iter()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            let key = r["dynamodb"]["Keys"]["pk"]["S"].as_str().unwrap().to_owned();
            (key, r["dynamodb"]["NewImage"]["v"]["N"].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn parallelization_factor_4_keeps_each_keys_order_and_a_sigkill_loses_nothing() {
    const KEYS: u32 = 20;
    const VERSIONS: u32 = 30;
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    moto.create_table("Replica", false).await;
    // A slow replica: every write takes 30 ms, so several lanes are writing at once.
    let slow = FaultProxy::start(&moto.endpoint, &["--rate", "0", "--delay-ms", "30"]).await;
    for v in 1..=VERSIONS {
        for k in 0..KEYS {
            put(&moto, &format!("k{k}"), v).await;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = |log: &str| {
        write(
            dir.path(),
            &format!(
                "source: {{type: dynamodb, table: Pets, endpoint: \"{moto}\", region: us-east-1, poll_interval: 50ms,
          max_records_per_poll: 10, parallelization_factor: 4}}
checkpoints: {{type: local, path: state}}
sinks:
  replica: {{type: alternator, endpoint: \"{slow}\", region: us-east-1, table: Replica, concurrency: 1}}
  log: {{type: file, path: {log}}}
routes:
  - {{name: main, sinks: [replica, log]}}
",
                moto = moto.endpoint,
                slow = slow.endpoint
            ),
        )
    };
    let first = dir.path().join("first.jsonl");
    let mut run = Eddy::start(&config("first.jsonl"));
    wait_for("a third of the changes", Duration::from_secs(60), || async {
        versions_in(&first).len() >= (KEYS * VERSIONS / 3) as usize
    })
    .await;
    run.kill();
    let second = dir.path().join("second.jsonl");
    let mut run = Eddy::start(&config("second.jsonl"));
    wait_for("every key at its last version", Duration::from_secs(120), || async {
        let replica = versions(&moto, "Replica").await;
        replica.len() == KEYS as usize && replica.values().all(|v| *v == VERSIONS.to_string())
    })
    .await;
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    // Within each run, every key's versions reached the sink in order.
    for path in [&first, &second] {
        let mut last: HashMap<String, u32> = HashMap::new();
        for (key, v) in versions_in(path) {
            let before = last.insert(key.clone(), v).unwrap_or(0);
            assert!(v > before, "{}: {key} went from version {before} to {v}", path.display());
        }
    }
    // Nothing was lost to the kill: every version reached the sink in one run or the other.
    let mut seen: std::collections::HashSet<(String, u32)> = versions_in(&first).into_iter().collect();
    seen.extend(versions_in(&second));
    assert_eq!(seen.len(), (KEYS * VERSIONS) as usize);
    eprintln!(
        "first run wrote {}, second {} (re-read after the kill: {})",
        versions_in(&first).len(),
        versions_in(&second).len(),
        versions_in(&first).len() + versions_in(&second).len() - (KEYS * VERSIONS) as usize
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batching_window_gathers_a_quiet_stream_into_fewer_larger_writes_and_never_checkpoints_held_records() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    moto.create_table("Replica", false).await;
    let proxy = FaultProxy::start(&moto.endpoint, &["--rate", "0"]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = |size: u32, window: &str| {
        write(
            dir.path(),
            &format!(
                "source: {{type: dynamodb, table: Pets, endpoint: \"{moto}\", region: us-east-1, poll_interval: 100ms}}
checkpoints: {{type: local, path: state}}
sinks:
  replica: {{type: alternator, endpoint: \"{proxy}\", region: us-east-1, table: Replica}}
routes:
  - {{name: main, sinks: [replica], batch_size: {size}, batching_window: {window}}}
",
                moto = moto.endpoint,
                proxy = proxy.endpoint
            ),
        )
    };

    // 10 records a second for 8 seconds, gathered for 2 seconds: writes of about 20.
    let mut run = Eddy::start(&config(100, "2s"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..80u32 {
        put(&moto, &format!("a{i}"), i).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for("80 items", Duration::from_secs(30), || async { versions(&moto, "Replica").await.len() == 80 }).await;
    let writes: Vec<u64> =
        proxy.faults().await["writes"].as_array().unwrap().iter().map(|w| w.as_u64().unwrap()).collect();
    eprintln!("BatchWriteItem sizes: {writes:?}");
    assert_eq!(writes.iter().sum::<u64>(), 80, "{writes:?}");
    assert!((3..=6).contains(&writes.len()), "expected about 4 writes of about 20: {writes:?}");
    assert!(writes.iter().filter(|w| **w >= 12).count() >= 3, "{writes:?}");
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());

    // Records held in the window are not checkpointed: a SIGKILL while they wait loses nothing.
    let mut run = Eddy::start(&config(1000, "10s"));
    for i in 0..15u32 {
        put(&moto, &format!("b{i}"), i).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = versions(&moto, "Replica").await;
    assert!(!held.keys().any(|k| k.starts_with('b')), "delivered before the window ended: {held:?}");
    run.kill();
    let mut run = Eddy::start(&config(1000, "10s"));
    wait_for("the 15 held records after the restart", Duration::from_secs(40), || async {
        versions(&moto, "Replica").await.keys().filter(|k| k.starts_with('b')).count() == 15
    })
    .await;
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_lanes_each_lane_gathers_its_own_records_and_a_stop_leaves_held_records_to_be_read_again() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    moto.create_table("Replica", false).await;
    let proxy = FaultProxy::start(&moto.endpoint, &["--rate", "0"]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = |window: &str| {
        write(
            dir.path(),
            &format!(
                "source: {{type: dynamodb, table: Pets, endpoint: \"{moto}\", region: us-east-1, poll_interval: 100ms,
          parallelization_factor: 2}}
checkpoints: {{type: local, path: state}}
sinks:
  replica: {{type: alternator, endpoint: \"{proxy}\", region: us-east-1, table: Replica}}
routes:
  - {{name: main, sinks: [replica], batch_size: 1000, batching_window: {window}}}
",
                moto = moto.endpoint,
                proxy = proxy.endpoint
            ),
        )
    };

    // 10 records a second for 4 seconds, gathered for 2 seconds in each of 2 lanes: writes of
    // about 10, where a route without a window writes about every record alone.
    let mut run = Eddy::start(&config("2s"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..40u32 {
        put(&moto, &format!("a{i}"), i).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for("40 items", Duration::from_secs(30), || async { versions(&moto, "Replica").await.len() == 40 }).await;
    let writes: Vec<u64> =
        proxy.faults().await["writes"].as_array().unwrap().iter().map(|w| w.as_u64().unwrap()).collect();
    eprintln!("BatchWriteItem sizes: {writes:?}");
    assert_eq!(writes.iter().sum::<u64>(), 40, "{writes:?}");
    assert!((4..=12).contains(&writes.len()), "expected about 4 writes of about 10: {writes:?}");
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    let state_files = walk(&dir.path().join("state"));
    assert!(state_files.iter().any(|f| f.extension().is_some_and(|e| e == "json")), "no checkpoint: {state_files:?}");

    // A stop while the lanes hold records does not wait for the window, and does not
    // checkpoint past them: the next run delivers them.
    let mut run = Eddy::start(&config("20s"));
    for i in 0..15u32 {
        put(&moto, &format!("b{i}"), i).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = versions(&moto, "Replica").await;
    assert!(!held.keys().any(|k| k.starts_with('b')), "delivered before the window ended: {held:?}");
    let stopping = Instant::now();
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    assert!(stopping.elapsed() < Duration::from_secs(10), "the stop waited {:?}", stopping.elapsed());
    assert!(!versions(&moto, "Replica").await.keys().any(|k| k.starts_with('b')), "a stop delivered held records");
    let mut run = Eddy::start(&config("2s"));
    wait_for("the 15 held records after the restart", Duration::from_secs(40), || async {
        versions(&moto, "Replica").await.keys().filter(|k| k.starts_with('b')).count() == 15
    })
    .await;
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_dead_letter_when_down_holds_the_shard_then_holds_old_records_as_objects_that_replay_delivers() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    // moto's S3 takes unsigned path-style requests: create the bucket eddy expects to exist.
    let created = reqwest::Client::new().put(format!("{}/dead", moto.endpoint)).send().await.unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    // The bucket's PUTs of record-age entries fail until healed.
    let proxy = FaultProxy::start(
        &moto.endpoint,
        &["--rate", "0", "--fail-containing", "record_age", "--fail-target", "PutObject"],
    )
    .await;
    for i in 0..12u32 {
        put(&moto, &format!("old{i}"), i).await;
    }
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
dead_letter: {{type: s3, bucket: dead, prefix: pets/, endpoint: \"{proxy}\"}}
retry: {{attempts: 2, base_delay: 10ms, max_delay: 100ms}}
",
            moto = moto.endpoint,
            proxy = proxy.endpoint
        ),
    );
    let config_arg = config.to_str().unwrap().to_owned();
    let list = move || {
        let (code, out, err) = eddy(&["dead-letter", "list", "--config", &config_arg]);
        assert_eq!(code, 0, "{err}");
        out
    };
    let mut run = Eddy::start(&config);
    held_while_down(&run, dir.path()).await;
    assert!(list().contains("0 entries in s3://dead/pets/"), "written while down");
    proxy.heal().await;
    wait_for("12 entries in the bucket", Duration::from_secs(30), || {
        let list = list.clone();
        async move { list().contains("12 entries in s3://dead/pets/") }
    })
    .await;
    put(&moto, "fresh", 1).await;
    let out = dir.path().join("out.jsonl");
    let keys = || versions_in(&out).into_iter().map(|(k, _)| k).collect::<Vec<String>>();
    wait_for("the fresh record", Duration::from_secs(30), || async { keys().contains(&"fresh".to_owned()) }).await;
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    assert_eq!(keys(), ["fresh"], "only the fresh record reaches the sink");
    let listed = list();
    assert_eq!(listed.lines().filter(|l| l.contains(" record_age ")).count(), 12, "{listed}");

    let (code, text, err) = eddy(&["dead-letter", "replay", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("replayed 12 entries from s3://dead/pets/"), "{text}");
    assert!(list().contains("0 entries in s3://dead/pets/"));
    let delivered = keys();
    assert!((0..12).all(|i| delivered.contains(&format!("old{i}"))), "{delivered:?}");
}

/// One call of SQS's JSON protocol on moto (which does not check signatures).
async fn sqs(moto: &Moto, operation: &str, request: serde_json::Value) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(&moto.endpoint)
        .header("Content-Type", "application/x-amz-json-1.0")
        .header("X-Amz-Target", format!("AmazonSQS.{operation}"))
        .header("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request")
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{operation}: {}", response.status());
    response.json().await.unwrap()
}

/// Messages in the queue, visible or not (SQS's approximate counts, exact on moto).
async fn queued(moto: &Moto, url: &str) -> (u64, u64) {
    let names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"];
    let out = sqs(moto, "GetQueueAttributes", serde_json::json!({"QueueUrl": url, "AttributeNames": names})).await;
    let count = |name: &str| out["Attributes"][name].as_str().unwrap().parse::<u64>().unwrap();
    (count(names[0]), count(names[1]))
}

/// Keys of the objects under `prefix` in moto's bucket `bucket`.
async fn objects(moto: &Moto, bucket: &str, prefix: &str) -> Vec<String> {
    let url = format!("{}/{bucket}?list-type=2&prefix={prefix}", moto.endpoint);
    let xml = reqwest::get(url).await.unwrap().text().await.unwrap();
    xml.split("<Key>").skip(1).filter_map(|rest| rest.split_once("</Key>")).map(|(key, _)| key.to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sqs_dead_letter_when_down_holds_the_shard_then_holds_one_message_per_record_with_large_ones_in_s3() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    // A queue with SQS's smallest message limit (1 KiB), so that the padded records overflow.
    let created = sqs(
        &moto,
        "CreateQueue",
        serde_json::json!({"QueueName": "dead", "Attributes": {"MaximumMessageSize": "1024"}}),
    )
    .await;
    let url = created["QueueUrl"].as_str().unwrap().to_owned();
    let made = reqwest::Client::new().put(format!("{}/overflow", moto.endpoint)).send().await.unwrap();
    assert!(made.status().is_success(), "{}", made.status());
    // The queue's sends of record-age entries fail until healed.
    let proxy = FaultProxy::start(
        &moto.endpoint,
        &["--rate", "0", "--fail-containing", "record_age", "--fail-target", "SendMessageBatch"],
    )
    .await;
    for i in 0..5u32 {
        put(&moto, &format!("old{i}"), i).await;
        moto.client
            .put_item()
            .table_name("Pets")
            .item("pk", Av::S(format!("big{i}")))
            .item("sk", Av::N("1".into()))
            .item("v", Av::N(i.to_string()))
            .item("pad", Av::S("x".repeat(3000)))
            .send()
            .await
            .unwrap();
    }
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
dead_letter: {{type: sqs, queue: dead, overflow_bucket: overflow, overflow_prefix: big/, endpoint: \"{proxy}\"}}
retry: {{attempts: 2, base_delay: 10ms, max_delay: 100ms}}
",
            moto = moto.endpoint,
            proxy = proxy.endpoint
        ),
    );
    let mut run = Eddy::start(&config);
    held_while_down(&run, dir.path()).await;
    assert_eq!(queued(&moto, &url).await, (0, 0), "sent while down");
    proxy.heal().await;
    wait_for("10 messages", Duration::from_secs(30), || async { queued(&moto, &url).await == (10, 0) }).await;
    put(&moto, "fresh", 1).await;
    let out = dir.path().join("out.jsonl");
    let keys = || versions_in(&out).into_iter().map(|(k, _)| k).collect::<Vec<String>>();
    wait_for("the fresh record", Duration::from_secs(30), || async { keys().contains(&"fresh".to_owned()) }).await;
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    assert_eq!(keys(), ["fresh"], "only the fresh record reaches the sink");

    // The padded records' entries are in the bucket behind pointers in the SQS Extended Client
    // Library's format; the others are inline. (Peeked with a zero visibility timeout.)
    assert_eq!(objects(&moto, "overflow", "big/").await.len(), 5);
    let peek = serde_json::json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 0,
        "MessageAttributeNames": ["All"]});
    let messages = sqs(&moto, "ReceiveMessage", peek).await["Messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 10);
    let (pointers, inline): (Vec<_>, Vec<_>) =
        messages.iter().partition(|m| m["Body"].as_str().unwrap().starts_with('['));
    assert_eq!(pointers.len(), 5, "{pointers:?}");
    for m in &pointers {
        let body: serde_json::Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
        assert_eq!(body[0], "software.amazon.payloadoffloading.PayloadS3Pointer");
        assert_eq!(body[1]["s3BucketName"], "overflow");
        assert!(body[1]["s3Key"].as_str().unwrap().starts_with("big/"), "{body}");
        let size = m["MessageAttributes"]["ExtendedPayloadSize"]["StringValue"].as_str().unwrap();
        assert!(size.parse::<u64>().unwrap() > 3000, "{m}");
    }
    for m in &inline {
        let entry: serde_json::Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
        assert_eq!(entry["stage"], "record_age");
        assert!(entry["record"]["dynamodb"]["Keys"]["pk"]["S"].as_str().unwrap().starts_with("old"), "{entry}");
    }

    // `list` reads every entry (through the pointers too) and leaves the messages visible.
    let config_arg = config.to_str().unwrap();
    let (code, listed, err) = eddy(&["dead-letter", "list", "--config", config_arg]);
    assert_eq!(code, 0, "{err}");
    // (moto names the queue by its own address, whichever address was asked.)
    assert!(listed.contains(&format!("10 entries in SQS queue {url}")), "{listed}");
    assert_eq!(listed.lines().filter(|l| l.contains(" record_age ")).count(), 10, "{listed}");
    assert_eq!(queued(&moto, &url).await, (10, 0), "list left messages hidden");
    // A filtered replay delivers one record and leaves the other nine visible.
    let filter = r#"{"dynamodb": {"Keys": {"pk": {"S": ["big3"]}}}}"#;
    let (code, text, err) = eddy(&["dead-letter", "replay", "--config", config_arg, "--filter", filter]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("replayed 1 entries"), "{text}");
    assert_eq!(queued(&moto, &url).await, (9, 0));
    assert_eq!(objects(&moto, "overflow", "big/").await.len(), 4, "the replayed entry's object is deleted");
    let (code, text, err) = eddy(&["dead-letter", "replay", "--config", config_arg]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("replayed 9 entries"), "{text}");
    assert_eq!(queued(&moto, &url).await, (0, 0));
    assert!(objects(&moto, "overflow", "big/").await.is_empty());
    let delivered = keys();
    assert!(
        (0..5).all(|i| delivered.contains(&format!("old{i}")) && delivered.contains(&format!("big{i}"))),
        "{delivered:?}"
    );
}
