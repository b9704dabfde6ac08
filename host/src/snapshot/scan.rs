//! The table's items as a [`StreamsApi`]: each parallel Scan segment is a closed "shard" named
//! `segment-I-of-N`, read page by page, so the coordinator, readers, leases and checkpoints that
//! read a stream read a snapshot too, unchanged.
//!
//! - An iterator is `I` and the Scan's `ExclusiveStartKey` (DynamoDB JSON), a page is one Scan
//!   call (`Segment` I, `TotalSegments` N, `Limit`), and a page's checkpoint is its
//!   `LastEvaluatedKey` ([`Resume::AfterKey`]): a restart resumes a segment after its last
//!   acknowledged page, re-reading at most the page that was in flight.
//! - Items become change records as a stream would carry an insert of them: `eventName: INSERT`,
//!   `eventSource: "eddy:snapshot"`, `dynamodb.Keys` from the table's key schema, `NewImage` the
//!   item as its DynamoDB JSON text (decoded only if a filter, processor or sink looks inside),
//!   `ApproximateCreationDateTime` the time it was read, `eventID` `snapshot-I-S` (segment I,
//!   record S). Their sequence numbers only order the records of one segment in this process;
//!   they are not positions.
//! - Scan goes through eddy's signed JSON client (as GetRecords and the Alternator sink do);
//!   DescribeTable through the AWS SDK. `max_items_per_second` is taken before each Scan, for
//!   the `Limit` it asks for, so the read rate holds whatever the page sizes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
#[cfg(test)]
use eddy_aws_json::DYNAMODB;
use eddy_aws_json::{AwsJsonClient, AwsJsonError};
use eddy_record::scan::Scanner;
use eddy_record::{ChangeRecord, EventName, Image, Item, StreamRecord, StreamViewType};
#[cfg(test)]
use eddy_sink_api::Timeouts;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::aws::TableInfo;
use crate::coordinator::reader::RecordBudget;
use crate::source::{
    IteratorPosition, RecordsPage, Resume, ShardInfo, StreamDescription, StreamsApi, StreamsError, Undecodable,
};

/// The segments of one table's parallel Scan.
pub struct ScanSegments {
    client: AwsJsonClient,
    table: TableInfo,
    region: String,
    segments: u32,
    consistent_read: bool,
    budget: Option<RecordBudget>,
    /// The most items one Scan asks for.
    page_limit: u32,
    /// The last sequence number given to a record.
    sequence: AtomicU64,
    /// Items read and handed to the routes (counted again when a page is read again).
    items: Arc<AtomicU64>,
}

/// Scan settings, from `source.snapshot` and `source.max_records_per_poll`.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    /// `TotalSegments`.
    pub segments: u32,
    /// `ConsistentRead`.
    pub consistent_read: bool,
    /// Items per second over all segments of this process.
    pub max_items_per_second: Option<std::num::NonZeroU32>,
    /// The largest `Limit` of one Scan.
    pub max_items_per_page: u32,
}

impl ScanSegments {
    /// The segments of `table`, scanned through `client` (a DynamoDB JSON client for the table's
    /// region) with `settings`.
    pub fn new(client: AwsJsonClient, table: TableInfo, region: String, settings: &ScanSettings) -> Self {
        let mut page_limit = settings.max_items_per_page.clamp(1, 1000);
        if let Some(rate) = settings.max_items_per_second {
            // Several calls a second, so that the rate holds over short windows too.
            page_limit = page_limit.min((rate.get() / 4).max(1));
        }
        Self {
            client,
            table,
            region,
            segments: settings.segments,
            consistent_read: settings.consistent_read,
            budget: settings.max_items_per_second.map(RecordBudget::new),
            page_limit,
            sequence: AtomicU64::new(0),
            items: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The table being scanned.
    pub fn table(&self) -> &TableInfo {
        &self.table
    }

    /// `TotalSegments`.
    pub fn segments(&self) -> u32 {
        self.segments
    }

    /// Items read so far by this process (a page read again after a restart or a failed write is
    /// counted again).
    pub fn items(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.items)
    }

    /// The shard id of segment `i`.
    pub fn segment_id(&self, i: u32) -> String {
        format!("segment-{i}-of-{}", self.segments)
    }

    fn parse_segment(&self, shard_id: &str) -> Result<u32, StreamsError> {
        shard_id
            .strip_prefix("segment-")
            .and_then(|rest| rest.split_once("-of-"))
            .filter(|(_, n)| n.parse() == Ok(self.segments))
            .and_then(|(i, _)| i.parse().ok())
            .filter(|i| *i < self.segments)
            .ok_or_else(|| {
                StreamsError::Fatal(format!("{shard_id} is not a segment of a {}-segment scan", self.segments))
            })
    }

    /// Turns one Scan answer into a page of `segment`: in one strict pass ([`Self::one_pass`]),
    /// or, when that pass cannot tell, by `serde_json` item by item ([`Self::slow_page`]), which
    /// says what is wrong with an item and sets it aside for the dead letter.
    fn page(&self, segment: u32, answer: &Bytes) -> Result<RecordsPage, StreamsError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let page = match self.one_pass(segment, answer, now as i64) {
            Some(page) => page,
            None => self.slow_page(segment, answer, now as i64)?,
        };
        let read = (page.records.len() + page.undecodable.len()) as u64;
        self.items.fetch_add(read, Ordering::Relaxed);
        metrics::counter!(crate::metrics::SNAPSHOT_ITEMS).increment(read);
        Ok(page)
    }

