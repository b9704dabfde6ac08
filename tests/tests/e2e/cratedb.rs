//! The CrateDB sink against a test-only `/_sql` endpoint that follows CrateDB's documented HTTP
//! shapes: the table converges to the source's final state in commons-codec's layout, per-row
//! refusals land in the dead letter, transient failures are retried, credentials are checked,
//! and a SIGKILL mid-replay loses nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use eddy_e2e::fakes::FakeCrateDb;
use eddy_e2e::process::{eddy, Eddy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Writes `n` random changes over 40 keys (`id` N), each carrying its version `v`; plus a few
/// records with `reject: true` on keys of their own, which the fake refuses. Returns the expected
/// final table (`id` → `v`) and the number of refused records.
fn write_input(dir: &Path, n: usize) -> (BTreeMap<i64, i64>, usize) {
    let mut rng = StdRng::seed_from_u64(42);
    let mut table: BTreeMap<i64, i64> = BTreeMap::new();
    let mut lines = Vec::new();
    let mut rejected = 0;
    for i in 0..n {
        let seq = format!("{}", 5000 + i);
        let poison = i % 97 == 50;
        let id: i64 = if poison { 1000 + i as i64 } else { rng.random_range(0..40) };
        let remove = !poison && table.contains_key(&id) && rng.random_range(0..5) == 0;
        let record = if remove {
            table.remove(&id);
            json!({"eventID": seq, "eventName": "REMOVE", "dynamodb": {"Keys": {"id": {"N": id.to_string()}},
                "SequenceNumber": seq, "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}})
        } else {
            let event = if table.contains_key(&id) { "MODIFY" } else { "INSERT" };
            if poison {
                rejected += 1;
            } else {
                table.insert(id, i as i64);
            }
            json!({"eventID": seq, "eventName": event, "dynamodb": {"Keys": {"id": {"N": id.to_string()}},
                "NewImage": {"id": {"N": id.to_string()}, "v": {"N": i.to_string()}, "name": {"S": format!("pet {id}")},
                             "tags": {"SS": ["a", "b"]}, "mixed": {"L": [{"S": "x"}, {"N": "1"}]}, "reject": {"BOOL": poison}},
                "SequenceNumber": seq, "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}})
        };
        lines.push(record.to_string());
    }
    std::fs::write(dir.join("in.jsonl"), lines.join("\n") + "\n").unwrap();
    (table, rejected)
}

fn pipeline(dir: &Path, url: &str, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "source: {{type: file, path: in.jsonl, max_records_per_poll: 50}}
sinks:
  analytics: {{type: cratedb, url: \"{url}\", table: doc.pets, batch_size: 7, create_table: true{extra}}}
routes:
  - {{name: all, sinks: [analytics]}}
dead_letter: {{type: file, path: dead.jsonl}}
"
    );
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The fake's table as `id` → `v`, checking the commons-codec layout on the way.
fn table_of(state: &Value) -> BTreeMap<i64, i64> {
    state["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            assert_eq!(row["data"]["name"], json!(format!("pet {}", row["pk"]["id"])), "{row}");
            assert_eq!(row["data"]["tags"], json!(["a", "b"]), "sets become arrays: {row}");
            assert_eq!(row["aux"]["mixed"], json!(["x", 1]), "mixed lists go to aux: {row}");
            assert!(row["data"].get("id").is_none(), "key attributes stay in pk: {row}");
            (row["pk"]["id"].as_i64().expect("integral keys stay integers"), row["data"]["v"].as_i64().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn converges_despite_refused_rows_injected_failures_and_authentication() {
    let fake = FakeCrateDb::start(&["--fail-rate", "0.3", "--user", "crate", "--password", "s3cret"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (expected, rejected) = write_input(dir.path(), 600);
    let path = pipeline(dir.path(), &fake.url.replace("http://", "http://crate:s3cret@"), "");
    let mut eddy = Eddy::start(&path);
    let status = eddy.wait(Duration::from_secs(120));
    assert!(status.success(), "{}", eddy.log());
    let state = fake.state().await;
    assert!(state["failed"].as_u64().unwrap() > 0, "the fault injection must have fired");
    assert_eq!(table_of(&state), expected);
    assert_eq!(state["created"].as_array().unwrap().len(), 1);
    assert!(state["created"][0].as_str().unwrap().contains("pk OBJECT(STRICT) AS (\"id\" BIGINT PRIMARY KEY)"));
    let dead: Vec<Value> = std::fs::read_to_string(dir.path().join("dead.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), rejected, "every refused row, and only those, in the dead letter");
    for d in &dead {
        assert_eq!(d["stage"], "sink");
        assert_eq!(d["name"], "analytics");
        assert!(d["error"].as_str().unwrap().contains("CrateDB error 4003: Validation failed"), "{d}");
        assert_eq!(d["record"]["dynamodb"]["NewImage"]["reject"]["BOOL"], true);
    }
    assert!(!eddy.log().contains("s3cret"), "the password must never be logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_stop_eddy_with_a_clear_error_and_no_secret() {
    let fake = FakeCrateDb::start(&["--user", "crate", "--password", "right"]).await;
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path(), 20);
    let path = pipeline(dir.path(), &fake.url.replace("http://", "http://crate:wr0ng@"), "");
    let (code, _, err) = eddy(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("4011"), "{err}");
    assert!(!err.contains("wr0ng"), "the password must never be printed: {err}");
    assert_eq!(fake.state().await["rows"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_during_replay_loses_nothing_and_keeps_per_key_order() {
    let fake = FakeCrateDb::start(&["--slow-ms", "40"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (expected, _) = write_input(dir.path(), 1500);
    let path = pipeline(dir.path(), &fake.url, "");
    let mut first = Eddy::start(&path);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.kill();
    // A request already sent completes at the fake after the kill; let it land in the first run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = fake.state().await["log"].as_array().unwrap().len();
    assert!(killed_at > 0, "eddy should have written something before the kill");
    let mut second = Eddy::start(&path);
    assert!(second.wait(Duration::from_secs(180)).success(), "{}", second.log());
    let state = fake.state().await;
    assert_eq!(table_of(&state), expected, "the table must converge after the crash");
    // Within each run, the upserts of one key arrive in version order.
    let log = state["log"].as_array().unwrap();
    for (name, segment) in [("first run", &log[..killed_at]), ("second run", &log[killed_at..])] {
        let mut last: BTreeMap<i64, i64> = BTreeMap::new();
        for entry in segment.iter().filter(|e| e["op"] == "upsert") {
            let (id, v) = (entry["pk"]["id"].as_i64().unwrap(), entry["data"]["v"].as_i64().unwrap());
            if let Some(prev) = last.insert(id, v) {
                assert!(v > prev, "{name}: key {id} got version {v} after {prev}");
            }
        }
    }
}
