//! Replication lag at 1,000 writes/s with default settings: the scripted streams endpoint makes
//! 30,000 changes visible over 30 seconds across four shards (moto_server cannot take 1,000
//! writes/s itself), eddy replicates them into moto's Replica table, and the test reports the
//! time from the last change to a converged replica. A measurement, not a check of speed: run it
//! with `cargo nextest run -p eddy-e2e --run-ignored only -E 'test(lag)' --no-capture`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eddy_e2e::fakes::FakeStreams;
use eddy_e2e::moto::Moto;
use eddy_e2e::ops::wait_until_equal;
use eddy_e2e::process::Eddy;
use eddy_e2e::topology::expected;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/Live/stream/2026-01-01T00:00:00.000";
const PER_SECOND: usize = 1_000;
const SECONDS: usize = 30;
const KEYS: usize = 3_000;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement (about a minute); see the module docs"]
async fn lag_at_a_thousand_writes_per_second() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut shards: Vec<Vec<Value>> = vec![Vec::new(); 4];
    let mut last: Vec<Option<Value>> = vec![None; KEYS];
    for n in 0..PER_SECOND * SECONDS {
        let key = rng.random_range(0..KEYS);
        let image = json!({"pk": {"S": format!("pet-{key:04}")}, "sk": {"N": "0"}, "v": {"N": n.to_string()}});
        shards[key % 4].push(json!({
            "seq": (1_000_000 + n).to_string(), "name": if last[key].is_some() { "MODIFY" } else { "INSERT" },
            "keys": {"pk": {"S": format!("pet-{key:04}")}, "sk": {"N": "0"}}, "new": image.clone(),
            "at": n as f64 / PER_SECOND as f64,
        }));
        last[key] = Some(image);
    }
    let moto = Moto::start().await;
    moto.create_table("Replica", false).await;
    let items: Vec<Value> = last.into_iter().flatten().collect();
    let expected = expected(&moto, "Expected", &items).await;
    let script = json!({"stream_arn": ARN, "shards": shards.into_iter().enumerate()
        .map(|(i, records)| json!({"id": format!("shardId-{i}"), "records": records})).collect::<Vec<_>>()});
    let streams = FakeStreams::start(&script).await;
    let state: Value = reqwest::get(format!("{}/_state", streams.endpoint)).await.unwrap().json().await.unwrap();
    let epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let last_change = state["started"].as_f64().unwrap() + (PER_SECOND * SECONDS - 1) as f64 / PER_SECOND as f64;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "source: {{type: dynamodb, stream_arn: \"{ARN}\", endpoint: \"{}\", region: us-east-1}}
sinks:
  replica: {{type: alternator, endpoint: \"{}\", region: us-east-1, table: Replica}}
routes:
  - {{name: main, sinks: [replica]}}
",
            streams.endpoint, moto.endpoint
        ),
    )
    .unwrap();
    let mut eddy = Eddy::start(&config);
    tokio::time::sleep(Duration::from_secs_f64((last_change - epoch(SystemTime::now())).max(0.0))).await;
    wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(300)).await;
    let lag = Duration::from_secs_f64(epoch(SystemTime::now()) - last_change);
    eprintln!(
        "{} changes at {PER_SECOND}/s over {SECONDS}s into {} items: replica converged {lag:?} after the last change",
        PER_SECOND * SECONDS,
        expected.len()
    );
    let (status, _) = eddy.interrupt();
    assert!(status.success(), "{}", eddy.log());
}
