//! The one AWS client builder: every client eddy makes gets its credentials and region from the
//! AWS chain, the pipeline's call [`Timeouts`], and no retries of its own, so that the pipeline's
//! `retry:` policy is the only one (Vector's AWS sinks do the same). The SDK's clients
//! ([`sdk_config`], [`dynamodb`]) serve the control plane: the table lookup, DescribeStream,
//! GetShardIterator, the lease table. The hot path (GetRecords, the Alternator sink's writes) uses
//! [`json_client`], eddy's SigV4-signed DynamoDB JSON client built from the same SDK config.

pub mod sdk_call;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use eddy_sink_api::Timeouts;

/// Where a client connects: its region (default: the AWS chain) and an optional endpoint URL (a
/// DynamoDB-compatible server such as moto_server or ScyllaDB Alternator).
#[derive(Debug, Clone, Default)]
pub struct Target<'a> {
    /// The region, e.g. `us-east-1`.
    pub region: Option<&'a str>,
    /// The endpoint URL, e.g. `http://127.0.0.1:8000`.
    pub endpoint: Option<&'a str>,
}

/// The shared SDK configuration for `target` with `timeouts` (connect, and per attempt) and the
/// SDK's retries off.
pub async fn sdk_config(target: &Target<'_>, timeouts: &Timeouts) -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeouts.connect)
                .read_timeout(timeouts.request)
                .operation_attempt_timeout(timeouts.request)
                .operation_timeout(timeouts.request)
                .build(),
        );
    if let Some(region) = target.region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    if let Some(endpoint) = target.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// A signed JSON-protocol client of `service` (GetRecords, BatchWriteItem) for `target`: the
/// endpoint URL when given, else `https://{host}.{region}.amazonaws.com` (`host`:
/// `streams.dynamodb` or `dynamodb`; `.com.cn` in the China regions), with the region and
/// credentials of the AWS chain and `timeouts`.
///
/// # Errors
/// When no region is configured or found, or the chain has no credentials provider.
pub async fn json_client(
    service: eddy_aws_json::Service,
    host: &str,
    target: &Target<'_>,
    timeouts: &Timeouts,
) -> anyhow::Result<eddy_aws_json::AwsJsonClient> {
    let (region, make) = json_clients(service, target, timeouts).await?;
    let url = match target.endpoint {
        Some(url) => url.to_owned(),
        None if region.starts_with("cn-") => format!("https://{host}.{region}.amazonaws.com.cn"),
        None => format!("https://{host}.{region}.amazonaws.com"),
    };
    make(&url).map_err(anyhow::Error::msg)
}

/// Makes signed JSON-protocol clients of `service` for any endpoint URL (the nodes of an
/// Alternator cluster), all with `target`'s region and the AWS chain's credentials, and
/// `timeouts`. Returns the region too.
///
/// # Errors
/// When no region is configured or found, or the chain has no credentials provider.
pub async fn json_clients(
    service: eddy_aws_json::Service,
    target: &Target<'_>,
    timeouts: &Timeouts,
) -> anyhow::Result<(String, eddy_sink_alternator::nodes::MakeClient)> {
    let shared = sdk_config(target, timeouts).await;
    let region = shared
        .region()
        .map(|r| r.as_ref().to_owned())
        .ok_or_else(|| anyhow::anyhow!("no AWS region: set `region` in the pipeline or AWS_REGION"))?;
    let provider = shared
        .credentials_provider()
        .ok_or_else(|| anyhow::anyhow!("no AWS credentials provider (the AWS chain found none)"))?;
    let (signing_region, timeouts) = (region.clone(), *timeouts);
    let make: eddy_sink_alternator::nodes::MakeClient = std::sync::Arc::new(move |url: &str| {
        eddy_aws_json::AwsJsonClient::new(service, url, &signing_region, provider.clone(), &timeouts)
    });
    Ok((region, make))
}

/// A DynamoDB client for `target`.
pub async fn dynamodb(target: &Target<'_>, timeouts: &Timeouts) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config(target, timeouts).await)
}

