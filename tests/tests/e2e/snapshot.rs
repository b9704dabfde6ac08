//! The snapshot (`source.snapshot`, `eddy snapshot`) against moto_server on loopback: a live
//! table migrates with no gap and no stale item, a killed snapshot resumes re-reading at most a
//! page per segment, two processes share the segments through a lease table, filters and
//! processors apply to snapshot records, the read budget holds, and bad input is refused or
//! dead-lettered.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue as Av, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use eddy_e2e::moto::Moto;
use eddy_e2e::ops::{snapshot, species_of, wait_until_equal, Workload};
use eddy_e2e::process::{eddy, example_component, Eddy};

const CONVERGE: Duration = Duration::from_secs(180);

/// Writes `n` pets keyed as [`Workload`] keys them (`pet-NNNN`, `sk` = k mod 7), 25 per
/// BatchWriteItem.
async fn load(client: &Client, table: &str, n: usize) {
    let items: Vec<WriteRequest> = (0..n)
        .map(|k| {
            let pk = format!("pet-{k:04}");
            let item = HashMap::from([
                ("pk".to_owned(), Av::S(pk.clone())),
                ("sk".to_owned(), Av::N((k % 7).to_string())),
                ("species".to_owned(), Av::S(species_of(&pk).to_owned())),
                ("name".to_owned(), Av::S(format!("pet number {k}"))),
                ("age".to_owned(), Av::N((k % 15).to_string())),
            ]);
            WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().unwrap()).build()
        })
        .collect();
    for chunk in items.chunks(25) {
        let mut pending = HashMap::from([(table.to_owned(), chunk.to_vec())]);
        while !pending.is_empty() {
            let out = client.batch_write_item().set_request_items(Some(pending)).send().await.expect("batch write");
            pending = out.unprocessed_items.unwrap_or_default();
            pending.retain(|_, v| !v.is_empty());
        }
    }
}

/// A pipeline file in `dir`: the Pets table's source with `source_extra` (indented keys under
/// `source:`) and the rest of the file as given.
fn pipeline(dir: &Path, moto: &Moto, source_extra: &str, rest: &str) -> PathBuf {
    let text = format!(
        "source:
  type: dynamodb
  table: Pets
  endpoint: \"{endpoint}\"
  region: us-east-1
  poll_interval: 50ms
{source_extra}
{rest}",
        endpoint = moto.endpoint
    );
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn replica_sink(moto: &Moto) -> String {
    format!("  replica: {{type: alternator, endpoint: \"{}\", region: us-east-1, table: Replica}}", moto.endpoint)
}

/// JSON lines of a file sink; a line cut short by a kill is left out.
fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// A live table migrates: 20,000 items exist before eddy starts; while the 8-segment snapshot
/// runs, inserts, updates and deletes hit keys being scanned. The replica ends equal to the
/// source, item for item, and stream records older than the snapshot are skipped, not replayed.
#[tokio::test(flavor = "multi_thread")]
async fn a_live_table_migrates_with_no_gap_and_no_stale_item() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    moto.create_table("Replica", false).await;
    load(&moto.client, "Pets", 20_000).await;
    // Loading writes are in the stream too; T0 is at least a second after the last of them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(
        dir.path(),
        &moto,
        "  snapshot: {mode: first_run, segments: 8, safety_margin: 0s}",
        &format!(
            "checkpoints: {{type: local, path: state}}
sinks:
{}
  seen: {{type: file, path: seen.jsonl}}
routes:
  - name: main
    sinks: [replica, seen]
",
            replica_sink(&moto)
        ),
    );
    let mut eddy = Eddy::start(&config);
    // Changes while the scan runs, on the keys it scans.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut work = Workload::new(21, 20_000);
    work.run(&moto.client, "Pets", 1500).await;
    let expected = snapshot(&moto.client, "Pets", |_| true).await;
    wait_until_equal(&moto.client, "Replica", &expected, CONVERGE).await;
    let (status, _) = eddy.interrupt();
    let log = eddy.log();
    assert!(status.success(), "eddy exited with {status}; log:\n{log}");
    assert!(log.contains("snapshot complete; reading the stream"), "log:\n{log}");
    assert!(log.contains("dead-lettered 0"), "log:\n{log}");
    let seen = lines(&dir.path().join("seen.jsonl"));
    let from_scan = seen.iter().filter(|r| r["eventSource"] == "eddy:snapshot").count();
    let from_stream = seen.len() - from_scan;
    assert!(from_scan >= 19_000, "the scan wrote {from_scan} items");
    // The 20,000 loading writes are in the stream too, but older than the snapshot: skipped.
    assert!(from_stream <= 1500 + 100, "{from_stream} stream records applied: older ones were replayed");
    assert!(from_stream > 0, "no stream record was applied");
    for r in seen.iter().filter(|r| r["eventSource"] == "eddy:snapshot") {
        assert_eq!(r["eventName"], "INSERT");
        assert!(r["dynamodb"]["Keys"]["pk"]["S"].is_string() && r["dynamodb"]["Keys"]["sk"]["N"].is_string(), "{r}");
    }
}

