//! The canned endpoint of `eddy-bench e2e`: a loopback HTTP server that speaks just enough of the
//! DynamoDB Streams API (DescribeStream, GetShardIterator, GetRecords), the Kinesis API
//! (ListShards, GetShardIterator, GetRecords), the DynamoDB API (BatchWriteItem, and
//! DescribeTable and Scan of the table behind the stream: `endpoint/table.rs`) and CrateDB's
//! `POST /_sql` for `eddy run` to read a stream and write to either sink, and that answers at once
//! so that it is never the bottleneck.
//!
//! The Kinesis stream has the same shards and records, in the format DynamoDB writes to a Kinesis
//! destination, base64-encoded per record as Kinesis does (`ApproximateCreationDateTime` is
//! `written_at`, which grows by a millisecond per record when there is no rate, so newest-wins
//! drops nothing).
//!
//! The stream has `shards` closed shards in a DISABLED stream, so `eddy run` drains them and
//! exits. Shard `s` holds `records_per_shard` records; record `k` has sequence number
//! `10^20 + k` and is the PetTracker sample record `k % 1000` ([`crate::components::sample_record`]) with a
//! `written_at` attribute (epoch milliseconds) in its `NewImage`. Records are rendered from
//! pre-serialized templates: per record the endpoint copies about 1 KB and formats two numbers.
//!
//! With a `rate` (records per second over all shards), record `k` of a shard is written at
//! `t0 + k × shards / rate`, where `t0` is the first GetShardIterator call, and GetRecords returns
//! only records already written. BatchWriteItem then measures each item's replication lag (arrival
//! time − `written_at`); `GET /stats` reports the counts and the lag percentiles as JSON.

mod table;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use serde::Deserialize;

/// The stream's ARN (any well-formed ARN would do).
pub const STREAM_ARN: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/PetTracker/stream/2024-01-01T00:00:00.000";

/// The Kinesis stream's ARN.
pub const KINESIS_ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/pets-cdc";

/// The first sequence number of every shard.
const FIRST_SEQUENCE: u128 = 100_000_000_000_000_000_000;

/// Records written before this much time has passed since `t0` are left out of the lag figures
/// (the readers are still starting).
const LAG_WARM_UP: Duration = Duration::from_secs(1);

/// Record `n` of a shard is sample record `n % DISTINCT_KEYS` (its key made unique by the
/// sequence number on DynamoDB Streams).
pub const DISTINCT_KEYS: u64 = 1000;

/// What the endpoint serves.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Shards in the stream.
    pub shards: usize,
    /// Records in each shard.
    pub records_per_shard: u64,
    /// Records per second written over all shards; `None`: every record is there from the start.
    pub rate: Option<f64>,
    /// How long BatchWriteItem and `/_sql` take to answer (a slow sink); zero: at once.
    pub write_latency: Duration,
}

/// The answer of `GET /stats`.
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
pub struct Stats {
    /// Records returned by GetRecords, and items returned by Scan.
    pub records_served: u64,
    /// GetRecords and Scan calls.
    pub get_records_calls: u64,
    /// Items (puts and deletes) received by BatchWriteItem.
    pub items_written: u64,
    /// Rows received by `/_sql` (`bulk_args` entries).
    pub rows_written: u64,
    /// Changes received by the forwarding APIs: SQS SendMessageBatch, EventBridge PutEvents,
    /// Kinesis PutRecords entries, and the elements of the JSON arrays POSTed to `/hook`.
    #[serde(default)]
    pub forwarded: u64,
    /// Items whose lag was measured (puts written after the warm-up).
    pub lag_samples: u64,
    /// Median replication lag, in milliseconds.
    pub lag_p50_ms: f64,
    /// 99th percentile replication lag, in milliseconds.
    pub lag_p99_ms: f64,
    /// Largest replication lag, in milliseconds.
    pub lag_max_ms: f64,
}

/// One record template: text with three holes, the `written_at` value (absent on REMOVE), the
/// `ApproximateCreationDateTime` (the same time in epoch seconds, as DynamoDB Streams gives it)
/// and the sequence number.
struct Template {
    pieces: Vec<(String, Hole)>,
}

