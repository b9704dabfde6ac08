//! Defects found by trying to break eddy as a hostile user would (issue 10), each reproduced end
//! to end against the real binary: bad records, bad configs, hanging servers, a flood of
//! connections.

use std::path::Path;
use std::time::Duration;

use eddy_e2e::process::{eddy, Eddy};
use serde_json::{json, Value};

fn record(i: usize) -> Value {
    json!({
        "eventID": format!("e{i}"), "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": {"S": format!("pet-{i}")}}, "NewImage": {"pk": {"S": format!("pet-{i}")}},
            "SequenceNumber": format!("{}", 1000 + i), "SizeBytes": 20, "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: torn line {l:?}: {e}", path.display())))
        .collect()
}

/// A file-source pipeline in `dir` reading `input` into a file sink, with `extra` YAML appended.
fn file_pipeline(dir: &Path, input: &Path, poll: u32, extra: &str) -> std::path::PathBuf {
    let config = dir.join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "source: {{type: file, path: {}, max_records_per_poll: {poll}}}\n\
             checkpoints: {{type: local, path: state}}\n\
             sinks:\n  out: {{type: file, path: out.jsonl}}\n\
             routes:\n  - name: all\n    sinks: [out]\n\
             dead_letter: {{type: file, path: dead.jsonl}}\n{extra}",
            input.display()
        ),
    )
    .unwrap();
    config
}

/// Defects 6 and 11: every line read reaches the sink or the dead letter, whatever the batch
/// looks like: a batch of undecodable lines only (no sequence number to checkpoint), and a line
/// that is not UTF-8 (named by its line number; the rest of the file flows).
#[test]
fn every_line_of_a_file_reaches_the_sink_or_the_dead_letter() {
    for poll in [1, 2, 1000] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        let mut bytes = Vec::new();
        for i in 0..3 {
            bytes.extend_from_slice(record(i).to_string().as_bytes());
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(b"{\"eventName\": \"INSERT\", \"bad\": \"\xff\xfe\"}\n");
        bytes.extend_from_slice(b"not json at all\n\n");
        bytes.extend_from_slice(record(3).to_string().as_bytes());
        bytes.extend_from_slice(b"\n{\"truncated\": \n[1, 2]\n");
        std::fs::write(&input, bytes).unwrap();
        let config = file_pipeline(dir.path(), &input, poll, "");
        let mut eddy = Eddy::start(&config);
        let status = eddy.wait(Duration::from_secs(60));
        assert!(status.success(), "max_records_per_poll {poll}: {}", eddy.log());
        let out = jsonl(&dir.path().join("out.jsonl"));
        let dead = jsonl(&dir.path().join("dead.jsonl"));
        let ids: Vec<&str> = out.iter().map(|r| r["eventID"].as_str().unwrap()).collect();
        assert_eq!(ids, ["e0", "e1", "e2", "e3"], "max_records_per_poll {poll}");
        let reasons: Vec<&str> = dead.iter().map(|e| e["error"].as_str().unwrap()).collect();
        assert_eq!(reasons.len(), 4, "max_records_per_poll {poll}: {reasons:?}");
        assert!(reasons[0].starts_with("line 4: not UTF-8"), "{reasons:?}");
        assert!(reasons[1].starts_with("line 5: not a change record"), "{reasons:?}");
        assert!(reasons[2].starts_with("line 8: not a change record"), "{reasons:?}");
        assert!(reasons[3].starts_with("line 9: not a change record"), "{reasons:?}");
    }
}

/// A TCP server on loopback that accepts connections and never answers (a frozen server).
/// Returns `http://127.0.0.1:PORT`; it lives as long as the test process.
fn frozen_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    url
}

fn fake_credentials() {
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "us-east-1");
}

fn write_records(path: &Path, n: usize) {
    let text: String = (0..n).map(|i| format!("{}\n", record(i))).collect();
    std::fs::write(path, text).unwrap();
}

