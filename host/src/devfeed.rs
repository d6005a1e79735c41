//! A local GTFS-Realtime server replaying generated sample feeds (all three
//! types) as a live feed: each request returns the feed for "now", rounded
//! down to the refresh interval, so the header timestamp advances like a
//! real agency's. Used by `weir dev-feed`, local mode, tests and benchmarks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gtfs_rt::sample::Sample;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What time the served feeds describe.
#[derive(Debug, Clone)]
pub enum FeedClock {
    /// The wall clock, rounded down to a multiple of the interval.
    Wall(Duration),
    /// A time set by the caller (tests): POSIX seconds.
    Manual(Arc<AtomicU64>),
}

impl FeedClock {
    fn now(&self) -> u64 {
        match self {
            Self::Wall(interval) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let step = interval.as_secs().max(1);
                now / step * step
            }
            Self::Manual(time) => time.load(Ordering::SeqCst),
        }
    }
}

#[derive(Debug, Clone)]
struct Feeds {
    sample: Sample,
    clock: FeedClock,
}

/// The feed paths served.
pub const PATHS: [&str; 3] = ["vehicle_positions.pb", "trip_updates.pb", "alerts.pb"];

/// Binds `addr` and serves `/vehicle_positions.pb`, `/trip_updates.pb` and
/// `/alerts.pb` until `shutdown`. Returns the bound address and the server.
pub async fn serve(
    addr: SocketAddr,
    sample: Sample,
    clock: FeedClock,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/{feed}", get(feed))
        .with_state(Arc::new(Feeds { sample, clock }));
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await });
    Ok((bound, server.into_future()))
}

async fn feed(State(feeds): State<Arc<Feeds>>, Path(name): Path<String>) -> Response {
    let t = feeds.clock.now();
    let message = match name.as_str() {
        "vehicle_positions.pb" => feeds.sample.vehicle_positions(t),
        "trip_updates.pb" => feeds.sample.trip_updates(t),
        "alerts.pb" => feeds.sample.alerts(t),
        _ => {
            let known = PATHS.join(", ");
            return (
                StatusCode::NOT_FOUND,
                format!("no feed `{name}`; try {known}\n"),
            )
                .into_response();
        }
    };
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        gtfs_rt::encode(&message),
    )
        .into_response()
}
