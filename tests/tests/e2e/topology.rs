//! Many shards, splits and several processes: a scripted DynamoDB Streams endpoint
//! (`tests/fakes/streams.py`) serves two open shards and two closed parents with two children
//! each; the lease table and the replica are in moto_server. Three eddy processes share the
//! shards evenly; parents drain before their children, so every key ends at its last version;
//! after a SIGKILL the others take the dead process's shards within 2 × lease_duration.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eddy_e2e::fakes::FakeStreams;
use eddy_e2e::moto::Moto;
use eddy_e2e::ops::{snapshot, wait_until_equal};
use eddy_e2e::process::{eddy, Eddy};
use eddy_e2e::topology::{expected, script, ARN};

const LEASE: Duration = Duration::from_secs(2);

fn config(dir: &Path, name: &str, streams: &FakeStreams, moto: &Moto) -> PathBuf {
    let text = format!(
        "name: topology
source: {{type: dynamodb, stream_arn: \"{ARN}\", endpoint: \"{streams}\", region: us-east-1,
          poll_interval: 100ms, max_records_per_poll: 10, shard_discovery_interval: 1s}}
checkpoints: {{type: dynamodb, table: Leases, endpoint: \"{moto}\", lease_duration: 2s}}
sinks:
  replica: {{type: alternator, endpoint: \"{moto}\", region: us-east-1, table: Replica}}
routes:
  - {{name: main, sinks: [replica]}}
",
        streams = streams.endpoint,
        moto = moto.endpoint
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn worker_id(eddy: &Eddy) -> String {
    eddy.log().lines().find_map(|l| l.split("worker=").nth(1).map(|w| w.trim().trim_matches('"').to_owned())).unwrap()
}

/// Owner of each unfinished shard, from `eddy leases`.
fn owners(config: &Path) -> HashMap<String, String> {
    let (code, out, err) = eddy(&["leases", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .filter(|l| l.starts_with("shardId"))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.get(3) != Some(&"SHARD_END")).then(|| (cols[0].to_owned(), cols[1].to_owned()))
        })
        .collect()
}

/// Owner of each unfinished shard, read straight from the lease table.
async fn table_owners(moto: &Moto) -> HashMap<String, Option<String>> {
    let page = moto.client.scan().table_name("Leases").consistent_read(true).send().await.unwrap();
    page.items()
        .iter()
        .filter(|i| i.get("checkpoint").and_then(|c| c.as_s().ok()).map(String::as_str) != Some("SHARD_END"))
        .map(|i| (i["shard_id"].as_s().unwrap().clone(), i.get("owner").and_then(|o| o.as_s().ok()).cloned()))
        .collect()
}

fn counts(owners: &HashMap<String, String>) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for o in owners.values() {
        *n.entry(o.clone()).or_insert(0) += 1;
    }
    n
}

async fn wait_for_log(eddy: &Eddy, text: &str) {
    let started = Instant::now();
    while !eddy.log().contains(text) {
        assert!(started.elapsed() < Duration::from_secs(60), "no {text:?}; log:\n{}", eddy.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_share_split_shards_evenly_and_survive_a_sigkill() {
    let moto = Moto::start().await;
    moto.create_table("Replica", false).await;
    let (script, expected_items) = script();
    let expected = expected(&moto, "Expected", &expected_items).await;
    let streams = FakeStreams::start(&script).await;
    let dir = tempfile::tempdir().unwrap();
    let configs: Vec<PathBuf> =
        ["a.yaml", "b.yaml", "c.yaml"].iter().map(|n| config(dir.path(), n, &streams, &moto)).collect();

    let mut a = Eddy::start(&configs[0]);
    wait_for_log(&a, "took the lease").await;
    let mut b = Eddy::start(&configs[1]);
    let mut c = Eddy::start(&configs[2]);
    wait_for_log(&b, "using the lease table").await;
    wait_for_log(&c, "using the lease table").await;

    // Every key ends at its last version: children were read after their parents.
    wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(120)).await;

    // Six unfinished shards (two roots, four children), two per process.
    let started = Instant::now();
    loop {
        let owners = owners(&configs[0]);
        let n = counts(&owners);
        if owners.len() == 6 && n.len() == 3 && n.values().all(|c| *c == 2) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "shards never spread evenly: {owners:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (dead, survivors) = (worker_id(&c), [worker_id(&a), worker_id(&b)]);

    c.kill();
    let killed = Instant::now();
    // Read the lease table directly: the moment no unfinished lease names the dead process.
    loop {
        let leases = table_owners(&moto).await;
        if leases.values().all(|o| o.as_deref().is_some_and(|o| o != dead)) {
            break;
        }
        assert!(killed.elapsed() < LEASE * 4, "the dead process's shards were not taken: {leases:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let takeover = killed.elapsed();
    eprintln!("after a SIGKILL, its 2 shards were taken in {takeover:?} (lease_duration {LEASE:?})");
    assert!(takeover <= LEASE * 2, "takeover took {takeover:?}");
    let owners = owners(&configs[0]);
    assert!(owners.values().all(|o| survivors.contains(o) && *o != dead), "{owners:?}");
    assert_eq!(counts(&owners).values().copied().collect::<Vec<_>>(), vec![3, 3], "{owners:?}");

    for e in [&mut a, &mut b] {
        let (status, _) = e.interrupt();
        assert!(status.success(), "{}", e.log());
    }
    assert_eq!(snapshot(&moto.client, "Replica", |_| true).await, expected);
}
