//! Several eddy processes on one stream through a lease table (moto_server gives one shard):
//! one holds the lease, the other waits; after a SIGKILL the other takes the shard within
//! 2 × lease_duration and the replica converges; a graceful stop releases the lease.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eddy_e2e::moto::Moto;
use eddy_e2e::ops::{snapshot, wait_until_equal, Workload};
use eddy_e2e::process::{eddy, Eddy};

const LEASE: Duration = Duration::from_secs(2);

fn config(dir: &Path, name: &str, moto: &Moto) -> PathBuf {
    let text = format!(
        "name: pets
source: {{type: dynamodb, table: Pets, endpoint: \"{endpoint}\", region: us-east-1, poll_interval: 50ms,
          shard_discovery_interval: 1s}}
checkpoints: {{type: dynamodb, table: Leases, lease_duration: 2s}}
sinks:
  replica: {{type: alternator, endpoint: \"{endpoint}\", region: us-east-1, table: Replica}}
routes:
  - {{name: main, sinks: [replica]}}
",
        endpoint = moto.endpoint
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn wait_for_log(eddy: &Eddy, text: &str, within: Duration) -> Instant {
    let started = Instant::now();
    while !eddy.log().contains(text) {
        assert!(started.elapsed() < within, "no {text:?} within {within:?}; log:\n{}", eddy.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Instant::now()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_workers_shard_is_taken_within_two_lease_durations() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    moto.create_table("Replica", false).await;
    let dir = tempfile::tempdir().unwrap();
    let (a_config, b_config) = (config(dir.path(), "a.yaml", &moto), config(dir.path(), "b.yaml", &moto));

    let mut a = Eddy::start(&a_config);
    wait_for_log(&a, "took the lease", Duration::from_secs(60)).await;
    let mut b = Eddy::start(&b_config);
    wait_for_log(&b, "using the lease table", Duration::from_secs(60)).await;
    let mut work = Workload::new(21, 150);
    work.run(&moto.client, "Pets", 300).await;
    assert!(!b.log().contains("took the lease"), "the held lease was taken; log:\n{}", b.log());

    a.kill();
    let killed = Instant::now();
    let took = wait_for_log(&b, "took the lease", LEASE * 4).await;
    let takeover = took - killed;
    assert!(takeover <= LEASE * 2, "took {takeover:?} to take over (lease_duration {LEASE:?})");

    work.run(&moto.client, "Pets", 300).await;
    let expected = snapshot(&moto.client, "Pets", |_| true).await;
    let lag = wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(120)).await;
    eprintln!("takeover after SIGKILL: {takeover:?}; replica converged {lag:?} after the last write");

    let (code, out, err) = eddy(&["leases", "--config", b_config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let worker =
        b.log().lines().find_map(|l| l.split("worker=").nth(1).map(|w| w.trim().trim_matches('"').to_owned())).unwrap();
    let row = out.lines().find(|l| l.starts_with("shardId")).unwrap_or_else(|| panic!("no shard row:\n{out}"));
    assert!(row.contains(&worker), "the lease should be {worker}'s:\n{out}");
    assert!(row.contains("caught up"), "{out}");

    let (status, _) = b.interrupt();
    assert!(status.success(), "{}", b.log());
    assert!(b.log().contains("released the lease"), "{}", b.log());
    let (_, out, _) = eddy(&["leases", "--config", b_config.to_str().unwrap()]);
    let row = out.lines().find(|l| l.starts_with("shardId")).unwrap();
    assert!(!row.contains(&worker), "a graceful stop releases the lease:\n{out}");
}