    /// A Scan answer (`{"Items": [...], "Count", "ScannedCount", "LastEvaluatedKey",
    /// "ConsumedCapacity"}`) read as GetRecords pages are (`source/wire/one_pass.rs`): one forward
    /// pass of [`Scanner`], each item checked as DynamoDB JSON and kept as a slice of the answer
    /// ([`Image::scan_keyed_in`]), its key attributes decoded as they are read. `None` on anything
    /// the slow path must decide: an item that is not DynamoDB JSON, a key attribute missing or
    /// not a scalar, a field given twice or written with escapes.
    fn one_pass(&self, segment: u32, answer: &Bytes, now: i64) -> Option<RecordsPage> {
        const FIELDS: &[&str] = &["Items", "LastEvaluatedKey"];
        let text = simdutf8::basic::from_utf8(answer).ok()?;
        let mut s = Scanner::new(text);
        // The items' parts; records (and their sequence numbers) only once the whole page is read.
        let mut items: Option<Vec<(Item, Image, u64)>> = None;
        let mut last_key: Option<Option<&str>> = None;
        let whole = s.members(|s, field| match field.raw() {
            "Items" if items.is_none() && !field.is_escaped() => {
                let mut list = Vec::with_capacity(text.len() / 1024 + 1);
                let ok = s.elements(|s| self.scan_item(s, answer).map(|r| list.push(r)).is_some());
                items = Some(list);
                ok
            }
            "LastEvaluatedKey" if last_key.is_none() && !field.is_escaped() => {
                s.skip_whitespace();
                if s.literal("null") {
                    last_key = Some(None);
                    return true;
                }
                let start = s.position();
                let ok = s.peek() == Some(b'{') && s.skip_value();
                last_key = Some(Some(s.text_between(start, s.position())));
                ok
            }
            _ => !crate::source::fields::is_field(field, FIELDS) && s.skip_value(),
        });
        if !(whole && s.at_end()) {
            return None;
        }
        let last_key = last_key.flatten();
        let records = items.unwrap_or_default().into_iter();
        Some(RecordsPage {
            records: records.map(|(keys, image, size)| self.insert(segment, keys, image, size, now)).collect(),
            next_iterator: last_key.map(|k| iterator(segment, Some(k))),
            resume: Resume::AfterKey(last_key.map(str::to_owned)),
            ..RecordsPage::default()
        })
    }

    /// One item of a Scan answer at the scanner's position, as [`Self::one_pass`] reads it: its
    /// keys, its image and its size in bytes of DynamoDB JSON.
    fn scan_item(&self, s: &mut Scanner<'_>, answer: &Bytes) -> Option<(Item, Image, u64)> {
        let mut keys = Item::new();
        let image = Image::scan_keyed_in(s, answer, &self.table.key, &mut keys)?;
        if keys.len() != self.table.key.len() {
            return None;
        }
        let size = image.text().map_or(0, str::len) as u64;
        Some((keys, image, size))
    }

