//! Write eddy processors in Rust.
//!
//! ```ignore
//! use eddy_guest::{Change, Guest, Verdict};
//!
//! struct OnlyDogs;
//!
//! impl Guest for OnlyDogs {
//!     fn init(_config: String) -> Result<(), String> { Ok(()) }
//!     fn process(batch: Vec<Change>) -> Vec<Verdict> {
//!         batch.iter().map(|c| match c.new_image_s("species") {
//!             Some("dog") => Verdict::Pass,
//!             _ => Verdict::Drop,
//!         }).collect()
//!     }
//! }
//!
//! eddy_guest::export!(OnlyDogs);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component eddy loads.

/// The generated bindings of the `eddy:processor` world.
pub mod bindings {
    wit_bindgen::generate!({
        path: "..",
        world: "processor",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "eddy_guest::bindings",
    });
}

pub use bindings::eddy::processor::host::log;
pub use bindings::eddy::processor::types::{Change, EventName, KeyValue, Level, Verdict};
pub use bindings::{export, Guest};

impl Change {
    /// The value of the top-level `S` attribute `name` in the new image, without parsing the
    /// rest of the image. `None` when there is no new image, no such attribute, or it is not `S`.
    pub fn new_image_s(&self, name: &str) -> Option<String> {
        image_s(self.new_image.as_deref()?, name)
    }

    /// The same for the old image.
    pub fn old_image_s(&self, name: &str) -> Option<String> {
        image_s(self.old_image.as_deref()?, name)
    }

    /// The key attribute `name`, if the record has it.
    pub fn key(&self, name: &str) -> Option<&KeyValue> {
        self.keys.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// Looks up a top-level `{"S": ...}` attribute in a DynamoDB JSON image.
fn image_s(image: &str, name: &str) -> Option<String> {
    use serde_json::value::RawValue;
    let attrs: std::collections::HashMap<&str, &RawValue> = serde_json::from_str(image).ok()?;
    let typed: std::collections::HashMap<&str, serde_json::Value> =
        serde_json::from_str(attrs.get(name)?.get()).ok()?;
    match typed.get("S")? {
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Parses a DynamoDB JSON image into a JSON value (`{"name": {"S": "Rex"}}`), for processors that
/// read or rebuild whole images.
///
/// # Errors
/// The parser's message when `image` is not valid JSON.
pub fn parse_image(image: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    serde_json::from_str(image).map_err(|e| e.to_string())
}
