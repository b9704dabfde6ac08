//! eddy replicates a DynamoDB stream (moto_server on loopback) into an Alternator-compatible
//! table: every attribute type, puts, updates and deletes, through routes with and without a
//! Wasm processor, across a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use eddy_e2e::moto::Moto;
use eddy_e2e::ops::{snapshot, species_of, wait_until_equal, Workload};
use eddy_e2e::process::{example_component, Eddy};

const CONVERGE: Duration = Duration::from_secs(120);

fn write_config(
    dir: &Path,
    moto: &Moto,
    processors: &str,
    route_processors: &str,
    extra_sinks: &str,
    route_sinks: &str,
) -> std::path::PathBuf {
    let text = format!(
        "source:
  type: dynamodb
  table: Pets
  endpoint: {endpoint}
  region: us-east-1
  poll_interval: 50ms
checkpoints: {{type: local, path: state}}
{processors}
sinks:
  replica: {{type: alternator, endpoint: \"{endpoint}\", region: us-east-1, table: Replica}}
{extra_sinks}
routes:
  - name: main
    processors: [{route_processors}]
    sinks: [replica{route_sinks}]
",
        endpoint = moto.endpoint
    );
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn random_operations_replicate_exactly_without_processors() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    moto.create_table("Replica", false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &moto, "", "", "", "");

    let mut eddy = Eddy::start(&config);
    let mut work = Workload::new(7, 300);
    let started = Instant::now();
    work.run(&moto.client, "Pets", 1200).await;
    let writing = started.elapsed();
    let expected = snapshot(&moto.client, "Pets", |_| true).await;
    assert!(expected.len() > 100, "the workload should leave many items, left {}", expected.len());
    let lag = wait_until_equal(&moto.client, "Replica", &expected, CONVERGE).await;
    eprintln!(
        "replicated {} operations ({} items) written in {:.1}s; replica converged {:.2}s after the last write",
        work.applied,
        expected.len(),
        writing.as_secs_f64(),
        lag.as_secs_f64()
    );
    let (status, took) = eddy.interrupt();
    assert!(status.success(), "eddy exited with {status}; log:\n{}", eddy.log());
    assert!(took < Duration::from_secs(5), "eddy took {took:?} to stop");
    assert!(eddy.log().contains("dead-lettered 0"), "log:\n{}", eddy.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn only_dogs_replicates_exactly_the_dogs() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    moto.create_table("Replica", false).await;
    let dir = tempfile::tempdir().unwrap();
    let wasm = example_component("only_dogs");
    let processors = format!("processors:\n  only-dogs:\n    wasm: {}\n    config: {{species: dog}}\n", wasm.display());
    let config = write_config(dir.path(), &moto, &processors, "only-dogs", "", "");

    let mut eddy = Eddy::start(&config);
    let mut work = Workload::new(11, 300);
    work.run(&moto.client, "Pets", 1000).await;
    let expected = snapshot(&moto.client, "Pets", |item| item["species"].as_s().is_ok_and(|s| s == "dog")).await;
    let all = snapshot(&moto.client, "Pets", |_| true).await;
    assert!(expected.len() > 30 && expected.len() < all.len(), "dogs {} of {}", expected.len(), all.len());
    assert!(expected.keys().all(|k| species_of(k.split('"').nth(1).unwrap()) == "dog"));
    wait_until_equal(&moto.client, "Replica", &expected, CONVERGE).await;
    let (status, _) = eddy.interrupt();
    assert!(status.success(), "eddy exited with {status}; log:\n{}", eddy.log());
}

/// Sequence numbers of the records in a file sink's JSONL.
fn sequences(path: &Path) -> Vec<u128> {
    eddy_e2e::complete_lines(path)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["dynamodb"]["SequenceNumber"].as_str().unwrap().parse().unwrap()
        })
        .collect()
}

/// moto numbers a shard's records consecutively: a run that read each record once, in order,
/// without gaps, sees consecutive sequence numbers.
fn assert_contiguous(seqs: &[u128]) {
    assert!(!seqs.is_empty());
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "records skipped, repeated or out of shard order around {}", w[0]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_resumes_after_the_checkpoint() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    moto.create_table("Replica", false).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |n: u32| {
        let sink = format!("  seen: {{type: file, path: seen-{n}.jsonl}}");
        write_config(dir.path(), &moto, "", "", &sink, ", seen")
    };
    let mut work = Workload::new(5, 200);

    // First run: 400 operations, converge, stop gracefully.
    let mut first = Eddy::start(&run(1));
    work.run(&moto.client, "Pets", 400).await;
    let expected = snapshot(&moto.client, "Pets", |_| true).await;
    wait_until_equal(&moto.client, "Replica", &expected, CONVERGE).await;
    let (status, took) = first.interrupt();
    assert!(status.success() && took < Duration::from_secs(5), "{status} after {took:?}; log:\n{}", first.log());
    let first_seen = sequences(&dir.path().join("seen-1.jsonl"));
    assert_contiguous(&first_seen);
    assert!(first_seen.len() >= 300, "only {} records", first_seen.len());
    let checkpointed = *first_seen.last().unwrap();

    // While eddy is down: 300 more.
    work.run(&moto.client, "Pets", 300).await;

    // Second run: reads only what came after the checkpoint.
    let mut second = Eddy::start(&run(2));
    let expected = snapshot(&moto.client, "Pets", |_| true).await;
    wait_until_equal(&moto.client, "Replica", &expected, CONVERGE).await;
    let (status, _) = second.interrupt();
    assert!(status.success(), "log:\n{}", second.log());
    let second_seen = sequences(&dir.path().join("seen-2.jsonl"));
    assert_eq!(second_seen.first(), Some(&(checkpointed + 1)), "the second run must start right after the checkpoint");
    assert_contiguous(&second_seen);
    assert!(second.log().contains("AfterSequence"), "log:\n{}", second.log());
}

/// The records a file sink received, as JSON.
fn records(path: &Path) -> Vec<serde_json::Value> {
    eddy_e2e::complete_lines(path).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_with_filters_send_each_sink_exactly_its_records_in_order() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "source: {{type: dynamodb, table: Pets, endpoint: \"{endpoint}\", region: us-east-1, poll_interval: 50ms}}
checkpoints: {{type: local, path: state}}
sinks:
  dogs: {{type: file, path: dogs.jsonl}}
  removals: {{type: file, path: removals.jsonl}}
  all: {{type: file, path: all.jsonl}}
routes:
  - name: dogs
    filter: {{\"dynamodb\": {{\"NewImage\": {{\"species\": {{\"S\": [\"dog\"]}}}}}}}}
    sinks: [dogs]
  - name: removals
    filter: [{{\"eventName\": [\"REMOVE\"]}}]
    sinks: [removals]
  - name: everything
    sinks: [all]
",
        endpoint = moto.endpoint
    );
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, config).unwrap();
    let mut eddy = Eddy::start(&path);
    let mut work = Workload::new(3, 100);
    work.run(&moto.client, "Pets", 500).await;
    // A last write marks the end: once the unfiltered route has it, it has everything before it.
    moto.client
        .put_item()
        .table_name("Pets")
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("zz-sentinel".into()))
        .item("sk", aws_sdk_dynamodb::types::AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    while !std::fs::read_to_string(dir.path().join("all.jsonl")).unwrap_or_default().contains("zz-sentinel") {
        assert!(started.elapsed() < CONVERGE, "the sentinel never arrived; log:\n{}", eddy.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = eddy.interrupt();
    assert!(status.success(), "log:\n{}", eddy.log());
    let all_after = records(&dir.path().join("all.jsonl"));
    let is_dog = |r: &&serde_json::Value| r["dynamodb"]["NewImage"]["species"]["S"] == "dog";
    let is_removal = |r: &&serde_json::Value| r["eventName"] == "REMOVE";
    let expected_dogs: Vec<&serde_json::Value> = all_after.iter().filter(is_dog).collect();
    let expected_removals: Vec<&serde_json::Value> = all_after.iter().filter(is_removal).collect();
    let dogs = records(&dir.path().join("dogs.jsonl"));
    let removals = records(&dir.path().join("removals.jsonl"));
    assert!(!expected_dogs.is_empty() && !expected_removals.is_empty());
    // Compare sequence numbers first (short failure messages), then the records themselves.
    let seq = |r: &&serde_json::Value| r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned();
    let dogs: Vec<&serde_json::Value> = dogs.iter().collect();
    let removals: Vec<&serde_json::Value> = removals.iter().collect();
    let (got_dogs, want_dogs): (Vec<String>, Vec<String>) =
        (dogs.iter().map(seq).collect(), expected_dogs.iter().map(seq).collect());
    assert_eq!(got_dogs, want_dogs, "the dogs sink must hold exactly the dog records, in shard order");
    let (got_removals, want_removals): (Vec<String>, Vec<String>) =
        (removals.iter().map(seq).collect(), expected_removals.iter().map(seq).collect());
    assert_eq!(got_removals, want_removals, "the removals sink must hold exactly the REMOVE records, in shard order");
    assert!(dogs == expected_dogs && removals == expected_removals, "the routed records differ from the stream's");
    let seqs: Vec<u128> =
        all_after.iter().map(|r| r["dynamodb"]["SequenceNumber"].as_str().unwrap().parse().unwrap()).collect();
    assert_contiguous(&seqs);
}