/// Defect 3: a source that accepts and never answers fails start-up with a timeout, and the
/// error says so, instead of hanging forever without a word.
#[test]
fn a_source_that_never_answers_fails_start_up_naming_the_timeout() {
    fake_credentials();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "source: {{type: dynamodb, table: Pets, endpoint: \"{}\"}}\n\
             timeouts: {{connect: 1s, request: 1s}}\n\
             sinks: {{out: {{type: \"null\"}}}}\n\
             routes: [{{name: all, sinks: [out]}}]\n",
            frozen_server()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let mut eddy = Eddy::start(&config);
    let status = eddy.wait(Duration::from_secs(30));
    let log = eddy.log().to_lowercase();
    assert!(!status.success(), "{log}");
    assert!(log.contains("cannot describe table pets") && log.contains("timeout"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

/// Defect 3: SIGTERM/SIGINT ends eddy promptly even while a call hangs, at start-up (the
/// source) and mid-run (a sink write).
#[test]
fn a_signal_stops_eddy_within_five_seconds_while_a_call_hangs() {
    fake_credentials();
    let frozen = frozen_server();
    let dir = tempfile::tempdir().unwrap();
    let slow = "timeouts: {connect: 60s, request: 60s}\n";
    let at_start_up = dir.path().join("start.yaml");
    std::fs::write(
        &at_start_up,
        format!(
            "source: {{type: dynamodb, table: Pets, endpoint: \"{frozen}\"}}\n{slow}\
             sinks: {{out: {{type: \"null\"}}}}\nroutes: [{{name: all, sinks: [out]}}]\n"
        ),
    )
    .unwrap();
    let input = dir.path().join("in.jsonl");
    write_records(&input, 3);
    let mid_run = dir.path().join("run.yaml");
    std::fs::write(
        &mid_run,
        format!(
            "source: {{type: file, path: {}}}\n{slow}checkpoints: {{type: local, path: state}}\n\
             sinks: {{replica: {{type: alternator, endpoint: \"{frozen}\", table: Pets}}}}\n\
             routes: [{{name: all, sinks: [replica]}}]\n",
            input.display()
        ),
    )
    .unwrap();
    for config in [at_start_up, mid_run] {
        let mut eddy = Eddy::start(&config);
        std::thread::sleep(Duration::from_secs(2));
        assert!(eddy.exited().is_none(), "{}", eddy.log());
        let (status, took) = eddy.interrupt();
        assert!(status.success(), "{}: {}", config.display(), eddy.log());
        assert!(took < Duration::from_secs(5), "{}: exit took {took:?}\n{}", config.display(), eddy.log());
    }
}

/// Defect 3: a sink that never answers times out, is retried under the one retry policy, and
/// after `max_consecutive_errors` rewinds eddy stops with an error naming the sink and the
/// timeout; nothing is checkpointed past the unwritten records.
#[test]
fn a_sink_that_never_answers_stops_eddy_with_a_timeout_error_and_checkpoints_nothing() {
    fake_credentials();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    write_records(&input, 3);
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "source: {{type: file, path: {}}}\n\
             timeouts: {{connect: 1s, request: 1s}}\n\
             retry: {{attempts: 2, base_delay: 10ms, max_delay: 50ms}}\n\
             checkpoints: {{type: local, path: state}}\n\
             sinks: {{replica: {{type: alternator, endpoint: \"{}\", table: Pets}}}}\n\
             routes: [{{name: all, sinks: [replica]}}]\n",
            input.display(),
            frozen_server()
        ),
    )
    .unwrap();
    let mut eddy = Eddy::start(&config);
    let status = eddy.wait(Duration::from_secs(60));
    let log = eddy.log();
    assert!(!status.success(), "{log}");
    assert!(log.contains("sink replica failed") && log.contains("(tried 2 times)"), "{log}");
    assert!(log.to_lowercase().contains("timeout"), "{log}");
    let state = dir.path().join("state");
    let checkpoints: Vec<_> = walk(&state).into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    assert!(checkpoints.is_empty(), "a checkpoint was saved past unwritten records: {checkpoints:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Defect 9: `validate` checks what `run` would refuse (a missing component, a memory limit too
/// small to run one), and `run` refuses it before creating the state folder or the dead letter.
#[test]
fn validate_refuses_what_run_would_and_run_creates_nothing_first() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    write_records(&input, 1);
    let pipeline = |processor: &str| {
        format!(
            "source: {{type: file, path: {}}}\n\
             checkpoints: {{type: local, path: state}}\n\
             dead_letter: {{type: file, path: dl/dead.jsonl}}\n\
             processors:\n  p: {processor}\n\
             sinks: {{out: {{type: \"null\"}}}}\n\
             routes: [{{name: all, processors: [p], sinks: [out]}}]\n",
            input.display()
        )
    };
    let config = dir.path().join("pipeline.yaml");
    let config_str = config.to_str().unwrap();

    std::fs::write(&config, pipeline("{wasm: missing.wasm}")).unwrap();
    let (code, _, err) = eddy(&["validate", "--config", config_str]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.wasm"), "{err}");
    let mut run = Eddy::start(&config);
    assert!(!run.wait(Duration::from_secs(60)).success());
    assert!(run.log().contains("missing.wasm"), "{}", run.log());
    assert!(!dir.path().join("state").exists(), "run created the state folder before failing");
    assert!(!dir.path().join("dl").exists(), "run created the dead letter before failing");

    let wasm = eddy_e2e::process::example_component("only_dogs");
    for memory in ["0", "1KiB"] {
        std::fs::write(&config, pipeline(&format!("{{wasm: {}, limits: {{memory: {memory}}}}}", wasm.display())))
            .unwrap();
        let (code, _, err) = eddy(&["validate", "--config", config_str]);
        assert_eq!(code, 2, "memory {memory}: {err}");
        assert!(err.contains("processors.p.limits.memory") && err.contains("below the minimum of 1MiB"), "{err}");
    }
    std::fs::write(&config, pipeline(&format!("{{wasm: {}, config: {{species: dog}}}}", wasm.display()))).unwrap();
    let (code, out, err) = eddy(&["validate", "--config", config_str]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"), "{out}");
}

/// Defect 1: a flood of idle and half-sent connections to the metrics port, more than eddy has
/// file descriptors for, neither stops nor slows the pipeline; half-sent requests are cut off,
/// accept errors are not logged in a loop, and `/health` answers once the flood is gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_connections_to_the_metrics_port_never_stops_the_pipeline() {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    use std::io::{Read, Write};

    let moto = eddy_e2e::moto::Moto::start().await;
    moto.create_table("Pets", true).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "source: {{type: dynamodb, table: Pets, endpoint: \"{}\", region: us-east-1, poll_interval: 50ms}}\n\
             checkpoints: {{type: local, path: state}}\n\
             metrics: {{listen: \"127.0.0.1:{port}\"}}\n\
             sinks: {{out: {{type: file, path: out.jsonl}}}}\n\
             routes: [{{name: all, sinks: [out]}}]\n",
            moto.endpoint
        ),
    )
    .unwrap();
    let mut eddy = Eddy::start_limited(&config, Some(256));
    let health = format!("http://127.0.0.1:{port}/health");
    let started = std::time::Instant::now();
    while reqwest::get(&health).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "no /health; log:\n{}", eddy.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 400 connections against a limit of 256 descriptors, each with half a request.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let flood: Vec<std::net::TcpStream> = tokio::task::spawn_blocking(move || {
        (0..400)
            .filter_map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
            .map(|mut s| {
                let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: eddy\r\n");
                s
            })
            .collect()
    })
    .await
    .unwrap();
    // The kernel queues at most net.core.somaxconn connections that eddy has not accepted yet.
    let queue: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    assert!(
        flood.len() > 256.min(queue),
        "the flood must exceed eddy's descriptors: {} connections (somaxconn {queue})",
        flood.len()
    );

    // The pipeline flows meanwhile.
    for i in 0..20 {
        moto.client
            .put_item()
            .table_name("Pets")
            .item("pk", Av::S(format!("pet-{i}")))
            .item("sk", Av::N("0".into()))
            .send()
            .await
            .unwrap();
    }
    let out = dir.path().join("out.jsonl");
    while std::fs::read_to_string(&out).unwrap_or_default().lines().count() < 20 {
        assert!(eddy.exited().is_none(), "eddy exited under the flood; log:\n{}", eddy.log());
        assert!(started.elapsed() < Duration::from_secs(120), "records stopped flowing; log:\n{}", eddy.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A connection that never finishes its request head is closed by eddy.
    let mut first = flood.into_iter().next().unwrap();
    let cut = tokio::task::spawn_blocking(move || {
        first.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match first.read(&mut buf) {
                Ok(0) | Err(_) => return Ok::<_, ()>(()),
                Ok(_) => continue,
            }
        }
    });
    cut.await.unwrap().unwrap();
    // The rest of the flood is dropped here (end of the block above took it); /health answers.
    let healthy = std::time::Instant::now();
    loop {
        if let Ok(r) = reqwest::Client::new().get(&health).timeout(Duration::from_secs(2)).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(healthy.elapsed() < Duration::from_secs(60), "/health never answered again; log:\n{}", eddy.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = eddy.log();
    let accept_lines = log.lines().filter(|l| l.contains("accept failed")).count();
    assert!(accept_lines <= 20, "{accept_lines} accept errors logged");
    let (status, _) = eddy.interrupt();
    assert!(status.success(), "{}", eddy.log());
}

/// Defect 2, against moto's DynamoDB API: the replica held `gone` and `kept` at v0; one batch
/// removes `gone` and then inserts an item over 400 KB under its key, and modifies `kept` to v1
/// and then to an item over 400 KB. The table refuses both large items; `gone` must end removed
/// and `kept` at v1 (the source's last deliverable states), with the two refusals in the dead
/// letter. Before, the batch kept only the refused change per key and the replica stayed at v0.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_change_does_not_undo_the_earlier_changes_of_its_key() {
    use aws_sdk_dynamodb::types::AttributeValue as Av;

    let moto = eddy_e2e::moto::Moto::start().await;
    moto.create_table("Replica", false).await;
    for pk in ["gone", "kept"] {
        moto.client
            .put_item()
            .table_name("Replica")
            .item("pk", Av::S(pk.into()))
            .item("sk", Av::N("0".into()))
            .item("v", Av::S("v0".into()))
            .send()
            .await
            .unwrap();
    }
    let huge = "x".repeat(500_000);
    let change = |seq: u32, event: &str, pk: &str, v: &str| {
        let keys = json!({"pk": {"S": pk}, "sk": {"N": "0"}});
        let mut d = json!({"Keys": keys, "SequenceNumber": seq.to_string(), "SizeBytes": 10,
                           "StreamViewType": "NEW_AND_OLD_IMAGES"});
        if event != "REMOVE" {
            d["NewImage"] = json!({"pk": {"S": pk}, "sk": {"N": "0"}, "v": {"S": v}});
        }
        json!({"eventID": seq.to_string(), "eventName": event, "eventVersion": "1.1",
               "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": d})
    };
    let records = [
        change(1, "REMOVE", "gone", ""),
        change(2, "MODIFY", "kept", "v1"),
        change(3, "INSERT", "gone", &huge),
        change(4, "MODIFY", "kept", &huge),
    ];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, records.iter().map(|r| format!("{r}\n")).collect::<String>()).unwrap();
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "source: {{type: file, path: {}}}\n\
             checkpoints: {{type: local, path: state}}\n\
             sinks: {{replica: {{type: alternator, endpoint: \"{}\", region: us-east-1, table: Replica}}}}\n\
             routes: [{{name: all, sinks: [replica]}}]\n\
             dead_letter: {{type: file, path: dead.jsonl}}\n",
            input.display(),
            moto.endpoint
        ),
    )
    .unwrap();
    let mut eddy = Eddy::start(&config);
    assert!(eddy.wait(Duration::from_secs(60)).success(), "{}", eddy.log());
    let scan = moto.client.scan().table_name("Replica").send().await.unwrap();
    let mut state: Vec<(String, String)> = scan
        .items()
        .iter()
        .map(|i| (i["pk"].as_s().unwrap().clone(), i["v"].as_s().unwrap().chars().take(10).collect()))
        .collect();
    state.sort();
    assert_eq!(state, [("kept".to_owned(), "v1".to_owned())]);
    let dead = jsonl(&dir.path().join("dead.jsonl"));
    let refused: Vec<&str> = dead.iter().map(|e| e["sequence_number"].as_str().unwrap()).collect();
    assert_eq!(refused, ["3", "4"], "{dead:?}");
    assert!(dead.iter().all(|e| e["error"].as_str().unwrap().contains("Item size has exceeded")), "{dead:?}");
}