#[derive(Clone, Copy)]
enum Hole {
    WrittenAt,
    CreatedAt,
    Sequence,
    End,
}

const WRITTEN_MARK: &str = "7777777777777";
const CREATED_MARK: i64 = 6_666_666_666;
const SEQUENCE_MARK: &str = "999999999999999999999";

impl Template {
    /// Sample record `i` as a DynamoDB Streams GetRecords record.
    fn new(i: usize) -> Self {
        let mut record = Self::marked(i);
        // The sort key carries the sequence number, so every record of a shard has its own key
        // and no sink write can coalesce two of them.
        let sk = eddy_record::AttributeValue::S(format!("PET#{SEQUENCE_MARK}"));
        record.dynamodb.keys.insert("SK".into(), sk.clone());
        for image in [&mut record.dynamodb.new_image, &mut record.dynamodb.old_image] {
            if let Some(i) = image.take() {
                let mut item = i.into_item();
                item.insert("SK".into(), sk.clone());
                *image = Some(item.into());
            }
        }
        Self::from_text(&serde_json::to_string(&record).expect("records serialize"))
    }

    /// Sample record `i` as DynamoDB writes it to Kinesis (the record's data, before base64).
    fn kinesis(i: usize) -> Self {
        let record = Self::marked(i);
        let data = serde_json::json!({
            "awsRegion": "us-east-1",
            "eventID": record.event_id,
            "eventName": record.event_name,
            "userIdentity": null,
            "recordFormat": "application/json",
            "tableName": "PetTracker",
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "ApproximateCreationDateTime": serde_json::Value::Number(WRITTEN_MARK.parse().expect("a number")),
                "ApproximateCreationDateTimePrecision": "MILLISECOND",
                "Keys": record.dynamodb.keys,
                "NewImage": record.dynamodb.new_image,
                "OldImage": record.dynamodb.old_image,
                "SizeBytes": record.dynamodb.size_bytes,
            },
        });
        Self::from_text(&data.to_string())
    }

    /// Sample record `i` with the marks where `written_at` and the sequence number go.
    fn marked(i: usize) -> eddy_record::ChangeRecord {
        let mut record = crate::components::sample_record(i);
        record.event_source_arn.clear(); // GetRecords does not carry it; eddy adds it.
        record.dynamodb.sequence_number = SEQUENCE_MARK.to_owned();
        record.dynamodb.approximate_creation_date_time = Some(CREATED_MARK);
        if let Some(image) = record.dynamodb.new_image.take() {
            let mut item = image.into_item();
            item.insert("written_at".into(), eddy_record::AttributeValue::N(WRITTEN_MARK.to_owned()));
            record.dynamodb.new_image = Some(item.into());
        }
        record
    }

    fn from_text(text: &str) -> Self {
        let mut pieces = Vec::new();
        let mut rest = text;
        let created = CREATED_MARK.to_string();
        let marks =
            [(WRITTEN_MARK, Hole::WrittenAt), (created.as_str(), Hole::CreatedAt), (SEQUENCE_MARK, Hole::Sequence)];
        loop {
            let first =
                marks.iter().filter_map(|(mark, hole)| Some((rest.find(mark)?, *hole, mark.len()))).min_by_key(|m| m.0);
            let Some((at, hole, len)) = first else {
                pieces.push((rest.to_owned(), Hole::End));
                break;
            };
            pieces.push((rest[..at].to_owned(), hole));
            rest = &rest[at + len..];
        }
        Self { pieces }
    }

    fn render(&self, out: &mut Vec<u8>, sequence: u128, written_ms: u64) {
        use std::io::Write as _;
        for (text, hole) in &self.pieces {
            out.extend_from_slice(text.as_bytes());
            match hole {
                Hole::WrittenAt => write!(out, "{written_ms}").expect("writing to a Vec"),
                Hole::CreatedAt => write!(out, "{}", written_ms / 1000).expect("writing to a Vec"),
                Hole::Sequence => write!(out, "{sequence}").expect("writing to a Vec"),
                Hole::End => {}
            }
        }
    }
}

