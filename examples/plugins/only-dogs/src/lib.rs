//! Keeps the records whose image has `species` equal to the configured value
//! (`config: {species: dog}`; default `dog`) and drops the rest. A REMOVE is judged by its old
//! image, so deleting a dog reaches the sinks too.

use std::sync::OnceLock;

use eddy_guest::{Batch, Change, Guest, Verdict};

static SPECIES: OnceLock<String> = OnceLock::new();

struct OnlyDogs;

impl Guest for OnlyDogs {
    fn init(config: String) -> Result<(), String> {
        let config: serde_json::Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        let species = match config.get("species") {
            None => "dog".to_owned(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => return Err(format!("`species` must be a string, got {other}")),
        };
        SPECIES.set(species).map_err(|_| "init called twice".to_owned())
    }

    fn process(batch: &Batch, changes: Vec<Change>) -> Vec<Verdict> {
        let wanted = SPECIES.get().map(String::as_str).unwrap_or("dog");
        eddy_guest::records(batch, &changes)
            .map(|record| {
                let species = record.new_image_s("species").or_else(|| record.old_image_s("species"));
                if species.as_deref() == Some(wanted) {
                    Verdict::Pass
                } else {
                    Verdict::Drop
                }
            })
            .collect()
    }
}

eddy_guest::export!(OnlyDogs);
