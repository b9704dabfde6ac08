//! The `image` resource: a record's `NewImage` or `OldImage`, handed to the guest with its
//! `process` call and read on demand, so that only the attributes a processor asks for are
//! converted.
//!
//! Each handle is an entry in the store's [`ResourceTable`] naming the call, the record and the
//! side. The records themselves are lent by [`LentRecords::lend`] for the duration of the call;
//! a handle used in a later call traps instead of reading another batch.

use std::ptr::NonNull;

use eddy_record::{AttributeValue, ChangeRecord, Image};
use wasmtime::component::{Resource, ResourceTable};

use super::HostState;

/// Above this many images handed out and not dropped, the instance is recycled: a guest that
/// never drops its images would otherwise grow the handle tables without bound.
pub(super) const MAX_UNDROPPED_IMAGES: usize = 100_000;

/// What an `image` handle names.
pub struct ImageRef {
    call: u64,
    index: u32,
    old: bool,
}

/// The records of the `process` call in progress, for the `image` (0.3.0, 0.2.0) and `batch`
/// (0.4.0) methods.
///
/// Holds pointers rather than references because a [`wasmtime::Store`]'s data must be `'static`.
/// [`LentRecords::lend`] sets them for exactly the duration of one call and clears them after,
/// also when the call unwinds.
#[derive(Default)]
pub(super) struct LentRecords {
    records: Vec<NonNull<ChangeRecord>>,
    /// Counts calls; a handle from another call is refused.
    call: u64,
    /// Images handed out and not yet dropped.
    pub(super) undropped: usize,
}

// SAFETY: the pointers are only dereferenced by image methods, which wasmtime runs inside
// `lend`'s `call`, on its thread, while the `&[&ChangeRecord]` they came from is borrowed.
unsafe impl Send for LentRecords {}

impl LentRecords {
    /// Starts the next call: handles made from now on belong to it.
    pub(super) fn next_call(&mut self) {
        self.call += 1;
    }

    /// Lends `records` to the guest while `call` runs.
    pub(super) fn lend<R>(
        store: &mut wasmtime::Store<HostState>,
        records: &[&ChangeRecord],
        call: impl FnOnce(&mut wasmtime::Store<HostState>) -> R,
    ) -> R {
        struct Clear<'s>(&'s mut wasmtime::Store<HostState>);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                self.0.data_mut().lent.records.clear();
            }
        }
        let lent = &mut store.data_mut().lent;
        lent.records.clear();
        lent.records.extend(records.iter().map(|r| NonNull::from(*r)));
        let guard = Clear(store);
        call(guard.0)
    }

    /// The call in progress, as the `rep` of its 0.4.0 `batch` handle (wrapping; a handle is
    /// only ever compared with the call that made it).
    pub(super) fn batch_rep(&self) -> u32 {
        self.call as u32
    }

    /// Record `index` of the call in progress, for the 0.4.0 `batch` handle `rep`.
    ///
    /// # Errors
    /// A trap when the handle is not the current call's or `index` is out of range.
    pub(super) fn record(&self, rep: u32, index: u32) -> wasmtime::Result<&ChangeRecord> {
        if rep != self.batch_rep() || self.records.is_empty() {
            wasmtime::bail!("a batch was used outside the process call that passed it");
        }
        let Some(record) = self.records.get(index as usize) else {
            wasmtime::bail!("record index {index} is out of range: the batch has {} records", self.records.len());
        };
        // SAFETY: see `LentRecords`: `lend` is on the stack, so the records are borrowed.
        Ok(unsafe { record.as_ref() })
    }

    fn image(&self, table: &ResourceTable, handle: &Resource<ImageRef>) -> wasmtime::Result<&Image> {
        let image = table.get(handle)?;
        let record = match self.records.get(image.index as usize) {
            Some(record) if image.call == self.call => record,
            _ => wasmtime::bail!("an image was used after the process call that passed it"),
        };
        // SAFETY: see `LentRecords`: `lend` is on the stack, so the records are borrowed.
        let record = unsafe { record.as_ref() };
        let image = if image.old { &record.dynamodb.old_image } else { &record.dynamodb.new_image };
        Ok(image.as_ref().expect("handles are made only for images the record has"))
    }
}

impl HostState {
    /// A handle for record `index`'s new or `old` image, for the call about to start (after
    /// [`LentRecords::next_call`]).
    pub(super) fn image_handle(&mut self, index: usize, old: bool) -> wasmtime::Result<Resource<ImageRef>> {
        let index = u32::try_from(index)?;
        self.lent.undropped += 1;
        Ok(self.table.push(ImageRef { call: self.lent.call, index, old })?)
    }
}

/// The `image` methods for the generated types `$wit` of one contract version before 0.4.0
/// (each has the same `image` resource).
macro_rules! image_host {
    ($wit:path) => {
        const _: () = {
            use $wit as wit;

            impl wit::HostImage for HostState {
                fn get(&mut self, image: Resource<ImageRef>, name: String) -> wasmtime::Result<Option<wit::Attribute>> {
                    Ok(self.lent.image(&self.table, &image)?.attribute(&name).as_deref().map(wit::Attribute::from))
                }

                fn names(&mut self, image: Resource<ImageRef>) -> wasmtime::Result<Vec<String>> {
                    Ok(self.lent.image(&self.table, &image)?.keys().cloned().collect())
                }

                fn to_json(&mut self, image: Resource<ImageRef>) -> wasmtime::Result<String> {
                    let mut text = Vec::new();
                    self.lent.image(&self.table, &image)?.write_json(&mut text);
                    Ok(String::from_utf8(text)?)
                }

                fn drop(&mut self, image: Resource<ImageRef>) -> wasmtime::Result<()> {
                    self.table.delete(image)?;
                    self.lent.undropped = self.lent.undropped.saturating_sub(1);
                    Ok(())
                }
            }
        };
    };
}

image_host!(super::bindings::v0_3::eddy::processor::types);
image_host!(super::bindings::v0_2::eddy::processor::types);

/// `From<&AttributeValue>` for the `attribute` of the generated types `$wit` of one contract
/// version (every version has the same `attribute` variant).
macro_rules! attribute {
    ($wit:path) => {
        const _: () = {
            use $wit as wit;

            /// One attribute as the contract types it; `M` and `L` as DynamoDB JSON text.
            impl From<&AttributeValue> for wit::Attribute {
                fn from(value: &AttributeValue) -> Self {
                    match value {
                        AttributeValue::S(s) => Self::S(s.clone()),
                        AttributeValue::N(n) => Self::N(n.clone()),
                        AttributeValue::B(b) => Self::B(b.clone()),
                        AttributeValue::Bool(b) => Self::Boolean(*b),
                        AttributeValue::Null => Self::Null,
                        AttributeValue::Ss(v) => Self::Ss(v.clone()),
                        AttributeValue::Ns(v) => Self::Ns(v.clone()),
                        AttributeValue::Bs(v) => Self::Bs(v.clone()),
                        AttributeValue::M(m) => Self::M(serde_json::to_string(m).expect("an item always serializes")),
                        AttributeValue::L(l) => Self::L(serde_json::to_string(l).expect("a list always serializes")),
                    }
                }
            }
        };
    };
}

attribute!(super::bindings::current::eddy::processor::types);
attribute!(super::bindings::v0_3::eddy::processor::types);
attribute!(super::bindings::v0_2::eddy::processor::types);
