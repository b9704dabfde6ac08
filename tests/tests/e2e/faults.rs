//! 10% injected faults (throttling with the real AWS error JSON, 5xx, latency, dropped
//! connections) on every endpoint: the scripted stream, the lease table and the replica. Two
//! processes still bring the replica to the source's state, and no checkpoint ever runs ahead of
//! what the sinks acknowledged: the proxy in front of the lease table checks every checkpoint
//! write against the file sink before forwarding it.

use std::path::Path;
use std::time::Duration;

use eddy_e2e::fakes::{FakeStreams, FaultProxy};
use eddy_e2e::moto::Moto;
use eddy_e2e::ops::wait_until_equal;
use eddy_e2e::process::Eddy;
use eddy_e2e::topology::{expected, script, ARN};

fn config(dir: &Path, name: &str, streams: &str, moto: &str) -> std::path::PathBuf {
    let text = format!(
        "name: faults
source: {{type: dynamodb, stream_arn: \"{ARN}\", endpoint: \"{streams}\", region: us-east-1,
          max_records_per_poll: 10, shard_discovery_interval: 2s}}
checkpoints: {{type: dynamodb, table: Leases, endpoint: \"{moto}\", lease_duration: 3s}}
sinks:
  replica: {{type: alternator, endpoint: \"{moto}\", region: us-east-1, table: Replica}}
  acked: {{type: file, path: acked.jsonl}}
routes:
  - {{name: main, sinks: [replica, acked]}}
"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_percent_faults_everywhere_lose_nothing_and_never_checkpoint_ahead() {
    let moto = Moto::start().await;
    moto.create_table("Replica", false).await;
    let (script, items) = script();
    let expected = expected(&moto, "Expected", &items).await;
    let dir = tempfile::tempdir().unwrap();
    let script_path = dir.path().join("script.json");
    std::fs::write(&script_path, script.to_string()).unwrap();
    let acked = dir.path().join("acked.jsonl");

    let streams = FakeStreams::start(&script).await;
    let streams_proxy = FaultProxy::start(&streams.endpoint, &["--rate", "0.1", "--latency-ms", "100"]).await;
    let moto_proxy = FaultProxy::start(
        &moto.endpoint,
        &[
            "--rate",
            "0.1",
            "--latency-ms",
            "100",
            "--check-sink",
            acked.to_str().unwrap(),
            "--script",
            script_path.to_str().unwrap(),
        ],
    )
    .await;

    let mut workers: Vec<Eddy> = ["a.yaml", "b.yaml"]
        .iter()
        .map(|n| Eddy::start(&config(dir.path(), n, &streams_proxy.endpoint, &moto_proxy.endpoint)))
        .collect();
    let lag = wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(240)).await;
    // Keep polling under faults until every kind has hit both endpoints.
    let started = std::time::Instant::now();
    for proxy in [&streams_proxy, &moto_proxy] {
        loop {
            let faults = proxy.faults().await;
            if ["throttle", "5xx", "latency", "drop"].iter().all(|k| faults["counts"][k] != 0) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "too few faults: {faults}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(30)).await;
    for w in &mut workers {
        let (status, _) = w.interrupt();
        assert!(status.success(), "{}", w.log());
    }

    for (name, proxy) in [("streams", &streams_proxy), ("moto", &moto_proxy)] {
        let faults = proxy.faults().await;
        eprintln!("{name}: {}", faults["counts"]);
        for kind in ["throttle", "5xx", "latency", "drop"] {
            assert!(faults["counts"][kind].as_u64().unwrap() > 0, "{name}: no {kind} injected: {faults}");
        }
    }
    let faults = moto_proxy.faults().await;
    assert!(faults["counts"]["checkpoints_checked"].as_u64().unwrap() > 0, "{faults}");
    assert_eq!(faults["violations"], serde_json::json!([]), "a checkpoint ran ahead of the sinks");
    eprintln!("converged {lag:?} after start under faults");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_outage_longer_than_the_retries_rewinds_the_shard_and_loses_nothing() {
    let moto = Moto::start().await;
    moto.create_table("Replica", false).await;
    let (script, items) = script();
    let expected = expected(&moto, "Expected", &items).await;
    let streams = FakeStreams::start(&script).await;
    // Every BatchWriteItem fails for a while: more than one batch's attempts (and the SDK's own
    // retries) can absorb.
    let moto_proxy =
        FaultProxy::start(&moto.endpoint, &["--rate", "0", "--fail-first", "200", "--fail-target", "BatchWriteItem"])
            .await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "source: {{type: dynamodb, stream_arn: \"{ARN}\", endpoint: \"{streams}\", region: us-east-1}}
checkpoints: {{type: local, path: state}}
sinks:
  replica: {{type: alternator, endpoint: \"{moto}\", region: us-east-1, table: Replica}}
routes:
  - {{name: main, sinks: [replica]}}
",
        streams = streams.endpoint,
        moto = moto_proxy.endpoint
    );
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    let mut eddy = Eddy::start(&path);
    wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(240)).await;
    let (status, _) = eddy.interrupt();
    let log = eddy.log();
    assert!(status.success(), "{log}");
    assert!(log.contains("rewinding to the checkpoint and reading again"), "{log}");
    assert_eq!(moto_proxy.faults().await["counts"]["5xx"], 200);
}
