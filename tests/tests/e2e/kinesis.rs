//! The Kinesis source against moto's Kinesis on loopback (with AWS's resharding:
//! `tests/fakes/moto_kinesis.py`): DynamoDB changes written the way DynamoDB's Kinesis
//! destination writes them reach an Alternator replica through the same pipeline as a DynamoDB
//! stream, across splits and merges, two processes sharing a lease table, a SIGKILL, start
//! positions, duplicates, reordering and bad input.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eddy_e2e::kinesis::{change, ChangeWriter};
use eddy_e2e::moto::Moto;
use eddy_e2e::ops::{snapshot, wait_until_equal};
use eddy_e2e::process::{eddy, Eddy};
use serde_json::{json, Value};

/// A pipeline reading `stream` into the Alternator table `Replica` and a JSONL log of what the
/// sinks received (`NAME.jsonl`), with a dead letter (`NAME-dead.jsonl`).
fn config(dir: &Path, name: &str, moto: &Moto, stream: &str, extra_source: &str, checkpoints: &str) -> PathBuf {
    let text = format!(
        "name: cdc
source:
  type: kinesis
  stream_name: {stream}
  table: Pets
  endpoint: \"{endpoint}\"
  region: us-east-1
  poll_interval: 200ms
  shard_discovery_interval: 1s
  max_records_per_poll: 50
{extra_source}
checkpoints: {checkpoints}
sinks:
  replica: {{type: alternator, endpoint: \"{endpoint}\", region: us-east-1, table: Replica}}
  log: {{type: file, path: {name}.jsonl}}
routes:
  - {{name: main, sinks: [replica, log]}}
dead_letter: {{type: file, path: {name}-dead.jsonl}}
",
        endpoint = moto.endpoint
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The complete lines of a JSONL file eddy writes (none if it does not exist yet).
fn lines(path: &Path) -> Vec<Value> {
    eddy_e2e::complete_lines(path).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Waits until `path` holds at least `n` lines.
async fn wait_for_lines(path: &Path, n: usize, within: Duration, eddy: &Eddy) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let got = lines(path);
        if got.len() >= n {
            return got;
        }
        assert!(started.elapsed() < within, "{} has {} of {n} lines; log:\n{}", path.display(), got.len(), eddy.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Per key, the event IDs (`op-NNNNNN`, in write order) of a sink log must rise: a key's changes
/// reached the sink in the order they were made, across splits and merges.
fn assert_per_key_order(log: &[Value], what: &str) {
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for record in log {
        let key = record["dynamodb"]["Keys"].to_string();
        let id = record["eventID"].as_str().unwrap().to_owned();
        if let Some(before) = last.get(&key) {
            assert!(id > *before, "{what}: {key} got {id} after {before}");
        }
        last.insert(key, id);
    }
}

/// From the logs of every process: per shard, when it was first read (`reading shard`) and when it
/// ended (`shard ended`), as the logs' RFC 3339 UTC timestamps (which sort as text).
fn reading_times(logs: &[String]) -> BTreeMap<String, (Option<String>, Option<String>)> {
    let mut times: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    for line in logs.iter().flat_map(|l| l.lines()) {
        let Some(shard) = line.split("shard=").nth(1).and_then(|s| s.split_whitespace().next()) else { continue };
        let shard = shard.trim_matches('"').to_owned();
        let time = line.split_whitespace().next().unwrap_or_default().to_owned();
        let entry = times.entry(shard).or_default();
        if line.contains("reading shard") && entry.0.as_ref().is_none_or(|t| time < *t) {
            entry.0 = Some(time);
        } else if line.contains("shard ended") {
            entry.1 = Some(time);
        }
    }
    times
}

/// Every child shard was first read after each of its parents ended, in whichever process.
async fn assert_parents_drain_first(writer: &ChangeWriter, logs: &[String]) {
    let times = reading_times(logs);
    let shards =
        writer.kinesis.list_shards().stream_name(&writer.stream).send().await.unwrap().shards.unwrap_or_default();
    let mut checked = 0;
    for shard in &shards {
        let parents = shard.parent_shard_id.iter().chain(shard.adjacent_parent_shard_id.iter());
        let started = times.get(&shard.shard_id).and_then(|t| t.0.clone());
        for parent in parents {
            let ended = times.get(parent).and_then(|t| t.1.clone());
            let (Some(started), Some(ended)) = (&started, &ended) else {
                panic!("{} (child of {parent}) started {started:?}, parent ended {ended:?}", shard.shard_id)
            };
            assert!(
                started >= ended,
                "{} was read from {started}, before its parent {parent} ended at {ended}",
                shard.shard_id
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6, "two splits and a merge: six parent links");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_read_a_stream_that_splits_and_merges_and_the_replica_ends_equal() {
    let moto = Moto::start_with_kinesis().await;
    moto.create_table("Replica", false).await;
    let mut writer = ChangeWriter::create(&moto, "pets-cdc", 4, "Expected", 7, 120).await;
    let dir = tempfile::tempdir().unwrap();
    let leases = "{type: dynamodb, table: Leases, lease_duration: 3s}";
    let a_config = config(dir.path(), "a", &moto, "pets-cdc", "", leases);
    let b_config = config(dir.path(), "b", &moto, "pets-cdc", "", leases);

    // A split (one parent) and a merge (two parents) with a backlog on both sides, before eddy
    // starts: reading a child before its parents are drained would reorder its keys.
    // The merge's second parent gets a longer backlog (its own keys, pinned to its hash range), so
    // that its child would start early if either parent were overlooked.
    writer.run(300).await;
    let open = writer.open_shards().await;
    assert_eq!(open.len(), 4);
    let pinned = Some(open[3].1 + 1);
    writer.run_keys(250, "burst", pinned).await;
    writer.split(&open[0]).await;
    writer.merge(&open[2].0, &open[3].0).await;
    writer.run(250).await;
    writer.run_keys(50, "burst", pinned).await;
    let mut a = Eddy::start(&a_config);
    let mut b = Eddy::start(&b_config);
    writer.run(200).await;
    // And a split of the merged shard while both processes read.
    let open = writer.open_shards().await;
    assert_eq!(open.len(), 4, "two children of the split, the merged shard and one untouched: {open:?}");
    let merged = open.iter().find(|s| s.0 == "shardId-000000000006").expect("the merged shard is open");
    writer.split(merged).await;
    writer.run(150).await;
    writer.run_keys(50, "burst", pinned).await;

    let expected = snapshot(&moto.client, "Expected", |_| true).await;
    let took = wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(180)).await;
    eprintln!("{} changes over 9 shards: replica converged {took:?} after the last write", writer.ops);

    let (a_log, b_log) = (lines(&dir.path().join("a.jsonl")), lines(&dir.path().join("b.jsonl")));
    assert!(!a_log.is_empty() && !b_log.is_empty(), "both processes read shards: {} and {}", a_log.len(), b_log.len());
    assert_parents_drain_first(&writer, &[a.log(), b.log()]).await;
    assert_per_key_order(&a_log, "process a");
    assert_per_key_order(&b_log, "process b");
    let delivered: HashSet<&str> = a_log.iter().chain(&b_log).map(|r| r["eventID"].as_str().unwrap()).collect();
    assert_eq!(delivered.len(), writer.ops, "every change reached the sinks");

    // `eddy leases` shows the merged shard with both parents, and every closed parent at its end.
    let (code, out, err) = eddy(&["leases", "--config", a_config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let merged = out.lines().find(|l| l.contains("shardId-000000000002,shardId-000000000003"));
    assert!(merged.is_some(), "the merged shard lists both parents:\n{out}");
    for parent in ["shardId-000000000000", "shardId-000000000002", "shardId-000000000003", "shardId-000000000006"] {
        let row = out.lines().find(|l| l.starts_with(parent)).unwrap_or_else(|| panic!("no {parent} row:\n{out}"));
        assert!(row.contains("SHARD_END"), "{row}");
    }
    for p in [&mut a, &mut b] {
        let (status, _) = p.interrupt();
        assert!(status.success(), "{}", p.log());
    }
    assert!(lines(&dir.path().join("a-dead.jsonl")).is_empty() && lines(&dir.path().join("b-dead.jsonl")).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_resumes_from_the_checkpoints_and_start_positions_start_where_asked() {
    let moto = Moto::start_with_kinesis().await;
    moto.create_table("Replica", false).await;
    let dir = tempfile::tempdir().unwrap();

    // Resume after SIGKILL, local checkpoints.
    let mut writer = ChangeWriter::create(&moto, "pets-cdc", 2, "Expected", 11, 80).await;
    writer.run(400).await;
    let resumed = config(dir.path(), "resumed", &moto, "pets-cdc", "", "{type: local, path: state}");
    let mut first = Eddy::start(&resumed);
    wait_for_lines(&dir.path().join("resumed.jsonl"), 100, Duration::from_secs(60), &first).await;
    first.kill();
    writer.run(100).await;
    let mut second = Eddy::start(&resumed);
    let expected = snapshot(&moto.client, "Expected", |_| true).await;
    wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(120)).await;
    let log = wait_for_lines(&dir.path().join("resumed.jsonl"), writer.ops, Duration::from_secs(60), &second).await;
    let delivered: HashSet<&str> = log.iter().map(|r| r["eventID"].as_str().unwrap()).collect();
    assert_eq!(delivered.len(), writer.ops, "every change reached the sinks");
    let again = log.len() - writer.ops;
    // At most one unacknowledged page per shard, plus the page read ahead, is read again.
    assert!(again <= 2 * 2 * 50, "{again} records were read again after the SIGKILL");
    eprintln!("after a SIGKILL: {again} records read again");
    let (status, _) = second.interrupt();
    assert!(status.success(), "{}", second.log());

    // Start positions on a fresh stream: changes A, a pause, then changes B.
    let mut later = ChangeWriter::create(&moto, "later", 1, "Expected2", 12, 30).await;
    later.run(20).await;
    let (_, last_a) = later.put.last().map(|(_, s, q)| (s.clone(), q.clone())).unwrap();
    // moto compares AT_TIMESTAMP in whole seconds: A is more than a second before the time.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    later.run(20).await;
    let b_ids: Vec<String> = later.put[20..].iter().map(|(id, _, _)| id.clone()).collect();
    let at_config = config(
        dir.path(),
        "at",
        &moto,
        "later",
        &format!("  start: {{at_timestamp: \"{at}\"}}"),
        "{type: local, path: at-state}",
    );
    let after_config = config(
        dir.path(),
        "after",
        &moto,
        "later",
        &format!("  start: {{after_sequence: \"{last_a}\"}}"),
        "{type: local, path: after-state}",
    );
    let mut at_eddy = Eddy::start(&at_config);
    let mut after_eddy = Eddy::start(&after_config);
    for (name, p) in [("at", &mut at_eddy), ("after", &mut after_eddy)] {
        let path = dir.path().join(format!("{name}.jsonl"));
        wait_for_lines(&path, 20, Duration::from_secs(60), p).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (status, _) = p.interrupt();
        assert!(status.success(), "{}", p.log());
        let got: Vec<String> = lines(&path).iter().map(|r| r["eventID"].as_str().unwrap().to_owned()).collect();
        assert_eq!(got, b_ids, "{name}: exactly the changes after the start position");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_and_reordering_leave_the_newest_version_and_bad_input_goes_to_the_dead_letter() {
    let moto = Moto::start_with_kinesis().await;
    moto.create_table("Replica", false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut writer = ChangeWriter::create(&moto, "pets-cdc", 1, "Expected", 13, 10).await;
    let item = |pk: &str, version: u32| json!({"pk": {"S": pk}, "sk": {"N": "1"}, "version": {"N": version.to_string()}, "name": {"S": format!("{pk} v{version}")}});
    let keys = |pk: &str| json!({"pk": {"S": pk}, "sk": {"N": "1"}});
    let (dog, cat, fox) = ("dog#1", "cat#1", "fox#1");
    let records: Vec<(&str, Value)> = vec![
        ("d1", change("Pets", "d1", "INSERT", &keys(dog), Some(&item(dog, 1)), None, 1_000)),
        ("d3", change("Pets", "d3", "MODIFY", &keys(dog), Some(&item(dog, 3)), Some(&item(dog, 1)), 3_000)),
        // Made before d3, delivered after it: stale.
        ("d2", change("Pets", "d2", "MODIFY", &keys(dog), Some(&item(dog, 2)), Some(&item(dog, 1)), 2_000)),
        // d3 delivered twice: a duplicate.
        ("d3", change("Pets", "d3", "MODIFY", &keys(dog), Some(&item(dog, 3)), Some(&item(dog, 1)), 3_000)),
        ("c1", change("Pets", "c1", "INSERT", &keys(cat), Some(&item(cat, 1)), None, 1_000)),
        ("c-gone", change("Pets", "c-gone", "REMOVE", &keys(cat), None, Some(&item(cat, 1)), 5_000)),
        // A change made before the delete, delivered after it: stale, the cat stays deleted.
        ("c2", change("Pets", "c2", "MODIFY", &keys(cat), Some(&item(cat, 2)), Some(&item(cat, 1)), 4_000)),
    ];
    for (id, record) in &records {
        writer.put_raw(id, record.to_string().as_bytes(), "one").await;
    }
    writer.put_raw("bad-1", b"this is not JSON", "one").await;
    writer.put_raw("bad-2", br#"{"hello": "world"}"#, "one").await;
    let other = change("Orders", "o1", "INSERT", &keys("order#1"), Some(&item("order#1", 1)), None, 1_000);
    writer.put_raw("bad-3", other.to_string().as_bytes(), "one").await;
    let fox_record = change("Pets", "f1", "INSERT", &keys(fox), Some(&item(fox, 1)), None, 6_000);
    writer.put_raw("f1", fox_record.to_string().as_bytes(), "one").await;

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let path = config(
        dir.path(),
        "newest",
        &moto,
        "pets-cdc",
        "",
        &format!("{{type: local, path: state}}\nmetrics: {{listen: \"127.0.0.1:{port}\"}}"),
    );
    let mut p = Eddy::start(&path);
    let log = wait_for_lines(&dir.path().join("newest.jsonl"), 5, Duration::from_secs(60), &p).await;
    let dead = wait_for_lines(&dir.path().join("newest-dead.jsonl"), 3, Duration::from_secs(30), &p).await;
    let got: Vec<&str> = log.iter().map(|r| r["eventID"].as_str().unwrap()).collect();
    assert_eq!(got, ["d1", "d3", "c1", "c-gone", "f1"], "stale and duplicate changes are dropped");
    // The records keep Lambda's DynamoDB shape; the sequence number is Kinesis'.
    let first = &log[0];
    assert_eq!(first["dynamodb"]["StreamViewType"], "NEW_AND_OLD_IMAGES");
    assert_eq!(first["dynamodb"]["SequenceNumber"].as_str(), Some(writer.put[0].2.as_str()));
    assert_eq!(first["dynamodb"]["ApproximateCreationDateTime"], 1);

    let reasons: Vec<&str> = dead.iter().map(|e| e["error"].as_str().unwrap()).collect();
    assert!(reasons[0].contains("not a DynamoDB change record"), "{reasons:?}");
    assert!(reasons[1].contains("no eventName"), "{reasons:?}");
    assert!(reasons[2].contains("a change of table \"Orders\""), "{reasons:?}");
    assert_eq!(dead[0]["raw"], "this is not JSON");
    for (entry, (_, _, seq)) in dead.iter().zip(&writer.put[7..10]) {
        assert_eq!(entry["sequence_number"].as_str(), Some(seq.as_str()));
    }

    let expected: eddy_e2e::ops::Snapshot = {
        // The dog at version 3 and the fox; the cat deleted.
        moto.create_table("Expected-newest", false).await;
        for (pk, version) in [(dog, 3), (fox, 1)] {
            let body: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> = [
                ("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into())),
                ("sk", aws_sdk_dynamodb::types::AttributeValue::N("1".into())),
                ("version", aws_sdk_dynamodb::types::AttributeValue::N(version.to_string())),
                ("name", aws_sdk_dynamodb::types::AttributeValue::S(format!("{pk} v{version}"))),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            moto.client.put_item().table_name("Expected-newest").set_item(Some(body)).send().await.unwrap();
        }
        snapshot(&moto.client, "Expected-newest", |_| true).await
    };
    wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(30)).await;

    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("eddy_kinesis_superseded_total{reason=\"stale\"} 2"), "{metrics}");
    assert!(metrics.contains("eddy_kinesis_superseded_total{reason=\"duplicate\"} 1"), "{metrics}");
    assert!(metrics.contains("eddy_iterator_age_seconds{shard=\"shardId-000000000000\"}"), "{metrics}");
    let (status, _) = p.interrupt();
    assert!(status.success(), "{}", p.log());
}

/// A snapshot before a Kinesis source (`table` + `snapshot: {mode: first_run}`): items that
/// are only in the table (never in the stream) reach the replica through the scan, changes made
/// while the throttled scan runs and after it through the stream read from the snapshot's start
/// minus the margin, newest-wins per key; the replica ends equal to the table.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_then_the_kinesis_stream_leaves_the_replica_equal_to_the_table() {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let moto = Moto::start_with_kinesis().await;
    moto.create_table("Replica", false).await;
    // The writer keeps table `Pets` as the source table: each change is applied to it and put in
    // the stream, as DynamoDB's Kinesis destination would.
    let mut writer = ChangeWriter::create(&moto, "pets-cdc", 2, "Pets", 11, 80).await;
    for i in 0..120 {
        moto.client
            .put_item()
            .table_name("Pets")
            .item("pk", Av::S(format!("old-{i:04}")))
            .item("sk", Av::N("0".into()))
            .item("species", Av::S("cat".into()))
            .send()
            .await
            .unwrap();
    }
    writer.run(100).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "  snapshot: {mode: first_run, segments: 4, max_items_per_second: 40}";
    let path = config(dir.path(), "snap", &moto, "pets-cdc", extra, "{type: local, path: checkpoints}");
    let mut run = Eddy::start(&path);
    // Changes while the scan (about 6 s at 40 items/s) runs, and after it.
    for _ in 0..10 {
        writer.run(20).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let expected = snapshot(&moto.client, "Pets", |_| true).await;
    assert!(expected.len() > 120, "{} items", expected.len());
    let took = wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(120)).await;
    eprintln!("{} items, {} changes: replica converged {took:?} after the last write", expected.len(), writer.ops);
    let log = run.log();
    assert!(log.contains("snapshot complete") && log.contains("the snapshot's start minus the margin"), "{log}");
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    assert!(lines(&dir.path().join("snap-dead.jsonl")).is_empty());
}
