//! Random table operations (put, update, delete) over every attribute type, and table snapshots
//! to compare a replica with its source.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as Av;
use aws_sdk_dynamodb::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// An item as a sortable, comparable value (sets sorted, since their order is not meaningful).
pub type Snapshot = BTreeMap<String, String>;

/// The species of a pet is fixed by its key, as in life: updates never change it.
pub fn species_of(pk: &str) -> &'static str {
    const SPECIES: [&str; 3] = ["dog", "cat", "bird"];
    SPECIES[pk.bytes().map(usize::from).sum::<usize>() % 3]
}

/// Generates and applies random operations with a fixed seed.
pub struct Workload {
    rng: StdRng,
    keys: usize,
    /// How many operations were applied.
    pub applied: usize,
}

impl Workload {
    /// A workload over `keys` distinct keys.
    pub fn new(seed: u64, keys: usize) -> Self {
        Self { rng: StdRng::seed_from_u64(seed), keys, applied: 0 }
    }

    fn key(&mut self) -> (String, String) {
        let k = self.rng.random_range(0..self.keys);
        (format!("pet-{k:04}"), (k % 7).to_string())
    }

    /// Applies `n` operations to `table`: about 50% puts, 30% updates, 20% deletes.
    pub async fn run(&mut self, client: &Client, table: &str, n: usize) {
        for _ in 0..n {
            let (pk, sk) = self.key();
            let roll = self.rng.random_range(0..10);
            if roll < 5 {
                let mut item = self.item(&pk);
                item.insert("pk".into(), Av::S(pk.clone()));
                item.insert("sk".into(), Av::N(sk.clone()));
                client.put_item().table_name(table).set_item(Some(item)).send().await.expect("put");
            } else if roll < 8 {
                let value = self.value(2);
                let attr = format!("a{}", self.rng.random_range(0..6));
                let drop_attr = format!("a{}", self.rng.random_range(0..6));
                let mut req = client
                    .update_item()
                    .table_name(table)
                    .key("pk", Av::S(pk.clone()))
                    .key("sk", Av::N(sk))
                    .expression_attribute_names("#s", "species")
                    .expression_attribute_values(":s", Av::S(species_of(&pk).into()))
                    .expression_attribute_names("#a", attr.clone())
                    .expression_attribute_values(":v", value);
                if drop_attr != attr {
                    req = req
                        .update_expression("SET #s = :s, #a = :v REMOVE #d")
                        .expression_attribute_names("#d", drop_attr);
                } else {
                    req = req.update_expression("SET #s = :s, #a = :v");
                }
                req.send().await.expect("update");
            } else {
                client
                    .delete_item()
                    .table_name(table)
                    .key("pk", Av::S(pk))
                    .key("sk", Av::N(sk))
                    .send()
                    .await
                    .expect("delete");
            }
            self.applied += 1;
        }
    }

    fn item(&mut self, pk: &str) -> std::collections::HashMap<String, Av> {
        let mut item = std::collections::HashMap::new();
        item.insert("species".into(), Av::S(species_of(pk).into()));
        for i in 0..self.rng.random_range(1..6) {
            item.insert(format!("a{i}"), self.value(3));
        }
        item
    }

    /// A random value of any type, nesting maps and lists up to `depth`.
    pub fn value(&mut self, depth: u32) -> Av {
        let kinds = if depth == 0 { 8 } else { 10 };
        match self.rng.random_range(0..kinds) {
            0 => Av::S(self.text()),
            1 => Av::N(self.number()),
            2 => Av::B(Blob::new(self.bytes())),
            3 => Av::Ss((0..self.rng.random_range(1..4)).map(|i| format!("{}-{i}", self.text())).collect()),
            4 => Av::Ns(
                (0..self.rng.random_range(1..4)).map(|i| format!("{i}{}", self.rng.random_range(0..1000))).collect(),
            ),
            5 => {
                Av::Bs((0..self.rng.random_range(1..4)).map(|i| Blob::new(vec![i as u8, self.rng.random()])).collect())
            }
            6 => Av::Bool(self.rng.random()),
            7 => Av::Null(true),
            8 => Av::M((0..self.rng.random_range(0..4)).map(|i| (format!("m{i}"), self.value(depth - 1))).collect()),
            _ => Av::L((0..self.rng.random_range(0..4)).map(|_| self.value(depth - 1)).collect()),
        }
    }

