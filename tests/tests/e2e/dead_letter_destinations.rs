//! The durable dead letters on moto (a DynamoDB table, an S3 bucket, an SQS queue with S3 for
//! large entries): each down for a while (the shard holds and loses nothing), then holding
//! records older than `maximum_record_age`, listed and replayed with `eddy dead-letter`.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use eddy_e2e::json_api::{queued, sqs};
use eddy_e2e::moto::Moto;
use eddy_e2e::pets::{aged_records_and_a_failing_dead_letter, held_while_down, put, versions_in, wait_for};
use eddy_e2e::process::{eddy, Eddy};

#[tokio::test(flavor = "multi_thread")]
async fn old_records_go_to_a_dynamodb_dead_letter_which_when_down_holds_the_shard_and_loses_nothing() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    for i in 0..20u32 {
        put(&moto, &format!("old{i}"), i).await;
    }
    // The dead-letter table's writes fail while the proxy is poisoned by their stage.
    let (proxy, dir, config) = aged_records_and_a_failing_dead_letter(
        &moto,
        "BatchWriteItem",
        "{type: dynamodb, table: DeadLetters, endpoint: \"{proxy}\"}",
    )
    .await;
    let mut run = Eddy::start(&config);
    let dead = || async {
        let scan = moto.client.scan().table_name("DeadLetters").send().await;
        scan.map(|s| s.items.unwrap_or_default().len()).unwrap_or(0)
    };
    // Down: the shard rewinds and does not move on.
    put(&moto, "fresh-while-down", 1).await;
    held_while_down(&run, dir.path()).await;
    assert_eq!(dead().await, 0);

    // Back: the old records are in the table, the fresh one in the sink, and the shard moves.
    proxy.heal().await;
    wait_for("20 dead-letter items", Duration::from_secs(30), || async { dead().await == 20 }).await;
    put(&moto, "fresh", 2).await;
    let out = dir.path().join("out.jsonl");
    let keys = || {
        eddy_e2e::complete_lines(&out)
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["dynamodb"]["Keys"]["pk"]["S"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect::<Vec<String>>()
    };
    wait_for("the fresh record", Duration::from_secs(30), || async { keys().contains(&"fresh".to_owned()) }).await;
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    assert!(keys().iter().all(|k| !k.starts_with("old")), "an expired record reached the sink: {:?}", keys());
    let items = moto.client.scan().table_name("DeadLetters").send().await.unwrap().items.unwrap_or_default();
    for item in &items {
        assert_eq!(item["stage"].as_s().unwrap(), "record_age");
        let entry: serde_json::Value = serde_json::from_str(item["entry"].as_s().unwrap()).unwrap();
        assert!(entry["error"].as_str().unwrap().contains("over source.maximum_record_age (4s)"), "{entry}");
        assert!(entry["record"]["dynamodb"]["Keys"]["pk"]["S"].as_str().unwrap().starts_with("old"));
    }

    // Replay (no age limit applies to a replay): every old record reaches the sink, the table empties.
    let (code, out_text, err) = eddy(&[
        "dead-letter",
        "list",
        "--config",
        config.to_str().unwrap(),
        "--filter",
        r#"{"dynamodb": {"Keys": {"pk": {"S": ["old3"]}}}}"#,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out_text.contains("1 entries in DynamoDB table DeadLetters") && out_text.contains("record_age"),
        "{out_text}"
    );
    let (code, out_text, err) = eddy(&["dead-letter", "replay", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{out_text}{err}");
    assert!(out_text.contains("replayed 20 entries"), "{out_text}");
    assert_eq!(dead().await, 0);
    let delivered = keys();
    assert!((0..20).all(|i| delivered.contains(&format!("old{i}"))), "{delivered:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_dead_letter_when_down_holds_the_shard_then_holds_old_records_as_objects_that_replay_delivers() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    // moto's S3 takes unsigned path-style requests: create the bucket eddy expects to exist.
    let created = reqwest::Client::new().put(format!("{}/dead", moto.endpoint)).send().await.unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    for i in 0..12u32 {
        put(&moto, &format!("old{i}"), i).await;
    }
    // The bucket's PUTs of record-age entries fail until healed.
    let (proxy, dir, config) = aged_records_and_a_failing_dead_letter(
        &moto,
        "PutObject",
        "{type: s3, bucket: dead, prefix: pets/, endpoint: \"{proxy}\"}",
    )
    .await;
    let config_arg = config.to_str().unwrap().to_owned();
    let list = move || {
        let (code, out, err) = eddy(&["dead-letter", "list", "--config", &config_arg]);
        assert_eq!(code, 0, "{err}");
        out
    };
    let mut run = Eddy::start(&config);
    held_while_down(&run, dir.path()).await;
    assert!(list().contains("0 entries in s3://dead/pets/"), "written while down");
    proxy.heal().await;
    wait_for("12 entries in the bucket", Duration::from_secs(30), || {
        let list = list.clone();
        async move { list().contains("12 entries in s3://dead/pets/") }
    })
    .await;
    put(&moto, "fresh", 1).await;
    let out = dir.path().join("out.jsonl");
    let keys = || versions_in(&out).into_iter().map(|(k, _)| k).collect::<Vec<String>>();
    wait_for("the fresh record", Duration::from_secs(30), || async { keys().contains(&"fresh".to_owned()) }).await;
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    assert_eq!(keys(), ["fresh"], "only the fresh record reaches the sink");
    let listed = list();
    assert_eq!(listed.lines().filter(|l| l.contains(" record_age ")).count(), 12, "{listed}");

    let (code, text, err) = eddy(&["dead-letter", "replay", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("replayed 12 entries from s3://dead/pets/"), "{text}");
    assert!(list().contains("0 entries in s3://dead/pets/"));
    let delivered = keys();
    assert!((0..12).all(|i| delivered.contains(&format!("old{i}"))), "{delivered:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sqs_dead_letter_when_down_holds_the_shard_then_holds_one_message_per_record_with_large_ones_in_s3() {
    let moto = Moto::start().await;
    moto.create_table("Pets", true).await;
    // A queue with SQS's smallest message limit (1 KiB), so that the padded records overflow.
    let created = sqs(
        &moto,
        "CreateQueue",
        serde_json::json!({"QueueName": "dead", "Attributes": {"MaximumMessageSize": "1024"}}),
    )
    .await;
    let url = created["QueueUrl"].as_str().unwrap().to_owned();
    let made = reqwest::Client::new().put(format!("{}/overflow", moto.endpoint)).send().await.unwrap();
    assert!(made.status().is_success(), "{}", made.status());
    for i in 0..5u32 {
        put(&moto, &format!("old{i}"), i).await;
        moto.client
            .put_item()
            .table_name("Pets")
            .item("pk", Av::S(format!("big{i}")))
            .item("sk", Av::N("1".into()))
            .item("v", Av::N(i.to_string()))
            .item("pad", Av::S("x".repeat(3000)))
            .send()
            .await
            .unwrap();
    }
    // The queue's sends of record-age entries fail until healed.
    let (proxy, dir, config) = aged_records_and_a_failing_dead_letter(
        &moto,
        "SendMessageBatch",
        "{type: sqs, queue: dead, overflow_bucket: overflow, overflow_prefix: big/, endpoint: \"{proxy}\"}",
    )
    .await;
    let mut run = Eddy::start(&config);
    held_while_down(&run, dir.path()).await;
    assert_eq!(queued(&moto, &url).await, (0, 0), "sent while down");
    proxy.heal().await;
    wait_for("10 messages", Duration::from_secs(30), || async { queued(&moto, &url).await == (10, 0) }).await;
    put(&moto, "fresh", 1).await;
    let out = dir.path().join("out.jsonl");
    let keys = || versions_in(&out).into_iter().map(|(k, _)| k).collect::<Vec<String>>();
    wait_for("the fresh record", Duration::from_secs(30), || async { keys().contains(&"fresh".to_owned()) }).await;
    let (status, _) = run.interrupt();
    assert!(status.success(), "{}", run.log());
    assert_eq!(keys(), ["fresh"], "only the fresh record reaches the sink");

    // The padded records' entries are in the bucket behind pointers in the SQS Extended Client
    // Library's format; the others are inline. (Peeked with a zero visibility timeout.)
    assert_eq!(objects(&moto, "overflow", "big/").await.len(), 5);
    let peek = serde_json::json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 0,
        "MessageAttributeNames": ["All"]});
    let messages = sqs(&moto, "ReceiveMessage", peek).await["Messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 10);
    let (pointers, inline): (Vec<_>, Vec<_>) =
        messages.iter().partition(|m| m["Body"].as_str().unwrap().starts_with('['));
    assert_eq!(pointers.len(), 5, "{pointers:?}");
    for m in &pointers {
        let body: serde_json::Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
        assert_eq!(body[0], "software.amazon.payloadoffloading.PayloadS3Pointer");
        assert_eq!(body[1]["s3BucketName"], "overflow");
        assert!(body[1]["s3Key"].as_str().unwrap().starts_with("big/"), "{body}");
        let size = m["MessageAttributes"]["ExtendedPayloadSize"]["StringValue"].as_str().unwrap();
        assert!(size.parse::<u64>().unwrap() > 3000, "{m}");
    }
    for m in &inline {
        let entry: serde_json::Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
        assert_eq!(entry["stage"], "record_age");
        assert!(entry["record"]["dynamodb"]["Keys"]["pk"]["S"].as_str().unwrap().starts_with("old"), "{entry}");
    }

    // `list` reads every entry (through the pointers too) and leaves the messages visible.
    let config_arg = config.to_str().unwrap();
    let (code, listed, err) = eddy(&["dead-letter", "list", "--config", config_arg]);
    assert_eq!(code, 0, "{err}");
    // (moto names the queue by its own address, whichever address was asked.)
    assert!(listed.contains(&format!("10 entries in SQS queue {url}")), "{listed}");
    assert_eq!(listed.lines().filter(|l| l.contains(" record_age ")).count(), 10, "{listed}");
    assert_eq!(queued(&moto, &url).await, (10, 0), "list left messages hidden");
    // A filtered replay delivers one record and leaves the other nine visible.
    let filter = r#"{"dynamodb": {"Keys": {"pk": {"S": ["big3"]}}}}"#;
    let (code, text, err) = eddy(&["dead-letter", "replay", "--config", config_arg, "--filter", filter]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("replayed 1 entries"), "{text}");
    assert_eq!(queued(&moto, &url).await, (9, 0));
    assert_eq!(objects(&moto, "overflow", "big/").await.len(), 4, "the replayed entry's object is deleted");
    let (code, text, err) = eddy(&["dead-letter", "replay", "--config", config_arg]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("replayed 9 entries"), "{text}");
    assert_eq!(queued(&moto, &url).await, (0, 0));
    assert!(objects(&moto, "overflow", "big/").await.is_empty());
    // A FIFO queue is refused with the reason.
    let fifo = serde_json::json!({"QueueName": "dead.fifo", "Attributes": {"FifoQueue": "true"}});
    sqs(&moto, "CreateQueue", fifo).await;
    let (code, _, err) = eddy(&["dead-letter", "list", "--config", config_arg, "--from", "sqs:dead.fifo"]);
    assert!(code != 0 && err.contains("is a FIFO queue; use a standard queue"), "{err}");
    let delivered = keys();
    assert!(
        (0..5).all(|i| delivered.contains(&format!("old{i}")) && delivered.contains(&format!("big{i}"))),
        "{delivered:?}"
    );
}

/// Keys of the objects under `prefix` in moto's bucket `bucket`.
async fn objects(moto: &Moto, bucket: &str, prefix: &str) -> Vec<String> {
    let url = format!("{}/{bucket}?list-type=2&prefix={prefix}", moto.endpoint);
    let xml = reqwest::get(url).await.unwrap().text().await.unwrap();
    xml.split("<Key>").skip(1).filter_map(|rest| rest.split_once("</Key>")).map(|(key, _)| key.to_owned()).collect()
}
