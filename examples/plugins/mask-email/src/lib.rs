//! Replaces string attributes that hold personal data with their SHA-256 (hex), in the new and
//! the old image, so downstream systems can still join on them without seeing them.
//! `config: {attributes: [email, phone]}`; default `[email]`. Records without those attributes
//! pass unchanged: only those attributes are read, and nothing is copied back to the host.

use std::sync::OnceLock;

use eddy_guest::{Attribute, Batch, Change, Guest, Image, Verdict};
use serde_json::Value;
use sha2::{Digest, Sha256};

static ATTRIBUTES: OnceLock<Vec<String>> = OnceLock::new();

struct MaskEmail;

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `image` has one of `attributes` as a string (asks for those attributes only).
fn has_any(image: Option<Image<'_>>, attributes: &[String]) -> bool {
    image.is_some_and(|i| attributes.iter().any(|a| matches!(i.get(a), Some(Attribute::S(_)))))
}

/// Masks the configured attributes of one image's DynamoDB JSON text.
fn mask(image: &str, attributes: &[String]) -> Result<String, String> {
    let mut item: serde_json::Map<String, Value> = eddy_guest::parse_image(image)?;
    for name in attributes {
        if let Some(Value::Object(typed)) = item.get_mut(name) {
            if let Some(Value::String(s)) = typed.get("S") {
                let masked = sha256_hex(s);
                typed.insert("S".into(), Value::String(masked));
            }
        }
    }
    Ok(Value::Object(item).to_string())
}

impl Guest for MaskEmail {
    fn init(config: String) -> Result<(), String> {
        let config: Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        let attributes = match config.get("attributes") {
            None => vec!["email".to_owned()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| format!("`attributes` must list names, found {v}"))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("`attributes` must be a list of attribute names, found {other}")),
        };
        ATTRIBUTES.set(attributes).map_err(|_| "init called twice".to_owned())
    }

    fn process(batch: &Batch, changes: Vec<Change>) -> Vec<Verdict> {
        let attributes = ATTRIBUTES.get().expect("init ran");
        eddy_guest::records(batch, &changes)
            .map(|change| {
                if !has_any(change.new_image(), attributes) && !has_any(change.old_image(), attributes) {
                    return Verdict::Pass;
                }
                let mut replacement = change.to_replacement();
                let masked = |image: Option<String>| image.map(|i| mask(&i, attributes)).transpose();
                match (masked(replacement.new_image.take()), masked(replacement.old_image.take())) {
                    (Ok(new), Ok(old)) => {
                        replacement.new_image = new;
                        replacement.old_image = old;
                        Verdict::Replace(replacement)
                    }
                    (Err(e), _) | (_, Err(e)) => Verdict::Fail(format!("cannot read the image: {e}")),
                }
            })
            .collect()
    }
}

eddy_guest::export!(MaskEmail);
