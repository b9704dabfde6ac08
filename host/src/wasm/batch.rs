//! The 0.4.0 `batch` resource: the records of one `process` call, read by index on demand.
//!
//! The host lends the guest one `borrow<batch>` per call, whose `rep` is the call's number
//! ([`super::images::LentRecords::batch_rep`]); no entry is made in the resource table, and the
//! guest cannot keep the handle past the call (the component model ends a borrow when the call
//! returns). Each method reads the record the index names from the lent records, so a record's
//! strings, keys and images cross the boundary only when the processor asks for them.

use eddy_record::{AttributeValue, ChangeRecord, Image};
use wasmtime::component::Resource;

use super::bindings::current::eddy::processor::types as wit;
use super::HostState;

/// What a `batch` handle names: the call in progress (its `rep`); the type has no value.
pub enum BatchRef {}

impl HostState {
    fn lent_record(&self, batch: &Resource<BatchRef>, index: u32) -> wasmtime::Result<&ChangeRecord> {
        self.lent.record(batch.rep(), index)
    }

    fn lent_image(&self, batch: &Resource<BatchRef>, index: u32, side: wit::Side) -> wasmtime::Result<Option<&Image>> {
        let record = self.lent_record(batch, index)?;
        Ok(match side {
            wit::Side::NewImage => record.dynamodb.new_image.as_ref(),
            wit::Side::OldImage => record.dynamodb.old_image.as_ref(),
        })
    }
}

impl wit::HostBatch for HostState {
    fn event_id(&mut self, batch: Resource<BatchRef>, index: u32) -> wasmtime::Result<String> {
        Ok(self.lent_record(&batch, index)?.event_id.clone())
    }

    fn event_source(&mut self, batch: Resource<BatchRef>, index: u32) -> wasmtime::Result<String> {
        Ok(self.lent_record(&batch, index)?.event_source.clone())
    }

    fn sequence_number(&mut self, batch: Resource<BatchRef>, index: u32) -> wasmtime::Result<String> {
        Ok(self.lent_record(&batch, index)?.dynamodb.sequence_number.clone())
    }

    fn keys(&mut self, batch: Resource<BatchRef>, index: u32) -> wasmtime::Result<Vec<(String, wit::KeyValue)>> {
        let record = self.lent_record(&batch, index)?;
        Ok(record
            .dynamodb
            .keys
            .iter()
            .filter_map(|(name, value)| {
                let value = match value {
                    AttributeValue::S(s) => wit::KeyValue::S(s.clone()),
                    AttributeValue::N(n) => wit::KeyValue::N(n.clone()),
                    AttributeValue::B(b) => wit::KeyValue::B(b.clone()),
                    _ => return None,
                };
                Some((name.clone(), value))
            })
            .collect())
    }

    fn get(
        &mut self,
        batch: Resource<BatchRef>,
        index: u32,
        image: wit::Side,
        name: String,
    ) -> wasmtime::Result<Option<wit::Attribute>> {
        let Some(image) = self.lent_image(&batch, index, image)? else { return Ok(None) };
        Ok(image.attribute(&name).as_deref().map(wit::Attribute::from))
    }

    fn names(&mut self, batch: Resource<BatchRef>, index: u32, image: wit::Side) -> wasmtime::Result<Vec<String>> {
        let Some(image) = self.lent_image(&batch, index, image)? else { return Ok(Vec::new()) };
        Ok(image.keys().cloned().collect())
    }

    fn to_json(&mut self, batch: Resource<BatchRef>, index: u32, image: wit::Side) -> wasmtime::Result<Option<String>> {
        let Some(image) = self.lent_image(&batch, index, image)? else { return Ok(None) };
        let mut text = Vec::new();
        image.write_json(&mut text);
        Ok(Some(String::from_utf8(text)?))
    }

    fn drop(&mut self, _batch: Resource<BatchRef>) -> wasmtime::Result<()> {
        // The guest only ever holds borrows of a batch, which are not dropped through here; the
        // host owns the batch and has nothing to free.
        Ok(())
    }
}
