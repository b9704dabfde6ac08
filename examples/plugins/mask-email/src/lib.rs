//! Replaces string attributes that hold personal data with their SHA-256 (hex), in the new and
//! the old image, so downstream systems can still join on them without seeing them.
//! `config: {attributes: [email, phone]}`; default `[email]`. Records without those attributes
//! pass unchanged (and are not copied back to the host).

use std::sync::OnceLock;

use eddy_guest::{Change, Guest, Verdict};
use serde_json::Value;
use sha2::{Digest, Sha256};

static ATTRIBUTES: OnceLock<Vec<String>> = OnceLock::new();

struct MaskEmail;

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Masks the configured attributes of one image; returns the new text if anything changed.
fn mask(image: &str, attributes: &[String]) -> Result<Option<String>, String> {
    if !attributes.iter().any(|a| image.contains(a.as_str())) {
        return Ok(None);
    }
    let mut item: serde_json::Map<String, Value> = eddy_guest::parse_image(image)?;
    let mut changed = false;
    for name in attributes {
        if let Some(Value::Object(typed)) = item.get_mut(name) {
            if let Some(Value::String(s)) = typed.get("S") {
                let masked = sha256_hex(s);
                typed.insert("S".into(), Value::String(masked));
                changed = true;
            }
        }
    }
    Ok(changed.then(|| Value::Object(item).to_string()))
}

impl Guest for MaskEmail {
    fn init(config: String) -> Result<(), String> {
        let config: Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        let attributes = match config.get("attributes") {
            None => vec!["email".to_owned()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| format!("`attributes` must list names, found {v}")))
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("`attributes` must be a list of attribute names, found {other}")),
        };
        ATTRIBUTES.set(attributes).map_err(|_| "init called twice".to_owned())
    }

    fn process(batch: Vec<Change>) -> Vec<Verdict> {
        let attributes = ATTRIBUTES.get().expect("init ran");
        batch
            .into_iter()
            .map(|mut change| {
                let new = change.new_image.as_deref().map(|i| mask(i, attributes)).transpose();
                let old = change.old_image.as_deref().map(|i| mask(i, attributes)).transpose();
                match (new, old) {
                    (Ok(new), Ok(old)) => {
                        let (new, old) = (new.flatten(), old.flatten());
                        if new.is_none() && old.is_none() {
                            return Verdict::Pass;
                        }
                        if new.is_some() {
                            change.new_image = new;
                        }
                        if old.is_some() {
                            change.old_image = old;
                        }
                        Verdict::Replace(change)
                    }
                    (Err(e), _) | (_, Err(e)) => Verdict::Fail(format!("cannot read the image: {e}")),
                }
            })
            .collect()
    }
}

eddy_guest::export!(MaskEmail);
