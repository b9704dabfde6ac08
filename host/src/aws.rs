//! The one AWS client builder: every client eddy makes (DynamoDB Streams for the source, DynamoDB
//! for the table lookup, the lease table and the Alternator sink) gets its credentials and region
//! from the AWS chain, the pipeline's call [`Timeouts`], and the SDK's own retries switched off,
//! so that the pipeline's `retry:` policy is the only one (Vector's AWS sinks do the same).

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
