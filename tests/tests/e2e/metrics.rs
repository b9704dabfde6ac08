//! Prometheus metrics and `/health`, and the `max_records_per_second` budget, against a real
//! stream (moto_server).

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as Av;
use eddy_e2e::moto::Moto;
use eddy_e2e::ops::Workload;
use eddy_e2e::process::{example_component, Eddy};

const BUDGET: usize = 100;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).unwrap_or_default().lines().count()
}

/// The value of the sample `series` (name with labels, exactly as rendered) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_what_happened_and_the_budget_holds_the_rate() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    // The whole stream is there before eddy starts, so only the budget can slow the reading.
    Workload::new(5, 200).run(&moto.client, "Pets", 400).await;
    let sentinel = "zz-sentinel";
    moto.client
        .put_item()
        .table_name("Pets")
        .item("pk", Av::S(sentinel.into()))
        .item("sk", Av::N("0".into()))
        .send()
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "source: {{type: dynamodb, table: Pets, endpoint: \"{endpoint}\", region: us-east-1, poll_interval: 50ms,
          start: trim_horizon, max_records_per_poll: 50, max_records_per_second: {BUDGET}}}
checkpoints: {{type: local, path: state}}
metrics: {{listen: \"127.0.0.1:{port}\"}}
processors:
  dogs: {{wasm: {wasm}}}
sinks:
  all: {{type: file, path: all.jsonl}}
  kept: {{type: \"null\"}}
routes:
  - {{name: everything, sinks: [all]}}
  - {{name: dogs, processors: [dogs], sinks: [kept]}}
  - {{name: removals, filter: {{eventName: [REMOVE]}}, sinks: [kept]}}
",
        endpoint = moto.endpoint,
        wasm = example_component("only_dogs").display()
    );
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, config).unwrap();
    let started = Instant::now();
    let mut eddy = Eddy::start(&path);
    let all = dir.path().join("all.jsonl");
    while !std::fs::read_to_string(&all).unwrap_or_default().contains(sentinel) {
        assert!(started.elapsed() < Duration::from_secs(120), "the sentinel never arrived; log:\n{}", eddy.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    let n = lines(&all);
    eprintln!("read {n} records in {took:?} with a budget of {BUDGET}/s");
    // The bucket starts with one second's worth; the rest comes at BUDGET per second.
    let floor = Duration::from_secs_f64((n - BUDGET) as f64 / BUDGET as f64 * 0.9);
    assert!(took >= floor, "read {n} records in {took:?}: faster than {BUDGET}/s allows ({floor:?})");

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok\n");
    let missing = http.get(format!("{base}/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let ready = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the stream is being read");
    let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();

    let n = n as f64;
    assert_eq!(sample(&text, "eddy_records_in_total"), Some(n), "{text}");
    assert_eq!(sample(&text, "eddy_records_out_total{route=\"everything\",sink=\"all\"}"), Some(n), "{text}");
    let dogs = sample(&text, "eddy_records_out_total{route=\"dogs\",sink=\"kept\"}").unwrap();
    let dropped = sample(&text, "eddy_records_dropped_total{route=\"dogs\"}").unwrap();
    assert!(dogs > 0.0 && dropped > 0.0 && dogs + dropped == n, "dogs {dogs} + dropped {dropped} != {n}\n{text}");
    let removals = sample(&text, "eddy_records_out_total{route=\"removals\",sink=\"kept\"}").unwrap();
    let filtered = sample(&text, "eddy_records_filtered_total{route=\"removals\"}").unwrap();
    assert!(removals > 0.0 && removals + filtered == n, "{text}");
    assert_eq!(sample(&text, "eddy_leases_held"), Some(1.0), "{text}");
    for series in [
        "eddy_iterator_age_seconds{shard=",
        "eddy_poll_duration_seconds_bucket{le=",
        "eddy_sink_write_duration_seconds_bucket{sink=\"all\",le=",
        "eddy_wasm_call_duration_seconds_bucket{processor=\"dogs\",le=",
        "# HELP eddy_records_in_total",
    ] {
        assert!(text.contains(series), "missing {series}:\n{text}");
    }
    // The dashboard's panels on what this run does are backed by series a running eddy serves.
    let dashboard = std::fs::read_to_string(eddy_e2e::repo_root().join("deploy/grafana/eddy.json")).unwrap();
    for name in [
        "eddy_records_in_total",
        "eddy_records_out_total",
        "eddy_records_filtered_total",
        "eddy_records_dropped_total",
        "eddy_iterator_age_seconds",
        "eddy_leases_held",
        "eddy_sink_write_duration_seconds_bucket",
        "eddy_poll_duration_seconds_bucket",
        "eddy_wasm_call_duration_seconds_bucket",
    ] {
        assert!(dashboard.contains(name), "the dashboard does not use {name}");
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "the dashboard uses {name}, which eddy did not serve:\n{text}"
        );
    }
    let (status, _) = eddy.interrupt();
    assert!(status.success(), "{}", eddy.log());
}

/// `/ready` is 503 while the source cannot be reached (a DynamoDB endpoint that does not answer),
/// while `/health` already answers 200: a pod that cannot read its stream gets no traffic, but is
/// not restarted in a loop.
#[tokio::test(flavor = "multi_thread")]
async fn ready_waits_for_the_source_while_health_answers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let nobody = free_port();
    let config = format!(
        "source: {{type: dynamodb, table: Pets, endpoint: \"http://127.0.0.1:{nobody}\", region: us-east-1}}
checkpoints: {{type: local, path: state}}
metrics: {{listen: \"127.0.0.1:{port}\"}}
retry: {{attempts: 20, base_delay: 100ms, max_delay: 200ms}}
sinks:
  none: {{type: \"null\"}}
routes:
  - {{name: all, sinks: [none]}}
"
    );
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, config).unwrap();
    let mut eddy = Eddy::start(&path);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let health = loop {
        if let Ok(r) = http.get(format!("{base}/health")).send().await {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no /health; log:\n{}", eddy.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(health.status(), 200);
    let ready = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().starts_with("not ready"));
    eddy.interrupt();
}
