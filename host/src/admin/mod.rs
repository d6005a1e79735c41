//! The host's HTTP server: `/metrics` (Prometheus text), `/healthz`
//! (process alive), `/readyz` (every trigger started, brokers answering) and the function API
//! of [`functions`] (list, deploy, roll back). Bound to loopback unless
//! configured otherwise; deploys need a bearer token.

mod functions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware::map_response_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::versions::Functions;

/// Who may change what runs.
#[derive(Clone, Default)]
pub struct AdminConfig {
    /// Bearer token required by deploys and rollbacks; `None` turns them
    /// off (the function list stays readable).
    pub token: Option<String>,
    /// Largest component upload accepted, in bytes (64 MiB by default).
    pub max_upload_bytes: Option<usize>,
    /// How long an upload's body may take to arrive once the request is
    /// accepted (60 s by default); a client that stalls gets 408.
    pub upload_timeout: Option<Duration>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("upload_timeout", &self.upload_timeout)
            .finish()
    }
}

/// Uploads above this are refused with 413 unless configured otherwise.
const DEFAULT_MAX_UPLOAD: usize = 64 << 20;

/// An upload's body must have arrived this long after the request was
/// accepted, unless configured otherwise: 64 MiB at 10 Mbit/s, with room.
const DEFAULT_UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);

impl AdminConfig {
    /// The largest upload accepted.
    fn max_upload(&self) -> usize {
        self.max_upload_bytes.unwrap_or(DEFAULT_MAX_UPLOAD)
    }

    /// How long an upload's body may take.
    fn upload_timeout(&self) -> Duration {
        self.upload_timeout.unwrap_or(DEFAULT_UPLOAD_TIMEOUT)
    }
}

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The metrics to expose.
    pub metrics: Arc<Metrics>,
    /// Set once every trigger is running.
    pub ready: Arc<AtomicBool>,
    /// The running functions.
    pub functions: Arc<Functions>,
    /// Deploy permissions.
    pub config: AdminConfig,
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
    let function_api = Router::new()
        .route("/functions", get(functions::list))
        .route("/functions/{id}", get(functions::show))
        .route(
            "/functions/{id}/component",
            post(functions::deploy).put(functions::deploy),
        )
        .route("/functions/{id}/rollback", post(functions::rollback))
        .layer(map_response_with_state(state.clone(), count_answer));
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .merge(function_api)
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

/// Counts every answer of the function API by status, refusals included
/// (a rejected extractor's 400, a path that matches no route's 404).
async fn count_answer(State(state): State<AdminState>, response: Response) -> Response {
    state
        .metrics
        .admin_requests
        .with_label_values(&[response.status().as_str()])
        .inc();
    response
}

/// Ready once every trigger started, and while every trigger's brokers
/// answer (a broker outage takes the host out of a load balancer's or an
/// orchestrator's rotation; `/healthz` stays up, so it is not restarted).
async fn ready(State(state): State<AdminState>) -> impl IntoResponse {
    if !state.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_owned());
    }
    let unreachable = state.metrics.kafka_unreachable();
    if unreachable.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the Kafka brokers do not answer trigger(s) {}\n",
                unreachable.join(", ")
            ),
        )
    }
}

/// Marks the host ready.
pub fn set_ready(state: &AdminState) {
    state.ready.store(true, Ordering::Relaxed);
}
