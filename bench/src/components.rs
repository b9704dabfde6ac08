//! Component benchmarks of eddy's own code, on one core, printing records/s: decoding a
//! GetRecords page, matching a filter, the pipeline with each example processor, translating to
//! CrateDB rows; and the sample records they (and the canned endpoint) use. Run them on a release
//! build (`cargo run --release -p eddy-bench -- decode`); debug builds are many times slower.

use std::hint::black_box;
use std::time::Instant;

use eddy_record::{AttributeValue, ChangeRecord, EventName, Item, StreamRecord, StreamViewType};
use serde_json::json;

use eddy::pattern::Filter;

/// A typical PetTracker change record of about 1 KB: keys, a new and an old image with strings,
/// numbers, a map, a list and a set. `i` varies species, event and owner.
pub fn sample_record(i: usize) -> ChangeRecord {
    let species = ["dog", "cat", "rabbit", "bird"][i % 4];
    let image = |age: usize| -> Item {
        let mut item = Item::new();
        item.insert("PK".into(), AttributeValue::S(format!("OWNER#{}", i % 97)));
        item.insert("SK".into(), AttributeValue::S(format!("PET#{i:08}")));
        item.insert("type".into(), AttributeValue::S(if i.is_multiple_of(5) { "ACTIVITY" } else { "PET" }.into()));
        item.insert("species".into(), AttributeValue::S(species.into()));
        item.insert("name".into(), AttributeValue::S(format!("Pet number {i}")));
        item.insert("email".into(), AttributeValue::S(format!("owner{}@example.com", i % 97)));
        item.insert("age".into(), AttributeValue::N(age.to_string()));
        item.insert("chip".into(), AttributeValue::N("12345678901234567890123456789012345678".into()));
        item.insert("tags".into(), AttributeValue::Ss(vec!["friendly".into(), "vaccinated".into(), "indoor".into()]));
        item.insert(
            "address".into(),
            AttributeValue::M(
                [
                    ("street".to_owned(), AttributeValue::S("1 Long Example Street, Building 7".into())),
                    ("city".to_owned(), AttributeValue::S("Berlin".into())),
                    ("zip".to_owned(), AttributeValue::S("10115".into())),
                ]
                .into(),
            ),
        );
        item.insert(
            "visits".into(),
            AttributeValue::L(
                (0..4)
                    .map(|v| {
                        AttributeValue::M([("year".to_owned(), AttributeValue::N(format!("20{}", 20 + v)))].into())
                    })
                    .collect(),
            ),
        );
        item.insert("notes".into(), AttributeValue::S("x".repeat(200)));
        item
    };
    let keys: Item = [
        ("PK".to_owned(), AttributeValue::S(format!("OWNER#{}", i % 97))),
        ("SK".to_owned(), AttributeValue::S(format!("PET#{i:08}"))),
    ]
    .into();
    ChangeRecord {
        event_id: format!("{i:032x}"),
        event_name: [EventName::Insert, EventName::Modify, EventName::Modify, EventName::Remove][i % 4],
        event_version: "1.1".into(),
        event_source: "aws:dynamodb".into(),
        aws_region: "us-east-1".into(),
        dynamodb: StreamRecord {
            approximate_creation_date_time: Some(1_700_000_000 + i as i64),
            keys,
            new_image: (i % 4 != 3).then(|| image(i % 15).into()),
            old_image: (!i.is_multiple_of(4)).then(|| image(i % 15 + 1).into()),
            sequence_number: format!("{}", 100_000_000_000_000_000_000u128 + i as u128),
            size_bytes: 1024,
            stream_view_type: StreamViewType::NewAndOldImages,
        },
        event_source_arn: "arn:aws:dynamodb:us-east-1:123456789012:table/PetTracker/stream/2024-01-01T00:00:00.000"
            .into(),
        user_identity: None,
    }
}

/// The five-pattern filter the benchmark uses: event names, a typed string, a prefix on a key,
/// anything-but, and a numeric range on the creation time.
pub fn sample_filter() -> Filter {
    Filter::compile(&json!([
        {"eventName": ["REMOVE"], "dynamodb": {"OldImage": {"species": {"S": ["cat"]}}}},
        {"dynamodb": {"NewImage": {"species": {"S": ["dog"]}, "type": {"S": ["PET"]}}}},
        {"dynamodb": {"Keys": {"PK": {"S": [{"prefix": "OWNER#9"}]}}}},
        {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"species": {"S": [{"anything-but": ["dog", "cat"]}]}}}},
        {"dynamodb": {"ApproximateCreationDateTime": [{"numeric": [">", 1800000000]}], "NewImage": {"address": {"M": {"city": {"S": [{"equals-ignore-case": "PARIS"}]}}}}}}
    ]))
    .expect("the sample filter is valid")
}

