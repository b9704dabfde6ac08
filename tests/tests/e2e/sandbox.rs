//! Hostile processors cannot hurt the stream: for each kind of misbehaviour, eddy keeps running,
//! other routes keep flowing, the other records of the guarded route go through in order, and
//! the poison records land in the dead letter with the reason.

use std::path::Path;
use std::time::Duration;

use eddy_e2e::process::{eddy, example_component, test_component, Eddy};
use serde_json::{json, Value};

const RECORDS: usize = 120;
const POISON: [usize; 2] = [17, 64];

/// A record in Lambda's shape; the poison ones have `pk` = "poison".
fn record(i: usize) -> Value {
    let pk = if POISON.contains(&i) { "poison".to_owned() } else { format!("pet-{i}") };
    let species = ["dog", "cat"][i % 2];
    json!({
        "eventID": format!("e{i}"), "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": {"S": pk}},
            "NewImage": {"pk": {"S": pk}, "species": {"S": species}, "email": {"S": format!("owner{i}@example.com")}},
            "SequenceNumber": format!("{}", 1000 + i), "SizeBytes": 64, "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

fn write_input(dir: &Path) {
    let lines: Vec<String> = (0..RECORDS).map(|i| record(i).to_string()).collect();
    std::fs::write(dir.join("in.jsonl"), lines.join("\n") + "\n").unwrap();
}

fn lines(path: &Path) -> Vec<Value> {
    eddy_e2e::complete_lines(path).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn seqs(records: &[Value]) -> Vec<usize> {
    records.iter().map(|r| r["dynamodb"]["SequenceNumber"].as_str().unwrap().parse::<usize>().unwrap() - 1000).collect()
}

/// Runs the hostile component in `mode` on the input and checks the outcome; returns eddy's log.
fn survive(mode: &str, memory: &str, expected_error: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path());
    let config = format!(
        "source: {{type: file, path: in.jsonl, max_records_per_poll: 50}}
processors:
  hostile:
    wasm: {wasm}
    config: {{mode: {mode}, poison: poison}}
    limits: {{memory: {memory}, timeout: 100ms}}
sinks:
  kept: {{type: file, path: kept.jsonl}}
  all: {{type: file, path: all.jsonl}}
routes:
  - {{name: guarded, processors: [hostile], sinks: [kept]}}
  - {{name: plain, sinks: [all]}}
dead_letter: {{type: file, path: dead.jsonl}}
",
        wasm = test_component("hostile").display()
    );
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, config).unwrap();
    let mut eddy = Eddy::start(&path);
    let status = eddy.wait(Duration::from_secs(120));
    let log = eddy.log();
    assert!(status.success(), "{mode}: eddy exited with {status}; log:\n{log}");
    assert_eq!(
        seqs(&lines(&dir.path().join("all.jsonl"))),
        (0..RECORDS).collect::<Vec<_>>(),
        "{mode}: the plain route must get every record"
    );
    let kept: Vec<usize> = (0..RECORDS).filter(|i| !POISON.contains(i)).collect();
    assert_eq!(
        seqs(&lines(&dir.path().join("kept.jsonl"))),
        kept,
        "{mode}: the guarded route must keep every other record, in order"
    );
    let dead = lines(&dir.path().join("dead.jsonl"));
    let dead_seqs: Vec<usize> =
        dead.iter().map(|d| d["sequence_number"].as_str().unwrap().parse::<usize>().unwrap() - 1000).collect();
    assert_eq!(dead_seqs, POISON.to_vec(), "{mode}: the dead letter must hold exactly the poison records");
    for d in &dead {
        assert_eq!(d["route"], "guarded", "{mode}: {d}");
        assert_eq!(d["stage"], "processor", "{mode}: {d}");
        assert_eq!(d["name"], "hostile", "{mode}: {d}");
        assert_eq!(d["record"]["dynamodb"]["Keys"]["pk"]["S"], "poison", "{mode}: the full record is kept");
        let error = d["error"].as_str().unwrap();
        assert!(error.contains(expected_error), "{mode}: error {error:?} should mention {expected_error:?}");
    }
    log
}

#[test]
fn an_infinite_loop_is_stopped_by_the_timeout() {
    survive("loop", "32MiB", "timed out after 100ms");
}

#[test]
fn a_memory_bomb_is_refused_by_the_limit() {
    survive("oom", "16MiB", "trapped");
}

#[test]
fn a_panic_is_contained() {
    survive("panic", "32MiB", "trapped");
}

#[test]
fn a_wrong_number_of_verdicts_fails_only_the_poison() {
    survive("short", "32MiB", "returned 0 verdicts for 1 records");
}

#[test]
fn a_route_to_an_undeclared_sink_goes_to_the_dead_letter() {
    survive("route-unknown", "32MiB", "route verdict names sink \"nowhere\", which route guarded does not have");
}

#[test]
fn a_fail_verdict_goes_to_the_dead_letter_with_its_message() {
    survive("fail", "32MiB", "fail verdict: this record is poison");
}

#[test]
fn an_enormous_output_is_refused_by_the_memory_limit() {
    survive("huge", "64MiB", "trapped");
}

#[test]
fn a_record_index_past_the_batch_traps_and_fails_only_the_poison() {
    survive("bad-index", "32MiB", "is out of range");
}

/// A 0.3.0 component owns its `image` handles and can keep one past its call; reading it later
/// traps instead of reading another batch. (0.4.0's `batch` is a borrow, which the component
/// model itself ends with the call.)
#[test]
fn an_image_kept_past_its_call_traps_instead_of_reading_another_batch() {
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path());
    let config = format!(
        "source: {{type: file, path: in.jsonl, max_records_per_poll: 50}}
processors:
  keeper: {{wasm: {wasm}, config: {{keep_image: true}}}}
sinks:
  out: {{type: file, path: out.jsonl}}
routes:
  - {{name: r, processors: [keeper], sinks: [out]}}
dead_letter: {{type: file, path: dead.jsonl}}
",
        wasm = test_component("contract_0_3").display()
    );
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, config).unwrap();
    let mut eddy = Eddy::start(&path);
    let status = eddy.wait(Duration::from_secs(60));
    let log = eddy.log();
    assert!(status.success(), "{log}");
    assert!(log.contains("an image was used after the process call that passed it"), "{log}");
    // The failed call is retried on a fresh instance, which has nothing kept: nothing is lost.
    assert_eq!(seqs(&lines(&dir.path().join("out.jsonl"))), (0..RECORDS).collect::<Vec<_>>());
    assert!(lines(&dir.path().join("dead.jsonl")).is_empty());
}

