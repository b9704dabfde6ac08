//! Routes each record to the sink of its entity type, read from the image attribute `type`
//! (PetTracker's single-table design keeps pets, activities, ... in one table):
//! `config: {by: type, sinks: {PET: pets, ACTIVITY: activities}}`. Records of other types are
//! dropped. Sink names must be sinks of the route in the YAML; a name that is not goes to the dead
//! letter.

use std::collections::HashMap;
use std::sync::OnceLock;

use eddy_guest::{Batch, Change, Guest, Verdict};

struct Config {
    attribute: String,
    sinks: HashMap<String, String>,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

struct Router;

impl Guest for Router {
    fn init(config: String) -> Result<(), String> {
        let v: serde_json::Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        let attribute = v.get("by").and_then(|b| b.as_str()).unwrap_or("type").to_owned();
        let sinks = v
            .get("sinks")
            .and_then(|s| s.as_object())
            .ok_or("config needs `sinks`: entity type → sink name")?
            .iter()
            .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())).ok_or(format!("sinks.{k} must be a sink name")))
            .collect::<Result<_, _>>()?;
        CONFIG.set(Config { attribute, sinks }).map_err(|_| "init called twice".to_owned())
    }

    fn process(batch: &Batch, changes: Vec<Change>) -> Vec<Verdict> {
        let config = CONFIG.get().expect("init ran");
        eddy_guest::records(batch, &changes)
            .map(|c| {
                let kind = c.new_image_s(&config.attribute).or_else(|| c.old_image_s(&config.attribute));
                match kind.and_then(|k| config.sinks.get(&k)) {
                    Some(sink) => Verdict::Route(vec![sink.clone()]),
                    None => Verdict::Drop,
                }
            })
            .collect()
    }
}

eddy_guest::export!(Router);