/// Matches `n` records (1,000 distinct ones, cycled) against [`sample_filter`] on this thread and
/// reports records/s.
pub fn filter(n: usize) -> String {
    let filter = sample_filter();
    let records: Vec<ChangeRecord> = (0..1000).map(sample_record).collect();
    let started = Instant::now();
    let mut matched = 0usize;
    for i in 0..n {
        if filter.matches_record(black_box(&records[i % records.len()])) {
            matched += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    format!(
        "filter: {n} records through a five-pattern filter in {secs:.3}s on one core: {:.0} records/s ({matched} matched)",
        n as f64 / secs
    )
}

/// Decodes a GetRecords answer of 1,000 records (the `eddy bench e2e` endpoint's, ~1.9 KB each)
/// into change records again and again for `seconds`, as the DynamoDB Streams source does with
/// every page, on one core; reports records/s, ns a record and MB/s.
pub fn decode(seconds: f64) -> String {
    let page = bytes::Bytes::from(crate::endpoint::sample_page(1000));
    let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/Pets/stream/2024-01-01T00:00:00.000";
    let started = Instant::now();
    let mut records = 0usize;
    while started.elapsed().as_secs_f64() < seconds {
        let decoded = eddy::source::decode_get_records(black_box(&page), arn).expect("the sample page decodes");
        assert!(decoded.undecodable.is_empty(), "{:?}", decoded.undecodable.first().map(|u| &u.reason));
        records += black_box(decoded).records.len();
    }
    let secs = started.elapsed().as_secs_f64();
    format!(
        "decode: {records} records of {} bytes (GetRecords JSON, 1,000 a page) in {secs:.3}s on one core: {:.0} records/s, {:.0} ns a record, {:.0} MB/s",
        page.len() / 1000,
        records as f64 / secs,
        secs * 1e9 / records as f64,
        (records * page.len() / 1000) as f64 / secs / 1e6
    )
}

/// Translates `records` to CrateDB rows (commons-codec's layout) and writes them as the
/// `bulk_args` of upsert and delete requests, as the cratedb sink does
/// ([`eddy_sink_cratedb::translate::write_args`]), without a network; reports rows/s twice, one
/// line each: with images as the GetRecords and Kinesis sources give them (DynamoDB JSON text,
/// translated straight from the text), and with images already decoded into attributes (records
/// read from JSON lines, or built by a processor).
pub fn cratedb(records: &[ChangeRecord], rounds: usize) -> String {
    let as_text: Vec<ChangeRecord> = records.iter().map(with_text_images).collect();
    format!(
        "{}\n{}",
        cratedb_rounds("images as text (as read from a stream)", &as_text, rounds),
        cratedb_rounds("images decoded", records, rounds)
    )
}

/// `record` with its images as undecoded DynamoDB JSON text, as the stream sources make them.
fn with_text_images(record: &ChangeRecord) -> ChangeRecord {
    let text = |image: &Option<eddy_record::Image>| {
        image.as_ref().map(|image| {
            let raw = serde_json::value::to_raw_value(image).expect("an image serializes");
            eddy_record::Image::from_raw(&raw).expect("an image's own JSON is an image")
        })
    };
    let mut record = record.clone();
    record.dynamodb.new_image = text(&record.dynamodb.new_image);
    record.dynamodb.old_image = text(&record.dynamodb.old_image);
    record
}

fn cratedb_rounds(what: &str, records: &[ChangeRecord], rounds: usize) -> String {
    use eddy_sink_cratedb::translate::{write_args, Op};
    let started = Instant::now();
    let mut bytes = 0usize;
    let (mut upserts, mut deletes, mut entry) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        upserts.clear();
        deletes.clear();
        upserts.extend_from_slice(br#"{"stmt":"upsert","bulk_args":["#);
        deletes.extend_from_slice(br#"{"stmt":"delete","bulk_args":["#);
        for record in records {
            entry.clear();
            let body = match write_args(black_box(record), &mut entry) {
                Ok(Op::Delete) => &mut deletes,
                Ok(Op::Upsert) => &mut upserts,
                Err(_) => continue,
            };
            if body.last() != Some(&b'[') {
                body.push(b',');
            }
            body.extend_from_slice(&entry);
        }
        upserts.extend_from_slice(b"]}");
        deletes.extend_from_slice(b"]}");
        bytes += black_box(&upserts).len() + black_box(&deletes).len();
    }
    let secs = started.elapsed().as_secs_f64();
    let rows = records.len() * rounds;
    format!(
        "cratedb, {what}: {rows} records translated and serialized in {secs:.3}s on one core: {:.0} rows/s ({} bytes of bulk_args per round)",
        rows as f64 / secs,
        bytes / rounds.max(1)
    )
}

/// One pipeline benchmark case: a route with `processor` (a component file and its config, or
/// none) into the null sink.
pub struct Case {
    /// What the table calls it.
    pub name: String,
    /// The component and its config JSON; `None` for a route without processors.
    pub processor: Option<(std::path::PathBuf, String)>,
}

/// Runs every case at every batch size through a one-route pipeline into the null sink on one
/// worker thread, for about `seconds` each, and returns a table of records/s.
///
/// With `decode`, each batch is first decoded from its records' Lambda JSON lines, as the file
/// source does, so the figures include the work every record costs before the pipeline sees it;
/// without, the records are decoded once up front and the table shows the pipeline alone.
///
/// # Errors
/// When a component does not load.
pub fn pipeline(cases: &[Case], batch_sizes: &[usize], seconds: f64, decode: bool) -> anyhow::Result<String> {
    use std::sync::Arc;

    use eddy::dead_letter::file::FileDeadLetter;
    use eddy::events::stats::Stats;
    use eddy::pipeline::{Pipeline, RouteSpec};
    use eddy::wasm::config::{Limits, ProcessorConfig};

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let dir = std::env::temp_dir().join(format!("eddy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let records: Vec<ChangeRecord> = (0..1000).map(sample_record).collect();
    let lines: Vec<String> = records.iter().map(serde_json::to_string).collect::<Result<_, _>>()?;
    let size = lines[0].len();
    let wasm = eddy::wasm::Runtime::new(Limits::default().memory_bytes)?;
    let what = if decode { "decoded from JSON lines, then through the pipeline" } else { "the pipeline alone" };
    let mut out = format!("records/s on one worker, {size}-byte records, {what}, into the null sink\n\n");
    out.push_str(&format!(
        "| processor | {} |\n",
        batch_sizes.iter().map(|b| format!("batch {b}")).collect::<Vec<_>>().join(" | ")
    ));
    out.push_str(&format!("| --- |{}\n", " ---: |".repeat(batch_sizes.len())));
    let stop = eddy::stop::channel().1;
    for case in cases {
        let processors = match &case.processor {
            None => Vec::new(),
            Some((path, config)) => {
                let config =
                    ProcessorConfig { wasm: path.clone(), config_json: config.clone(), limits: Limits::default() };
                vec![eddy::wasm::Processor::load(&wasm, &case.name, &config)?]
            }
        };
        let null: Arc<dyn eddy_sink_api::Sink> = Arc::new(eddy_sink_basic::NullSink::default());
        let route = Arc::new(RouteSpec {
            name: "bench".into(),
            filter: None,
            processors,
            sinks: vec![eddy::pipeline::SinkSlot { name: "null".into(), kind: "null", sink: null }],
            on_sink_failure: Default::default(),
            retry: Default::default(),
            batching: None,
        });
        let stats = Arc::new(Stats::new(&[], &[]));
        let pipeline =
            Arc::new(Pipeline::new(vec![route], Arc::new(FileDeadLetter::open(&dir.join("dead.jsonl"))?), stats));
        let mut worker = pipeline.worker();
        let mut row = format!("| {} |", case.name);
        for &batch in batch_sizes {
            let rate = runtime.block_on(async {
                // Warm up: instantiate and run once.
                worker.process("bench", eddy::pipeline::Batch::of(&records[..batch]), &stop).await?;
                let started = Instant::now();
                let mut done = 0usize;
                let mut offset = 0usize;
                let mut decoded: Vec<ChangeRecord> = Vec::with_capacity(batch);
                while started.elapsed().as_secs_f64() < seconds {
                    let end = (offset + batch).min(records.len());
                    let input = if decode {
                        decoded.clear();
                        for line in &lines[offset..end] {
                            decoded.push(serde_json::from_str(line)?);
                        }
                        &decoded[..]
                    } else {
                        &records[offset..end]
                    };
                    worker.process("bench", eddy::pipeline::Batch::of(input), &stop).await?;
                    done += end - offset;
                    offset = if end == records.len() { 0 } else { end };
                }
                anyhow::Ok(done as f64 / started.elapsed().as_secs_f64())
            })?;
            row.push_str(&format!(" {rate:.0} |"));
        }
        out.push_str(&row);
        out.push('\n');
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_filter_keeps_some_records_and_not_others() {
        let filter = sample_filter();
        let kept = (0..1000).filter(|i| filter.matches_record(&sample_record(*i))).count();
        assert!(kept > 100 && kept < 900, "kept {kept} of 1000");
        assert!(serde_json::to_vec(&sample_record(1)).unwrap().len() > 1000, "sample records are about 1 KB");
    }

    #[test]
    fn the_cratedb_bench_measures_the_text_path_and_both_paths_write_the_same_bytes() {
        let records: Vec<ChangeRecord> = (0..50).map(sample_record).collect();
        let text = with_text_images(&records[0]);
        let image = text.dynamodb.new_image.as_ref().expect("sample records have a new image");
        assert!(image.text().is_some() && !image.is_decoded(), "the text path needs undecoded text images");
        let report = cratedb(&records, 1);
        let bytes: Vec<&str> = report.lines().map(|l| l.rsplit_once('(').expect("a byte count").1).collect();
        assert_eq!(bytes.len(), 2, "{report}");
        assert_eq!(bytes[0], bytes[1], "{report}");
    }
}