    /// The slow path of [`Self::page`]: `serde_json` with `RawValue`, item by item.
    fn slow_page(&self, segment: u32, answer: &[u8], now: i64) -> Result<RecordsPage, StreamsError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer<'a> {
            #[serde(borrow, default)]
            items: Vec<&'a RawValue>,
            #[serde(borrow, default)]
            last_evaluated_key: Option<&'a RawValue>,
        }
        let answer: Answer = serde_json::from_slice(answer).map_err(|e| {
            StreamsError::Transient(format!("Scan answered with something that is not a Scan answer: {e}"))
        })?;
        let mut page = RecordsPage {
            next_iterator: answer.last_evaluated_key.map(|k| iterator(segment, Some(k.get()))),
            resume: Resume::AfterKey(answer.last_evaluated_key.map(|k| k.get().to_owned())),
            ..RecordsPage::default()
        };
        page.records.reserve(answer.items.len());
        for raw in answer.items {
            match self.record(segment, raw, now) {
                Ok(record) => page.records.push(record),
                Err(reason) => page.undecodable.push(Undecodable {
                    sequence_number: None,
                    reason: format!("snapshot item of {}: {reason}", self.segment_id(segment)),
                    raw: raw.get().to_owned(),
                }),
            }
        }
        Ok(page)
    }

    /// One item, read by the slow path, as an INSERT change record.
    fn record(&self, segment: u32, raw: &RawValue, now: i64) -> Result<ChangeRecord, String> {
        let image = Image::from_raw(raw)?;
        let mut keys = Item::new();
        for name in &self.table.key {
            let value = image.attribute(name).ok_or_else(|| format!("the item has no key attribute {name:?}"))?;
            keys.insert(name.clone(), value.into_owned());
        }
        Ok(self.insert(segment, keys, image, raw.get().len() as u64, now))
    }

    /// The INSERT change record of one item of `segment`, `size` bytes of DynamoDB JSON.
    fn insert(&self, segment: u32, keys: Item, image: Image, size: u64, now: i64) -> ChangeRecord {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        ChangeRecord {
            event_id: format!("snapshot-{segment}-{sequence}"),
            event_name: EventName::Insert,
            event_version: "1.1".to_owned(),
            event_source: SNAPSHOT_EVENT_SOURCE.to_owned(),
            aws_region: self.region.clone(),
            dynamodb: StreamRecord {
                approximate_creation_date_time: Some(now),
                keys,
                new_image: Some(image),
                old_image: None,
                sequence_number: sequence.to_string(),
                size_bytes: size,
                stream_view_type: StreamViewType::NewImage,
            },
            event_source_arn: self.table.arn.clone(),
            user_identity: None,
        }
    }
}

/// The `eventSource` of snapshot records, so a pattern (`{"eventSource": ["eddy:snapshot"]}`)
/// can tell them from stream records (`aws:dynamodb`).
pub const SNAPSHOT_EVENT_SOURCE: &str = "eddy:snapshot";

/// An iterator: the segment, a newline, and the `ExclusiveStartKey` text (empty at the start).
fn iterator(segment: u32, start: Option<&str>) -> String {
    format!("{segment}\n{}", start.unwrap_or_default())
}

/// Whether `text` is a Scan key: a JSON object (a stream sequence number is not).
fn is_key(text: &str) -> bool {
    text.starts_with('{') && serde_json::from_str::<&RawValue>(text).is_ok()
}

/// Maps a Scan error to the reader's policy: throttling (ProvisionedThroughputExceeded), 5xx and
/// timeouts back off; a missing table, refused credentials or a refused request stop.
fn classify(e: AwsJsonError) -> StreamsError {
    let code = e.code();
    if crate::aws::is_throttling(code) {
        crate::events::Throttled { api: "dynamodb", n: 1 }.emit();
    }
    let text = format!("Scan: {e}");
    if crate::aws::is_refused(code) {
        StreamsError::Fatal(text)
    } else {
        StreamsError::Transient(text)
    }
}

#[async_trait]
impl StreamsApi for ScanSegments {
    async fn describe_stream(&self) -> Result<StreamDescription, StreamsError> {
        Ok(StreamDescription {
            stream_arn: format!("{}#snapshot", self.table.arn),
            view_type: Some(StreamViewType::NewImage),
            shards: (0..self.segments)
                .map(|i| ShardInfo {
                    shard_id: self.segment_id(i),
                    ending_sequence_number: Some(String::new()),
                    ..ShardInfo::default()
                })
                .collect(),
            ended: true,
        })
    }

    async fn get_shard_iterator(&self, shard_id: &str, position: &IteratorPosition) -> Result<String, StreamsError> {
        let segment = self.parse_segment(shard_id)?;
        match position {
            IteratorPosition::TrimHorizon => Ok(iterator(segment, None)),
            IteratorPosition::AfterSequence(key) if is_key(key) => Ok(iterator(segment, Some(key))),
            other => Err(StreamsError::Fatal(format!(
                "{shard_id}: cannot resume a scan segment at {other:?} (its checkpoint is not a Scan key)"
            ))),
        }
    }

