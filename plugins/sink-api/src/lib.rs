//! The shared vocabulary of eddy: the change record (shaped like the record a Lambda function
//! receives from a DynamoDB stream), DynamoDB attribute values in their DynamoDB-JSON form, and
//! the [`Sink`] contract every built-in sink implements.
//!
//! The host (`eddy`) decodes stream records into [`ChangeRecord`]s, runs them through routes and
//! processors, and hands each route's output to its sinks. Sinks live in their own crates under
//! `plugins/` and depend only on this crate.

pub mod aws_json;
pub mod compare;
pub mod duration;
mod image;
mod record;
pub mod redact;
mod retry;
pub mod scan;
mod sink;
mod value;

pub use image::Image;
pub use record::{ChangeRecord, EventName, StreamRecord, StreamViewType, UserIdentity};
pub use redact::redact;
pub use retry::{Backoff, RetryPolicy, Timeouts};
pub use sink::{Rejected, Sink, SinkError, WriteOutcome};
pub use value::{AttributeValue, Item};