#[test]
fn guest_output_goes_to_the_log_tagged_with_the_processor() {
    let log = survive_log_mode();
    assert!(log.contains("processor=\"hostile\"") || log.contains("processor=hostile"), "{log}");
    assert!(log.contains("stream=\"stderr\"") || log.contains("stream=stderr"), "{log}");
    assert!(log.contains("warning about 1000"), "{log}");
}

fn survive_log_mode() -> String {
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path());
    let config = format!(
        "source: {{type: file, path: in.jsonl}}
processors:
  hostile: {{wasm: {wasm}, config: {{mode: log, poison: nothing}}}}
sinks:
  kept: {{type: \"null\"}}
routes:
  - {{name: guarded, processors: [hostile], sinks: [kept]}}
",
        wasm = test_component("hostile").display()
    );
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, config).unwrap();
    let mut eddy = Eddy::start(&path);
    assert!(eddy.wait(Duration::from_secs(60)).success(), "{}", eddy.log());
    eddy.log()
}

fn pipeline_with(dir: &Path, wasm: &Path, config: &str) -> String {
    write_input(dir);
    let text = format!(
        "source: {{type: file, path: in.jsonl}}
processors:
  p: {{wasm: {}, config: {config}}}
sinks:
  out: {{type: \"null\"}}
routes:
  - {{name: r, processors: [p], sinks: [out]}}
",
        wasm.display()
    );
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn a_component_of_another_contract_version_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = pipeline_with(dir.path(), &test_component("wrong_version"), "{}");
    let (code, _, err) = eddy(&["run", "--config", &path]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("eddy:processor@0.1.0"), "{err}");
    assert!(err.contains("this eddy runs eddy:processor@0.4.0, @0.3.0, @0.2.0"), "{err}");
}

#[test]
fn a_file_that_is_not_a_component_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm but not really").unwrap();
    let path = pipeline_with(dir.path(), &bogus, "{}");
    let (code, _, err) = eddy(&["run", "--config", &path]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("processor p: cannot load"), "{err}");
}

#[test]
fn a_component_that_rejects_its_config_stops_eddy_at_start_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = pipeline_with(dir.path(), &test_component("hostile"), "{mode: reject}");
    let (code, _, err) = eddy(&["run", "--config", &path]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("processor p rejected its config: this config is refused on purpose"), "{err}");
    // A well-behaved component with a bad config value is refused the same way.
    let path = pipeline_with(dir.path(), &example_component("only_dogs"), "{species: 5}");
    let (code, _, err) = eddy(&["run", "--config", &path]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`species` must be a string"), "{err}");
}

/// Runs `eddy plugin test` with only-dogs on the usual input under `shell` (e.g. a `ulimit`),
/// with `EDDY_LOG=eddy=debug`; returns the pass/drop verdicts and the log.
fn only_dogs_under(shell_prefix: &str) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path());
    let script = format!("{shell_prefix} exec \"$0\" plugin test --wasm \"$1\" --input \"$2\"",);
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .arg(eddy_e2e::process::eddy_bin())
        .arg(example_component("only_dogs"))
        .arg(dir.path().join("in.jsonl"))
        .env("EDDY_LOG", "eddy=debug")
        .env("EDDY_CACHE_DIR", "off")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let verdicts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["verdict"].as_str().unwrap().to_owned())
        .collect();
    (verdicts, log)
}