    fn text(&mut self) -> String {
        const WORDS: [&str; 6] = ["rex", "Fluffy", "größe", "猫", "emoji 🐕", "a \"quoted\" \\ path"];
        format!("{} {}", WORDS[self.rng.random_range(0..WORDS.len())], self.rng.random_range(0..1000))
    }

    fn number(&mut self) -> String {
        match self.rng.random_range(0..4) {
            // 38 significant digits: beyond f64 and i64.
            0 => {
                let mut s = String::from(if self.rng.random() { "-" } else { "" });
                s.push(char::from(b'1' + self.rng.random_range(0..9)));
                for _ in 0..37 {
                    s.push(char::from(b'0' + self.rng.random_range(0..10)));
                }
                s
            }
            1 => format!("{}.{}", self.rng.random_range(-1000..1000), self.rng.random_range(1..99)),
            2 => self.rng.random_range(-9_000_000_000_000_000_000i128..9_000_000_000_000_000_000i128).to_string(),
            _ => self.rng.random_range(0..100).to_string(),
        }
    }

    fn bytes(&mut self) -> Vec<u8> {
        (0..self.rng.random_range(1..12)).map(|_| self.rng.random()).collect()
    }
}

fn canonical(v: &Av) -> String {
    match v {
        Av::S(s) => format!("S:{s:?}"),
        Av::N(n) => format!("N:{n}"),
        Av::B(b) => format!("B:{:?}", b.as_ref()),
        Av::Ss(v) => format!("SS:{:?}", sorted(v.clone())),
        Av::Ns(v) => format!("NS:{:?}", sorted(v.clone())),
        Av::Bs(v) => format!("BS:{:?}", sorted(v.iter().map(|b| b.as_ref().to_vec()).collect())),
        Av::M(m) => {
            format!("M:{{{}}}", sorted(m.iter().map(|(k, v)| format!("{k}={}", canonical(v))).collect()).join(","))
        }
        Av::L(l) => format!("L:[{}]", l.iter().map(canonical).collect::<Vec<_>>().join(",")),
        Av::Null(_) => "NULL".into(),
        Av::Bool(b) => format!("BOOL:{b}"),
        other => panic!("unexpected attribute value {other:?}"),
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Every item of `table`, keyed by `pk/sk`, each rendered canonically. `keep` selects items.
pub async fn snapshot(
    client: &Client,
    table: &str,
    keep: impl Fn(&std::collections::HashMap<String, Av>) -> bool,
) -> Snapshot {
    let mut out = Snapshot::new();
    let mut start = None;
    loop {
        let page = client.scan().table_name(table).set_exclusive_start_key(start).send().await.expect("scan");
        for item in page.items.unwrap_or_default() {
            if !keep(&item) {
                continue;
            }
            let key = format!("{}/{}", canonical(&item["pk"]), canonical(&item["sk"]));
            let body = sorted(item.iter().map(|(k, v)| format!("{k}={}", canonical(v))).collect()).join(";");
            out.insert(key, body);
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    out
}

/// Polls until `replica` equals `expected` (returns the time it took) or `timeout` passes
/// (panics with the first difference).
pub async fn wait_until_equal(client: &Client, replica: &str, expected: &Snapshot, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = snapshot(client, replica, |_| true).await;
        if &got == expected {
            return started.elapsed();
        }
        if started.elapsed() > timeout {
            let missing = expected.iter().find(|(k, v)| got.get(*k) != Some(v));
            let extra = got.keys().find(|k| !expected.contains_key(*k));
            panic!(
                "replica {replica} did not converge in {timeout:?}: {} items expected, {} found; first difference: {missing:?}; first extra key: {extra:?}",
                expected.len(),
                got.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
