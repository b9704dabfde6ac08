use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

fn conformance() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance")
}

/// Every case under `event-patterns/`: no suffix = match, `_NEG` = no match, `_EXC` = invalid.
#[test]
fn eventbridge_conformance_cases_agree() {
    let dir = conformance().join("event-patterns");
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/conformance/event-patterns") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (event, pattern): (Value, Value) = if name == "complex_multi_key_event.json" {
            let pattern = std::fs::read_to_string(dir.join("complex_multi_key_event_pattern.json")).unwrap();
            (
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap(),
                serde_json::from_str(&pattern).unwrap(),
            )
        } else if name.ends_with(".json5") {
            let case: Value =
                json5::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
            (case["Event"].clone(), case["EventPattern"].clone())
        } else {
            continue;
        };
        let stem = name.split('.').next().unwrap();
        let compiled = Pattern::compile(&pattern);
        let outcome = match (&compiled, stem) {
            (Err(_), s) if s.ends_with("_EXC") => Ok(()),
            (Ok(_), s) if s.ends_with("_EXC") => Err("accepted an invalid pattern".to_owned()),
            (Err(e), _) => Err(format!("rejected a valid pattern: {e}")),
            (Ok(p), s) => {
                let expected = !s.ends_with("_NEG");
                if p.matches_json(&event) == expected {
                    Ok(())
                } else {
                    Err(format!("expected match = {expected}"))
                }
            }
        };
        if let Err(why) = outcome {
            failures.push(format!("{name}: {why}"));
        }
        checked += 1;
    }
    assert!(checked >= 95, "only {checked} cases found in {}", dir.display());
    assert!(failures.is_empty(), "{} of {checked} cases disagree:\n{}", failures.len(), failures.join("\n"));
}

/// Every case of `lambda-dynamodb/filters.json`, on the record as JSON and as a decoded
/// [`ChangeRecord`]: both views must give Lambda's answer.
#[test]
fn lambda_dynamodb_cases_agree_on_json_and_on_records() {
    let text = std::fs::read_to_string(conformance().join("lambda-dynamodb/filters.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let pattern = Pattern::compile(&case["pattern"]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = case["matches"].as_bool().unwrap();
        assert_eq!(pattern.matches_json(&case["record"]), expected, "{name} (JSON)");
        let record: ChangeRecord =
            serde_json::from_value(case["record"].clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(pattern.matches_record(&record), expected, "{name} (record)");
    }
    for invalid in doc["invalid_patterns"].as_array().unwrap() {
        assert!(Pattern::compile(invalid).is_err(), "accepted invalid pattern {invalid}");
    }
}

#[test]
fn errors_name_the_path_and_reason() {
    let err = Pattern::compile(&json!({"detail": {"c-count": [{"numeric": [">", 0, ">", 1]}]}})).unwrap_err();
    assert_eq!(err, "detail.c-count: numeric: two lower bounds");
    let err = Pattern::compile(&json!({"a": [{"NUMERIC": ["=", 5]}]})).unwrap_err();
    assert!(err.starts_with("a: unknown operator \"NUMERIC\""), "{err}");
    let err = Pattern::compile(&json!({"a": "x"})).unwrap_err();
    assert_eq!(err, "a: expected an object of fields or a list of match conditions, found a string");
    let err = Filter::compile(&json!([{"a": ["x"]}, {"b": []}])).unwrap_err();
    assert_eq!(err, "pattern 1: b: a list of match conditions may not be empty");
}

#[test]
fn a_filter_ors_its_patterns_on_records() {
    let record: ChangeRecord = serde_json::from_value(json!({
        "eventID": "1", "eventName": "MODIFY",
        "dynamodb": {"Keys": {"PK": {"S": "PET#1"}}, "NewImage": {"PK": {"S": "PET#1"}, "species": {"S": "dog"}, "age": {"N": "4"}},
                     "SequenceNumber": "1", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    }))
    .unwrap();
    let f = |v: Value| Filter::compile(&v).unwrap().matches_record(&record);
    assert!(f(json!({"dynamodb": {"NewImage": {"species": {"S": ["dog"]}}}})));
    assert!(!f(json!({"dynamodb": {"NewImage": {"species": {"S": ["cat"]}}}})));
    assert!(f(json!([{"eventName": ["INSERT"]}, {"dynamodb": {"Keys": {"PK": {"S": [{"prefix": "PET#"}]}}}}])));
    assert!(!f(json!([{"eventName": ["INSERT"]}, {"eventName": ["REMOVE"]}])));
    // N is a string: numeric never matches it, exact string values do.
    assert!(!f(json!({"dynamodb": {"NewImage": {"age": {"N": [{"numeric": [">", 1]}]}}}})));
    assert!(f(json!({"dynamodb": {"NewImage": {"age": {"N": ["4"]}}}})));
    assert!(f(json!({"dynamodb": {"SizeBytes": [{"numeric": [">=", 10]}]}})));
    assert!(f(json!({"dynamodb.StreamViewType": ["NEW_AND_OLD_IMAGES"]})));
}

/// Leaf values an event may hold, and events built from them.
fn leaf_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1_000_000i64..1_000_000).prop_map(|n| json!(n)),
        "[a-zA-Z0-9 _.-]{0,12}".prop_map(Value::String),
    ]
}

