//! The command line: `eddy validate` on good and bad pipelines, `--help`.

use eddy_e2e::process::eddy;

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const GOOD: &str = "source: {type: dynamodb, table: PetTracker, endpoint: 'http://127.0.0.1:5000', region: us-east-1}
sinks:
  replica: {type: alternator, endpoint: 'http://127.0.0.1:8000', table: PetTracker}
routes:
  - name: all
    sinks: [replica]
";

#[test]
fn validate_accepts_a_good_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "good.yaml", GOOD);
    let (code, out, err) = eddy(&["validate", "--config", &path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"), "{out}");
}

/// What `eddy run` would refuse at start because of this machine, `validate` refuses too: a
/// checkpoints path that is a file, a metrics address in use.
#[test]
fn validate_refuses_what_run_would_refuse_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state"), "not a folder").unwrap();
    let path = write(dir.path(), "file.yaml", &format!("{GOOD}checkpoints: {{type: local, path: state}}\n"));
    let (code, _, err) = eddy(&["validate", "--config", &path]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("checkpoints.path:") && err.contains("is a file"), "{err}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let path = write(dir.path(), "port.yaml", &format!("{GOOD}metrics: {{listen: \"{address}\"}}\n"));
    let (code, _, err) = eddy(&["validate", "--config", &path]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("metrics.listen: cannot listen on {address}")), "{err}");
}

#[test]
fn validate_reports_every_error_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = GOOD
        .replace("table: PetTracker}\nroutes", "tabel: PetTracker}\nroutes")
        .replace("sinks: [replica]", "sinks: [replica, nowhere]");
    let path = write(dir.path(), "bad.yaml", &bad);
    let (code, _, err) = eddy(&["validate", "--config", &path]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{path}:3: sinks.replica.tabel: unknown field `tabel`")), "{err}");
    assert!(err.contains(&format!("{path}:6: routes[0].sinks[1]: unknown sink \"nowhere\"")), "{err}");
    assert!(err.contains("2 errors in"), "{err}");
}

#[test]
fn validate_names_a_missing_file() {
    let (code, _, err) = eddy(&["validate", "--config", "/nonexistent/pipeline.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/pipeline.yaml: cannot read the file"), "{err}");
}

#[test]
fn help_explains_the_commands() {
    let (code, out, _) = eddy(&["--help"]);
    assert_eq!(code, 0);
    for word in ["run", "validate", "SIGTERM", "EDDY_LOG"] {
        assert!(out.contains(word), "--help does not mention {word}:\n{out}");
    }
}