#[test]
fn instances_come_from_the_pool_and_on_demand_when_the_address_space_is_too_small() {
    let expected: Vec<String> = (0..RECORDS).map(|i| ["pass", "drop"][i % 2].to_owned()).collect();
    let (verdicts, log) = only_dogs_under("");
    assert!(log.contains("Wasm instances come from the pooling allocator"), "{log}");
    assert_eq!(verdicts, expected);
    // 8 GB of address space cannot hold the pool's reservation; eddy says so and carries on.
    let (verdicts, log) = only_dogs_under("ulimit -v 8000000;");
    assert!(log.contains("the Wasm instance pool cannot be reserved"), "{log}");
    assert!(log.contains("allocating instances on demand"), "{log}");
    assert_eq!(verdicts, expected);
}

#[test]
fn plugin_test_prints_each_records_verdict() {
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path());
    let input = dir.path().join("in.jsonl");
    let (code, out, err) = eddy(&[
        "plugin",
        "test",
        "--wasm",
        test_component("hostile").to_str().unwrap(),
        "--config",
        r#"{"mode": "panic", "poison": "poison"}"#,
        "--input",
        input.to_str().unwrap(),
        "--timeout",
        "100ms",
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), RECORDS);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["line"], i + 1);
        let expected = if POISON.contains(&i) { "error" } else { "pass" };
        assert_eq!(row["verdict"], expected, "{row}");
    }
    let (code, out, _) = eddy(&[
        "plugin",
        "test",
        "--wasm",
        example_component("only_dogs").to_str().unwrap(),
        "--config",
        r#"{"species": "cat"}"#,
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let verdicts: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["verdict"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(verdicts.iter().filter(|v| *v == "pass").count(), RECORDS / 2);
    assert_eq!(verdicts.iter().filter(|v| *v == "drop").count(), RECORDS / 2);
}

/// `replace` (mask-email) and `route` (router) verdicts end to end: the transform reaches the
/// sink, the routed records reach only their sink, in order.
#[test]
fn replace_and_route_verdicts_reach_the_right_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let input: Vec<String> = (0..60)
        .map(|i| {
            let kind = ["PET", "ACTIVITY", "OWNER"][i % 3];
            json!({
                "eventID": format!("e{i}"), "eventName": "INSERT",
                "dynamodb": {"Keys": {"pk": {"S": format!("k{i}")}},
                             "NewImage": {"pk": {"S": format!("k{i}")}, "type": {"S": kind}, "email": {"S": format!("owner{i}@example.com")}},
                             "SequenceNumber": format!("{}", 1000 + i), "SizeBytes": 64, "StreamViewType": "NEW_AND_OLD_IMAGES"}
            })
            .to_string()
        })
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), input.join("\n") + "\n").unwrap();
    let config = format!(
        "source: {{type: file, path: in.jsonl}}
processors:
  mask: {{wasm: {mask}, config: {{attributes: [email]}}}}
  router: {{wasm: {router}, config: {{by: type, sinks: {{PET: pets, ACTIVITY: activities}}}}}}
sinks:
  pets: {{type: file, path: pets.jsonl}}
  activities: {{type: file, path: activities.jsonl}}
routes:
  - {{name: split, processors: [mask, router], sinks: [pets, activities]}}
dead_letter: {{type: file, path: dead.jsonl}}
",
        mask = example_component("mask_email").display(),
        router = example_component("router").display()
    );
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, config).unwrap();
    let mut eddy = Eddy::start(&path);
    assert!(eddy.wait(Duration::from_secs(60)).success(), "{}", eddy.log());
    let pets = lines(&dir.path().join("pets.jsonl"));
    let activities = lines(&dir.path().join("activities.jsonl"));
    assert_eq!(seqs(&pets), (0..60).filter(|i| i % 3 == 0).collect::<Vec<_>>(), "PET records, in order, only in pets");
    assert_eq!(
        seqs(&activities),
        (0..60).filter(|i| i % 3 == 1).collect::<Vec<_>>(),
        "ACTIVITY records only in activities"
    );
    for r in pets.iter().chain(&activities) {
        let email = r["dynamodb"]["NewImage"]["email"]["S"].as_str().unwrap();
        assert!(email.len() == 64 && email.chars().all(|c| c.is_ascii_hexdigit()), "email not masked: {email}");
    }
    assert!(lines(&dir.path().join("dead.jsonl")).is_empty(), "OWNER records are dropped, not dead-lettered");
}

