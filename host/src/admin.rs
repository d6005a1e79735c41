//! The host's HTTP server: `/metrics` (Prometheus text), `/healthz`
//! (process alive) and `/readyz` (every trigger started). Bound to loopback
//! unless configured otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The metrics to expose.
    pub metrics: Arc<Metrics>,
    /// Set once every trigger is running.
    pub ready: Arc<AtomicBool>,
}

/// Binds `addr` (port 0 picks a free one) and returns the bound address
/// and the server future, which ends on `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state);
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await });
    Ok((bound, server.into_future()))
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn ready(State(state): State<AdminState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// Marks the host ready.
pub fn set_ready(state: &AdminState) {
    state.ready.store(true, Ordering::Relaxed);
}
