//! DynamoDB changes written into a Kinesis stream the way DynamoDB's Kinesis destination writes
//! them, with the final state kept in a DynamoDB table of the same moto server (`Expected`), so a
//! replica can be compared with [`crate::ops::snapshot`].

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use aws_sdk_kinesis::primitives::Blob;
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::moto::Moto;
use crate::ops::Workload;

/// A Kinesis client for `endpoint`.
pub async fn client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    aws_sdk_kinesis::Client::from_conf(aws_sdk_kinesis::config::Builder::from(&shared).endpoint_url(endpoint).build())
}

/// An attribute value as DynamoDB JSON (`{"S": "..."}`, `{"B": "base64"}`, ...).
pub fn av_json(av: &Av) -> Value {
    let b64 = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
    match av {
        Av::S(s) => json!({ "S": s }),
        Av::N(n) => json!({ "N": n }),
        Av::B(b) => json!({ "B": b64(b.as_ref()) }),
        Av::Ss(v) => json!({ "SS": v }),
        Av::Ns(v) => json!({ "NS": v }),
        Av::Bs(v) => json!({ "BS": v.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>() }),
        Av::M(m) => json!({ "M": item_json(m) }),
        Av::L(l) => json!({ "L": l.iter().map(av_json).collect::<Vec<_>>() }),
        Av::Null(_) => json!({ "NULL": true }),
        Av::Bool(b) => json!({ "BOOL": b }),
        other => panic!("unexpected attribute value {other:?}"),
    }
}

/// An item as DynamoDB JSON.
pub fn item_json(item: &HashMap<String, Av>) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), av_json(v))).collect::<Map<_, _>>())
}

/// One change as DynamoDB writes it to Kinesis (`ApproximateCreationDateTime` in epoch ms).
pub fn change(
    table: &str,
    event_id: &str,
    event_name: &str,
    keys: &Value,
    new: Option<&Value>,
    old: Option<&Value>,
    millis: i64,
) -> Value {
    let mut body = json!({
        "ApproximateCreationDateTime": millis,
        "ApproximateCreationDateTimePrecision": "MILLISECOND",
        "Keys": keys,
        "SizeBytes": 100,
    });
    if let Some(new) = new {
        body["NewImage"] = new.clone();
    }
    if let Some(old) = old {
        body["OldImage"] = old.clone();
    }
    json!({
        "awsRegion": "us-east-1",
        "eventID": event_id,
        "eventName": event_name,
        "userIdentity": null,
        "recordFormat": "application/json",
        "tableName": table,
        "dynamodb": body,
        "eventSource": "aws:dynamodb",
    })
}

/// Random changes of table `Pets` written to a Kinesis stream; each op is also applied to the
/// `expected` table, which ends equal to what a replica must hold.
pub struct ChangeWriter {
    /// The Kinesis client.
    pub kinesis: aws_sdk_kinesis::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    /// The stream's name.
    pub stream: String,
    expected: String,
    rng: StdRng,
    values: Workload,
    keys: usize,
    items: HashMap<(String, String), HashMap<String, Av>>,
    /// Ops written so far; the next op's event ID is `op-{ops:06}`.
    pub ops: usize,
    /// Creation time of the first op, epoch ms; op `i` is created at `base_ms + i`.
    base_ms: i64,
    /// `(event ID, shard, sequence number)` of every record put, in order.
    pub put: Vec<(String, String, String)>,
}

impl ChangeWriter {
    /// Creates `stream` with `shards` shards and the table `expected`, on `moto`.
    pub async fn create(moto: &Moto, stream: &str, shards: i32, expected: &str, seed: u64, keys: usize) -> Self {
        let kinesis = client(&moto.endpoint).await;
        kinesis.create_stream().stream_name(stream).shard_count(shards).send().await.expect("create stream");
        moto.create_table(expected, false).await;
        let base_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        Self {
            kinesis,
            dynamodb: moto.client.clone(),
            stream: stream.to_owned(),
            expected: expected.to_owned(),
            rng: StdRng::seed_from_u64(seed),
            values: Workload::new(seed ^ 0x5eed, keys),
            keys,
            items: HashMap::new(),
            ops: 0,
            base_ms,
            put: Vec::new(),
        }
    }

    /// Puts `data` with `partition_key`; returns `(shard, sequence number)`.
    pub async fn put_raw(&mut self, event_id: &str, data: &[u8], partition_key: &str) -> (String, String) {
        self.put_hashed(event_id, data, partition_key, None).await
    }

