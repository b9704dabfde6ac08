//! Test-only servers that stand in for systems that cannot be installed here.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::repo_root;

/// Starts `tests/fakes/<script>` on a free loopback port with `args`, and waits until
/// `GET <probe>` answers. Returns the child and `http://127.0.0.1:PORT`.
async fn spawn_fake(script: &str, args: &[&std::ffi::OsStr], probe: &str) -> (Child, String) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("python3")
        .arg(repo_root().join("tests/fakes").join(script))
        .args(["--port", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("python3");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("{url}{probe}")).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "{script} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, url)
}

/// The fake CrateDB `/_sql` endpoint of `tests/fakes/cratedb.py`, stopped when dropped.
pub struct FakeCrateDb {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl FakeCrateDb {
    /// Starts it with extra arguments (`--fail-rate 0.3`, `--user crate --password x`, ...).
    pub async fn start(args: &[&str]) -> Self {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let (child, url) = spawn_fake("cratedb.py", &args, "/_state").await;
        FakeCrateDb { child, url }
    }

    /// The table, the operation log and counters.
    pub async fn state(&self) -> Value {
        reqwest::get(format!("{}/_state", self.url)).await.unwrap().json().await.unwrap()
    }
}

impl Drop for FakeCrateDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The webhook of `tests/fakes/webhook.py` (records what it is sent), stopped when dropped.
pub struct FakeWebhook {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl FakeWebhook {
    /// Starts it with extra arguments (`--fail-first 2`, `--retry-after 1`).
    pub async fn start(args: &[&str]) -> Self {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let (child, url) = spawn_fake("webhook.py", &args, "/_state").await;
        FakeWebhook { child, url }
    }

    /// The requests it accepted and its answer counts.
    pub async fn state(&self) -> Value {
        reqwest::get(format!("{}/_state", self.url)).await.unwrap().json().await.unwrap()
    }
}

impl Drop for FakeWebhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scripted DynamoDB Streams endpoint of `tests/fakes/streams.py`, stopped when dropped.
pub struct FakeStreams {
    child: Child,
    _script: tempfile::NamedTempFile,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

impl FakeStreams {
    /// Starts it on `script` (the topology and records; see the script's docstring).
    pub async fn start(script: &Value) -> Self {
        crate::moto::set_test_credentials();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), script.to_string()).unwrap();
        let (child, endpoint) =
            spawn_fake("streams.py", &["--script".as_ref(), file.path().as_os_str()], "/_state").await;
        FakeStreams { child, _script: file, endpoint }
    }
}

impl Drop for FakeStreams {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fault proxy of `tests/fakes/faults.py` in front of `upstream`, stopped when dropped.
pub struct FaultProxy {
    child: Child,
    /// `http://127.0.0.1:PORT`: point clients here instead of at `upstream`.
    pub endpoint: String,
}

impl FaultProxy {
    /// Starts it in front of `upstream` with its options (`--rate 0.1`, `--check-sink FILE`, ...).
    pub async fn start(upstream: &str, args: &[&str]) -> Self {
        let head = ["--upstream", upstream];
        let args: Vec<&std::ffi::OsStr> = head.iter().chain(args).map(std::ffi::OsStr::new).collect();
        let (child, endpoint) = spawn_fake("faults.py", &args, "/_faults").await;
        FaultProxy { child, endpoint }
    }

    /// Starts it on `host:port` (e.g. `127.0.0.2`) in front of `upstream`, with its options: a
    /// stand-in Alternator node when given `--local-nodes`.
    pub async fn start_at(host: &str, port: u16, upstream: &str, args: &[&str]) -> Self {
        let child = Command::new("python3")
            .arg(repo_root().join("tests/fakes/faults.py"))
            .args(["--host", host, "--port", &port.to_string(), "--upstream", upstream])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let endpoint = format!("http://{host}:{port}");
        let started = Instant::now();
        while reqwest::get(format!("{endpoint}/_faults")).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "the fault proxy on {endpoint} did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        FaultProxy { child, endpoint }
    }

    /// Ends `--fail-containing`: the poisoned requests are forwarded from now on.
    pub async fn heal(&self) {
        let client = reqwest::Client::new();
        client.post(format!("{}/_faults/heal", self.endpoint)).send().await.unwrap().error_for_status().unwrap();
    }

    /// Starts an outage of `seconds` (0 ends one): every request for an operation of `targets`
    /// (`["GetRecords"]`; empty: every operation) fails with HTTP 500, or with `hang` is not
    /// answered until the outage ends.
    pub async fn outage(&self, seconds: u64, targets: &[&str], hang: bool) {
        let targets = if targets.is_empty() { serde_json::json!("*") } else { serde_json::json!(targets) };
        let body = serde_json::json!({"seconds": seconds, "targets": targets, "hang": hang});
        let client = reqwest::Client::new();
        let url = format!("{}/_faults/outage", self.endpoint);
        client.post(url).body(body.to_string()).send().await.unwrap().error_for_status().unwrap();
    }

    /// `{"counts": {...}, "violations": [...]}`
    pub async fn faults(&self) -> Value {
        reqwest::get(format!("{}/_faults", self.endpoint)).await.unwrap().json().await.unwrap()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
