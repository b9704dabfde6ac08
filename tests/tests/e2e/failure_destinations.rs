//! What Lambda's event source mapping offers, on moto: `on_sink_failure` with a retry limit and
//! the dead letter as on-failure destination, `parallelization_factor`, and per-route
//! `batch_size` / `batching_window`. The durable destinations are in `dead_letter_destinations`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use eddy_e2e::fakes::FaultProxy;
use eddy_e2e::moto::Moto;
use eddy_e2e::pets::{put, versions, versions_in, wait_for, walk, write};
use eddy_e2e::process::{eddy, Eddy};

const POISON: &str = "poison-7";

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