    /// Puts `data` with `partition_key`, or at `explicit_hash_key` when given.
    async fn put_hashed(
        &mut self,
        event_id: &str,
        data: &[u8],
        partition_key: &str,
        explicit_hash_key: Option<u128>,
    ) -> (String, String) {
        let out = self
            .kinesis
            .put_record()
            .stream_name(&self.stream)
            .data(Blob::new(data))
            .partition_key(partition_key)
            .set_explicit_hash_key(explicit_hash_key.map(|h| h.to_string()))
            .send()
            .await
            .expect("put record");
        self.put.push((event_id.to_owned(), out.shard_id.clone(), out.sequence_number.clone()));
        (out.shard_id, out.sequence_number)
    }

    /// Writes `n` random ops (about 60% puts, 25% updates, 15% deletes) over every attribute type.
    pub async fn run(&mut self, n: usize) {
        self.run_keys(n, "pet", None).await;
    }

    /// Writes `n` random ops on keys `PREFIX-NNNN`, all at `explicit_hash_key` when given (so
    /// that they go to the shard owning that hash key, as every change of an item goes to one
    /// shard).
    pub async fn run_keys(&mut self, n: usize, prefix: &str, explicit_hash_key: Option<u128>) {
        for _ in 0..n {
            let k = self.rng.random_range(0..self.keys);
            let (pk, sk) = (format!("{prefix}-{k:04}"), (k % 7).to_string());
            let id = (pk.clone(), sk.clone());
            let event_id = format!("op-{:06}", self.ops);
            let millis = self.base_ms + self.ops as i64;
            let keys = json!({ "pk": {"S": pk}, "sk": {"N": sk} });
            let old = self.items.get(&id).cloned();
            let roll = self.rng.random_range(0..20);
            let record = if roll < 3 && old.is_some() {
                self.items.remove(&id);
                self.dynamodb
                    .delete_item()
                    .table_name(&self.expected)
                    .key("pk", Av::S(pk.clone()))
                    .key("sk", Av::N(sk.clone()))
                    .send()
                    .await
                    .expect("delete");
                change("Pets", &event_id, "REMOVE", &keys, None, old.as_ref().map(item_json).as_ref(), millis)
            } else {
                let mut item = match (&old, roll < 8) {
                    (Some(old), true) => old.clone(),
                    _ => HashMap::new(),
                };
                item.insert("pk".into(), Av::S(pk.clone()));
                item.insert("sk".into(), Av::N(sk.clone()));
                item.insert("species".into(), Av::S(crate::ops::species_of(&pk).into()));
                item.insert("version".into(), Av::N(self.ops.to_string()));
                let attr = format!("a{}", self.rng.random_range(0..5));
                item.insert(attr, self.values.value(3));
                self.items.insert(id, item.clone());
                self.dynamodb
                    .put_item()
                    .table_name(&self.expected)
                    .set_item(Some(item.clone()))
                    .send()
                    .await
                    .expect("put");
                let name = if old.is_some() { "MODIFY" } else { "INSERT" };
                change(
                    "Pets",
                    &event_id,
                    name,
                    &keys,
                    Some(&item_json(&item)),
                    old.as_ref().map(item_json).as_ref(),
                    millis,
                )
            };
            self.ops += 1;
            self.put_hashed(&event_id, record.to_string().as_bytes(), &format!("{pk}/{sk}"), explicit_hash_key).await;
        }
    }

    /// The stream's open shards, `(shard id, starting hash key, ending hash key)`, by hash key.
    pub async fn open_shards(&self) -> Vec<(String, u128, u128)> {
        let out = self.kinesis.list_shards().stream_name(&self.stream).send().await.expect("list shards");
        let mut open: Vec<(String, u128, u128)> = out
            .shards
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.sequence_number_range.as_ref().is_some_and(|r| r.ending_sequence_number.is_none()))
            .map(|s| {
                let range = s.hash_key_range.expect("hash key range");
                (s.shard_id, range.starting_hash_key.parse().unwrap(), range.ending_hash_key.parse().unwrap())
            })
            .collect();
        open.sort_by_key(|s| s.1);
        open
    }

    /// Splits `shard` in the middle of its hash key range.
    pub async fn split(&self, shard: &(String, u128, u128)) {
        let middle = shard.1 + (shard.2 - shard.1) / 2;
        self.kinesis
            .split_shard()
            .stream_name(&self.stream)
            .shard_to_split(&shard.0)
            .new_starting_hash_key(middle.to_string())
            .send()
            .await
            .expect("split shard");
    }

    /// Merges two adjacent open shards.
    pub async fn merge(&self, a: &str, b: &str) {
        self.kinesis
            .merge_shards()
            .stream_name(&self.stream)
            .shard_to_merge(a)
            .adjacent_shard_to_merge(b)
            .send()
            .await
            .expect("merge shards");
    }
}
