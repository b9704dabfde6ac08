//! The one AWS client builder: every client eddy makes gets its credentials and region from the
//! AWS chain, the pipeline's call [`Timeouts`], and no retries of its own, so that the pipeline's
//! `retry:` policy is the only one (Vector's AWS sinks do the same). The SDK's clients
//! ([`sdk_config`], [`dynamodb`]) serve the control plane: the table lookup, DescribeStream,
//! GetShardIterator, the lease table. The hot path (GetRecords, the Alternator sink's writes) uses
//! [`json_client`], eddy's SigV4-signed DynamoDB JSON client built from the same SDK config.

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
    service: eddy_sink_api::aws_json::Service,
    host: &str,
    target: &Target<'_>,
    timeouts: &Timeouts,
) -> anyhow::Result<eddy_sink_api::aws_json::AwsJsonClient> {
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
    service: eddy_sink_api::aws_json::Service,
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
        eddy_sink_api::aws_json::AwsJsonClient::new(service, url, &signing_region, provider.clone(), &timeouts)
    });
    Ok((region, make))
}

/// A DynamoDB client for `target`.
pub async fn dynamodb(target: &Target<'_>, timeouts: &Timeouts) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config(target, timeouts).await)
}

/// Whether an AWS error code means the request was throttled (DynamoDB, DynamoDB Streams).
pub fn is_throttling(code: Option<&str>) -> bool {
    code.is_some_and(|c| eddy_sink_alternator::THROTTLING_CODES.contains(&c))
}

/// Counts one throttled request of `api` (`dynamodbstreams`, `dynamodb`, a sink type) in
/// `eddy_throttled_total`.
pub fn count_throttled(api: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(crate::metrics::THROTTLED, "api" => api).increment(n);
    }
}
