//! Calls of AWS JSON-protocol APIs on moto that the SDK clients of this crate do not cover (SQS,
//! DynamoDB Streams), as plain HTTP: moto does not check signatures.

use crate::moto::Moto;

/// One call of `target` (`AmazonSQS`, `AWSEvents`, `DynamoDBStreams_20120810`) `operation` with `request`;
/// panics unless it succeeds.
pub async fn call(moto: &Moto, target: &str, operation: &str, request: serde_json::Value) -> serde_json::Value {
    let (content_type, service) = match target {
        "AmazonSQS" => ("application/x-amz-json-1.0", "sqs"),
        "AWSEvents" => ("application/x-amz-json-1.1", "events"),
        _ => ("application/x-amz-json-1.0", "dynamodb"),
    };
    let response = reqwest::Client::new()
        .post(&moto.endpoint)
        .header("Content-Type", content_type)
        .header("X-Amz-Target", format!("{target}.{operation}"))
        .header("Authorization", format!("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request"))
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_success(), "{operation}: {status}: {body}");
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}

/// One call of SQS's JSON protocol.
pub async fn sqs(moto: &Moto, operation: &str, request: serde_json::Value) -> serde_json::Value {
    call(moto, "AmazonSQS", operation, request).await
}

/// Messages in the queue at `url`: (visible, in flight) (SQS's approximate counts, exact on moto).
pub async fn queued(moto: &Moto, url: &str) -> (u64, u64) {
    let names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"];
    let out = sqs(moto, "GetQueueAttributes", serde_json::json!({"QueueUrl": url, "AttributeNames": names})).await;
    let count = |name: &str| out["Attributes"][name].as_str().unwrap().parse::<u64>().unwrap();
    (count(names[0]), count(names[1]))
}

/// The stream of `table`: its ARN and its shards' ids.
pub async fn stream_of(moto: &Moto, table: &str) -> (String, Vec<String>) {
    let described = moto.client.describe_table().table_name(table).send().await.unwrap();
    let arn = described.table().and_then(|t| t.latest_stream_arn()).expect("a stream").to_owned();
    let out = call(moto, "DynamoDBStreams_20120810", "DescribeStream", serde_json::json!({"StreamArn": arn})).await;
    let shards = out["StreamDescription"]["Shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ShardId"].as_str().unwrap().to_owned())
        .collect();
    (arn, shards)
}

/// The sequence numbers of shard `shard` of stream `arn`, from its trim horizon.
pub async fn sequence_numbers(moto: &Moto, arn: &str, shard: &str) -> Vec<String> {
    let streams = |op: &'static str, request: serde_json::Value| call(moto, "DynamoDBStreams_20120810", op, request);
    let request = serde_json::json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"});
    let mut iterator = streams("GetShardIterator", request).await["ShardIterator"].as_str().map(str::to_owned);
    let mut out = Vec::new();
    while let Some(it) = iterator {
        let page = streams("GetRecords", serde_json::json!({"ShardIterator": it, "Limit": 1000})).await;
        let records = page["Records"].as_array().cloned().unwrap_or_default();
        if records.is_empty() {
            break;
        }
        out.extend(records.iter().map(|r| r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned()));
        iterator = page["NextShardIterator"].as_str().map(str::to_owned);
    }
    out
}
