//! Built against `wit/v0.3.0` (eddy:processor@0.3.0, whose `change` carries its strings, keys and
//! `image` handles): eddy must keep running components of that contract unchanged.
//!
//! Drops a snapshot's records (`event-source` `eddy:snapshot`) and passes stream records whose
//! new image has `species` (read through the image handle), dropping the rest. With
//! `config: {keep_image: true}` it passes every record, keeps the first image of each call past
//! the call and, in a call with a record whose key `pk` is `poison`, reads the kept image again:
//! the host must trap that read instead of reading another batch.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

wit_bindgen::generate!({ path: "../../../wit/v0.3.0", world: "processor" });

use eddy::processor::types::{Attribute, Image, KeyValue};

static KEEP_IMAGE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// An image kept from an earlier call (`keep_image`).
    static KEPT: RefCell<Option<Image>> = const { RefCell::new(None) };
}

struct Contract03;

impl Guest for Contract03 {
    fn init(config: String) -> Result<(), String> {
        let config: serde_json::Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        KEEP_IMAGE.store(config["keep_image"].as_bool().unwrap_or(false), Ordering::Relaxed);
        Ok(())
    }

    fn process(mut batch: Vec<Change>) -> Vec<Verdict> {
        if KEEP_IMAGE.load(Ordering::Relaxed) {
            let poisoned = batch
                .iter()
                .any(|c| c.keys.iter().any(|(k, v)| k == "pk" && matches!(v, KeyValue::S(s) if s == "poison")));
            if poisoned {
                KEPT.with(|kept| kept.borrow().as_ref().map(|image| image.get("pk")));
            }
            let first = batch.first_mut().and_then(|c| c.new_image.take());
            KEPT.with(|kept| *kept.borrow_mut() = first);
            return batch.iter().map(|_| Verdict::Pass).collect();
        }
        batch
            .iter()
            .map(|c| {
                if c.event_source == "eddy:snapshot" {
                    return Verdict::Drop;
                }
                match c.new_image.as_ref().and_then(|i| i.get("species")) {
                    Some(Attribute::S(_)) => Verdict::Pass,
                    _ => Verdict::Drop,
                }
            })
            .collect()
    }
}

export!(Contract03);
