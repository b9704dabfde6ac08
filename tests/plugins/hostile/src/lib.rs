//! Misbehaves on records whose key `pk` equals `config.poison`, in the way `config.mode` says;
//! passes every other record. Modes: `loop` (never returns), `oom` (allocates without bound),
//! `panic` (traps), `short` (returns no verdicts), `route-unknown` (routes to an undeclared
//! sink), `fail` (the fail verdict), `huge` (replaces the record with a 200 MB image), `log`
//! (prints to stdout and stderr, then passes), `bad-index` (in a batch with a poison record,
//! reads a record past the batch's end).
//!
//! (An image kept past its call is a 0.3.0 hazard: `../contract-0-3` tests it. A 0.4.0 `batch`
//! is a borrow, which the component model ends with the call.)

use std::sync::OnceLock;

use eddy_guest::{Batch, Change, Guest, KeyValue, Record, Verdict};

struct Config {
    mode: String,
    poison: String,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

struct Hostile;

fn is_poison(change: &Record<'_>, poison: &str) -> bool {
    matches!(change.key("pk"), Some(KeyValue::S(s)) if s == poison)
}

impl Guest for Hostile {
    fn init(config: String) -> Result<(), String> {
        let v: serde_json::Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        let mode = v["mode"].as_str().ok_or("config needs `mode`")?.to_owned();
        let poison = v["poison"].as_str().unwrap_or("poison").to_owned();
        if mode == "reject" {
            return Err("this config is refused on purpose".into());
        }
        CONFIG.set(Config { mode, poison }).map_err(|_| "init called twice".to_owned())
    }

    fn process(batch: &Batch, changes: Vec<Change>) -> Vec<Verdict> {
        let config = CONFIG.get().expect("init ran");
        let poisoned = eddy_guest::records(batch, &changes).any(|c| is_poison(&c, &config.poison));
        match config.mode.as_str() {
            "loop" if poisoned => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "oom" if poisoned => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" if poisoned => panic!("poison record"),
            "bad-index" if poisoned => {
                std::hint::black_box(batch.event_id(changes.len() as u32));
            }
            "short" if poisoned => return Vec::new(),
            _ => {}
        }
        eddy_guest::records(batch, &changes)
            .map(|c| {
                if !is_poison(&c, &config.poison) {
                    if config.mode == "log" {
                        println!("saw {}", c.sequence_number());
                        eprintln!("warning about {}", c.sequence_number());
                    }
                    return Verdict::Pass;
                }
                match config.mode.as_str() {
                    "route-unknown" => Verdict::Route(vec!["nowhere".into()]),
                    "fail" => Verdict::Fail("this record is poison".into()),
                    "huge" => {
                        let mut r = c.to_replacement();
                        r.new_image = Some(format!("{{\"blob\": {{\"S\": \"{}\"}}}}", "x".repeat(200 << 20)));
                        Verdict::Replace(r)
                    }
                    _ => Verdict::Pass,
                }
            })
            .collect()
    }
}

eddy_guest::export!(Hostile);
