//! eddy's vocabulary for a change: the change record (shaped like the record a Lambda function
//! receives from a DynamoDB stream), DynamoDB attribute values in their DynamoDB-JSON form, images
//! kept as the JSON text they arrived as and decoded on demand, the strict one-pass JSON
//! [`scan`]ner the sources decode GetRecords and Scan pages with, and DynamoDB's rules for
//! comparing items ([`compare`]).
//!
//! The host (`eddy`) decodes stream records into [`ChangeRecord`]s and runs them through routes
//! and processors; sinks (`eddy-sink-api`) receive them.

#![deny(missing_docs)]

pub mod compare;
mod image;
pub mod plain;
mod record;
pub mod scan;
mod value;

pub use image::Image;
pub use record::{ChangeRecord, EventName, StreamRecord, StreamViewType, UserIdentity};
pub use value::{AttributeValue, Item};
