use super::*;
use crate::source::polling::StartPosition;
use crate::wasm::config::Limits;

const GOOD: &str = "\
source:
  type: dynamodb
  table: PetTracker
  endpoint: http://127.0.0.1:5000
  start: latest
  poll_interval: 100ms
checkpoints:
  type: local
  path: state
processors:
  only-dogs:
    wasm: plugins/only_dogs.wasm
    config: {species: dog}
    limits: {memory: 16MiB, timeout: 50ms}
sinks:
  replica:
    type: alternator
    endpoint: http://127.0.0.1:8000
    table: PetTracker
  audit: {type: file, path: audit.jsonl}
routes:
  - name: dogs
    processors: [only-dogs]
    sinks: [replica]
  - name: everything
    sinks: [audit]
";

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(Path::new("/etc/eddy/pipeline.yaml"), text)
}

/// The single error `text` produces, as printed.
fn error_of(text: &str) -> String {
    let errors = parse(text).expect_err("config should be rejected").0;
    assert_eq!(errors.len(), 1, "expected one error, got {errors:?}");
    errors[0].to_string()
}

#[test]
fn a_full_config_loads_with_defaults_and_resolved_paths() {
    let c = parse(GOOD).unwrap();
    let SourceConfig::Dynamodb(s) = &c.source else { panic!("a dynamodb source") };
    assert_eq!(s.table.as_deref(), Some("PetTracker"));
    assert_eq!(s.start, StartPosition::Latest);
    assert_eq!(s.poll_interval, Duration::from_millis(100));
    assert_eq!(s.max_records_per_poll, 1000);
    let CheckpointConfig::Local(local) = &c.checkpoints else { panic!("local checkpoints") };
    assert_eq!(local.path, Path::new("/etc/eddy/state"));
    assert_eq!(s.max_records_per_second, None);
    assert!(c.metrics.is_none());
    let p = &c.processors["only-dogs"];
    assert_eq!(p.wasm, Path::new("/etc/eddy/plugins/only_dogs.wasm"));
    assert_eq!(p.config_json, r#"{"species":"dog"}"#);
    assert_eq!(p.limits, Limits { memory_bytes: 16 << 20, timeout: Duration::from_millis(50) });
    assert_eq!(c.sinks["audit"].kind(), "file");
    assert_eq!(c.sinks["audit"].file(), Some(Path::new("/etc/eddy/audit.jsonl")));
    assert_eq!(c.routes[1].processors, Vec::<String>::new());
    assert_eq!(c.dead_letter.file(), Some(Path::new("/etc/eddy/.eddy/dead-letter.jsonl")));
}

#[test]
fn a_lease_table_defaults_to_the_sources_endpoint_and_region() {
    let text = GOOD.replace(
        "checkpoints:\n  type: local\n  path: state\n",
        "name: pets\ncheckpoints: {type: dynamodb, table: eddy-leases}\nmetrics: {listen: \"127.0.0.1:9100\"}\n",
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.name.as_deref(), Some("pets"));
    let CheckpointConfig::Dynamodb(t) = &c.checkpoints else { panic!("a lease table") };
    assert_eq!(t.table, "eddy-leases");
    assert_eq!(t.lease_duration, Duration::from_secs(10));
    assert_eq!(t.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    assert_eq!(c.metrics.unwrap().listen, "127.0.0.1:9100".parse().unwrap());
    let own = text.replace("table: eddy-leases}", "table: l, lease_duration: 3s, endpoint: \"http://x:1\"}");
    let CheckpointConfig::Dynamodb(t) = parse(&own).unwrap().checkpoints else { panic!("a lease table") };
    assert_eq!((t.lease_duration, t.endpoint.as_deref()), (Duration::from_secs(3), Some("http://x:1")));
    let err = error_of(&text.replace("table: eddy-leases}", "table: l, lease: 3s}"));
    assert!(err.contains("checkpoints.lease") && err.contains("unknown field"), "{err}");
    let err = error_of(&text.replace("127.0.0.1:9100", "localhost"));
    assert!(err.contains("metrics.listen"), "{err}");
}

#[test]
fn a_records_per_second_budget_is_a_positive_number() {
    let with =
        |v: &str| {
            parse(&GOOD.replace(
                "  poll_interval: 100ms\n",
                &format!("  poll_interval: 100ms\n  max_records_per_second: {v}\n"),
            ))
        };
    let SourceConfig::Dynamodb(s) = with("500").unwrap().source else { panic!("a dynamodb source") };
    assert_eq!(s.max_records_per_second.map(|n| n.get()), Some(500));
    assert!(with("0").is_err());
}

#[test]
fn start_positions_parse() {
    let with = |start: &str| parse(&GOOD.replace("start: latest", start));
    let SourceConfig::Dynamodb(s) = with("start: {after_sequence: \"42\"}").unwrap().source else {
        panic!("a dynamodb source")
    };
    assert_eq!(s.start, StartPosition::AfterSequence("42".into()));
    let SourceConfig::Dynamodb(s) = with("start: trim_horizon").unwrap().source else { panic!("a dynamodb source") };
    assert_eq!(s.start, StartPosition::TrimHorizon);
    let err = error_of(&GOOD.replace("start: latest", "start: yesterday"));
    assert_eq!(
        err,
        "/etc/eddy/pipeline.yaml:5: source.start: expected trim_horizon, latest, {after_sequence: \"...\"}, \
         {at_sequence: \"...\"} or {at_timestamp: \"2026-11-23T10:00:00Z\"}"
    );
    let err = error_of(&GOOD.replace("start: latest", "start: {at_timestamp: \"2026-11-23T10:00:00Z\"}"));
    assert!(err.contains("source.start: DynamoDB Streams has no AT_TIMESTAMP iterator"), "{err}");
}

/// A Kinesis source: a stream, where to start (at a time too), and Kinesis' own limits.
#[test]
fn kinesis_sources_parse_and_check_kinesis_limits() {
    let yaml = |source: &str| {
        format!(
            "source:\n  type: kinesis\n{source}\nsinks:\n  out: {{type: stdout}}\nroutes:\n  - {{name: all, sinks: [out]}}\n"
        )
    };
    let config = parse(&yaml(
        "  stream_name: pets-cdc\n  table: Pets\n  endpoint: http://127.0.0.1:5000\n  start: {at_timestamp: \"2026-11-23T10:00:00Z\"}",
    ))
    .unwrap();
    let SourceConfig::Kinesis(s) = &config.source else { panic!("a kinesis source") };
    assert_eq!(s.stream_name.as_deref(), Some("pets-cdc"));
    assert_eq!(s.table.as_deref(), Some("Pets"));
    assert_eq!(s.start, StartPosition::AtTimestamp(1_795_428_000_000));
    assert_eq!(s.poll_interval, Duration::from_secs(1));
    assert_eq!(s.recent_keys_per_shard, 10_000);
    let big = parse(&yaml("  stream_name: s\n  max_records_per_poll: 10000")).unwrap();
    let SourceConfig::Kinesis(s) = &big.source else { panic!("a kinesis source") };
    assert_eq!(s.max_records_per_poll, 10_000);

    let err = error_of(&yaml("  stream_name: s\n  max_records_per_poll: 10001"));
    assert!(err.contains(":4: source.max_records_per_poll: must be between 1 and 10000"), "{err}");
    let err = error_of(&yaml("  stream_name: s\n  poll_interval: 100ms"));
    assert!(err.contains("source.poll_interval: 100ms is below the minimum of 200ms"), "{err}");
    let err = error_of(&yaml("  table: Pets"));
    assert!(err.contains("source: set `stream_name` or `stream_arn`"), "{err}");
    let err = error_of(&yaml("  stream_name: s\n  start: {at_timestamp: yesterday}"));
    assert!(err.contains("at_timestamp \"yesterday\" is not an RFC 3339 time"), "{err}");

    // A snapshot first: it scans `table`, and decides where the stream starts.
    let snap = parse(&yaml("  stream_name: s\n  table: Pets\n  snapshot: {mode: first_run, segments: 16}")).unwrap();
    let SourceConfig::Kinesis(s) = &snap.source else { panic!("a kinesis source") };
    assert_eq!(s.snapshot.segments, 16);
    let err = error_of(&yaml("  stream_name: s\n  snapshot: {mode: first_run}"));
    assert!(err.contains(":4: source.snapshot.mode: a snapshot scans the DynamoDB table"), "{err}");
    let err = error_of(&yaml("  stream_name: s\n  table: Pets\n  start: latest\n  snapshot: {mode: first_run}"));
    assert!(err.contains("source.start: with `snapshot.mode: first_run`"), "{err}");
    let err = error_of(&yaml("  stream_name: s\n  max_inflight_bytes: 10KiB"));
    assert!(err.contains("source.max_inflight_bytes: must be at least 1MiB"), "{err}");
}

#[test]
fn an_unknown_key_in_a_section_names_line_and_key() {
    let err = error_of(&GOOD.replace("poll_interval: 100ms", "poll_intervall: 100ms"));
    assert!(
        err.starts_with("/etc/eddy/pipeline.yaml:6: source.poll_intervall: unknown field `poll_intervall`"),
        "{err}"
    );
}

#[test]
fn an_unknown_top_level_key_names_line_and_key() {
    let err = error_of(&format!("{GOOD}telemetry: {{listen: x}}\n"));
    assert!(err.starts_with("/etc/eddy/pipeline.yaml:27: telemetry: unknown field `telemetry`"), "{err}");
}

#[test]
fn a_wrong_type_names_line_and_key() {
    let err = error_of(&GOOD.replace("poll_interval: 100ms", "poll_interval: soon"));
    assert!(err.starts_with("/etc/eddy/pipeline.yaml:6: source.poll_interval: invalid duration \"soon\""), "{err}");
    let err = error_of(&GOOD.replace("    table: PetTracker\n  audit", "    table: [PetTracker]\n  audit"));
    assert!(
        err.starts_with("/etc/eddy/pipeline.yaml:19: sinks.replica.table: invalid type: sequence, expected a string"),
        "{err}"
    );
}

#[test]
fn an_unknown_sink_in_a_route_is_named_with_the_declared_ones() {
    let err = error_of(&GOOD.replace("sinks: [audit]", "sinks: [audit, replca]"));
    assert_eq!(
        err,
        "/etc/eddy/pipeline.yaml:26: routes[1].sinks[1]: unknown sink \"replca\" (declared: audit, replica)"
    );
}

#[test]
fn an_unknown_processor_in_a_route_is_named() {
    let err = error_of(&GOOD.replace("processors: [only-dogs]", "processors: [only-cats]"));
    assert_eq!(
        err,
        "/etc/eddy/pipeline.yaml:23: routes[0].processors[0]: unknown processor \"only-cats\" (declared: only-dogs)"
    );
}

#[test]
fn an_unknown_sink_type_lists_the_known_ones() {
    let err = error_of(&GOOD.replace("type: alternator", "type: kafka"));
    assert_eq!(err, "/etc/eddy/pipeline.yaml:17: sinks.replica.type: unknown type \"kafka\" (one of: alternator, cratedb, sqs, sns, eventbridge, kinesis, http, file, stdout, null)");
}

#[test]
fn table_and_stream_arn_are_exclusive_and_one_is_required() {
    let err = error_of(&GOOD.replace("  table: PetTracker\n  endpoint", "  endpoint"));
    assert_eq!(err, "/etc/eddy/pipeline.yaml:1: source: set `table` or `stream_arn`");
    let err = error_of(
        &GOOD.replace("  table: PetTracker\n  endpoint", "  table: PetTracker\n  stream_arn: arn:x\n  endpoint"),
    );
    assert_eq!(err, "/etc/eddy/pipeline.yaml:1: source: set only one of `table` and `stream_arn`");
}

#[test]
fn out_of_range_numbers_and_sizes_are_rejected() {
    let err = error_of(&GOOD.replace("poll_interval: 100ms", "max_records_per_poll: 5000"));
    assert_eq!(
        err,
        "/etc/eddy/pipeline.yaml:6: source.max_records_per_poll: must be between 1 and 1000 (the GetRecords limit)"
    );
    let err = error_of(&GOOD.replace("memory: 16MiB", "memory: 16 parsecs"));
    assert!(
        err.starts_with("/etc/eddy/pipeline.yaml:14: processors.only-dogs.limits.memory: unknown size unit"),
        "{err}"
    );
}

#[test]
fn duplicate_route_names_are_rejected() {
    let err = error_of(&GOOD.replace("name: everything", "name: dogs"));
    assert_eq!(err, "/etc/eddy/pipeline.yaml:25: routes[1].name: route name \"dogs\" is already used by routes[0]");
}

#[test]
fn yaml_syntax_errors_name_the_line() {
    let err = error_of("source:\n  type: dynamodb\n   table: [\n");
    assert!(err.starts_with("/etc/eddy/pipeline.yaml:3"), "{err}");
}

#[test]
fn several_problems_are_reported_together_in_line_order() {
    let text = GOOD.replace("sinks: [audit]", "sinks: [nope]").replace("type: alternator", "type: kafka");
    let errors = parse(&text).unwrap_err().0;
    let lines: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![Some(17), Some(26)], "{errors:?}");
}

#[test]
fn route_filters_compile_and_invalid_ones_name_the_reason() {
    let with = |filter: &str| {
        parse(&GOOD.replace("  - name: everything\n", &format!("  - name: everything\n    filter: {filter}\n")))
    };
    let c = with(r#"{"eventName": ["INSERT", "MODIFY"]}"#).unwrap();
    assert!(c.routes[1].filter.is_some());
    assert!(c.routes[0].filter.is_none());
    let c = with(r#"[{"eventName": ["INSERT"]}, '{"dynamodb": {"NewImage": {"species": {"S": ["dog"]}}}}']"#).unwrap();
    assert!(c.routes[1].filter.is_some());
    let err = with(r#"{"eventName": [{"prefix": 5}]}"#).unwrap_err().0;
    assert_eq!(err[0].to_string(), "/etc/eddy/pipeline.yaml:26: routes[1].filter: invalid pattern: eventName: prefix takes a string or {\"equals-ignore-case\": string}");
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let c = parse(&format!("\u{feff}{GOOD}")).unwrap();
    assert_eq!(c.routes.len(), 2);
}

#[test]
fn repeated_sink_processor_and_pattern_keys_are_errors_naming_both_lines() {
    let twice = GOOD.replace(
        "  audit: {type: file, path: audit.jsonl}\n",
        "  audit: {type: file, path: audit.jsonl}\n  replica: {type: stdout}\n",
    );
    let err = error_of(&twice);
    assert!(
        err.starts_with("/etc/eddy/pipeline.yaml:21: sinks.replica: duplicate key \"replica\" (lines 16 and 21)"),
        "{err}"
    );
    let twice = GOOD.replace(
        "    limits: {memory: 16MiB, timeout: 50ms}\n",
        "    limits: {memory: 16MiB, timeout: 50ms}\n  only-dogs:\n    wasm: other.wasm\n",
    );
    let err = error_of(&twice);
    assert!(err.contains(":15: processors.only-dogs: duplicate key \"only-dogs\" (lines 11 and 15)"), "{err}");
    let twice = GOOD.replace(
        "processors: [only-dogs]\n",
        "processors: [only-dogs]\n    filter: {\"eventName\": [\"INSERT\"], \"eventName\": [\"REMOVE\"]}\n",
    );
    let err = error_of(&twice);
    assert!(err.contains("routes[0].filter.eventName: duplicate key \"eventName\" (both on line 24)"), "{err}");
}

#[test]
fn intervals_below_their_minimums_are_refused() {
    let err = error_of(&GOOD.replace("poll_interval: 100ms", "poll_interval: 0s"));
    assert!(err.contains(":6: source.poll_interval: 0ns is below the minimum of 50ms"), "{err}");
    let err = error_of(&GOOD.replace("poll_interval: 100ms", "poll_interval: 100ms\n  shard_discovery_interval: 10ms"));
    assert!(err.contains("source.shard_discovery_interval: 10ms is below the minimum of 1s"), "{err}");
    let text = GOOD.replace(
        "checkpoints:\n  type: local\n  path: state\n",
        "name: p\ncheckpoints: {type: dynamodb, table: l, lease_duration: 0s}\n",
    );
    let err = error_of(&text);
    assert!(err.contains("checkpoints.lease_duration: 0ns is below the minimum of 1s"), "{err}");
}

#[test]
fn a_password_in_a_url_is_never_printed() {
    let text = GOOD.replace(
        "  audit: {type: file, path: audit.jsonl}\n",
        "  audit: {type: file, path: audit.jsonl}\n  crate: {type: cratedb, url: \"htp://crate:hunter2@db:4200\", table: doc.t}\n",
    );
    let err = error_of(&text);
    assert!(err.contains("sinks.crate.url"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("crate:***@db"), "{err}");
    let text = text.replace("htp://crate:hunter2@db:4200", "http://crate:hunter2@db:port");
    let err = error_of(&text);
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn an_unquoted_null_sink_type_is_the_null_sink() {
    let text = GOOD.replace("  audit: {type: file, path: audit.jsonl}", "  audit: {type: null}");
    let config = parse(&text).unwrap();
    assert_eq!(config.sinks["audit"].kind(), "null", "{:?}", config.sinks["audit"]);
    let missing = GOOD.replace("  audit: {type: file, path: audit.jsonl}", "  audit: {path: x}");
    assert!(error_of(&missing).contains("missing `type`"), "{}", error_of(&missing));
}

#[test]
fn lambda_failure_settings_parse_with_safe_defaults() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.routes[0].on_sink_failure, OnSinkFailure { retries: 0, then: AfterSinkFailure::Stop });
    let SourceConfig::Dynamodb(s) = &c.source else { panic!() };
    assert_eq!(s.maximum_record_age, None);

    let text = GOOD.replace("  poll_interval: 100ms\n", "  poll_interval: 100ms\n  maximum_record_age: 1h\n").replace(
        "    sinks: [replica]\n",
        "    sinks: [replica]\n    on_sink_failure: {retries: 2, then: dead_letter}\n",
    ) + "dead_letter: {type: dynamodb, table: eddy-dead-letters}\n";
    let c = parse(&text).unwrap();
    assert_eq!(c.routes[0].on_sink_failure, OnSinkFailure { retries: 2, then: AfterSinkFailure::DeadLetter });
    let SourceConfig::Dynamodb(s) = &c.source else { panic!() };
    assert_eq!(s.maximum_record_age, Some(Duration::from_secs(3600)));
    // The table's endpoint defaults to the source's.
    let DeadLetterConfig::Dynamodb(t) = &c.dead_letter else { panic!("{:?}", c.dead_letter) };
    assert_eq!((t.table.as_str(), t.endpoint.as_deref()), ("eddy-dead-letters", Some("http://127.0.0.1:5000")));

    let bad =
        GOOD.replace("    sinks: [replica]\n", "    sinks: [replica]\n    on_sink_failure: {retries: 2, then: skip}\n");
    let e = error_of(&bad);
    assert!(e.contains("routes[0].on_sink_failure.then") && e.contains("dead_letter"), "{e}");
    let young = GOOD.replace("  poll_interval: 100ms\n", "  poll_interval: 100ms\n  maximum_record_age: 10ms\n");
    assert!(
        error_of(&young).contains("source.maximum_record_age: 10ms is below the minimum of 1s"),
        "{}",
        error_of(&young)
    );
    let e = error_of(&(GOOD.to_owned() + "dead_letter: {type: sns}\n"));
    assert!(e.contains("unknown type \"sns\" (one of: file, dynamodb, s3, sqs)"), "{e}");

    let c = parse(&(GOOD.to_owned() + "dead_letter: {type: sqs, queue: dl, overflow_bucket: big}\n")).unwrap();
    let DeadLetterConfig::Sqs(q) = &c.dead_letter else { panic!("{:?}", c.dead_letter) };
    assert_eq!((q.queue.as_str(), q.overflow_bucket.as_deref()), ("dl", Some("big")));
    assert_eq!((q.overflow_prefix.as_str(), q.visibility_timeout), ("eddy-dead-letter/", Duration::from_secs(900)));
    assert_eq!(q.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    let e = error_of(&(GOOD.to_owned() + "dead_letter: {type: sqs}\n"));
    assert!(e.contains("dead_letter: missing field `queue`"), "{e}");
    let e = error_of(&(GOOD.to_owned() + "dead_letter: {type: sqs, queue: dl, visibility_timeout: 13h}\n"));
    assert!(e.contains("dead_letter.visibility_timeout: must be between 1s and 12h"), "{e}");
}

#[test]
fn route_batching_parses_and_its_limits_are_checked() {
    let with = |route_keys: &str, source_keys: &str| {
        GOOD.replace("  poll_interval: 100ms\n", &format!("  poll_interval: 100ms\n{source_keys}"))
            .replace("    sinks: [replica]\n", &format!("    sinks: [replica]\n{route_keys}"))
    };
    let c = parse(&with("    batching_window: 2s\n", "")).unwrap();
    assert_eq!(c.routes[0].batching, Some(Batching { size: 1000, window: Duration::from_secs(2) }));
    assert_eq!(c.routes[1].batching, None);
    let c = parse(&with("    batch_size: 100\n", "")).unwrap();
    assert_eq!(c.routes[0].batching, Some(Batching { size: 100, window: Duration::ZERO }));
    assert!(error_of(&with("    batch_size: 0\n", "")).contains("routes[0].batch_size: must be between 1 and 10000"));
    assert!(
        error_of(&with("    batching_window: 301s\n", "")).contains("routes[0].batching_window: must be at most 300s")
    );
    // Batching and lanes go together: each lane gathers its own records.
    let c = parse(&with("    batch_size: 100\n", "  parallelization_factor: 2\n")).unwrap();
    assert_eq!(c.routes[0].batching.map(|b| b.size), Some(100));
    let e = error_of(&with("", "  parallelization_factor: 11\n"));
    assert!(e.contains("source.parallelization_factor: must be between 1 and 10"), "{e}");
}

#[test]
fn a_lease_table_needs_the_pipelines_name_and_a_name_is_checked() {
    let text =
        GOOD.replace("checkpoints:\n  type: local\n  path: state\n", "checkpoints: {type: dynamodb, table: leases}\n");
    let err = error_of(&text);
    assert!(err.contains("checkpoints: a lease table needs the pipeline's name: add `name: <pipeline>`"), "{err}");
    let err = error_of(&format!("name: \"to scylla/1\"\n{text}"));
    assert!(err.contains(":1: name: \"to scylla/1\" is not a pipeline name"), "{err}");
    assert_eq!(parse(&format!("name: to-scylla.v2\n{text}")).unwrap().name.as_deref(), Some("to-scylla.v2"));
    // Local checkpoints work without a name.
    assert_eq!(parse(GOOD).unwrap().name, None);
}

#[test]
fn two_writers_of_one_file_and_an_empty_endpoints_list_are_refused() {
    let text =
        GOOD.replace("sinks:\n", "sinks:\n  a: {type: file, path: out.jsonl}\n  b: {type: file, path: out.jsonl}\n");
    let err = error_of(&text);
    assert!(err.contains("sinks.b.path: /etc/eddy/out.jsonl is written by sinks.a.path too"), "{err}");
    let text = GOOD.replace("sinks:\n", "sinks:\n  a: {type: file, path: dead.jsonl}\n")
        + "dead_letter: {type: file, path: dead.jsonl}\n";
    let err = error_of(&text);
    assert!(err.contains("dead_letter.path: /etc/eddy/dead.jsonl is written by sinks.a.path too"), "{err}");
    let text = GOOD.replace("sinks:\n", "sinks:\n  a: {type: alternator, table: T, endpoints: []}\n");
    let err = error_of(&text);
    assert!(err.contains("sinks.a.endpoints: is empty: list at least one node, or remove the key"), "{err}");
}

/// Each default is declared once, in its component; the README's annotated pipeline shows the
/// same values (`key: value` on a line of its YAML block, commented out or not).
#[test]
fn the_readmes_pipeline_shows_the_defaults_the_code_declares() {
    use crate::source::dynamodb::config::snapshot_defaults;
    use crate::source::polling::defaults;
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let start = readme.find("## A pipeline, key by key").expect("the section");
    let block = &readme[start..start + readme[start..].find("\n```\n").expect("its YAML block")];
    let d = |d: Duration| humantime::format_duration(d).to_string();
    let retry = eddy_sink_api::RetryPolicy::default();
    let timeouts = eddy_sink_api::Timeouts::default();
    let limits = crate::wasm::config::Limits::default();
    let expected = [
        ("poll_interval", d(defaults::POLL_INTERVAL)),
        ("max_records_per_poll", defaults::MAX_RECORDS_PER_POLL.to_string()),
        ("shard_discovery_interval", d(defaults::SHARD_DISCOVERY_INTERVAL)),
        ("max_consecutive_errors", defaults::MAX_CONSECUTIVE_ERRORS.to_string()),
        ("parallelization_factor", defaults::PARALLELIZATION_FACTOR.to_string()),
        ("stall_after", d(defaults::STALL_AFTER)),
        ("segments", snapshot_defaults::SEGMENTS.to_string()),
        ("safety_margin", d(snapshot_defaults::SAFETY_MARGIN)),
        ("lease_duration", d(crate::lease::dynamo::LEASE_DURATION)),
        ("concurrency", eddy_sink_alternator::DEFAULT_CONCURRENCY.to_string()),
        ("batch_size", eddy_sink_cratedb::DEFAULT_BATCH_SIZE.to_string()),
        ("timeout", d(eddy_sink_cratedb::DEFAULT_TIMEOUT)),
        ("attempts", retry.attempts.to_string()),
        ("base_delay", d(retry.backoff.base_delay)),
        ("max_delay", d(retry.backoff.max_delay)),
        ("connect", d(timeouts.connect)),
        ("request", d(timeouts.request)),
        ("memory", format!("{}MiB", limits.memory_bytes >> 20)),
        ("timeout", d(limits.timeout)),
    ];
    for (key, value) in expected {
        let shown = [
            format!("{key}: {value} "),
            format!("{key}: {value}\n"),
            format!("{key}: {value},"),
            format!("{key}: {value}}}"),
        ];
        assert!(shown.iter().any(|s| block.contains(s.as_str())), "README's pipeline does not show {key}: {value}");
    }
}
