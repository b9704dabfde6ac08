//! Crash loop: eddy is SIGKILLed at ten random points while 20,000 operations are written, and
//! restarted each time; at-least-once delivery and checkpoints after acknowledgement bring the
//! replica to the source's state in the end.

use std::time::{Duration, Instant};

use eddy_e2e::moto::Moto;
use eddy_e2e::ops::{snapshot, wait_until_equal, Workload};
use eddy_e2e::process::Eddy;
use rand::{Rng, SeedableRng};

const OPERATIONS: usize = 20_000;

#[tokio::test(flavor = "multi_thread")]
async fn ten_sigkills_during_twenty_thousand_operations_lose_nothing() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    moto.create_table("Replica", false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "source: {{type: dynamodb, table: Pets, endpoint: \"{endpoint}\", region: us-east-1, poll_interval: 50ms}}
checkpoints: {{type: local, path: state}}
sinks:
  replica: {{type: alternator, endpoint: \"{endpoint}\", region: us-east-1, table: Replica}}
routes:
  - {{name: main, sinks: [replica]}}
",
            endpoint = moto.endpoint
        ),
    )
    .unwrap();

    let writer = {
        let client = moto.client.clone();
        tokio::spawn(async move {
            let mut work = Workload::new(99, 2_000);
            work.run(&client, "Pets", OPERATIONS).await;
        })
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut eddy = Eddy::start(&config);
    let started = Instant::now();
    for kill in 1..=10 {
        let wait = Duration::from_millis(rng.random_range(2_000..14_000));
        tokio::time::sleep(wait).await;
        eddy.kill();
        eprintln!("SIGKILL {kill} at {:.1}s", started.elapsed().as_secs_f64());
        eddy = Eddy::start(&config);
    }
    writer.await.unwrap();
    let expected = snapshot(&moto.client, "Pets", |_| true).await;
    let lag = wait_until_equal(&moto.client, "Replica", &expected, Duration::from_secs(600)).await;
    eprintln!("{} items; replica converged {lag:?} after the last write", expected.len());
    let (status, _) = eddy.interrupt();
    assert!(status.success(), "{}", eddy.log());
}
