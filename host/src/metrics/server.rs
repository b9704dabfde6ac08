//! The HTTP endpoint: `GET /metrics` (Prometheus text format) and `GET /health` (200 `ok` while
//! the process runs). Anything else is 404.

use std::net::SocketAddr;

use anyhow::Context;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::stop::Stop;

/// Serves `/metrics` and `/health` on `listen` until `stop` is set.
///
/// # Errors
/// When `listen` cannot be bound (the message names it).
pub async fn serve(listen: SocketAddr, handle: PrometheusHandle, stop: Stop) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("metrics: cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr().unwrap_or(listen), "serving /metrics and /health");
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("metrics: accept failed: {e}");
                        continue;
                    }
                },
                _ = stop.wait() => return,
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let handle = handle.clone();
                    async move { Ok::<_, std::convert::Infallible>(respond(&request, &handle)) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                    tracing::debug!("metrics: connection ended: {e}");
                }
            });
        }
    });
    Ok(())
}

fn respond(request: &Request<hyper::body::Incoming>, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method().as_str(), request.uri().path()) {
        ("GET", "/metrics") => (StatusCode::OK, "text/plain; version=0.0.4", handle.render()),
        ("GET", "/health") => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found: try /metrics or /health\n".to_owned()),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