/// `eddy snapshot` killed (SIGKILL) three times resumes each time after the last acknowledged
/// page of every segment: the replica equals the source, and each restart re-reads at most one
/// page per segment.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_snapshot_resumes_rereading_at_most_a_page_per_segment() {
    let moto = Moto::start().await;
    moto.create_table("Pets", false).await;
    moto.create_table("Replica", false).await;
    let items = 6000;
    load(&moto.client, "Pets", items).await;
    let dir = tempfile::tempdir().unwrap();
    let (segments, page) = (4, 100);
    let config = pipeline(
        dir.path(),
        &moto,
        &format!("  max_records_per_poll: {page}\n  snapshot: {{segments: {segments}, max_items_per_second: 1500}}"),
        &format!(
            "checkpoints: {{type: local, path: state}}
sinks:
{}
  seen: {{type: file, path: seen.jsonl}}
routes:
  - name: main
    sinks: [replica, seen]
",
            replica_sink(&moto)
        ),
    );
    let config = config.to_str().unwrap();
    let mut kills = 0;
    for wait in [1200, 900, 1500] {
        let mut run = Eddy::start_args(&["snapshot", "--config", config]);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if run.exited().is_some() {
            break;
        }
        run.kill();
        kills += 1;
    }
    assert_eq!(kills, 3, "the snapshot finished before it was killed three times; slow it down");
    let mut last = Eddy::start_args(&["snapshot", "--config", config]);
    let status = last.wait(CONVERGE);
    assert!(status.success(), "the last run exited with {status}; log:\n{}", last.log());
    assert!(last.log().contains("snapshot complete"), "log:\n{}", last.log());
    let expected = snapshot(&moto.client, "Pets", |_| true).await;
    wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(10)).await;
    let seen = lines(&dir.path().join("seen.jsonl"));
    let reread = seen.len() - items;
    eprintln!("{reread} items read again after {kills} kills ({segments} segments, {page} items a page)");
    // Per segment (the `I` of eventID `snapshot-I-S`): at most one page again per kill.
    let mut per_segment: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for r in &seen {
        let segment = r["eventID"].as_str().unwrap().split('-').nth(1).unwrap().to_owned();
        *per_segment.entry(segment).or_default().entry(r["dynamodb"]["Keys"].to_string()).or_default() += 1;
    }
    assert_eq!(per_segment.len(), segments, "{:?}", per_segment.keys());
    for (segment, keys) in &per_segment {
        let again: usize = keys.values().map(|n| n - 1).sum();
        assert!(
            again <= kills * page,
            "segment {segment} re-read {again} items after {kills} kills: more than a page each"
        );
    }

    // A finished snapshot is recorded: running it again reads nothing.
    let (code, _, err) = eddy(&["snapshot", "--config", config]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&dir.path().join("seen.jsonl")).len(), seen.len(), "a finished snapshot was read again");
}

