//! `eddy sink preview`: what a sink would write for each record, without writing. Users check a
//! pipeline's output shape with it before pointing it at production.
//!
//! - cratedb: `{"op": "upsert" | "delete", "row": {"pk": {...}, "data": {...}, "aux": {...}},
//!   "stmt": "...", "args": [...]}` (a delete's row holds `pk` only);
//! - alternator: the `BatchWriteItem` entry, `{"PutRequest": {"Item": ...}}` or
//!   `{"DeleteRequest": {"Key": ...}}`, in DynamoDB JSON;
//! - file, stdout, null: the record as they would store it.

use eddy_sink_api::{ChangeRecord, EventName};
use serde_json::{json, Value};

use crate::config::SinkConfig;

/// The preview line for one record.
pub fn preview(sink: &SinkConfig, record: &ChangeRecord) -> Value {
    match sink {
        SinkConfig::CrateDb(c) => match eddy_sink_cratedb::translate::row(record) {
            Ok(row) => {
                let (stmt, args) = eddy_sink_cratedb::Statements::new(&c.table).for_row(&row);
                let row_json = match row.op {
                    eddy_sink_cratedb::translate::Op::Delete => json!({"pk": row.pk}),
                    _ => json!({"pk": row.pk, "data": row.data, "aux": row.aux}),
                };
                json!({"op": row.op.as_str(), "row": row_json, "stmt": stmt, "args": args})
            }
            Err(reason) => json!({"op": "reject", "reason": reason}),
        },
        SinkConfig::Alternator(c) => match (record.event_name, &record.dynamodb.new_image) {
            (EventName::Remove, _) => json!({"TableName": c.table, "DeleteRequest": {"Key": record.dynamodb.keys}}),
            (_, Some(image)) => json!({"TableName": c.table, "PutRequest": {"Item": image}}),
            (_, None) => {
                json!({"op": "reject", "reason": "no NewImage: the alternator sink needs NEW_IMAGE or NEW_AND_OLD_IMAGES"})
            }
        },
        SinkConfig::File { .. } | SinkConfig::Stdout | SinkConfig::Null => {
            serde_json::to_value(record).expect("records serialize")
        }
    }
}
