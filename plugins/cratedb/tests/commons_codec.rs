//! Every vector of `tests/conformance/cratedb/commons-codec-0.0.24-cdc.jsonl`: eddy's row equals
//! the reference's parameters (numbers by value, sets as multisets), and the statement kind maps
//! as documented (INSERT and MODIFY → upsert, REMOVE → delete).

use eddy_record::{AttributeValue, ChangeRecord, Item};
use eddy_sink_cratedb::translate::{row, write_args, Op};
use serde_json::{Map, Value};

/// Compares our value with the reference's, guided by the DynamoDB value both came from.
fn same(ours: &Value, theirs: &Value, source: &AttributeValue, path: &str) -> Result<(), String> {
    let fail = || Err(format!("{path}: eddy {ours} ≠ reference {theirs}"));
    match source {
        AttributeValue::N(_) => match (ours.as_f64(), theirs.as_f64()) {
            (Some(a), Some(b)) if a == b || (a - b).abs() <= b.abs() * 1e-15 => Ok(()),
            _ => fail(),
        },
        AttributeValue::Ss(_) | AttributeValue::Bs(_) | AttributeValue::Ns(_) => {
            let canon = |v: &Value| -> Option<Vec<String>> {
                let mut items: Vec<String> = v
                    .as_array()?
                    .iter()
                    .map(|x| x.as_f64().map(|f| format!("{f}")).unwrap_or_else(|| x.to_string()))
                    .collect();
                items.sort();
                Some(items)
            };
            if canon(ours).is_some() && canon(ours) == canon(theirs) {
                Ok(())
            } else {
                fail()
            }
        }
        AttributeValue::M(m) => objects(ours.as_object().unwrap(), theirs.as_object().unwrap(), m, path),
        AttributeValue::L(l) => {
            let (a, b) = (ours.as_array().unwrap(), theirs.as_array().unwrap());
            if a.len() != b.len() {
                return fail();
            }
            for (i, ((x, y), s)) in a.iter().zip(b).zip(l).enumerate() {
                same(x, y, s, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => {
            if ours == theirs {
                Ok(())
            } else {
                fail()
            }
        }
    }
}

fn objects(ours: &Map<String, Value>, theirs: &Map<String, Value>, source: &Item, path: &str) -> Result<(), String> {
    let mut a: Vec<&String> = ours.keys().collect();
    let mut b: Vec<&String> = theirs.keys().collect();
    a.sort();
    b.sort();
    if a != b {
        return Err(format!("{path}: eddy has attributes {a:?}, the reference {b:?}"));
    }
    for (k, v) in ours {
        same(v, &theirs[k], &source[k], &format!("{path}.{k}"))?;
    }
    Ok(())
}

#[test]
fn rows_match_commons_codec() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/conformance/cratedb/commons-codec-0.0.24-cdc.jsonl");
    let text = std::fs::read_to_string(path).expect("the commons-codec vectors");
    let mut checked = 0;
    let mut failures = Vec::new();
    for (line, text) in text.lines().enumerate() {
        let case: Value = serde_json::from_str(text).unwrap();
        let record: ChangeRecord = serde_json::from_value(case["record"].clone()).unwrap();
        let expected = &case["expected"];
        let stmt = expected["stmt"].as_str().unwrap();
        let params = &expected["params"];
        let ours = row(&record).unwrap();
        let kind_ok = match ours.op {
            Op::Delete => stmt.starts_with("DELETE"),
            Op::Upsert => stmt.starts_with("INSERT") || stmt.starts_with("UPDATE"),
        };
        let image = record.dynamodb.new_image.clone().unwrap_or_default();
        // What the sink sends: written straight from the attributes, byte for byte the JSON of
        // the row's maps.
        let mut sent = Vec::new();
        let sent_op = write_args(&record, &mut sent).unwrap();
        let reference = match ours.op {
            Op::Delete => serde_json::json!([ours.pk]),
            Op::Upsert => serde_json::json!([ours.pk, ours.data, ours.aux]),
        };
        let result = (|| {
            if sent_op != ours.op || sent != serde_json::to_vec(&reference).unwrap() {
                return Err(format!("bulk_args {} ≠ the row's {reference}", String::from_utf8_lossy(&sent)));
            }
            if !kind_ok {
                return Err(format!("{:?} for reference statement {stmt}", ours.op));
            }
            objects(&ours.pk, params["pk"].as_object().unwrap(), &record.dynamodb.keys, "pk")?;
            objects(&ours.data, params["typed"].as_object().unwrap(), &image, "data")?;
            objects(&ours.aux, params["untyped"].as_object().unwrap(), &image, "aux")
        })();
        if let Err(e) = result {
            failures.push(format!("line {}: {e}", line + 1));
        }
        checked += 1;
    }
    assert_eq!(checked, 120);
    assert!(failures.is_empty(), "{} of {checked} vectors differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn integral_keys_stay_exact_where_the_reference_rounds() {
    let record: ChangeRecord = serde_json::from_value(serde_json::json!({
        "eventID": "1", "eventName": "MODIFY",
        "dynamodb": {"Keys": {"id": {"N": "9007199254740993"}}, "NewImage": {"id": {"N": "9007199254740993"}, "n": {"N": "-12"}, "f": {"N": "1.5"}},
                     "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    }))
    .unwrap();
    let r = row(&record).unwrap();
    assert_eq!(r.pk["id"].to_string(), "9007199254740993", "2^53 + 1 must not round");
    assert_eq!(r.data["n"].as_i64(), Some(-12));
    assert_eq!(r.data["f"].as_f64(), Some(1.5));
    assert_eq!(r.op, Op::Upsert, "MODIFY is an upsert, so a missing row is created");
}
