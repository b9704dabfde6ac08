//! A client for the AWS JSON 1.0 protocol (DynamoDB, DynamoDB Streams) on the hot path: one
//! `POST /` with `X-Amz-Target: {prefix}.{Operation}` and a JSON body the caller has already
//! written, signed with SigV4 (`aws-sigv4`) from the AWS credential chain, answering the raw
//! response bytes for the caller to decode.
//!
//! The SDK stays for the control plane (DescribeStream, DescribeTable, the lease table); this
//! client exists so that GetRecords and BatchWriteItem bodies go from bytes to eddy's records and
//! back without the SDK's generic attribute model in between. Errors keep the SDK's
//! vocabulary: the error code is the part of the answer's `__type` after `#`
//! (`com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException` →
//! `ProvisionedThroughputExceededException`), as the AWS JSON 1.0 protocol defines it.

#![deny(missing_docs)]

use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use eddy_sink_api::Timeouts;

/// Answers larger than this are refused, by their Content-Length or once read (GetRecords
/// answers at most 1 MB, BatchWriteItem less).
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Credentials are fetched again when they expire within this margin.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsJsonError {
    /// The service answered with an error status: its HTTP status, error code and message.
    #[error("{code} (HTTP {status}): {message}")]
    Service {
        /// The HTTP status, e.g. 400.
        status: u16,
        /// The error code, e.g. `ThrottlingException`; empty when the answer named none (a 5xx
        /// from a proxy).
        code: String,
        /// The service's message.
        message: String,
    },
    /// No usable answer: a timeout, a refused or dropped connection, an oversized body.
    #[error("{0}")]
    Transport(String),
    /// Credentials could not be loaded or the request could not be signed.
    #[error("{0}")]
    Credentials(String),
}

impl AwsJsonError {
    /// The error code of a service error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }
}

/// Which service a client calls.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// The SigV4 signing name (`dynamodb` for both DynamoDB and DynamoDB Streams).
    pub signing_name: &'static str,
    /// The `X-Amz-Target` prefix: `DynamoDB_20120810`, `DynamoDBStreams_20120810`,
    /// `Kinesis_20131202`.
    pub target_prefix: &'static str,
    /// The body's content type: AWS JSON 1.0 (DynamoDB, DynamoDB Streams) or 1.1 (Kinesis).
    pub content_type: &'static str,
    /// The largest answer accepted, in bytes: [`MAX_RESPONSE_BYTES`], or more for Kinesis, whose
    /// GetRecords returns up to 10 MB of data, base64-encoded, plus each record's metadata.
    pub max_answer_bytes: usize,
}

const JSON_1_0: &str = "application/x-amz-json-1.0";
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// DynamoDB's data plane (BatchWriteItem, PutItem, DeleteItem).
pub const DYNAMODB: Service = Service {
    signing_name: "dynamodb",
    target_prefix: "DynamoDB_20120810",
    content_type: JSON_1_0,
    max_answer_bytes: MAX_RESPONSE_BYTES,
};
/// DynamoDB Streams (GetRecords).
pub const DYNAMODB_STREAMS: Service = Service {
    signing_name: "dynamodb",
    target_prefix: "DynamoDBStreams_20120810",
    content_type: JSON_1_0,
    max_answer_bytes: MAX_RESPONSE_BYTES,
};
/// Kinesis Data Streams (GetRecords).
pub const KINESIS: Service = Service {
    signing_name: "kinesis",
    target_prefix: "Kinesis_20131202",
    content_type: JSON_1_1,
    max_answer_bytes: 32 << 20,
};

/// Amazon EventBridge (PutEvents).
pub const EVENTBRIDGE: Service = Service {
    signing_name: "events",
    target_prefix: "AWSEvents",
    content_type: JSON_1_1,
    max_answer_bytes: MAX_RESPONSE_BYTES,
};

/// One endpoint of one service, with its region and credentials.
pub struct AwsJsonClient {
    http: reqwest::Client,
    url: String,
    region: String,
    service: Service,
    provider: SharedCredentialsProvider,
    cached: RwLock<Option<Credentials>>,
    timeouts: Timeouts,
}

