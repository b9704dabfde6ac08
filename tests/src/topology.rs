//! A scripted stream for `tests/fakes/streams.py`: two open shards and two closed parents with
//! two children each, 48 keys with six versions each (a key of a parent moves to a child for its
//! last three versions, as a split does), some removed at the end.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use serde_json::{json, Value};

use crate::moto::Moto;
use crate::ops::{snapshot, Snapshot};

/// The scripted stream's ARN.
pub const ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/Pets/stream/2026-01-01T00:00:00.000";
/// How many keys.
pub const KEYS: usize = 48;

/// The shard a key's version `v` (1..=6) lives in: roots hold all six; keys of a parent move to
/// one of its children for versions 4..=6 (as a split does).
fn shard_of(key: usize, v: usize) -> &'static str {
    match (key % 4, v <= 3, (key / 4) % 2) {
        (0, _, _) => "shardId-r0",
        (1, _, _) => "shardId-r1",
        (2, true, _) => "shardId-p0",
        (2, false, 0) => "shardId-c0a",
        (2, false, _) => "shardId-c0b",
        (3, true, _) => "shardId-p1",
        (3, false, 0) => "shardId-c1a",
        _ => "shardId-c1b",
    }
}

fn image(key: usize, v: usize) -> Value {
    json!({"pk": {"S": format!("pet-{key:02}")}, "sk": {"N": "0"}, "v": {"N": v.to_string()}, "shard": {"S": shard_of(key, v)}})
}

/// The script, and the items the replica must end with.
pub fn script() -> (Value, Vec<Value>) {
    let mut records: HashMap<&str, Vec<Value>> = HashMap::new();
    let mut seq = 1000u64;
    for v in 1..=6 {
        for key in 0..KEYS {
            seq += 1;
            let remove = v == 6 && key % 5 == 0;
            let name = match v {
                1 => "INSERT",
                _ if remove => "REMOVE",
                _ => "MODIFY",
            };
            records.entry(shard_of(key, v)).or_default().push(json!({
                "seq": seq.to_string(), "name": name,
                "keys": {"pk": {"S": format!("pet-{key:02}")}, "sk": {"N": "0"}},
                "new": if remove { Value::Null } else { image(key, v) },
                "old": if v == 1 { Value::Null } else { image(key, v - 1) },
            }));
        }
    }
    let shard = |id: &str, parent: Option<&str>, closed: bool| json!({"id": id, "parent": parent, "closed": closed, "records": records.get(id).cloned().unwrap_or_default()});
    let script = json!({"stream_arn": ARN, "view_type": "NEW_AND_OLD_IMAGES", "shards": [
        shard("shardId-p0", None, true), shard("shardId-p1", None, true),
        shard("shardId-r0", None, false), shard("shardId-r1", None, false),
        shard("shardId-c0a", Some("shardId-p0"), false), shard("shardId-c0b", Some("shardId-p0"), false),
        shard("shardId-c1a", Some("shardId-p1"), false), shard("shardId-c1b", Some("shardId-p1"), false),
    ]});
    let expected = (0..KEYS).filter(|k| k % 5 != 0).map(|k| image(k, 6)).collect();
    (script, expected)
}

/// Writes the items the replica must end with into table `name` (created here) and returns them.
pub async fn expected(moto: &Moto, name: &str, items: &[Value]) -> Snapshot {
    moto.create_table(name, false).await;
    for item in items {
        let item: HashMap<String, Av> = item
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let av = match (v.get("S"), v.get("N")) {
                    (Some(s), _) => Av::S(s.as_str().unwrap().to_owned()),
                    (_, Some(n)) => Av::N(n.as_str().unwrap().to_owned()),
                    _ => unreachable!("scripted images hold S and N only"),
                };
                (k.clone(), av)
            })
            .collect();
        moto.client.put_item().table_name(name).set_item(Some(item)).send().await.unwrap();
    }
    snapshot(&moto.client, name, |_| true).await
}