/// Two processes share the segments through a lease table; one is killed, the other takes its
/// segments over once their leases expire and finishes.
#[tokio::test(flavor = "multi_thread")]
async fn two_processes_share_the_segments_and_the_survivor_finishes() {
    let moto = Moto::start().await;
    moto.create_table("Pets", false).await;
    moto.create_table("Replica", false).await;
    load(&moto.client, "Pets", 4000).await;
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(
        dir.path(),
        &moto,
        "  max_records_per_poll: 100\n  snapshot: {segments: 8, max_items_per_second: 300}",
        &format!(
            "name: snapshot
checkpoints: {{type: dynamodb, table: eddy-leases, lease_duration: 3s}}
sinks:
{}
routes:
  - name: main
    sinks: [replica]
",
            replica_sink(&moto)
        ),
    );
    let config = config.to_str().unwrap();
    let reading = |e: &Eddy| e.log().matches("reading shard").count();
    let until = |what: &str, e: &Eddy, started: Instant| {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}; log:\n{}", e.log());
    };
    let mut a = Eddy::start_args(&["snapshot", "--config", config]);
    let started = Instant::now();
    while reading(&a) == 0 {
        until("a never read a segment", &a, started);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // b takes its share: a hands segments over after their batch in flight.
    let mut b = Eddy::start_args(&["snapshot", "--config", config]);
    while reading(&b) == 0 {
        until("b never got a segment", &b, started);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.exited().is_none(), "a finished too early:\n{}", a.log());
    a.kill();
    let status = b.wait(CONVERGE);
    assert!(status.success(), "the survivor exited with {status}; log:\n{}", b.log());
    let expected = snapshot(&moto.client, "Pets", |_| true).await;
    wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(10)).await;
    let (code, out, err) = eddy(&["leases", "--config", config]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("snapshot segments:") && out.contains("segment-7-of-8"), "{out}");
    assert_eq!(out.matches("SHARD_END").count(), 8, "{out}");
}

