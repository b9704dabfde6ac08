//! The forwarding sinks on moto: a change stream forwarded to SQS queues as a Lambda function
//! would send it, every record counted (in the queue or in the dead letter), a key's changes in
//! order in a FIFO queue, a message over the queue's size limit dead-lettered with the reason.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use eddy_e2e::json_api::sqs;
use eddy_e2e::moto::Moto;
use eddy_e2e::pets::{put, wait_for, write};
use eddy_e2e::process::Eddy;
use serde_json::{json, Value};

/// A pipeline from the stream of table `Pets` on `moto` through the route `main` into `route`
/// (sinks declared by `sinks`, the lines of the `sinks:` section), with the dead letter
/// `dead.jsonl` and the top-level keys `extra`.
fn pipeline(dir: &std::path::Path, moto: &Moto, sinks: &str, route: &str, extra: &str) -> std::path::PathBuf {
    write(
        dir,
        &format!(
            "source: {{type: dynamodb, table: Pets, endpoint: \"{moto}\", region: us-east-1, poll_interval: 50ms}}
sinks:
{sinks}routes:
  - {{name: main, sinks: [{route}]}}
dead_letter: {{type: file, path: dead.jsonl}}
{extra}",
            moto = moto.endpoint
        ),
    )
}

/// Every message of queue `url`, received and deleted (bodies, in the order received).
async fn drain(moto: &Moto, url: &str) -> Vec<Value> {
    let mut bodies = Vec::new();
    loop {
        let got = sqs(moto, "ReceiveMessage", json!({"QueueUrl": url, "MaxNumberOfMessages": 10})).await;
        let messages = got["Messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in &messages {
            bodies.push(serde_json::from_str(m["Body"].as_str().unwrap()).unwrap());
            sqs(moto, "DeleteMessage", json!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]})).await;
        }
    }
}

async fn queue(moto: &Moto, name: &str, attributes: Value) -> String {
    let created = sqs(moto, "CreateQueue", json!({"QueueName": name, "Attributes": attributes})).await;
    created["QueueUrl"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_reach_sqs_queues_in_order_per_key_and_an_oversized_message_is_dead_lettered() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    let plain = queue(&moto, "changes", json!({})).await;
    let fifo = queue(&moto, "changes.fifo", json!({"FifoQueue": "true"})).await;
    let small = queue(&moto, "small", json!({"MaximumMessageSize": "1024"})).await;
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(
        dir.path(),
        &moto,
        "  items: {type: sqs, queue: changes, format: item}
  records: {type: sqs, queue: changes.fifo}
  small: {type: sqs, queue: small, format: item}\n",
        "items, records, small",
        "",
    );
    let mut run = Eddy::start(&config);
    // 5 keys, 6 versions each, then one delete and one item too large for `small`.
    for v in 1..=6u32 {
        for k in 0..5 {
            put(&moto, &format!("k{k}"), v).await;
        }
    }
    moto.client
        .delete_item()
        .table_name("Pets")
        .key("pk", Av::S("k0".into()))
        .key("sk", Av::N("1".into()))
        .send()
        .await
        .unwrap();
    moto.client
        .put_item()
        .table_name("Pets")
        .item("pk", Av::S("big".into()))
        .item("sk", Av::N("1".into()))
        .item("blob", Av::S("x".repeat(2000)))
        .send()
        .await
        .unwrap();
    let changes = 32;
    let dead = dir.path().join("dead.jsonl");
    wait_for("the oversized message dead-lettered", Duration::from_secs(60), || async {
        eddy_e2e::complete_lines(&dead).len() == 1
    })
    .await;
    let (mut items, mut records, mut smalls) = (Vec::new(), Vec::new(), Vec::new());
    let started = std::time::Instant::now();
    while items.len() < changes || records.len() < changes || smalls.len() < changes - 1 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} {} {}; {}",
            items.len(),
            records.len(),
            smalls.len(),
            run.log()
        );
        items.extend(drain(&moto, &plain).await);
        records.extend(drain(&moto, &fifo).await);
        smalls.extend(drain(&moto, &small).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Anything sent twice would show now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    items.extend(drain(&moto, &plain).await);
    records.extend(drain(&moto, &fifo).await);
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    // Every record read is in each queue, or (for `small`) in the dead letter.
    assert_eq!(items.len(), changes, "at least once, and here exactly once: {items:?}");
    assert_eq!(records.len(), changes);
    assert_eq!(smalls.len(), changes - 1);
    let line: Value = serde_json::from_str(&eddy_e2e::complete_lines(&dead)[0]).unwrap();
    let reason = line.to_string();
    assert!(reason.contains("over the queue's MaximumMessageSize of 1024"), "{line}");

    // `format: item`: plain JSON, numbers as numbers; a REMOVE as its keys and "deleted".
    assert!(items.contains(&json!({"pk": "k3", "sk": 1, "v": 6})), "{items:?}");
    assert!(items.contains(&json!({"pk": "k0", "sk": 1, "deleted": true})), "{items:?}");
    // The FIFO queue: records as Lambda receives them, each key's versions in order.
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &records {
        let key = r["dynamodb"]["Keys"]["pk"]["S"].as_str().unwrap().to_owned();
        let v = r["dynamodb"]["NewImage"]["v"]["N"].as_str().unwrap_or("deleted").to_owned();
        versions.entry(key).or_default().push(v);
    }
    for k in 1..5 {
        assert_eq!(versions[&format!("k{k}")], ["1", "2", "3", "4", "5", "6"], "{versions:?}");
    }
    assert_eq!(versions["k0"], ["1", "2", "3", "4", "5", "6", "deleted"]);
}

