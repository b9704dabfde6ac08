//! What both Kinesis record readers (the one-pass reader and the serde reader of `decode`) make
//! of a change: the record, and what newest-wins tells items and versions apart by.

use eddy_record::ChangeRecord;

/// A decoded change and what newest-wins needs to know about it.
pub struct Decoded {
    /// The change, in Lambda's DynamoDB shape.
    pub record: ChangeRecord,
    /// `ApproximateCreationDateTime` in epoch microseconds, at the precision DynamoDB gave.
    pub created_micros: Option<i64>,
    /// The item's table and key as canonical text ([`recency_key`]): what newest-wins compares
    /// records by.
    pub key: String,
}

/// The text newest-wins tells an item by: its table's name (`tableName`; empty when the record
/// has none), a unit separator, and its key as canonical JSON (attributes sorted by name). One
/// stream may carry the changes of several tables, whose keys can be equal.
///
/// # Errors
/// When the key cannot be written as JSON.
pub fn recency_key(table: Option<&str>, keys: &eddy_record::Item) -> Result<String, String> {
    let keys = serde_json::to_string(keys).map_err(|e| format!("Keys: {e}"))?;
    Ok(format!("{}\u{1f}{keys}", table.unwrap_or_default()))
}
