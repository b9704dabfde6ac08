//! Hot reload under load: while writes stream through eddy, the processor's file is replaced by a
//! broken build (the running one stays), by a new build (it takes over between batches), and, on
//! SIGHUP, by the first build again. No record is lost, repeated or handled by neither build.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_e2e::moto::Moto;
use eddy_e2e::ops::Workload;
use eddy_e2e::process::{test_component, Eddy};

const PATIENCE: Duration = Duration::from_secs(90);

fn seqs(path: &Path) -> Vec<u128> {
    eddy_e2e::complete_lines(path)
        .iter()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            r["dynamodb"]["SequenceNumber"].as_str().unwrap().parse().unwrap()
        })
        .collect()
}

/// Replaces `path` the way deployments do: write beside it, then rename over it.
fn deploy(bytes: &[u8], path: &Path) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn wait_for(what: &str, eddy: &Eddy, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}; log:\n{}", eddy.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_build_takes_over_between_batches_and_no_record_is_lost() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) =
        (std::fs::read(test_component("route_to_a")).unwrap(), std::fs::read(test_component("route_to_b")).unwrap());
    assert_eq!(a.len(), b.len(), "the two builds differ only in one byte, so only SIGHUP can tell them apart");
    let wasm = dir.path().join("p.wasm");
    deploy(&a, &wasm);
    let config = format!(
        "source: {{type: dynamodb, table: Pets, endpoint: \"{endpoint}\", region: us-east-1, poll_interval: 50ms}}
checkpoints: {{type: local, path: state}}
processors:
  p: {{wasm: p.wasm}}
sinks:
  a: {{type: file, path: a.jsonl}}
  b: {{type: file, path: b.jsonl}}
routes:
  - {{name: main, processors: [p], sinks: [a, b]}}
dead_letter: {{type: file, path: dead.jsonl}}
",
        endpoint = moto.endpoint
    );
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, config).unwrap();
    let mut eddy = Eddy::start(&path);

    // Load: writes until told to stop.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (client, writing) = (moto.client.clone(), Arc::clone(&writing));
        tokio::spawn(async move {
            let mut work = Workload::new(11, 50);
            while writing.load(Ordering::Relaxed) {
                work.run(&client, "Pets", 10).await;
            }
        })
    };
    let (a_out, b_out) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    wait_for("build a to handle records", &eddy, || seqs(&a_out).len() >= 30).await;

    // A broken build: logged, and build a keeps going.
    deploy(b"\0asm this is not a component", &wasm);
    wait_for("the broken build to be refused", &eddy, || eddy.log().contains("the new build does not load")).await;
    let before = seqs(&a_out).len();
    wait_for("build a to keep going", &eddy, || seqs(&a_out).len() >= before + 30).await;
    assert!(seqs(&b_out).is_empty());

    // Build b, noticed by the file watcher.
    deploy(&b, &wasm);
    wait_for("build b to take over", &eddy, || seqs(&b_out).len() >= 30).await;

    // Build a again, with b's modification time: only SIGHUP notices.
    let modified = std::fs::metadata(&wasm).unwrap().modified().unwrap();
    let a_before = seqs(&a_out).len();
    deploy(&a, &wasm);
    std::fs::File::options().write(true).open(&wasm).unwrap().set_modified(modified).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(seqs(&a_out).len(), a_before, "the watcher cannot see this change; build b still runs");
    eddy.hangup();
    wait_for("build a to take over again after SIGHUP", &eddy, || seqs(&a_out).len() >= a_before + 30).await;

    writing.store(false, Ordering::Relaxed);
    writer.await.unwrap();
    // Everything written has gone through one build or the other.
    let written = {
        let mut last = 0;
        let started = Instant::now();
        loop {
            let n = seqs(&a_out).len() + seqs(&b_out).len();
            if n == last && started.elapsed() > Duration::from_secs(3) {
                break n;
            }
            last = n;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let (status, _) = eddy.interrupt();
    assert!(status.success(), "log:\n{}", eddy.log());

    let mut all: Vec<(u128, char)> = seqs(&a_out).into_iter().map(|s| (s, 'a')).collect();
    all.extend(seqs(&b_out).into_iter().map(|s| (s, 'b')));
    all.sort();
    assert_eq!(all.len(), written);
    for w in all.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "records skipped or repeated around {}", w[0].0);
    }
    // In shard order the builds take turns exactly twice: a, then b, then a again.
    let mut turns: Vec<char> = all.iter().map(|(_, build)| *build).collect();
    turns.dedup();
    assert_eq!(turns, ['a', 'b', 'a'], "each switch happens once, between batches");
    assert!(std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap_or_default().is_empty());
    let log = eddy.log();
    assert_eq!(log.matches("reloaded: the new build takes over").count(), 2, "{log}");
}