    async fn get_records(&self, iterator: &str, limit: u32) -> Result<RecordsPage, StreamsError> {
        let (segment, start) = iterator
            .split_once('\n')
            .and_then(|(s, k)| Some((s.parse::<u32>().ok()?, k)))
            .ok_or_else(|| StreamsError::Fatal(format!("not a scan iterator: {iterator:?}")))?;
        let limit = limit.min(self.page_limit).max(1);
        if let Some(budget) = &self.budget {
            budget.take(limit).await;
        }
        let mut body = format!(
            r#"{{"TableName":{},"Segment":{segment},"TotalSegments":{},"Limit":{limit},"ConsistentRead":{}"#,
            serde_json::to_string(&self.table.name).expect("a string serializes"),
            self.segments,
            self.consistent_read
        );
        if !start.is_empty() {
            body.push_str(r#","ExclusiveStartKey":"#);
            body.push_str(start);
        }
        body.push('}');
        let answer = self.client.call("Scan", body.into_bytes()).await.map_err(classify)?;
        let mut page = self.page(segment, &answer)?;
        page.bytes = answer.len() as u64;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(n: u32) -> ScanSegments {
        let credentials = aws_credential_types::Credentials::new("a", "b", None, None, "test");
        let provider = aws_credential_types::provider::SharedCredentialsProvider::new(credentials);
        let client =
            AwsJsonClient::new(DYNAMODB, "http://127.0.0.1:9", "us-east-1", provider, &Timeouts::default()).unwrap();
        let table = TableInfo {
            name: "Pets".into(),
            arn: "arn:aws:dynamodb:us-east-1:1:table/Pets".into(),
            key: vec!["pk".into(), "sk".into()],
            approximate_items: 0,
            latest_stream_arn: None,
            stream_enabled: false,
        };
        let settings =
            ScanSettings { segments: n, consistent_read: false, max_items_per_second: None, max_items_per_page: 1000 };
        ScanSegments::new(client, table, "us-east-1".into(), &settings)
    }

    /// A Scan page becomes INSERT records with the key schema's keys, the item as `NewImage`, and
    /// the `LastEvaluatedKey` as both the next iterator's start and the page's checkpoint; an item
    /// without its key goes to the dead letter with the reason and its text.
    #[test]
    fn a_scan_page_becomes_insert_records_and_resumes_after_its_last_key() {
        let scan = segments(4);
        let answer = br#"{"Items":[
            {"pk":{"S":"a"},"sk":{"N":"1"},"name":{"S":"Rex"}},
            {"pk":{"S":"b"},"name":{"S":"no sort key"}}
        ],"Count":2,"ScannedCount":2,"LastEvaluatedKey":{"pk":{"S":"b"},"sk":{"N":"2"}}}"#;
        let page = scan.page(3, &Bytes::from_static(answer)).unwrap();
        assert_eq!(page.records.len(), 1);
        let r = &page.records[0];
        assert_eq!(r.event_name, EventName::Insert);
        assert_eq!(r.event_source, "eddy:snapshot");
        assert_eq!(r.event_id, "snapshot-3-1");
        assert_eq!(r.dynamodb.keys.len(), 2);
        assert_eq!(r.dynamodb.keys["pk"].as_s(), Some("a"));
        assert_eq!(r.dynamodb.new_image.as_ref().unwrap().attribute("name").unwrap().as_s(), Some("Rex"));
        assert!(r.dynamodb.old_image.is_none());
        assert_eq!(page.undecodable.len(), 1);
        assert!(page.undecodable[0].reason.contains("no key attribute \"sk\""), "{}", page.undecodable[0].reason);
        assert!(page.undecodable[0].raw.contains("no sort key"));
        let key = r#"{"pk":{"S":"b"},"sk":{"N":"2"}}"#;
        assert_eq!(page.next_iterator.as_deref(), Some(format!("3\n{key}").as_str()));
        assert_eq!(page.resume, Resume::AfterKey(Some(key.to_owned())));
        // The last page of a segment: no key, so SHARD_END follows.
        let last = scan.page(3, &Bytes::from_static(br#"{"Items":[],"Count":0,"ScannedCount":0}"#)).unwrap();
        assert_eq!(last.next_iterator, None);
        assert_eq!(last.resume, Resume::AfterKey(None));
    }

    /// The one-pass reader gives the records the slow path gives (keys, images, sizes, resume),
    /// keeps each image as a slice of the answer, and leaves to the slow path what it cannot
    /// tell: a missing key, a key that is not a scalar, an item that is not DynamoDB JSON, a
    /// field given twice.
    #[test]
    fn the_one_pass_reader_agrees_with_the_slow_path_and_leaves_it_the_doubtful_pages() {
        let scan = segments(2);
        let answer = Bytes::from_static(
            br#"{"Count":2,"Items":[
            {"pk":{"S":"a\n\u00e9"},"sk":{"N":"1"},"blob":{"B":"AAE="},"m":{"M":{"pk":{"S":"inner"}}}},
            {"sk":{"N":"2"},"pk":{"B":"AAE="},"l":{"L":[{"NULL":true},{"SS":["x"]}]}}
        ],"ScannedCount":9,"LastEvaluatedKey":{"pk":{"B":"AAE="},"sk":{"N":"2"}},
        "ConsumedCapacity":{"TableName":"Pets","CapacityUnits":1.5}}"#,
        );
        let fast = scan.one_pass(1, &answer, 7).expect("the one pass reads a plain page");
        let slow = scan.slow_page(1, &answer, 7).unwrap();
        assert_eq!(fast.records.len(), 2);
        assert!(fast.undecodable.is_empty());
        for (f, s) in fast.records.iter().zip(&slow.records) {
            assert!(!f.dynamodb.new_image.as_ref().unwrap().is_decoded());
            assert_eq!(f.dynamodb.keys, s.dynamodb.keys);
            assert_eq!(f.dynamodb.new_image.as_ref().unwrap().item(), s.dynamodb.new_image.as_ref().unwrap().item());
            assert_eq!(f.dynamodb.size_bytes, s.dynamodb.size_bytes);
            assert_eq!(f.dynamodb.approximate_creation_date_time, Some(7));
        }
        assert_eq!(fast.records[0].dynamodb.keys["pk"].as_s(), Some("a\né"));
        assert_eq!(fast.records[1].dynamodb.keys["pk"], eddy_record::AttributeValue::B(vec![0, 1]));
        assert_eq!(fast.next_iterator, slow.next_iterator);
        assert_eq!(fast.resume, slow.resume);
        let text = fast.records[0].dynamodb.new_image.as_ref().unwrap().text().unwrap();
        let at = text.as_ptr() as usize - answer.as_ptr() as usize;
        assert!(at < answer.len(), "the image is a slice of the answer, not a copy");

        for doubtful in [
            r#"{"Items":[{"pk":{"S":"a"}}]}"#,
            r#"{"Items":[{"pk":{"L":[]},"sk":{"N":"1"}}]}"#,
            r#"{"Items":[{"pk":{"S":"a"},"sk":{"N":"1"},"x":{"Q":"1"}}]}"#,
            r#"{"Items":[],"Items":[]}"#,
            r#"{"Items":[],"LastEvaluatedKey":{"pk":{"S":"a"}},"LastEvaluatedKey":null}"#,
            r#"{"Items":[{"pk":{"S":"a"},"sk":{"N":"1"}}]} trailing"#,
        ] {
            assert!(scan.one_pass(0, &Bytes::from_static(doubtful.as_bytes()), 0).is_none(), "{doubtful}");
        }
        // The slow path decides: the item without its sort key goes to the dead letter.
        let page = scan.page(0, &Bytes::from_static(br#"{"Items":[{"pk":{"S":"a"}}]}"#)).unwrap();
        assert!(page.records.is_empty());
        assert_eq!(page.undecodable.len(), 1);
    }

    /// Segments are closed shards named `segment-I-of-N`; a checkpoint resumes after its key, and
    /// a checkpoint that is not a key (or a segment of another scan) is refused, never rescanned.
    #[tokio::test]
    async fn segments_are_closed_shards_and_resume_after_their_checkpointed_key() {
        let scan = segments(2);
        let desc = scan.describe_stream().await.unwrap();
        assert!(desc.ended);
        let ids: Vec<&str> = desc.shards.iter().map(|s| s.shard_id.as_str()).collect();
        assert_eq!(ids, ["segment-0-of-2", "segment-1-of-2"]);
        assert_eq!(scan.get_shard_iterator("segment-1-of-2", &IteratorPosition::TrimHorizon).await.unwrap(), "1\n");
        let key = r#"{"pk":{"S":"b"}}"#;
        let at = IteratorPosition::AfterSequence(key.into());
        assert_eq!(scan.get_shard_iterator("segment-0-of-2", &at).await.unwrap(), format!("0\n{key}"));
        let seq = IteratorPosition::AfterSequence("12345".into());
        assert!(matches!(scan.get_shard_iterator("segment-0-of-2", &seq).await, Err(StreamsError::Fatal(_))));
        let other = scan.get_shard_iterator("segment-0-of-3", &IteratorPosition::TrimHorizon).await;
        assert!(matches!(other, Err(StreamsError::Fatal(m)) if m.contains("not a segment of a 2-segment scan")));
    }
}