/// Compiled components are cached on disk by content hash and wasmtime version; a damaged cache
/// entry is replaced, never trusted.
#[test]
fn compiled_components_are_cached_and_a_damaged_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path());
    let cache = dir.path().join("cache");
    let input = dir.path().join("in.jsonl");
    let wasm = example_component("only_dogs");
    let args = ["plugin", "test", "--wasm", wasm.to_str().unwrap(), "--input", input.to_str().unwrap()];
    let env = [("EDDY_CACHE_DIR", cache.to_str().unwrap()), ("EDDY_LOG", "debug")];
    let entries = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&cache).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
    };
    let (code, first, err) = eddy_e2e::process::eddy_with_env(&args, &env);
    assert_eq!(code, 0, "{err}");
    let cached = entries();
    assert_eq!(cached.len(), 1, "one compiled component: {cached:?}");
    assert!(cached[0].to_string_lossy().ends_with("-wasmtime-48.0.8.cwasm"), "{cached:?}");
    let (code, second, err) = eddy_e2e::process::eddy_with_env(&args, &env);
    assert_eq!(code, 0);
    assert_eq!(first, second, "the cached component must behave the same");
    assert!(err.contains("loaded from the cache"), "{err}");
    std::fs::write(&cached[0], b"damaged").unwrap();
    let (code, third, err) = eddy_e2e::process::eddy_with_env(&args, &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(first, third);
    assert!(err.contains("ignoring a cached component"), "{err}");
    assert!(std::fs::metadata(&cached[0]).unwrap().len() > 1000, "the damaged entry is replaced");
}

/// Two stream-shaped records: a dog from a snapshot's Scan and a cat from the stream.
fn snapshot_and_stream_records(dir: &std::path::Path) -> std::path::PathBuf {
    let record = |source: &str, seq: &str, species: &str| {
        format!(
            r#"{{"eventID":"e{seq}","eventName":"INSERT","eventSource":"{source}","dynamodb":{{"Keys":{{"pk":{{"S":"p{seq}"}}}},"NewImage":{{"pk":{{"S":"p{seq}"}},"species":{{"S":"{species}"}}}},"SequenceNumber":"{seq}","SizeBytes":10,"StreamViewType":"NEW_IMAGE"}}}}"#
        )
    };
    let path = dir.join("records.jsonl");
    let lines =
        [record("eddy:snapshot", "1", "dog"), record("aws:dynamodb", "2", "cat"), record("aws:dynamodb", "3", "dog")];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn verdicts(wasm: &std::path::Path, input: &std::path::Path) -> Vec<String> {
    let (code, out, err) =
        eddy(&["plugin", "test", "--wasm", wasm.to_str().unwrap(), "--input", input.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["verdict"].as_str().unwrap().to_owned())
        .collect()
}

/// A processor reads each record's `event-source` (contract 0.3.0 and later), so it can tell a
/// snapshot's items from stream records.
#[test]
fn a_processor_tells_snapshot_records_from_stream_records_by_their_event_source() {
    let dir = tempfile::tempdir().unwrap();
    let input = snapshot_and_stream_records(dir.path());
    assert_eq!(verdicts(&test_component("skip_snapshot"), &input), ["drop", "pass", "pass"]);
}

/// A component built against the frozen 0.2.0 contract (no `event-source`) runs unchanged,
/// reading images as before.
#[test]
fn a_component_of_contract_0_2_keeps_running_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let input = snapshot_and_stream_records(dir.path());
    assert_eq!(verdicts(&test_component("contract_0_2"), &input), ["pass", "drop", "pass"]);
}

/// A component built against the frozen 0.3.0 contract (every record's strings, keys and image
/// handles passed with the call) runs unchanged.
#[test]
fn a_component_of_contract_0_3_keeps_running_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let input = snapshot_and_stream_records(dir.path());
    assert_eq!(verdicts(&test_component("contract_0_3"), &input), ["drop", "pass", "pass"]);
}