/// Whether an AWS error code means the request is refused for good, so retrying cannot help: a
/// missing table or stream, refused credentials or permissions, an invalid request.
pub fn is_refused(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ResourceNotFoundException"
                | "AccessDeniedException"
                | "UnrecognizedClientException"
                | "ValidationException"
        )
    )
}

/// What DescribeTable says about a table (the source's: its stream, and for a snapshot its key
/// schema and size).
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Its name.
    pub name: String,
    /// Its ARN (the records' `eventSourceARN`, and the snapshot's key in the checkpoint store).
    pub arn: String,
    /// The key attributes: the partition key, then the sort key if any.
    pub key: Vec<String>,
    /// DescribeTable's `ItemCount` (updated by DynamoDB about every six hours): for an ETA only.
    pub approximate_items: u64,
    /// `LatestStreamArn`: the table's newest stream, also when it is disabled (it can still be
    /// read to its end).
    pub latest_stream_arn: Option<String>,
    /// `StreamSpecification.StreamEnabled`.
    pub stream_enabled: bool,
}

impl TableInfo {
    /// The stream changes are being written to now: `LatestStreamArn` while the stream is enabled.
    pub fn live_stream_arn(&self) -> Option<&str> {
        self.stream_enabled.then_some(self.latest_stream_arn.as_deref()).flatten()
    }
}

/// Describes `table` with the SDK, under `retry`.
///
/// # Errors
/// When the table does not exist or cannot be described.
pub async fn describe_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    retry: &eddy_sink_api::RetryPolicy,
) -> anyhow::Result<TableInfo> {
    let fatal = |e: &aws_sdk_dynamodb::error::SdkError<_, _>| {
        matches!(
            aws_sdk_dynamodb::error::ProvideErrorMetadata::code(e),
            Some("ResourceNotFoundException" | "AccessDeniedException" | "UnrecognizedClientException")
        )
    };
    let out = retry.retry(|| client.describe_table().table_name(table).send(), |e| !fatal(e)).await.map_err(
        |(e, tries)| {
            anyhow::anyhow!(
                "cannot describe table {table} (tried {tries} times): {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        },
    )?;
    let t = out.table.ok_or_else(|| anyhow::anyhow!("DescribeTable {table} returned no table"))?;
    let mut key: Vec<(bool, String)> =
        t.key_schema().iter().map(|k| (k.key_type().as_str() != "HASH", k.attribute_name().to_owned())).collect();
    key.sort();
    let streaming = t.stream_specification().is_some_and(|s| s.stream_enabled());
    Ok(TableInfo {
        name: table.to_owned(),
        arn: t.table_arn().unwrap_or(table).to_owned(),
        key: key.into_iter().map(|(_, name)| name).collect(),
        approximate_items: t.item_count().unwrap_or(0).max(0) as u64,
        latest_stream_arn: t.latest_stream_arn().map(str::to_owned),
        stream_enabled: streaming,
    })
}

/// Whether an AWS error code means the request was throttled (DynamoDB, DynamoDB Streams).
pub fn is_throttling(code: Option<&str>) -> bool {
    code.is_some_and(|c| eddy_sink_alternator::THROTTLING_CODES.contains(&c))
}

/// The `code` label of a failed SDK call (`eddy_source_errors_total`).
pub fn sdk_error_code<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> String
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
    if let Some(code) = e.code() {
        return code.to_owned();
    }
    match e {
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "connection",
        // An answer without an error code (a 5xx from a proxy, a body that is not AWS's).
        _ => "no code",
    }
    .to_owned()
}

/// The `code` label of a failed call of eddy's JSON client (`eddy_source_errors_total`).
pub fn json_error_code(e: &eddy_aws_json::AwsJsonError) -> String {
    use eddy_aws_json::AwsJsonError;
    match e {
        AwsJsonError::Service { code, .. } if !code.is_empty() => code.clone(),
        AwsJsonError::Service { status, .. } => format!("HTTP {status}"),
        AwsJsonError::Transport(m) if m.contains("timed out") || m.contains("timeout") => "timeout".to_owned(),
        AwsJsonError::Transport(_) => "connection".to_owned(),
        AwsJsonError::Credentials(_) => "credentials".to_owned(),
    }
}
