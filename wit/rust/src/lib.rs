//! Write eddy processors in Rust (contract `eddy:processor@0.4.0`).
//!
//! ```ignore
//! use eddy_guest::{Batch, Change, Guest, Verdict};
//!
//! struct OnlyDogs;
//!
//! impl Guest for OnlyDogs {
//!     fn init(_config: String) -> Result<(), String> { Ok(()) }
//!     fn process(batch: &Batch, changes: Vec<Change>) -> Vec<Verdict> {
//!         eddy_guest::records(batch, &changes)
//!             .map(|r| match r.new_image_s("species").as_deref() {
//!                 Some("dog") => Verdict::Pass,
//!                 _ => Verdict::Drop,
//!             })
//!             .collect()
//!     }
//! }
//!
//! eddy_guest::export!(OnlyDogs);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component eddy loads.
//!
//! A call passes each record's fixed-size fields ([`Change`]) and lends the batch; everything
//! else is read on demand, by the record's index: [`Record`] pairs the two, so that
//! [`Record::new_image_s`] or [`Image::get`] fetch one attribute, [`Image::to_json`] the whole
//! image, [`Record::event_id`] one string. A processor pays for what it reads.

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
    Attribute, Batch, Change, EventName, KeyValue, Level, Replacement, Side, Verdict,
};
pub use bindings::{export, Guest};

/// The records of a `process` call: each change of `changes` with its index in `batch`, in order.
pub fn records<'a>(batch: &'a Batch, changes: &'a [Change]) -> impl ExactSizeIterator<Item = Record<'a>> + 'a {
    changes.iter().enumerate().map(move |(index, change)| Record { batch, index: index as u32, change })
}

/// One record of a `process` call: its fixed-size fields, and the call's batch to read the rest
/// from. Each method that returns an owned value crosses the boundary once.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    batch: &'a Batch,
    index: u32,
    change: &'a Change,
}

impl<'a> Record<'a> {
    /// The record's position in the call (`index` of the `batch` methods).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// `eventName`
    pub fn event_name(&self) -> EventName {
        self.change.event_name
    }

    /// `dynamodb.ApproximateCreationDateTime` in epoch seconds.
    pub fn approximate_creation_time(&self) -> Option<i64> {
        self.change.approximate_creation_time
    }

    /// `dynamodb.SizeBytes`
    pub fn size_bytes(&self) -> u64 {
        self.change.size_bytes
    }

    /// `eventID`
    pub fn event_id(&self) -> String {
        self.batch.event_id(self.index)
    }

    /// `eventSource`: `aws:dynamodb` for a stream record, `eddy:snapshot` for a snapshot's item.
    pub fn event_source(&self) -> String {
        self.batch.event_source(self.index)
    }

    /// `dynamodb.SequenceNumber`
    pub fn sequence_number(&self) -> String {
        self.batch.sequence_number(self.index)
    }

    /// `dynamodb.Keys`, attribute name → value, in name order.
    pub fn keys(&self) -> Vec<(String, KeyValue)> {
        self.batch.keys(self.index)
    }

    /// The key attribute `name`, if the record has it.
    pub fn key(&self, name: &str) -> Option<KeyValue> {
        self.keys().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// `dynamodb.NewImage`, when the record has one.
    pub fn new_image(&self) -> Option<Image<'a>> {
        self.change.has_new_image.then_some(Image { record: *self, side: Side::NewImage })
    }

    /// `dynamodb.OldImage`, when the record has one.
    pub fn old_image(&self) -> Option<Image<'a>> {
        self.change.has_old_image.then_some(Image { record: *self, side: Side::OldImage })
    }

    /// The new image, or the old one when there is none (a REMOVE): the image a filter judges.
    pub fn image(&self) -> Option<Image<'a>> {
        self.new_image().or_else(|| self.old_image())
    }

    /// The top-level `S` attribute `name` of the new image. `None` when there is no new image,
    /// no such attribute, or it is not `S`. Only this attribute crosses the boundary.
    pub fn new_image_s(&self, name: &str) -> Option<String> {
        string(self.new_image()?.get(name)?)
    }

    /// The same for the old image.
    pub fn old_image_s(&self, name: &str) -> Option<String> {
        string(self.old_image()?.get(name)?)
    }

    /// The top-level `N` attribute `name` of the new image, as its exact decimal text.
    pub fn new_image_n(&self, name: &str) -> Option<String> {
        match self.new_image()?.get(name)? {
            Attribute::N(n) => Some(n),
            _ => None,
        }
    }

    /// A replacement equal to this record (its strings, keys and whole images fetched), to modify
    /// and return in [`Verdict::Replace`] or [`Verdict::FanOut`].
    pub fn to_replacement(&self) -> Replacement {
        Replacement {
            event_id: self.event_id(),
            event_name: self.change.event_name,
            sequence_number: self.sequence_number(),
            approximate_creation_time: self.change.approximate_creation_time,
            size_bytes: self.change.size_bytes,
            keys: self.keys(),
            new_image: self.new_image().map(|i| i.to_json()),
            old_image: self.old_image().map(|i| i.to_json()),
        }
    }
}

/// One image of a record, read on demand.
#[derive(Clone, Copy)]
pub struct Image<'a> {
    record: Record<'a>,
    side: Side,
}

impl Image<'_> {
    /// The top-level attribute `name`, or `None` when the image does not have it.
    pub fn get(&self, name: &str) -> Option<Attribute> {
        self.record.batch.get(self.record.index, self.side, name)
    }

    /// The names of the top-level attributes, sorted.
    pub fn names(&self) -> Vec<String> {
        self.record.batch.names(self.record.index, self.side)
    }

    /// The whole image as DynamoDB JSON text (`{"name": {"S": "Rex"}}`).
    pub fn to_json(&self) -> String {
        // An `Image` is made only for an image the record has (`Change::has_new_image` and
        // `has_old_image`), so the host always answers with one.
        self.record.batch.to_json(self.record.index, self.side).expect("the record has this image")
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