/// Snapshot records go through filters and processors like stream records: `eddy snapshot`
/// through a filter (dogs and cats) and only-dogs leaves exactly the dogs in Alternator.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_through_a_filter_and_only_dogs_holds_exactly_the_dogs() {
    let moto = Moto::start().await;
    moto.create_table("Pets", false).await;
    moto.create_table("Replica", false).await;
    load(&moto.client, "Pets", 3000).await;
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(
        dir.path(),
        &moto,
        "  snapshot: {segments: 4}",
        &format!(
            "checkpoints: {{type: local, path: state}}
processors:
  only-dogs: {{wasm: \"{wasm}\", config: {{species: dog}}}}
sinks:
{replica}
routes:
  - name: dogs
    filter: {{\"eventSource\": [\"eddy:snapshot\"], \"dynamodb\": {{\"NewImage\": {{\"species\": {{\"S\": [\"dog\", \"cat\"]}}}}}}}}
    processors: [only-dogs]
    sinks: [replica]
",
            wasm = example_component("only_dogs").display(),
            replica = replica_sink(&moto)
        ),
    );
    let (code, _, err) = eddy(&["snapshot", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let dogs = snapshot(&moto.client, "Pets", |i| i["species"].as_s().is_ok_and(|s| s == "dog")).await;
    assert!(dogs.len() > 500 && dogs.len() < 3000, "{} dogs", dogs.len());
    wait_until_equal(&moto.client, "Replica", &dogs, Duration::from_secs(10)).await;
}

/// `max_items_per_second` holds within 10% over a 10-second window (read from
/// `eddy_snapshot_items_total`).
#[tokio::test(flavor = "multi_thread")]
async fn the_read_budget_holds_over_ten_seconds() {
    let moto = Moto::start().await;
    moto.create_table("Pets", false).await;
    load(&moto.client, "Pets", 6000).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let rate = 300.0;
    let config = pipeline(
        dir.path(),
        &moto,
        &format!("  snapshot: {{segments: 4, max_items_per_second: {rate}}}"),
        &format!(
            "checkpoints: {{type: local, path: state}}
metrics: {{listen: \"127.0.0.1:{port}\"}}
sinks:
  none: {{type: null}}
routes:
  - name: main
    sinks: [none]
"
        ),
    );
    let mut run = Eddy::start_args(&["snapshot", "--config", config.to_str().unwrap()]);
    let http = reqwest::Client::new();
    let items = || async {
        let text = match http.get(format!("http://127.0.0.1:{port}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.lines()
            .find(|l| l.starts_with("eddy_snapshot_items_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let started = Instant::now();
    while items().await == 0.0 {
        assert!(started.elapsed() < Duration::from_secs(30), "no items scanned; log:\n{}", run.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (from, at) = (items().await, Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let read = items().await - from;
    let per_second = read / at.elapsed().as_secs_f64();
    eprintln!("{per_second:.0} items/s against a budget of {rate}");
    assert!((per_second - rate).abs() <= rate * 0.1, "{per_second:.0} items/s against a budget of {rate}/s");
    run.kill();
}

/// `eddy snapshot` alone into CrateDB: every item becomes a row.
#[tokio::test(flavor = "multi_thread")]
async fn eddy_snapshot_loads_a_table_into_cratedb() {
    let moto = Moto::start().await;
    moto.create_table("Pets", false).await;
    load(&moto.client, "Pets", 1200).await;
    let crate_db = eddy_e2e::fakes::FakeCrateDb::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(
        dir.path(),
        &moto,
        "  snapshot: {segments: 3}",
        &format!(
            "checkpoints: {{type: local, path: state}}
sinks:
  crate: {{type: cratedb, url: \"{}\", table: doc.pets, create_table: true}}
routes:
  - name: main
    sinks: [crate]
",
            crate_db.url
        ),
    );
    let (code, _, err) = eddy(&["snapshot", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let state = crate_db.state().await;
    let rows = state["rows"].as_array().map_or(0, Vec::len);
    assert_eq!(rows, 1200, "state: {}", &state.to_string()[..state.to_string().len().min(500)]);
}

/// Bad input: `first_run` on a table without a stream is refused at start-up with the reason,
/// before anything is written; an item the sink refuses goes to the dead letter with the reason,
/// and the snapshot goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_without_a_stream_is_refused_and_a_refused_item_is_dead_lettered() {
    let moto = Moto::start().await;
    moto.create_table("Pets", false).await;
    load(&moto.client, "Pets", 300).await;
    let dir = tempfile::tempdir().unwrap();
    let rest = |sinks: &str| {
        format!(
            "checkpoints: {{type: local, path: state}}
dead_letter: {{type: file, path: dead.jsonl}}
sinks:
{sinks}
routes:
  - name: main
    sinks: [replica]
"
        )
    };
    let config = pipeline(dir.path(), &moto, "  snapshot: {mode: first_run}", &rest(&replica_sink(&moto)));
    let (code, _, err) = eddy(&["run", "--config", config.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("table Pets has no stream"), "{err}");
    assert!(!dir.path().join("state").exists(), "nothing may be created before the stream is found");

    // A replica keyed by `species` refuses the item that has none.
    moto.client
        .put_item()
        .table_name("Pets")
        .item("pk", Av::S("no-species".into()))
        .item("sk", Av::N("1".into()))
        .send()
        .await
        .unwrap();
    create_table_keyed_by(&moto.client, "BySpecies", "species").await;
    let sink = format!(
        "  replica: {{type: alternator, endpoint: \"{}\", region: us-east-1, table: BySpecies}}",
        moto.endpoint
    );
    let config = pipeline(dir.path(), &moto, "  snapshot: {segments: 2}", &rest(&sink));
    let (code, _, err) = eddy(&["snapshot", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let dead = lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["record"]["dynamodb"]["Keys"]["pk"]["S"], "no-species", "{}", dead[0]);
    assert!(dead[0]["error"].as_str().is_some_and(|r| r.contains("species") || r.contains("key")), "{}", dead[0]);
}

async fn create_table_keyed_by(client: &Client, name: &str, hash: &str) {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(KeySchemaElement::builder().attribute_name(hash).key_type(KeyType::Hash).build().unwrap())
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Range).build().unwrap())
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name(hash).attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .send()
        .await
        .expect("create table");
}

/// The retention check through the binary: a snapshot whose T0 is more than 24 hours old (the
/// recorded plan is aged here) stops `eddy run` after the scan with the gap named, before any
/// stream record is applied.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_older_than_the_streams_retention_stops_with_the_gap_named() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    load(&moto.client, "Pets", 50).await;
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(
        dir.path(),
        &moto,
        "  snapshot: {mode: first_run, segments: 2}",
        "checkpoints: {type: local, path: state}
sinks:
  seen: {type: file, path: seen.jsonl}
routes:
  - name: main
    sinks: [seen]
",
    );
    let config = config.to_str().unwrap();
    let (code, _, err) = eddy(&["snapshot", "--config", config]);
    assert_eq!(code, 0, "{err}");
    // Age the recorded plan by 25 hours.
    let plan = find_file(&dir.path().join("state"), "plan").expect("the snapshot's plan file");
    let mut recorded: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert!(recorded["stream"]["open_shards"].as_array().is_some_and(|s| !s.is_empty()), "{recorded}");
    let t0 = recorded["started_at_ms"].as_i64().unwrap() - 25 * 3_600_000;
    recorded["started_at_ms"] = t0.into();
    std::fs::write(&plan, recorded.to_string()).unwrap();
    let before = lines(&dir.path().join("seen.jsonl")).len();

    let (code, _, err) = eddy(&["run", "--config", config]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("gap after the snapshot") && err.contains("longer ago than the stream's 24-hour retention"),
        "{err}"
    );
    assert_eq!(lines(&dir.path().join("seen.jsonl")).len(), before, "no stream record may be applied past a gap");
}

/// The first file named `name` under `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

/// An Alternator sink with two endpoints, one of which never answers: every write fails over to
/// the live node and the replica is complete.
#[tokio::test(flavor = "multi_thread")]
async fn writes_fail_over_from_a_dead_alternator_node_to_a_live_one() {
    let moto = Moto::start().await;
    moto.create_table("Pets", false).await;
    moto.create_table("Replica", false).await;
    load(&moto.client, "Pets", 600).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(
        dir.path(),
        &moto,
        "  max_records_per_poll: 50\n  snapshot: {segments: 2}",
        &format!(
            "checkpoints: {{type: local, path: state}}
sinks:
  replica: {{type: alternator, region: us-east-1, table: Replica, endpoints: [\"http://127.0.0.1:{dead}\", \"{}\"]}}
routes:
  - name: main
    sinks: [replica]
",
            moto.endpoint
        ),
    );
    let mut run = Eddy::start_args(&["snapshot", "--config", config.to_str().unwrap()]);
    let status = run.wait(CONVERGE);
    assert!(status.success(), "{status}; log:\n{}", run.log());
    let log = run.log();
    assert!(log.contains("failed; taking it out of the rotation"), "log:\n{log}");
    let expected = snapshot(&moto.client, "Pets", |_| true).await;
    wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(10)).await;
}

/// Three stand-in Alternator nodes (fault proxies on 127.0.0.1-3, one port, answering
/// `/localnodes`) in front of one moto: discovery finds all three and each gets a share of the
/// writes; one is killed mid-run: nothing is lost, it is taken out, and it is back in once it
/// answers again.
#[tokio::test(flavor = "multi_thread")]
async fn writes_spread_over_discovered_alternator_nodes_and_survive_one_going_down() {
    use eddy_e2e::fakes::FaultProxy;
    let moto = Moto::start().await;
    moto.create_table("Pets", false).await;
    moto.create_table("Replica", false).await;
    load(&moto.client, "Pets", 3000).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nodes = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let args = ["--rate", "0", "--local-nodes", "127.0.0.1,127.0.0.2,127.0.0.3"];
    let mut proxies = Vec::new();
    for host in nodes {
        proxies.push(FaultProxy::start_at(host, port, &moto.endpoint, &args).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(
        dir.path(),
        &moto,
        "  max_records_per_poll: 50\n  snapshot: {segments: 3, max_items_per_second: 400}",
        &format!(
            "checkpoints: {{type: local, path: state}}
sinks:
  replica: {{type: alternator, region: us-east-1, table: Replica, concurrency: 1,
             discovery: {{seed: \"http://127.0.0.1:{port}\", datacenter: dc1}}}}
routes:
  - name: main
    sinks: [replica]
"
        ),
    );
    let mut run = Eddy::start_args(&["snapshot", "--config", config.to_str().unwrap()]);
    let forwarded = |p: &FaultProxy| {
        let p = p.endpoint.clone();
        async move {
            let v: serde_json::Value = reqwest::get(format!("{p}/_faults")).await.unwrap().json().await.unwrap();
            v["counts"]["forwarded"].as_u64().unwrap()
        }
    };
    // Until every node has had writes.
    let started = Instant::now();
    loop {
        let mut all = true;
        for p in &proxies {
            all &= forwarded(p).await > 0;
        }
        if all {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "a node got no writes; log:\n{}", run.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Node 2 goes down, then comes back.
    proxies.remove(1);
    let down = Instant::now();
    while !run.log().contains("taking it out of the rotation") {
        assert!(down.elapsed() < Duration::from_secs(30), "the dead node was never taken out; log:\n{}", run.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxies.insert(1, FaultProxy::start_at(nodes[1], port, &moto.endpoint, &args).await);
    let status = run.wait(CONVERGE);
    assert!(status.success(), "{status}; log:\n{}", run.log());
    let log = run.log();
    assert!(log.contains("back in the rotation"), "log:\n{log}");
    assert!(forwarded(&proxies[1]).await > 0, "the returned node got writes again");
    let expected = snapshot(&moto.client, "Pets", |_| true).await;
    wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(10)).await;
}
