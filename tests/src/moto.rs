//! A `moto_server` for one test: started on a free port, stopped when dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, StreamSpecification,
    StreamViewType,
};
use aws_sdk_dynamodb::Client;

/// A running moto server.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// A client for it.
    pub client: Client,
}

/// The credentials and region every test uses; moto accepts anything.
pub fn set_test_credentials() {
    // SAFETY: set before any thread reads the environment (each test binary calls it first).
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
}

impl Moto {
    /// Starts `moto_server` on a free loopback port and waits until it answers.
    pub async fn start() -> Self {
        Self::spawn(Command::new("moto_server")).await
    }

    /// Starts moto with Kinesis resharding and sequence numbers as AWS has them
    /// (`tests/fakes/moto_kinesis.py`; every other API is moto's own).
    pub async fn start_with_kinesis() -> Self {
        let mut command = Command::new("python3");
        command.arg(crate::repo_root().join("tests/fakes/moto_kinesis.py"));
        Self::spawn(command).await
    }

    async fn spawn(mut command: Command) -> Self {
        set_test_credentials();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server must be on PATH: pip install 'moto[server]'");
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = client(&endpoint).await;
        let started = Instant::now();
        while client.list_tables().send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not start on {endpoint}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Moto { child, endpoint, client }
    }

    /// Creates a table keyed by `pk` (S) and `sk` (N); with a NEW_AND_OLD_IMAGES stream if
    /// `stream`.
    pub async fn create_table(&self, name: &str, stream: bool) {
        let mut req = self
            .client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
            .key_schema(KeySchemaElement::builder().attribute_name("sk").key_type(KeyType::Range).build().unwrap())
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("sk")
                    .attribute_type(ScalarAttributeType::N)
                    .build()
                    .unwrap(),
            );
        if stream {
            req = req.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .unwrap(),
            );
        }
        req.send().await.expect("create table");
    }
}

impl Moto {
    /// Creates a lease table as eddy does (`stream` and `shard_id`, both strings).
    pub async fn create_lease_table(&self, name: &str) {
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap()
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap()
        };
        self.client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("stream", KeyType::Hash))
            .key_schema(key("shard_id", KeyType::Range))
            .attribute_definitions(attribute("stream"))
            .attribute_definitions(attribute("shard_id"))
            .send()
            .await
            .expect("create the lease table");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DynamoDB client for `endpoint`.
pub async fn client(endpoint: &str) -> Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&shared).endpoint_url(endpoint).build())
}
