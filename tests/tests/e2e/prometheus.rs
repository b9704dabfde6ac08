//! A real Prometheus (Debian's `prometheus`, installed by tests/setup.sh) scraping a running eddy
//! under faults: every expression of the Grafana dashboard and of the alerts parses and returns a
//! series. The scenario makes every metric they use exist: a snapshot first, a filter and the
//! only-dogs processor (filtered, dropped, Wasm calls), an Alternator sink behind a fault proxy
//! (an outage longer than the retries: sink errors and dead letters; then throttling and 5xx:
//! node failures), a refused item (dead letter), a source behind a fault proxy (source errors).

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as Av;
use eddy_e2e::fakes::FaultProxy;
use eddy_e2e::moto::Moto;
use eddy_e2e::pets::write;
use eddy_e2e::process::{example_component, Eddy};
use eddy_e2e::repo_root;
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Prometheus server on loopback, stopped when dropped.
struct Prometheus {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` (`127.0.0.1:PORT`) every second as job `eddy`.
    async fn start(target: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: eddy\n    static_configs: [{{targets: ['{target}']}}]\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus must be on PATH: tests/setup.sh installs Debian's prometheus");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while !reqwest::get(format!("{url}/-/ready")).await.is_ok_and(|r| r.status().is_success()) {
            assert!(started.elapsed() < Duration::from_secs(30), "prometheus did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self { child, url, _dir: dir }
    }

    /// `GET /api/v1/query?query=EXPR`: the answer's JSON.
    async fn query(&self, expr: &str) -> Value {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dashboard's expressions, with its template variables given values (`$job` any job).
fn dashboard_exprs() -> Vec<String> {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("deploy/grafana/eddy.json")).unwrap()).unwrap();
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_owned()))
        .map(|e| e.replace("$__rate_interval", "1m").replace("$job", ".*"))
        .collect()
}

/// The alerts' expressions, each with its comparisons made `bool` (so a healthy process still
/// returns a series: 0 where the alert would not fire).
fn alert_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("deploy/prometheus/alerts.yaml")).unwrap();
    let rules: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    rules["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| {
            let expr = r["expr"].as_str().unwrap();
            let as_bool = [" > ", " < ", " == ", " != ", " >= ", " <= "]
                .iter()
                .fold(expr.to_owned(), |e, op| e.replace(op, &format!("{}bool ", op)));
            (r["alert"].as_str().unwrap().to_owned(), as_bool)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_and_alert_expression_returns_a_series_from_a_running_eddy() {
    let only_dogs = example_component("only_dogs");
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    moto.create_table("Replica", false).await;
    let pet = |pk: String, species: &'static str, v: u32| {
        let client = moto.client.clone();
        async move {
            client
                .put_item()
                .table_name("Pets")
                .item("pk", Av::S(pk))
                .item("sk", Av::N("1".into()))
                .item("species", Av::S(species.into()))
                .item("v", Av::N(v.to_string()))
                .send()
                .await
                .unwrap();
        }
    };
    // Items before start, for the snapshot.
    for i in 0..5u32 {
        pet(format!("old{i}"), "dog", i).await;
    }
    let source = FaultProxy::start(&moto.endpoint, &["--rate", "0.1"]).await;
    // The first 12 writes fail (more than a write's 5 tries: sink errors, dead letters), then
    // 30% of requests are throttled, fail with 5xx (node failures), slow or dropped.
    let sink_args =
        ["--rate", "0.3", "--fail-first", "12", "--fail-target", "BatchWriteItem", "--refuse-containing", "poison"];
    let sink = FaultProxy::start(&moto.endpoint, &sink_args).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        &format!(
            "source:
  type: dynamodb
  table: Pets
  endpoint: \"{source}\"
  region: us-east-1
  poll_interval: 50ms
  max_consecutive_errors: 100000
  snapshot: {{mode: first_run, segments: 2}}
processors:
  only-dogs: {{wasm: \"{only_dogs}\", config: {{species: dog}}}}
sinks:
  replica: {{type: alternator, endpoint: \"{sink}\", table: Replica}}
  log: {{type: file, path: out.jsonl}}
routes:
  - name: dogs
    filter: {{\"eventName\": [\"INSERT\", \"MODIFY\"]}}
    processors: [only-dogs]
    sinks: [replica]
    on_sink_failure: {{retries: 0, then: dead_letter}}
  - {{name: all, sinks: [log]}}
dead_letter: {{type: file, path: dead.jsonl}}
metrics: {{listen: \"127.0.0.1:{port}\"}}
retry: {{attempts: 5, base_delay: 10ms, max_delay: 50ms}}
",
            source = source.endpoint,
            sink = sink.endpoint,
            only_dogs = only_dogs.display()
        ),
    );
    let mut run = Eddy::start(&config);
    let prometheus = Prometheus::start(&format!("127.0.0.1:{port}")).await;
    // Dogs and cats, a dog the sink refuses (dead letter), deletes.
    for round in 0..6u32 {
        for k in 0..5 {
            pet(format!("dog{k}"), "dog", round).await;
            pet(format!("cat{k}"), "cat", round).await;
        }
        pet(format!("poison{round}"), "dog", round).await;
        moto.client
            .delete_item()
            .table_name("Pets")
            .key("pk", Av::S(format!("cat{round}")))
            .key("sk", Av::N("1".into()))
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every expression, until each returns a series (rates need two scrapes of a counter).
    let mut exprs: Vec<(String, String)> =
        dashboard_exprs().into_iter().map(|e| (format!("dashboard: {e}"), e)).collect();
    exprs.extend(alert_exprs().into_iter().map(|(name, e)| (format!("alert {name}: {e}"), e)));
    assert!(exprs.len() >= 20, "{exprs:?}");
    let started = Instant::now();
    let mut missing: Vec<String>;
    loop {
        missing = Vec::new();
        for (what, expr) in &exprs {
            let answer = prometheus.query(expr).await;
            assert_eq!(answer["status"], "success", "{what} does not parse or evaluate: {answer}");
            if answer["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
                missing.push(what.clone());
            }
        }
        if missing.is_empty() || started.elapsed() > Duration::from_secs(90) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let metrics = match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(answer) => answer.text().await.unwrap_or_default(),
        Err(e) => format!("(eddy does not answer: {e})"),
    };
    assert!(
        missing.is_empty(),
        "no series for:\n{}\n\n/metrics:\n{metrics}\n\nlog:\n{}",
        missing.join("\n"),
        run.log()
    );
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
}
