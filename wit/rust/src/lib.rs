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
//!         batch.iter().map(|c| match c.new_image_s("species").as_deref() {
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
//!
//! Images are handed over with the call and read on demand: [`Change::new_image_s`] and
//! [`Image::get`] fetch one attribute; [`Image::to_json`] fetches the whole image.

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
pub use bindings::eddy::processor::types::{
    Attribute, Change, EventName, Image, KeyValue, Level, Replacement, Verdict,
};
pub use bindings::{export, Guest};

impl Change {
    /// The top-level `S` attribute `name` of the new image. `None` when there is no new image,
    /// no such attribute, or it is not `S`. Only this attribute crosses the boundary.
    pub fn new_image_s(&self, name: &str) -> Option<String> {
        string(self.new_image.as_ref()?.get(name)?)
    }

    /// The same for the old image.
    pub fn old_image_s(&self, name: &str) -> Option<String> {
        string(self.old_image.as_ref()?.get(name)?)
    }

    /// The top-level `N` attribute `name` of the new image, as its exact decimal text.
    pub fn new_image_n(&self, name: &str) -> Option<String> {
        match self.new_image.as_ref()?.get(name)? {
            Attribute::N(n) => Some(n),
            _ => None,
        }
    }

    /// The key attribute `name`, if the record has it.
    pub fn key(&self, name: &str) -> Option<&KeyValue> {
        self.keys.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A replacement equal to this change (the images fetched whole, as DynamoDB JSON text), to
    /// modify and return in [`Verdict::Replace`] or [`Verdict::FanOut`].
    pub fn to_replacement(&self) -> Replacement {
        Replacement {
            event_id: self.event_id.clone(),
            event_name: self.event_name,
            sequence_number: self.sequence_number.clone(),
            approximate_creation_time: self.approximate_creation_time,
            size_bytes: self.size_bytes,
            keys: self.keys.clone(),
            new_image: self.new_image.as_ref().map(Image::to_json),
            old_image: self.old_image.as_ref().map(Image::to_json),
        }
    }
}

fn string(attribute: Attribute) -> Option<String> {
    match attribute {
        Attribute::S(s) => Some(s),
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