struct State {
    spec: Spec,
    templates: Vec<Template>,
    kinesis_templates: Vec<Template>,
    /// The table's items (`table::scan`).
    items: Vec<table::ItemTemplate>,
    /// When the first iterator was asked for: `t0` of the write schedule.
    started: OnceLock<(Instant, u64)>,
    records_served: AtomicU64,
    get_records_calls: AtomicU64,
    items_written: AtomicU64,
    rows_written: AtomicU64,
    forwarded: AtomicU64,
    lags_ms: Mutex<Vec<u32>>,
}

impl State {
    fn new(spec: Spec) -> Self {
        State {
            spec,
            templates: (0..DISTINCT_KEYS as usize).map(Template::new).collect(),
            kinesis_templates: (0..DISTINCT_KEYS as usize).map(Template::kinesis).collect(),
            items: (0..DISTINCT_KEYS as usize).map(table::ItemTemplate::new).collect(),
            started: OnceLock::new(),
            records_served: AtomicU64::new(0),
            get_records_calls: AtomicU64::new(0),
            items_written: AtomicU64::new(0),
            rows_written: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            lags_ms: Mutex::new(Vec::new()),
        }
    }

    fn t0(&self) -> (Instant, u64) {
        *self.started.get_or_init(|| (Instant::now(), now_ms()))
    }

    /// Milliseconds between two records of one shard at the configured rate.
    fn interval_ms(&self) -> Option<f64> {
        self.spec.rate.map(|rate| 1000.0 * self.spec.shards as f64 / rate)
    }

    /// How many records of a shard have been written by now.
    fn available(&self) -> u64 {
        match self.interval_ms() {
            None => self.spec.records_per_shard,
            Some(interval) => {
                let elapsed = self.t0().0.elapsed().as_secs_f64() * 1000.0;
                ((elapsed / interval) as u64 + 1).min(self.spec.records_per_shard)
            }
        }
    }

