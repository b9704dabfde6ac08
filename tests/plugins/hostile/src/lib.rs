//! Misbehaves on records whose key `pk` equals `config.poison`, in the way `config.mode` says;
//! passes every other record. Modes: `loop` (never returns), `oom` (allocates without bound),
//! `panic` (traps), `short` (returns no verdicts), `route-unknown` (routes to an undeclared
//! sink), `fail` (the fail verdict), `huge` (replaces the record with a 200 MB image), `log`
//! (prints to stdout and stderr, then passes), `stale-image` (keeps an image past its call and,
//! in a batch with a poison record, reads it again).

use std::sync::OnceLock;

use eddy_guest::{Change, Guest, KeyValue, Verdict};

struct Config {
    mode: String,
    poison: String,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

thread_local! {
    /// `stale-image` mode: an image kept from an earlier call.
    static KEPT: std::cell::RefCell<Option<eddy_guest::Image>> = const { std::cell::RefCell::new(None) };
}

struct Hostile;

fn is_poison(change: &Change, poison: &str) -> bool {
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

    fn process(batch: Vec<Change>) -> Vec<Verdict> {
        let config = CONFIG.get().expect("init ran");
        let poisoned = batch.iter().any(|c| is_poison(c, &config.poison));
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
            "stale-image" => {
                if poisoned {
                    KEPT.with(|kept| kept.borrow().as_ref().map(|image| image.get("pk")));
                }
                let mut batch = batch;
                let first = batch.first_mut().and_then(|c| c.new_image.take());
                KEPT.with(|kept| *kept.borrow_mut() = first);
                return batch.iter().map(|_| Verdict::Pass).collect();
            }
            "short" if poisoned => return Vec::new(),
            _ => {}
        }
        batch
            .into_iter()
            .map(|c| {
                if !is_poison(&c, &config.poison) {
                    if config.mode == "log" {
                        println!("saw {}", c.sequence_number);
                        eprintln!("warning about {}", c.sequence_number);
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