#[test]
fn pattern_test_exits_0_on_match_1_on_no_match_2_on_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let event = write(
        dir.path(),
        "event.json",
        r#"{"eventName": "MODIFY", "dynamodb": {"NewImage": {"species": {"S": "dog"}, "age": {"N": "4"}}}}"#,
    );
    let dogs = write(dir.path(), "dogs.json", r#"{"dynamodb": {"NewImage": {"species": {"S": ["dog"]}}}}"#);
    let cats = write(
        dir.path(),
        "cats.json",
        r#"[{"eventName": ["INSERT"]}, {"dynamodb": {"NewImage": {"species": {"S": ["cat"]}}}}]"#,
    );
    let numeric_n =
        write(dir.path(), "n.json", r#"{"dynamodb": {"NewImage": {"age": {"N": [{"numeric": [">", 1]}]}}}}"#);
    let invalid = write(dir.path(), "bad.json", r#"{"eventName": [{"numeric": [">", 1, ">", 2]}]}"#);
    assert_eq!(eddy(&["pattern", "test", "--pattern", &dogs, "--event", &event]).0, 0);
    assert_eq!(eddy(&["pattern", "test", "--pattern", &cats, "--event", &event]).0, 1);
    // As in Lambda, an N value is a string: numeric never matches it.
    assert_eq!(eddy(&["pattern", "test", "--pattern", &numeric_n, "--event", &event]).0, 1);
    let (code, _, err) = eddy(&["pattern", "test", "--pattern", &invalid, "--event", &event]);
    assert_eq!(code, 2);
    assert!(err.contains("eventName: numeric: two lower bounds"), "{err}");
    // The JSON itself, as a user would first try; a missing file has its own exit code.
    let inline = ["pattern", "test", "--pattern", r#"{"eventName": ["MODIFY"]}"#, "--event", &event];
    assert_eq!(eddy(&inline).0, 0);
    let (code, _, err) = eddy(&["pattern", "test", "--pattern", "no-such.json", "--event", &event]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot read no-such.json"), "{err}");
}

#[test]
fn every_example_pipeline_validates() {
    let dir = eddy_e2e::repo_root().join("examples/pipelines");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let (code, _, err) = eddy(&["validate", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {err}", path.display());
        n += 1;
    }
    assert!(n >= 1);
}

/// A Lambda test event as the Lambda console and SAM (`sam local generate-event dynamodb update`)
/// write it: three records, a dog, a cat and a removal.
const LAMBDA_EVENT: &str = r#"{
  "Records": [
    {
      "eventID": "c4ca4238a0b923820dcc509a6f75849b",
      "eventName": "INSERT",
      "eventVersion": "1.1",
      "eventSource": "aws:dynamodb",
      "awsRegion": "us-east-1",
      "dynamodb": {
        "Keys": {"Id": {"N": "101"}},
        "NewImage": {"Id": {"N": "101"}, "species": {"S": "dog"}, "name": {"S": "Rex"}},
        "ApproximateCreationDateTime": 1428537600,
        "SequenceNumber": "4421584500000000017450439091",
        "SizeBytes": 26,
        "StreamViewType": "NEW_AND_OLD_IMAGES"
      },
      "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/ExampleTableWithStream/stream/2015-06-27T00:48:05.899"
    },
    {
      "eventID": "c81e728d9d4c2f636f067f89cc14862c",
      "eventName": "MODIFY",
      "eventVersion": "1.1",
      "eventSource": "aws:dynamodb",
      "awsRegion": "us-east-1",
      "dynamodb": {
        "Keys": {"Id": {"N": "102"}},
        "NewImage": {"Id": {"N": "102"}, "species": {"S": "cat"}},
        "OldImage": {"Id": {"N": "102"}, "species": {"S": "cat"}, "name": {"S": "Mia"}},
        "SequenceNumber": "4421584500000000017450439092",
        "SizeBytes": 59,
        "StreamViewType": "NEW_AND_OLD_IMAGES"
      },
      "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/ExampleTableWithStream/stream/2015-06-27T00:48:05.899"
    },
    {
      "eventID": "eccbc87e4b5ce2fe28308fd9f2a7baf3",
      "eventName": "REMOVE",
      "eventVersion": "1.1",
      "eventSource": "aws:dynamodb",
      "awsRegion": "us-east-1",
      "dynamodb": {
        "Keys": {"Id": {"N": "101"}},
        "OldImage": {"Id": {"N": "101"}, "species": {"S": "dog"}},
        "SequenceNumber": "4421584500000000017450439093",
        "SizeBytes": 38,
        "StreamViewType": "NEW_AND_OLD_IMAGES"
      },
      "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/ExampleTableWithStream/stream/2015-06-27T00:48:05.899"
    }
  ]
}
"#;

/// `plugin test`, `pattern test` and `sink preview` take a Lambda test event as it is, record by
/// record (they once answered `unknown field Records`).
#[test]
fn lambda_test_events_are_read_record_by_record() {
    let dir = tempfile::tempdir().unwrap();
    let event = write(dir.path(), "event.json", LAMBDA_EVENT);
    let wasm = eddy_e2e::process::example_component("only_dogs");
    let (code, out, err) = eddy(&[
        "plugin",
        "test",
        "--wasm",
        wasm.to_str().unwrap(),
        "--config",
        r#"{"species":"dog"}"#,
        "--input",
        &event,
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let verdicts: Vec<(u64, &str)> =
        rows.iter().map(|r| (r["record"].as_u64().unwrap(), r["verdict"].as_str().unwrap())).collect();
    assert_eq!(verdicts, [(0, "pass"), (1, "drop"), (2, "pass")], "{out}");

    let cats = write(dir.path(), "cats.json", r#"{"dynamodb": {"NewImage": {"species": {"S": ["cat"]}}}}"#);
    let (code, out, _) = eddy(&["pattern", "test", "--pattern", &cats, "--event", &event]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "Records[0]: no match\nRecords[1]: match\nRecords[2]: no match\n1 of 3 records match\n");
    let birds = write(dir.path(), "birds.json", r#"{"dynamodb": {"NewImage": {"species": {"S": ["bird"]}}}}"#);
    assert_eq!(eddy(&["pattern", "test", "--pattern", &birds, "--event", &event]).0, 1);

    let pipeline = write(
        dir.path(),
        "p.yaml",
        "source: {type: file, path: event.json}\ncheckpoints: {type: local, path: state}\nsinks:\n  out: {type: file, path: out.jsonl}\nroutes:\n  - {name: all, sinks: [out]}\n",
    );
    let (code, out, err) = eddy(&["sink", "preview", "--config", &pipeline, "--sink", "out", "--input", &event]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");

    // The file source reads the event's records, drains and exits 0.
    let (code, _, err) = eddy(&["run", "--config", &pipeline]);
    assert_eq!(code, 0, "{err}");
    let written = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    let seqs: Vec<String> = written
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["dynamodb"]["SequenceNumber"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(seqs, ["4421584500000000017450439091", "4421584500000000017450439092", "4421584500000000017450439093"]);
}

/// An Alternator sink may name several nodes or discover them; a discovery section with an
/// unknown key is refused with its line.
#[test]
fn alternator_endpoints_and_discovery_validate() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "cluster.yaml",
        "source: {type: dynamodb, table: PetTracker, endpoint: 'http://127.0.0.1:5000', region: us-east-1}
sinks:
  listed: {type: alternator, table: T, endpoints: ['http://10.0.0.1:8000', 'http://10.0.0.2:8000']}
  found: {type: alternator, table: T, discovery: {seed: 'http://10.0.0.1:8000', datacenter: dc1, rack: r1, refresh: 30s}}
routes:
  - name: all
    sinks: [listed, found]
",
    );
    let (code, out, err) = eddy(&["validate", "--config", &good]);
    assert_eq!(code, 0, "{out}{err}");
    let bad = write(
        dir.path(),
        "bad.yaml",
        "source: {type: dynamodb, table: PetTracker, endpoint: 'http://127.0.0.1:5000'}
sinks:
  found:
    type: alternator
    table: T
    discovery: {seed: 'http://10.0.0.1:8000', datacentre: dc1}
routes:
  - name: all
    sinks: [found]
",
    );
    let (code, _, err) = eddy(&["validate", "--config", &bad]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.yaml:6") && err.contains("datacentre"), "{err}");
}
