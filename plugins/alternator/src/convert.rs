//! eddy's attribute values → the AWS SDK's.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as Sdk;
use eddy_sink_api::{AttributeValue, Item};
use std::collections::HashMap;

/// Converts an item to the SDK's representation, exactly (numbers stay decimal text).
pub fn to_sdk(item: &Item) -> HashMap<String, Sdk> {
    item.iter().map(|(k, v)| (k.clone(), value(v))).collect()
}

fn value(v: &AttributeValue) -> Sdk {
    match v {
        AttributeValue::S(s) => Sdk::S(s.clone()),
        AttributeValue::N(n) => Sdk::N(n.clone()),
        AttributeValue::B(b) => Sdk::B(Blob::new(b.clone())),
        AttributeValue::Ss(v) => Sdk::Ss(v.clone()),
        AttributeValue::Ns(v) => Sdk::Ns(v.clone()),
        AttributeValue::Bs(v) => Sdk::Bs(v.iter().map(|b| Blob::new(b.clone())).collect()),
        AttributeValue::M(m) => Sdk::M(to_sdk(m)),
        AttributeValue::L(l) => Sdk::L(l.iter().map(value).collect()),
        AttributeValue::Null => Sdk::Null(true),
        AttributeValue::Bool(b) => Sdk::Bool(*b),
    }
}
