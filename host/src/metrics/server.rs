//! The HTTP endpoint: `GET /metrics` (Prometheus text format), `GET /health` (liveness: 200 `ok`
//! while the process runs) and `GET /ready` (readiness: 200 once the source is connected and,
//! with a lease table, the process has joined it; 503 before, and while any shard of the process
//! is stalled). Anything else is 404.
//!
//! It must never endanger the pipeline, whoever connects: at most [`MAX_CONNECTIONS`] are served
//! at once (more wait in the kernel's accept queue, holding none of eddy's file descriptors), a
//! request's headers must arrive within [`HEADER_TIMEOUT`], a connection lives at most
//! [`CONNECTION_LIFETIME`], and accept errors (out of file descriptors) back off instead of
//! spinning, logged once per [`LOG_INTERVAL`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::FutureExt;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one connection is kept (a scraper reconnects).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// The wait after consecutive accept errors: 10 ms doubling to 1 s.
const ACCEPT_BACKOFF: eddy_sink_api::Backoff =
    eddy_sink_api::Backoff { base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(1) };

/// A repeated accept error is logged at most this often.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Serves `/metrics`, `/health` and `/ready` on `listen` until `stopped` resolves (the process's
/// shutdown signal).
///
/// # Errors
/// When `listen` cannot be bound (the message names it).
pub async fn serve(
    listen: SocketAddr,
    handle: PrometheusHandle,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("metrics: cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr().unwrap_or(listen), "serving /metrics, /health and /ready");
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        let stopped = stopped.shared();
        let mut errors = Repeated::default();
        loop {
            let slot = tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
                _ = stopped.clone() => return,
            };
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        errors.clear();
                        stream
                    }
                    Err(e) => {
                        // EMFILE and friends: wait for descriptors to free up instead of spinning.
                        let wait = errors.record(&e);
                        drop(slot);
                        if tokio::time::timeout(wait, stopped.clone()).await.is_ok() {
                            return;
                        }
                        continue;
                    }
                },
                _ = stopped.clone() => return,
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let handle = handle.clone();
                    async move { Ok::<_, std::convert::Infallible>(respond(&request, &handle)) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(io, service);
                match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                    Ok(Err(e)) => tracing::debug!("metrics: connection ended: {e}"),
                    Err(_) => tracing::debug!("metrics: connection closed after {CONNECTION_LIFETIME:?}"),
                    Ok(Ok(())) => {}
                }
            });
        }
    });
    Ok(())
}

/// Consecutive accept errors: how long to wait, and when to log.
#[derive(Default)]
struct Repeated {
    count: u32,
    suppressed: u64,
    logged: Option<Instant>,
}

impl Repeated {
    /// Records one error; logs it unless one was logged within [`LOG_INTERVAL`]; returns the
    /// wait before the next accept ([`ACCEPT_BACKOFF`]).
    fn record(&mut self, e: &std::io::Error) -> Duration {
        self.count += 1;
        if self.logged.is_none_or(|at| at.elapsed() >= LOG_INTERVAL) {
            tracing::warn!(
                suppressed = self.suppressed,
                "metrics: accept failed: {e} (backing off; repeats are logged once per {LOG_INTERVAL:?})"
            );
            self.logged = Some(Instant::now());
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        ACCEPT_BACKOFF.ceiling(self.count - 1)
    }

    fn clear(&mut self) {
        self.count = 0;
    }
}

fn respond(request: &Request<hyper::body::Incoming>, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method().as_str(), request.uri().path()) {
        ("GET", "/metrics") => (StatusCode::OK, "text/plain; version=0.0.4", handle.render()),
        ("GET", "/health") => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        ("GET", "/ready") if super::stalled() > 0 => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("not ready: {} shard(s) stalled (see the log and eddy_shards_stalled)\n", super::stalled()),
        ),
        ("GET", "/ready") if super::is_ready() => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
        ("GET", "/ready") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready: the source is not connected, or the lease table not joined, yet\n".to_owned(),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found: try /metrics, /health or /ready\n".to_owned()),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