    fn written_ms(&self, k: u64) -> u64 {
        match self.interval_ms() {
            // One millisecond apart: Kinesis' newest-wins keeps every record of a key.
            None => 1_700_000_000_000 + k,
            Some(interval) => self.t0().1 + (k as f64 * interval) as u64,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// The size of a typical rendered record, in bytes.
pub fn record_size() -> usize {
    let mut out = Vec::new();
    Template::new(1).render(&mut out, FIRST_SEQUENCE, 1_700_000_000_000);
    out.len()
}

/// A GetRecords answer of `records` records, as this endpoint serves it (the input of
/// `eddy bench decode`).
pub fn sample_page(records: u64) -> Vec<u8> {
    let templates: Vec<Template> = (0..DISTINCT_KEYS as usize).map(Template::new).collect();
    render_page(&templates, Some("0:1000"), 0..records, |n| 1_700_000_000_000 + n)
}

/// A GetRecords answer: records `range` of a shard (record `n` from template `n % DISTINCT_KEYS`,
/// written at `written_ms(n)`), and `next_iterator` unless the shard is closed and read.
fn render_page(
    templates: &[Template],
    next_iterator: Option<&str>,
    range: std::ops::Range<u64>,
    written_ms: impl Fn(u64) -> u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity((range.end - range.start) as usize * 2000 + 64);
    out.extend_from_slice(b"{");
    if let Some(next) = next_iterator {
        out.extend_from_slice(format!(r#""NextShardIterator":"{next}","#).as_bytes());
    }
    out.extend_from_slice(br#""Records":["#);
    for n in range.clone() {
        if n > range.start {
            out.push(b',');
        }
        templates[(n % DISTINCT_KEYS) as usize].render(&mut out, FIRST_SEQUENCE + u128::from(n), written_ms(n));
    }
    out.extend_from_slice(b"]}");
    out
}

/// Serves `spec` on `listener` until the process ends.
pub async fn serve(spec: Spec, listener: tokio::net::TcpListener) {
    let state = Arc::new(State::new(spec));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(respond(&state, request).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

async fn respond(state: &State, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let full_target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let kinesis = full_target.starts_with("Kinesis_");
    let target = (!full_target.is_empty()).then(|| full_target.rsplit('.').next().unwrap_or(full_target).to_owned());
    let path = request.uri().path().to_owned();
    let body = match request.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return answer(400, "text/plain", format!("cannot read the body: {e}").into_bytes()),
    };
    let json = |body: Vec<u8>| answer(200, "application/x-amz-json-1.0", body);
    if kinesis {
        let result = match target.as_deref() {
            Some("ListShards") => Ok(list_shards(state).into_bytes()),
            Some("GetShardIterator") => kinesis_shard_iterator(state, &body).map(String::into_bytes),
            Some("GetRecords") => kinesis_records(state, &body),
            Some("PutRecords") => Ok(forward(
                state,
                &body,
                "Records",
                r#"{"SequenceNumber":"1","ShardId":"shardId-000000000000"}"#,
                |n| format!(r#"{{"FailedRecordCount":0,"Records":[{n}]}}"#),
            )),
            other => Err(format!("the bench endpoint does not serve Kinesis {other:?}")),
        };
        return match result {
            Ok(bytes) => answer(200, "application/x-amz-json-1.1", bytes),
            Err(e) => validation(&e),
        };
    }
    match (target.as_deref(), path.as_str()) {
        (Some("DescribeStream"), _) => json(describe_stream(state).into_bytes()),
        (Some("DescribeTable"), _) => json(table::describe_table(state).into_bytes()),
        (Some("Scan"), _) => match table::scan(state, &body) {
            Ok(bytes) => json(bytes),
            Err(e) => validation(&e),
        },
        (Some("GetShardIterator"), _) => match get_shard_iterator(state, &body) {
            Ok(text) => json(text.into_bytes()),
            Err(e) => validation(&e),
        },
        (Some("GetRecords"), _) => match get_records(state, &body) {
            Ok(bytes) => json(bytes),
            Err(e) => validation(&e),
        },
        (Some("BatchWriteItem"), _) => {
            tokio::time::sleep(state.spec.write_latency).await;
            batch_write_item(state, &body);
            json(br#"{"UnprocessedItems":{}}"#.to_vec())
        }
        (Some("GetQueueUrl"), _) => json(br#"{"QueueUrl":"http://127.0.0.1/123456789012/bench"}"#.to_vec()),
        (Some("GetQueueAttributes"), _) => {
            json(br#"{"Attributes":{"MaximumMessageSize":"262144","FifoQueue":"false"}}"#.to_vec())
        }
        (Some("SendMessageBatch"), _) => json(sqs_batch(state, &body)),
        (Some("PutEvents"), _) => json(forward(state, &body, "Entries", r#"{"EventId":"e"}"#, |n| {
            format!(r#"{{"FailedEntryCount":0,"Entries":[{n}]}}"#)
        })),
        (None, "/hook") => {
            let n = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&body).map_or(0, |v| v.len());
            state.forwarded.fetch_add(n as u64, Ordering::Relaxed);
            answer(204, "text/plain", Vec::new())
        }
        (None, "/_sql") => match sql_after(state, &body).await {
            Ok(bytes) => answer(200, "application/json", bytes),
            Err(e) => answer(400, "application/json", serde_json::json!({"error": {"message": e}}).to_string().into()),
        },
        (None, "/stats") => answer(200, "application/json", serde_json::to_vec(&stats(state)).unwrap_or_default()),
        _ => validation(&format!("the bench endpoint does not serve {target:?} {path}")),
    }
}

/// A forwarding API's batch (`field`: its array of entries), counted; the answer `wrap` makes of
/// one `ok` entry per entry.
fn forward(state: &State, body: &[u8], field: &str, ok: &str, wrap: impl Fn(&str) -> String) -> Vec<u8> {
    let n = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get(field).and_then(|a| a.as_array()).map(Vec::len))
        .unwrap_or(0);
    state.forwarded.fetch_add(n as u64, Ordering::Relaxed);
    wrap(&vec![ok; n].join(",")).into_bytes()
}

/// SQS SendMessageBatch: every entry successful, by its `Id`.
fn sqs_batch(state: &State, body: &[u8]) -> Vec<u8> {
    let ids: Vec<String> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("Entries").and_then(|a| a.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| e["Id"].as_str().unwrap_or_default().to_owned())
        .collect();
    state.forwarded.fetch_add(ids.len() as u64, Ordering::Relaxed);
    let ok: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({"Id": id, "MessageId": format!("m-{id}"), "MD5OfMessageBody": "00000000000000000000000000000000"}))
        .collect();
    serde_json::to_vec(&serde_json::json!({"Successful": ok, "Failed": []})).unwrap_or_default()
}

/// `/_sql`, answered after the write latency.
async fn sql_after(state: &State, body: &[u8]) -> Result<Vec<u8>, String> {
    tokio::time::sleep(state.spec.write_latency).await;
    sql(state, body)
}

fn answer(status: u16, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

fn validation(message: &str) -> Response<Full<Bytes>> {
    let body =
        serde_json::json!({"__type": "com.amazonaws.dynamodb.v20120810#ValidationException", "message": message});
    answer(400, "application/x-amz-json-1.0", body.to_string().into_bytes())
}

fn shard_id(s: usize) -> String {
    format!("shardId-00000001700000000000-{s:08x}")
}

fn describe_stream(state: &State) -> String {
    let last = FIRST_SEQUENCE + u128::from(state.spec.records_per_shard.max(1)) - 1;
    let shards: Vec<serde_json::Value> = (0..state.spec.shards)
        .map(|s| {
            serde_json::json!({
                "ShardId": shard_id(s),
                "SequenceNumberRange": {
                    "StartingSequenceNumber": FIRST_SEQUENCE.to_string(),
                    "EndingSequenceNumber": last.to_string(),
                },
            })
        })
        .collect();
    serde_json::json!({
        "StreamDescription": {
            "StreamArn": STREAM_ARN,
            "StreamLabel": "2024-01-01T00:00:00.000",
            "StreamStatus": "DISABLED",
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "TableName": "PetTracker",
            "KeySchema": [
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            "Shards": shards,
        }
    })
    .to_string()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IteratorRequest {
    shard_id: String,
    shard_iterator_type: String,
    #[serde(default)]
    sequence_number: Option<String>,
}

fn get_shard_iterator(state: &State, body: &[u8]) -> Result<String, String> {
    let request: IteratorRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let shard = (0..state.spec.shards)
        .find(|s| shard_id(*s) == request.shard_id)
        .ok_or_else(|| format!("no shard {}", request.shard_id))?;
    let sequence = || -> Result<u64, String> {
        let text = request.sequence_number.as_deref().ok_or("SequenceNumber is required")?;
        let n: u128 = text.parse().map_err(|e| format!("bad SequenceNumber {text}: {e}"))?;
        n.checked_sub(FIRST_SEQUENCE)
            .map(|k| k as u64)
            .ok_or_else(|| format!("SequenceNumber {text} is not in the shard"))
    };
    let _ = state.t0();
    let k = match request.shard_iterator_type.as_str() {
        "TRIM_HORIZON" => 0,
        "LATEST" => state.available(),
        "AT_SEQUENCE_NUMBER" => sequence()?,
        "AFTER_SEQUENCE_NUMBER" => sequence()? + 1,
        other => return Err(format!("unknown ShardIteratorType {other}")),
    };
    Ok(format!(r#"{{"ShardIterator":"{shard}:{k}"}}"#))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordsRequest {
    shard_iterator: String,
    #[serde(default)]
    limit: Option<u64>,
}

fn get_records(state: &State, body: &[u8]) -> Result<Vec<u8>, String> {
    let request: RecordsRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let (shard, k) = request
        .shard_iterator
        .split_once(':')
        .and_then(|(s, k)| Some((s.parse::<usize>().ok()?, k.parse::<u64>().ok()?)))
        .ok_or_else(|| format!("bad iterator {}", request.shard_iterator))?;
    let limit = request.limit.unwrap_or(1000).clamp(1, 1000);
    let end = (k + limit).min(state.available()).max(k);
    let next = (end < state.spec.records_per_shard).then(|| format!("{shard}:{end}"));
    let out = render_page(&state.templates, next.as_deref(), k..end, |n| state.written_ms(n));
    state.records_served.fetch_add(end - k, Ordering::Relaxed);
    state.get_records_calls.fetch_add(1, Ordering::Relaxed);
    Ok(out)
}

/// Kinesis ListShards: the same closed shards as DescribeStream.
fn list_shards(state: &State) -> String {
    let last = FIRST_SEQUENCE + u128::from(state.spec.records_per_shard.max(1)) - 1;
    let shards: Vec<serde_json::Value> = (0..state.spec.shards)
        .map(|s| {
            serde_json::json!({
                "ShardId": shard_id(s),
                "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"},
                "SequenceNumberRange": {
                    "StartingSequenceNumber": FIRST_SEQUENCE.to_string(),
                    "EndingSequenceNumber": last.to_string(),
                },
            })
        })
        .collect();
    serde_json::json!({ "Shards": shards }).to_string()
}

/// Kinesis GetShardIterator: its field is `StartingSequenceNumber`.
fn kinesis_shard_iterator(state: &State, body: &[u8]) -> Result<String, String> {
    let mut request: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if let Some(object) = request.as_object_mut() {
        if let Some(seq) = object.remove("StartingSequenceNumber") {
            object.insert("SequenceNumber".into(), seq);
        }
        object.remove("StreamARN");
        object.remove("StreamName");
    }
    get_shard_iterator(state, request.to_string().as_bytes())
}

/// Kinesis GetRecords: up to `Limit` (at most 10,000) records, each the base64 of its data.
fn kinesis_records(state: &State, body: &[u8]) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    use std::io::Write as _;
    let request: RecordsRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let (shard, k) = request
        .shard_iterator
        .split_once(':')
        .and_then(|(s, k)| Some((s.parse::<usize>().ok()?, k.parse::<u64>().ok()?)))
        .ok_or_else(|| format!("bad iterator {}", request.shard_iterator))?;
    let limit = request.limit.unwrap_or(10_000).clamp(1, 10_000);
    let end = (k + limit).min(state.available()).max(k);
    let mut out = Vec::with_capacity(((end - k) as usize) * 2600 + 64);
    out.extend_from_slice(br#"{"MillisBehindLatest":0,"#);
    if end < state.spec.records_per_shard {
        out.extend_from_slice(format!(r#""NextShardIterator":"{shard}:{end}","#).as_bytes());
    } else {
        out.extend_from_slice(br#""ChildShards":[],"#);
    }
    out.extend_from_slice(br#""Records":["#);
    let mut data = Vec::with_capacity(2048);
    for n in k..end {
        if n > k {
            out.push(b',');
        }
        data.clear();
        state.kinesis_templates[(n % DISTINCT_KEYS) as usize].render(&mut data, 0, state.written_ms(n));
        write!(
            out,
            r#"{{"SequenceNumber":"{}","ApproximateArrivalTimestamp":1.7E9,"Data":""#,
            FIRST_SEQUENCE + u128::from(n)
        )
        .expect("writing to a Vec");
        let at = out.len();
        out.resize(at + base64::encoded_len(data.len(), true).expect("small"), 0);
        let written =
            base64::engine::general_purpose::STANDARD.encode_slice(&data, &mut out[at..]).expect("sized above");
        out.truncate(at + written);
        out.extend_from_slice(br#"","PartitionKey":"pk"}"#);
    }
    out.extend_from_slice(b"]}");
    state.records_served.fetch_add(end - k, Ordering::Relaxed);
    state.get_records_calls.fetch_add(1, Ordering::Relaxed);
    Ok(out)
}

/// Counts the items of a BatchWriteItem body and, with a rate, measures their lag from the
/// `"written_at":{"N":"…"}` they carry, without parsing the rest.
fn batch_write_item(state: &State, body: &[u8]) {
    let count = |needle: &[u8]| body.windows(needle.len()).filter(|w| *w == needle).count() as u64;
    let items = count(br#""PutRequest""#) + count(br#""DeleteRequest""#);
    state.items_written.fetch_add(items, Ordering::Relaxed);
    if state.spec.rate.is_none() {
        return;
    }
    let now = now_ms();
    let warm_up_end = state.t0().1 + LAG_WARM_UP.as_millis() as u64;
    let needle = br#""written_at":{"N":""#;
    let mut lags = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        rest = &rest[at + needle.len()..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if let Some(written) = std::str::from_utf8(&rest[..digits]).ok().and_then(|d| d.parse::<u64>().ok()) {
            if written >= warm_up_end {
                lags.push(now.saturating_sub(written) as u32);
            }
        }
    }
    state.lags_ms.lock().expect("not poisoned").extend(lags);
}

#[derive(Deserialize)]
struct SqlRequest {
    #[serde(default)]
    bulk_args: Option<Vec<serde::de::IgnoredAny>>,
}

fn sql(state: &State, body: &[u8]) -> Result<Vec<u8>, String> {
    let request: SqlRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let rows = request.bulk_args.map_or(0, |a| a.len());
    state.rows_written.fetch_add(rows as u64, Ordering::Relaxed);
    let results = vec![serde_json::json!({"rowcount": 1}); rows];
    Ok(serde_json::to_vec(&serde_json::json!({"cols": [], "duration": 0.1, "results": results, "rowcount": rows}))
        .unwrap_or_default())
}

fn stats(state: &State) -> Stats {
    let mut lags = state.lags_ms.lock().expect("not poisoned").clone();
    lags.sort_unstable();
    let at = |q: f64| -> f64 {
        if lags.is_empty() {
            return 0.0;
        }
        let i = ((lags.len() as f64 * q).ceil() as usize).clamp(1, lags.len()) - 1;
        f64::from(lags[i])
    };
    Stats {
        records_served: state.records_served.load(Ordering::Relaxed),
        get_records_calls: state.get_records_calls.load(Ordering::Relaxed),
        items_written: state.items_written.load(Ordering::Relaxed),
        rows_written: state.rows_written.load(Ordering::Relaxed),
        forwarded: state.forwarded.load(Ordering::Relaxed),
        lag_samples: lags.len() as u64,
        lag_p50_ms: at(0.50),
        lag_p99_ms: at(0.99),
        lag_max_ms: lags.last().copied().map_or(0.0, f64::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_records_the_streams_decoder_reads() {
        let state = State::new(Spec { shards: 2, records_per_shard: 3, rate: None, write_latency: Duration::ZERO });
        let page = get_records(&state, br#"{"ShardIterator":"1:1","Limit":1000}"#).unwrap();
        let page: serde_json::Value = serde_json::from_slice(&page).unwrap();
        assert!(page.get("NextShardIterator").is_none(), "the shard ends after 3 records: {page}");
        let records = page["Records"].as_array().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0]["dynamodb"]["SequenceNumber"], "100000000000000000001");
        assert_eq!(records[0]["dynamodb"]["NewImage"]["written_at"]["N"], "1700000000001");
        let record: eddy_record::ChangeRecord = serde_json::from_value(records[1].clone()).unwrap();
        assert_eq!(record.dynamodb.sequence_number, "100000000000000000002");
        let first = get_records(&state, br#"{"ShardIterator":"0:0","Limit":1}"#).unwrap();
        assert!(String::from_utf8(first).unwrap().contains(r#""NextShardIterator":"0:1""#));
    }

    #[test]
    fn the_decode_benchmarks_page_decodes_whole() {
        let page = sample_page(25);
        let decoded = eddy::source::decode_get_records(&bytes::Bytes::from(page), "arn").unwrap();
        assert_eq!((decoded.records.len(), decoded.undecodable.len()), (25, 0));
        assert_eq!(decoded.next_iterator.as_deref(), Some("0:1000"));
    }

    #[test]
    fn kinesis_pages_decode_as_dynamodb_changes() {
        let state = State::new(Spec { shards: 1, records_per_shard: 3, rate: None, write_latency: Duration::ZERO });
        let it = kinesis_shard_iterator(&state, br#"{"ShardId":"shardId-00000001700000000000-00000000","ShardIteratorType":"AFTER_SEQUENCE_NUMBER","StartingSequenceNumber":"100000000000000000000"}"#).unwrap();
        assert_eq!(it, r#"{"ShardIterator":"0:1"}"#);
        let body = kinesis_records(&state, br#"{"ShardIterator":"0:1","Limit":10000}"#).unwrap();
        let page = eddy::source::kinesis::decode::page(&body).unwrap();
        assert!(page.next_shard_iterator.is_none());
        assert_eq!(page.records.len(), 2);
        let d = eddy::source::kinesis::decode::record(&page.records[1], Some("PetTracker"), KINESIS_ARN).unwrap();
        assert_eq!(d.record.dynamodb.sequence_number, "100000000000000000002");
        assert_eq!(d.created_micros, Some(1_700_000_000_002_000));
    }
}