impl AwsJsonClient {
    /// A client of `service` at `url` (e.g. `https://streams.dynamodb.us-east-1.amazonaws.com`
    /// or a loopback test server), signing for `region` with credentials from `provider` (the
    /// SDK config's provider, so the usual chain applies), with `timeouts` on every call. It
    /// does not retry: callers apply the pipeline's retry policy.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(
        service: Service,
        url: &str,
        region: &str,
        provider: SharedCredentialsProvider,
        timeouts: &Timeouts,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Self {
            http,
            url: url.trim_end_matches('/').to_owned() + "/",
            region: region.to_owned(),
            service,
            provider,
            cached: RwLock::new(None),
            timeouts: *timeouts,
        })
    }

    /// The endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `operation` (e.g. `GetRecords`) with `body` (JSON) and returns the answer's body.
    ///
    /// # Errors
    /// [`AwsJsonError::Service`] for an error answer, [`AwsJsonError::Transport`] when there is
    /// no answer in time, [`AwsJsonError::Credentials`] when signing fails.
    pub async fn call(&self, operation: &str, body: impl Into<bytes::Bytes>) -> Result<bytes::Bytes, AwsJsonError> {
        let body: bytes::Bytes = body.into();
        let credentials = self.credentials().await?;
        let target = format!("{}.{operation}", self.service.target_prefix);
        let content_type = self.service.content_type;
        let headers = [("content-type", content_type), ("x-amz-target", target.as_str())];
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| AwsJsonError::Credentials(format!("cannot sign: {e}")))?
            .into();
        let signable =
            SignableRequest::new("POST", self.url.as_str(), headers.iter().copied(), SignableBody::Bytes(&body))
                .map_err(|e| AwsJsonError::Credentials(format!("cannot sign a request to {}: {e}", self.url)))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| AwsJsonError::Credentials(format!("cannot sign: {e}")))?.into_parts();
        let mut request =
            self.http.post(&self.url).header("content-type", content_type).header("x-amz-target", &target);
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await.map_err(|e| self.transport(operation, &e))?;
        let status = response.status().as_u16();
        if response.content_length().is_some_and(|n| n > self.service.max_answer_bytes as u64) {
            return Err(self.too_large(operation));
        }
        let bytes = response.bytes().await.map_err(|e| self.transport(operation, &e))?;
        if bytes.len() > self.service.max_answer_bytes {
            // An answer without a Content-Length is measured once read.
            return Err(self.too_large(operation));
        }
        if status == 200 {
            return Ok(bytes);
        }
        Err(service_error(status, &bytes))
    }

    /// Cached credentials, fetched again when they are missing or about to expire.
    async fn credentials(&self) -> Result<Credentials, AwsJsonError> {
        let fresh = |c: &Credentials| c.expiry().is_none_or(|at| at > SystemTime::now() + REFRESH_MARGIN);
        if let Some(c) = self.cached.read().expect("not poisoned").as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let credentials = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| AwsJsonError::Credentials(format!("no AWS credentials: {e}")))?;
        *self.cached.write().expect("not poisoned") = Some(credentials.clone());
        Ok(credentials)
    }

    fn too_large(&self, operation: &str) -> AwsJsonError {
        AwsJsonError::Transport(format!(
            "{operation}: the answer of {} is larger than {} bytes",
            self.url, self.service.max_answer_bytes
        ))
    }

    /// A failed exchange, named by what ran out (`timeouts.connect`, `timeouts.request`).
    fn transport(&self, operation: &str, e: &reqwest::Error) -> AwsJsonError {
        let what = if e.is_timeout() && e.is_connect() {
            format!("could not connect within the connect timeout ({:?}, timeouts.connect)", self.timeouts.connect)
        } else if e.is_timeout() {
            format!("got no answer within the request timeout ({:?}, timeouts.request)", self.timeouts.request)
        } else if e.is_connect() {
            "could not connect".to_owned()
        } else {
            "failed".to_owned()
        };
        let mut detail = String::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        AwsJsonError::Transport(format!("{operation} to {} {what}{detail}", eddy_sink_api::redact(&self.url)))
    }
}

/// Reads an AWS JSON 1.0 error answer: `{"__type": "prefix#Code", "message": "..."}` (the
/// message key is spelled `message` or `Message`).
pub fn service_error(status: u16, body: &[u8]) -> AwsJsonError {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(rename = "__type", default)]
        kind: String,
        #[serde(default, alias = "Message")]
        message: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => AwsJsonError::Service {
            status,
            code: e.kind.rsplit('#').next().unwrap_or_default().to_owned(),
            message: e.message,
        },
        Err(_) => AwsJsonError::Service {
            status,
            code: String::new(),
            message: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_the_type() {
        let e = service_error(
            400,
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ExpiredIteratorException","message":"Iterator expired"}"#,
        );
        assert_eq!(e.code(), Some("ExpiredIteratorException"));
        assert_eq!(e.to_string(), "ExpiredIteratorException (HTTP 400): Iterator expired");
        let e = service_error(400, br#"{"__type":"ThrottlingException","Message":"slow down"}"#);
        assert_eq!(e.code(), Some("ThrottlingException"));
        let e = service_error(503, b"<html>Service Unavailable</html>");
        assert_eq!(e.code(), None);
        assert!(e.to_string().contains("Service Unavailable"), "{e}");
    }
}
