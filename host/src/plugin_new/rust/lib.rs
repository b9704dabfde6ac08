//! @NAME@: an eddy processor. Keeps the records whose image has the attribute `attribute` (an
//! `S` value) equal to `equals`, and drops the rest; a REMOVE is judged by its old image, so
//! deleting a kept item reaches the sinks too.
//!
//! Config (the `config:` of the processor in the pipeline YAML, as JSON):
//! `{"attribute": "species", "equals": "dog"}` (these are the defaults).

use std::sync::OnceLock;

wit_bindgen::generate!({ path: "wit", world: "processor" });

use eddy::processor::types::{Attribute, Side};

/// `(attribute, equals)` from the config.
static WANTED: OnceLock<(String, String)> = OnceLock::new();

struct Filter;

impl Guest for Filter {
    fn init(config: String) -> Result<(), String> {
        let config: serde_json::Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        let Some(keys) = config.as_object() else { return Err("config must be a mapping".to_owned()) };
        // A mistyped key must not be ignored silently (`{"species": "cat"}` would keep the dogs).
        if let Some(unknown) = keys.keys().find(|k| !["attribute", "equals"].contains(&k.as_str())) {
            return Err(format!("unknown config key `{unknown}` (known: `attribute`, `equals`)"));
        }
        let text = |key: &str, default: &str| match config.get(key) {
            None => Ok(default.to_owned()),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("`{key}` must be a string, got {other}")),
        };
        let wanted = (text("attribute", "species")?, text("equals", "dog")?);
        WANTED.set(wanted).map_err(|_| "init called twice".to_owned())
    }

    fn process(batch: &Batch, changes: Vec<Change>) -> Vec<Verdict> {
        let (attribute, equals) = WANTED.get().expect("init runs before process");
        changes
            .iter()
            .zip(0u32..)
            .map(|(change, index)| {
                // Only this one attribute crosses the boundary, not the whole image or record.
                let side = if change.has_new_image { Side::NewImage } else { Side::OldImage };
                match batch.get(index, side, attribute) {
                    Some(Attribute::S(value)) if value == *equals => Verdict::Pass,
                    _ => Verdict::Drop,
                }
            })
            .collect()
    }
}

export!(Filter);