fn event() -> impl Strategy<Value = Value> {
    let leaf = leaf_value();
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![prop::collection::btree_map("[a-z]{1,5}", inner.clone(), 1..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),]
    })
    .prop_filter("an event is an object", Value::is_object)
}

/// A pattern made of the event's own values, field for field.
fn pattern_from(event: &Value) -> Value {
    match event {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), pattern_from(v))).collect()),
        leaf => json!([leaf]),
    }
}

/// Every leaf of an event with its path.
fn leaves(event: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match event {
        Value::Object(m) => {
            for (k, v) in m {
                path.push(k.clone());
                leaves(v, path, out);
                path.pop();
            }
        }
        leaf => out.push((path.clone(), leaf.clone())),
    }
}

fn at_path(path: &[String], leaf: Value) -> Value {
    path.iter().rev().fold(leaf, |inner, k| json!({ k: inner }))
}

proptest! {
    #[test]
    fn a_pattern_of_the_events_own_values_matches_it(event in event()) {
        let pattern = Pattern::compile(&pattern_from(&event)).unwrap();
        prop_assert!(pattern.matches_json(&event));
    }

    #[test]
    fn anything_but_a_value_never_matches_that_value(event in event(), pick in any::<prop::sample::Index>()) {
        let mut all = Vec::new();
        leaves(&event, &mut Vec::new(), &mut all);
        let candidates: Vec<_> = all.into_iter().filter(|(_, v)| v.is_string() || v.is_number()).collect();
        prop_assume!(!candidates.is_empty());
        let (path, value) = &candidates[pick.index(candidates.len())];
        let pattern = Pattern::compile(&at_path(path, json!([{"anything-but": value}]))).unwrap();
        prop_assert!(!pattern.matches_json(&event));
        let listed = Pattern::compile(&at_path(path, json!([{"anything-but": [value, "zzz-other"]}]))).unwrap();
        prop_assert!(!listed.matches_json(&event));
    }

    #[test]
    fn or_matches_exactly_when_one_alternative_does(event in event(), a in event(), b in event()) {
        let (pa, pb) = (pattern_from(&a), pattern_from(&b));
        let either = Pattern::compile(&json!({"$or": [pa.clone(), pb.clone()]})).unwrap();
        let one = Pattern::compile(&pa).unwrap().matches_json(&event) || Pattern::compile(&pb).unwrap().matches_json(&event);
        prop_assert_eq!(either.matches_json(&event), one);
    }
}

#[test]
fn dotted_event_keys_are_paths_as_eventbridge_flattens_them() {
    let pattern = Pattern::compile(&json!({"detail": {"state": {"status": ["running"]}}})).unwrap();
    assert!(pattern.matches_json(&json!({"detail": {"state": {"status": "running"}}})));
    assert!(pattern.matches_json(&json!({"detail": {"state.status": "running"}})));
    assert!(pattern.matches_json(&json!({"detail.state.status": "running"})));
    assert!(pattern.matches_json(&json!({"detail.state": {"status": "running"}})));
    assert!(!pattern.matches_json(&json!({"detail": {"state.status": "stopped"}})));
    assert!(!pattern.matches_json(&json!({"detail": {"state.statuses": "running"}})));
    // Both spellings in one event: a field matches if either does.
    let both = Pattern::compile(&json!({"detail": {"state": {"status": ["running"], "code": [16]}}})).unwrap();
    assert!(both.matches_json(&json!({"detail": {"state": {"code": 16}, "state.status": "running"}})));
    // `exists: false` sees the dotted spelling as present.
    let absent = Pattern::compile(&json!({"detail": {"state": {"status": [{"exists": false}]}}})).unwrap();
    assert!(absent.matches_json(&json!({"detail": {"other": 1}})));
    assert!(!absent.matches_json(&json!({"detail": {"state.status": "running"}})));
    // Image attributes whose names hold dots, on a record.
    let record: ChangeRecord = serde_json::from_value(json!({
        "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {"Keys": {"id": {"S": "a"}}, "NewImage": {"id": {"S": "a"}, "pet.kind": {"S": "dog"}},
                     "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"}
    }))
    .unwrap();
    let dogs = Pattern::compile(&json!({"dynamodb": {"NewImage": {"pet": {"kind": {"S": ["dog"]}}}}})).unwrap();
    assert!(dogs.matches_record(&record));
    assert_eq!(dogs.matches_record(&record), dogs.matches_json(&serde_json::to_value(&record).unwrap()));
}
