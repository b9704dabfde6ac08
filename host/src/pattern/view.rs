//! A borrowed, read-only view of an event, so patterns match a [`ChangeRecord`] in place (no
//! conversion to JSON, no allocation) exactly as they would match its Lambda JSON form.
//!
//! The view follows Lambda's JSON shape of a DynamoDB stream record: attribute values keep their
//! type key (`{"S": "x"}`), `N` values are strings, `NULL` is `true`, binary values are base64
//! strings, and `ApproximateCreationDateTime` is a number of epoch seconds.

use eddy_record::{AttributeValue, ChangeRecord, Item, StreamRecord};
use serde_json::Value;

/// One node of an event.
#[derive(Clone, Copy)]
pub enum View<'a> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(&'a str),
    /// Binary data, seen as its base64 text.
    Bytes(&'a [u8]),
    /// Any JSON value.
    Json(&'a Value),
    /// A change record (an object).
    Record(&'a ChangeRecord),
    /// The record's `dynamodb` object.
    Stream(&'a StreamRecord),
    /// `userIdentity`.
    Identity(&'a eddy_record::UserIdentity),
    /// An image or the keys (an object of attribute values).
    Item(&'a Item),
    /// One attribute value: an object with one type key.
    Attr(&'a AttributeValue),
    /// `SS` / `NS` contents.
    Strs(&'a [String]),
    /// `BS` contents.
    Blobs(&'a [Vec<u8>]),
    /// `L` contents.
    Attrs(&'a [AttributeValue]),
}

/// What a node is, for the matcher.
pub enum Shape<'a> {
    /// A leaf value.
    Leaf(Leaf<'a>),
    /// An object (not a leaf: `exists` does not see it).
    Object,
    /// An array: conditions apply to its elements.
    Array,
}

/// A leaf value.
#[derive(Clone, Copy, Debug)]
pub enum Leaf<'a> {
    /// `null`
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(&'a str),
    /// Binary, compared as base64 text.
    Bytes(&'a [u8]),
}

impl<'a> View<'a> {
    /// The node's shape.
    pub fn shape(self) -> Shape<'a> {
        match self {
            View::Null => Shape::Leaf(Leaf::Null),
            View::Bool(b) => Shape::Leaf(Leaf::Bool(b)),
            View::Num(n) => Shape::Leaf(Leaf::Num(n)),
            View::Str(s) => Shape::Leaf(Leaf::Str(s)),
            View::Bytes(b) => Shape::Leaf(Leaf::Bytes(b)),
            View::Json(v) => match v {
                Value::Null => Shape::Leaf(Leaf::Null),
                Value::Bool(b) => Shape::Leaf(Leaf::Bool(*b)),
                Value::Number(n) => Shape::Leaf(Leaf::Num(n.as_f64().unwrap_or(f64::NAN))),
                Value::String(s) => Shape::Leaf(Leaf::Str(s)),
                Value::Array(_) => Shape::Array,
                Value::Object(_) => Shape::Object,
            },
            View::Record(_) | View::Stream(_) | View::Identity(_) | View::Item(_) | View::Attr(_) => Shape::Object,
            View::Strs(_) | View::Blobs(_) | View::Attrs(_) => Shape::Array,
        }
    }

    /// The member `key` of an object; `None` when absent or not an object.
    pub fn field(self, key: &str) -> Option<View<'a>> {
        match self {
            View::Json(Value::Object(m)) => m.get(key).map(View::Json),
            View::Record(r) => match key {
                "eventID" => Some(View::Str(&r.event_id)),
                "eventName" => Some(View::Str(r.event_name.as_str())),
                "eventVersion" => Some(View::Str(&r.event_version)),
                "eventSource" => Some(View::Str(&r.event_source)),
                "awsRegion" => Some(View::Str(&r.aws_region)),
                "eventSourceARN" if !r.event_source_arn.is_empty() => Some(View::Str(&r.event_source_arn)),
                "dynamodb" => Some(View::Stream(&r.dynamodb)),
                "userIdentity" => r.user_identity.as_ref().map(View::Identity),
                _ => None,
            },
            View::Stream(s) => match key {
                "ApproximateCreationDateTime" => s.approximate_creation_date_time.map(|t| View::Num(t as f64)),
                "Keys" => Some(View::Item(&s.keys)),
                "NewImage" => s.new_image.as_ref().map(|i| View::Item(i.item())),
                "OldImage" => s.old_image.as_ref().map(|i| View::Item(i.item())),
                "SequenceNumber" => Some(View::Str(&s.sequence_number)),
                "SizeBytes" => Some(View::Num(s.size_bytes as f64)),
                "StreamViewType" => Some(View::Str(view_type(s))),
                _ => None,
            },
            View::Identity(u) => match key {
                "type" => Some(View::Str(&u.kind)),
                "principalId" => Some(View::Str(&u.principal_id)),
                _ => None,
            },
            View::Item(item) => item.get(key).map(View::Attr),
            View::Attr(a) => {
                if key != a.type_name() {
                    return None;
                }
                Some(match a {
                    AttributeValue::S(s) | AttributeValue::N(s) => View::Str(s),
                    AttributeValue::B(b) => View::Bytes(b),
                    AttributeValue::Ss(v) | AttributeValue::Ns(v) => View::Strs(v),
                    AttributeValue::Bs(v) => View::Blobs(v),
                    AttributeValue::M(m) => View::Item(m),
                    AttributeValue::L(l) => View::Attrs(l),
                    AttributeValue::Null => View::Bool(true),
                    AttributeValue::Bool(b) => View::Bool(*b),
                })
            }
            _ => None,
        }
    }

    /// Calls `f` on each member of an object whose key is `first` followed by a dot and more
    /// (`"state.status"` for `first` = `state`) until it returns `true`; returns whether one did.
    /// Only JSON objects and items can have such keys (a record's own fields never do); an item's
    /// keys are sorted, so only the few next to `first` are looked at.
    pub fn any_dotted_member(self, first: &str, f: &mut dyn FnMut(&'a str, View<'a>) -> bool) -> bool {
        let dotted = |k: &str| k.len() > first.len() && k.starts_with(first) && k.as_bytes()[first.len()] == b'.';
        match self {
            View::Json(Value::Object(m)) => m.iter().filter(|(k, _)| dotted(k)).any(|(k, v)| f(k, View::Json(v))),
            View::Item(item) => {
                use std::ops::Bound;
                item.range::<str, _>((Bound::Excluded(first), Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(first))
                    .filter(|(k, _)| dotted(k))
                    .any(|(k, v)| f(k, View::Attr(v)))
            }
            _ => false,
        }
    }

    /// Calls `f` on each element of an array until it returns `true`; returns whether one did.
    pub fn any_element(self, f: &mut dyn FnMut(View<'a>) -> bool) -> bool {
        match self {
            View::Json(Value::Array(a)) => a.iter().any(|v| f(View::Json(v))),
            View::Strs(v) => v.iter().any(|s| f(View::Str(s))),
            View::Blobs(v) => v.iter().any(|b| f(View::Bytes(b))),
            View::Attrs(v) => v.iter().any(|a| f(View::Attr(a))),
            _ => false,
        }
    }
}

fn view_type(s: &StreamRecord) -> &'static str {
    use eddy_record::StreamViewType::*;
    match s.stream_view_type {
        KeysOnly => "KEYS_ONLY",
        NewImage => "NEW_IMAGE",
        OldImage => "OLD_IMAGE",
        NewAndOldImages => "NEW_AND_OLD_IMAGES",
    }
}