/// A `kinesis` sink: every change in the stream once, as plain JSON, partitioned by the item's
/// key, each key's changes in order within its shard.
#[tokio::test(flavor = "multi_thread")]
async fn changes_reach_a_kinesis_stream_partitioned_by_key_in_order() {
    let moto = Moto::start_with_kinesis().await;
    moto.create_table("Pets", true).await;
    let kinesis = eddy_e2e::kinesis::client(&moto.endpoint).await;
    kinesis.create_stream().stream_name("out").shard_count(2).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(dir.path(), &moto, "  out: {type: kinesis, stream_name: out, format: item}\n", "out", "");
    let mut run = Eddy::start(&config);
    for v in 1..=4u32 {
        for k in 0..6 {
            put(&moto, &format!("k{k}"), v).await;
        }
    }
    let read_all = || async {
        let mut got: Vec<(String, Value)> = Vec::new();
        let shards = kinesis.list_shards().stream_name("out").send().await.unwrap();
        for shard in shards.shards() {
            let it = kinesis
                .get_shard_iterator()
                .stream_name("out")
                .shard_id(shard.shard_id())
                .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .unwrap();
            let page = kinesis.get_records().shard_iterator(it.shard_iterator().unwrap()).send().await.unwrap();
            for r in page.records() {
                let data: Value = serde_json::from_slice(r.data().as_ref()).unwrap();
                got.push((r.partition_key().unwrap_or_default().to_owned(), data));
            }
        }
        got
    };
    let started = std::time::Instant::now();
    let mut got = read_all().await;
    while got.len() < 24 {
        assert!(started.elapsed() < Duration::from_secs(60), "{} of 24; {}", got.len(), run.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
        got = read_all().await;
    }
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    assert_eq!(got.len(), 24, "each change once: {got:?}");
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (key, data) in &got {
        let pk = data["pk"].as_str().unwrap();
        assert_eq!(key, &format!(r#"{{"pk":{{"S":"{pk}"}},"sk":{{"N":"1"}}}}"#), "partitioned by the item's key");
        versions.entry(pk.to_owned()).or_default().push(data["v"].as_u64().unwrap());
    }
    for k in 0..6 {
        assert_eq!(versions[&format!("k{k}")], [1, 2, 3, 4], "{versions:?}");
    }
    assert!(eddy_e2e::complete_lines(&dir.path().join("dead.jsonl")).is_empty());
}

/// An `http` sink: batches POSTed in order as JSON arrays with a header from the environment;
/// 503 with `Retry-After` retried after the wait it asks; a 400 sends that request's records to
/// the dead letter with the status and the answer; every record in the webhook or the dead letter.
#[tokio::test(flavor = "multi_thread")]
async fn changes_reach_a_webhook_in_order_with_retries_and_refusals_dead_lettered() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    let hook = eddy_e2e::fakes::FakeWebhook::start(&["--fail-first", "2", "--retry-after", "1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(
        dir.path(),
        &moto,
        &format!(
            "  hook:
    type: http
    url: \"{hook}/changes\"
    headers: {{Authorization: \"Bearer ${{EDDY_HOOK_TOKEN}}\"}}
    batch: {{max_records: 4}}
    format: item\n",
            hook = hook.url
        ),
        "hook",
        "retry: {attempts: 5, base_delay: 10ms, max_delay: 100ms}\n",
    );
    // Without the variable, validate names it (and never a value).
    let (code, _, err) = eddy_e2e::process::eddy(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("EDDY_HOOK_TOKEN is not set"), "{err}");
    let mut run = Eddy::start_with_env(&config, &[("EDDY_HOOK_TOKEN", "t0ken")]);
    let started = std::time::Instant::now();
    for v in 1..=3u32 {
        for k in 0..4 {
            put(&moto, &format!("k{k}"), v).await;
        }
    }
    moto.client
        .put_item()
        .table_name("Pets")
        .item("pk", Av::S("poison".into()))
        .item("sk", Av::N("1".into()))
        .send()
        .await
        .unwrap();
    let dead = dir.path().join("dead.jsonl");
    let mut delivered: Vec<Value> = Vec::new();
    loop {
        assert!(started.elapsed() < Duration::from_secs(60), "{delivered:?}; {}", run.log());
        let state = hook.state().await;
        delivered = state["requests"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| serde_json::from_str::<Vec<Value>>(r["body"].as_str().unwrap()).unwrap())
            .collect();
        if accounted(&delivered, &eddy_e2e::complete_lines(&dead)).len() >= 13 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    let state = hook.state().await;
    assert_eq!(state["answers"]["503"], 2, "{state}");
    for r in state["requests"].as_array().unwrap() {
        assert_eq!(r["authorization"], "Bearer t0ken");
        assert_eq!(r["content_type"], "application/json");
        assert_eq!(r["path"], "/changes");
        assert!(serde_json::from_str::<Vec<Value>>(r["body"].as_str().unwrap()).unwrap().len() <= 4);
    }
    assert!(!run.log().contains("t0ken"), "the header's value is never logged");
    // Every change: in the webhook (at least once: a write that fails after some of its requests
    // went is sent again from the checkpoint) or, for the refused request, in the dead letter.
    let dead_lines = eddy_e2e::complete_lines(&dead);
    assert!(
        !dead_lines.is_empty() && dead_lines.iter().all(|l| l.contains("answered HTTP 400: bad record: poison")),
        "{dead_lines:?}"
    );
    let all = accounted(&delivered, &dead_lines);
    assert_eq!(all.len(), 13, "{all:?}; {delivered:?} {dead_lines:?}");
    assert!(all.contains(&("poison".to_owned(), 0)), "{all:?}");
    // Each key's versions first arrive in the order they were made.
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for d in &delivered {
        let seen = versions.entry(d["pk"].as_str().unwrap().to_owned()).or_default();
        let v = d["v"].as_u64().unwrap();
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    for (key, vs) in &versions {
        assert!(vs.windows(2).all(|w| w[0] < w[1]), "{key}: {vs:?} in order");
    }
}

/// The changes `(pk, v)` (v 0 when the item has none) delivered to the webhook or in the dead
/// letter's lines.
fn accounted(delivered: &[Value], dead_lines: &[String]) -> std::collections::BTreeSet<(String, u64)> {
    let mut all: std::collections::BTreeSet<(String, u64)> =
        delivered.iter().map(|d| (d["pk"].as_str().unwrap().to_owned(), d["v"].as_u64().unwrap_or(0))).collect();
    for line in dead_lines {
        let entry: Value = serde_json::from_str(line).unwrap();
        let image = &entry["record"]["dynamodb"]["NewImage"];
        let v = image["v"]["N"].as_str().map_or(0, |n| n.parse().unwrap());
        all.insert((image["pk"]["S"].as_str().unwrap().to_owned(), v));
    }
    all
}

/// An `eventbridge` sink: every change an event on the bus (here routed by a rule to an SQS queue),
/// its DetailType from a field of the record, its Detail the item, each key's events in order.
#[tokio::test(flavor = "multi_thread")]
async fn changes_reach_an_event_bus_as_events_in_order_per_key() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    let url = queue(&moto, "events", json!({})).await;
    let arn = sqs(&moto, "GetQueueAttributes", json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]})).await
        ["Attributes"]["QueueArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = |op: &'static str, request: Value| eddy_e2e::json_api::call(&moto, "AWSEvents", op, request);
    events("PutRule", json!({"Name": "pets", "EventPattern": "{\"source\": [\"pets.dynamodb\"]}"})).await;
    events("PutTargets", json!({"Rule": "pets", "Targets": [{"Id": "q", "Arn": arn}]})).await;
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(
        dir.path(),
        &moto,
        "  bus: {type: eventbridge, source: pets.dynamodb, detail_type: {field: eventName}, format: item}\n",
        "bus",
        "",
    );
    let mut run = Eddy::start(&config);
    for v in 1..=3u32 {
        for k in 0..4 {
            put(&moto, &format!("k{k}"), v).await;
        }
    }
    let mut got: Vec<Value> = Vec::new();
    let started = std::time::Instant::now();
    while got.len() < 12 {
        assert!(started.elapsed() < Duration::from_secs(60), "{} of 12: {got:?}; {}", got.len(), run.log());
        got.extend(drain(&moto, &url).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    got.extend(drain(&moto, &url).await);
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    assert_eq!(got.len(), 12, "{got:?}");
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in &got {
        assert_eq!(event["source"], "pets.dynamodb", "{event}");
        let kind = event["detail-type"].as_str().unwrap();
        assert!(kind == "INSERT" || kind == "MODIFY", "{event}");
        let detail = &event["detail"];
        versions.entry(detail["pk"].as_str().unwrap().to_owned()).or_default().push(detail["v"].as_u64().unwrap());
    }
    for k in 0..4 {
        assert_eq!(versions[&format!("k{k}")], [1, 2, 3], "{versions:?}");
    }
    assert!(eddy_e2e::complete_lines(&dir.path().join("dead.jsonl")).is_empty());
}

/// One call of SNS's query protocol on moto; the answer's XML.
async fn sns(moto: &Moto, params: &[(&str, &str)]) -> String {
    let response = reqwest::Client::new()
        .post(&moto.endpoint)
        .header("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sns/aws4_request")
        .form(params)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_success(), "{params:?}: {status}: {body}");
    body
}

/// An `sns` sink: every change published once with its `eventName` and `tableName` attributes
/// (here to a topic an SQS queue subscribes to), each key's messages in order.
#[tokio::test(flavor = "multi_thread")]
async fn changes_are_published_to_a_topic_with_attributes_in_order_per_key() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    let created = sns(&moto, &[("Action", "CreateTopic"), ("Name", "pets")]).await;
    let arn = created.split("<TopicArn>").nth(1).and_then(|s| s.split("</TopicArn>").next()).unwrap().to_owned();
    let url = queue(&moto, "subscriber", json!({})).await;
    let queue_arn = sqs(&moto, "GetQueueAttributes", json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]})).await
        ["Attributes"]["QueueArn"]
        .as_str()
        .unwrap()
        .to_owned();
    sns(&moto, &[("Action", "Subscribe"), ("TopicArn", &arn), ("Protocol", "sqs"), ("Endpoint", &queue_arn)]).await;
    let dir = tempfile::tempdir().unwrap();
    let sinks = format!("  topic: {{type: sns, topic_arn: \"{arn}\", format: item}}\n");
    let config = pipeline(dir.path(), &moto, &sinks, "topic", "");
    let mut run = Eddy::start(&config);
    for v in 1..=3u32 {
        for k in 0..4 {
            put(&moto, &format!("k{k}"), v).await;
        }
    }
    let mut got: Vec<Value> = Vec::new();
    let started = std::time::Instant::now();
    while got.len() < 12 {
        assert!(started.elapsed() < Duration::from_secs(60), "{} of 12: {got:?}; {}", got.len(), run.log());
        got.extend(drain(&moto, &url).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    got.extend(drain(&moto, &url).await);
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    assert_eq!(got.len(), 12, "{got:?}");
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for envelope in &got {
        let attrs = &envelope["MessageAttributes"];
        assert_eq!(attrs["tableName"]["Value"], "Pets", "{envelope}");
        let kind = attrs["eventName"]["Value"].as_str().unwrap();
        assert!(kind == "INSERT" || kind == "MODIFY", "{envelope}");
        let item: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
        versions.entry(item["pk"].as_str().unwrap().to_owned()).or_default().push(item["v"].as_u64().unwrap());
    }
    for k in 0..4 {
        assert_eq!(versions[&format!("k{k}")], [1, 2, 3], "{versions:?}");
    }
    assert!(eddy_e2e::complete_lines(&dir.path().join("dead.jsonl")).is_empty());
}
