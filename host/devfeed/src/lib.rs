//! The GTFS-Realtime side of weir's command line, kept out of the generic
//! host crate: a local server replaying generated sample feeds (all three
//! types) as a live feed, used by `weir dev-feed`, local mode, tests and
//! benchmarks. Each request returns the feed for "now", rounded down to the
//! refresh interval, so the header timestamp advances like a real agency's.
//! Each feed is generated and encoded once per timestamp: every request for
//! the same second gets the same bytes, as from an agency's CDN, and a
//! benchmark's fetch does not pay for generating a large feed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The text encodings a feed's strings may be transcoded from (the fetch
/// component's `feed_encoding`, `weir feed decode --encoding`).
pub use gtfs_rt::encoding;
/// The generated network whose feeds are served.
pub use gtfs_rt::sample::Sample;

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

#[derive(Debug)]
struct Feeds {
    sample: Sample,
    clock: FeedClock,
    /// The last body served per path, with its timestamp.
    encoded: Mutex<[Option<(u64, Bytes)>; PATHS.len()]>,
}

impl Feeds {
    /// The encoded feed at `PATHS[index]` for time `t`, generated on the
    /// first request for `t`.
    fn body(&self, index: usize, t: u64) -> Bytes {
        if let Some((at, body)) =
            &self.encoded.lock().unwrap_or_else(PoisonError::into_inner)[index]
            && *at == t
        {
            return body.clone();
        }
        // Generated outside the lock: a large feed takes milliseconds.
        // The arms follow the order of `PATHS`.
        let message = match index {
            0 => self.sample.vehicle_positions(t),
            1 => self.sample.trip_updates(t),
            _ => self.sample.alerts(t),
        };
        let body = Bytes::from(gtfs_rt::encode(&message));
        self.encoded.lock().unwrap_or_else(PoisonError::into_inner)[index] =
            Some((t, body.clone()));
        body
    }
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
        .with_state(Arc::new(Feeds {
            sample,
            clock,
            encoded: Mutex::default(),
        }));
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await });
    Ok((bound, server.into_future()))
}

async fn feed(State(feeds): State<Arc<Feeds>>, Path(name): Path<String>) -> Response {
    let Some(index) = PATHS.iter().position(|p| *p == name) else {
        let known = PATHS.join(", ");
        return (
            StatusCode::NOT_FOUND,
            format!("no feed `{name}`; try {known}\n"),
        )
            .into_response();
    };
    let t = feeds.clock.now();
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        feeds.body(index, t),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, Bytes) {
        let response = client.get(url).send().await.expect("request");
        (response.status(), response.bytes().await.expect("body"))
    }

    #[test]
    fn a_feed_is_generated_once_per_timestamp() {
        let feeds = Feeds {
            sample: Sample::new(20, 1),
            clock: FeedClock::Manual(Arc::default()),
            encoded: Mutex::default(),
        };
        let first = feeds.body(0, 100);
        // The very same buffer, not a regenerated copy.
        assert_eq!(feeds.body(0, 100).as_ptr(), first.as_ptr());
        assert_ne!(feeds.body(1, 100).as_ptr(), first.as_ptr());
        let later = feeds.body(0, 130);
        assert_ne!(later, first);
        assert_eq!(
            gtfs_rt::decode(&later).expect("a feed").header.timestamp,
            Some(130)
        );
    }

    #[tokio::test]
    async fn serves_one_body_per_timestamp_and_a_new_one_when_time_moves() {
        let now = Arc::new(AtomicU64::new(1_764_000_000));
        let (addr, server) = serve(
            "127.0.0.1:0".parse().expect("address"),
            Sample::new(50, 7),
            FeedClock::Manual(Arc::clone(&now)),
            CancellationToken::new(),
        )
        .await
        .expect("bind");
        tokio::spawn(server);
        let client = reqwest::Client::new();
        for path in PATHS {
            let url = format!("http://{addr}/{path}");
            let (status, first) = get(&client, &url).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            let feed = gtfs_rt::decode(&first).expect("a feed");
            assert_eq!(feed.header.timestamp, Some(1_764_000_000), "{path}");
            assert_eq!(
                get(&client, &url).await.1,
                first,
                "{path}: same second, same bytes"
            );
        }
        let vehicles = format!("http://{addr}/vehicle_positions.pb");
        let before = get(&client, &vehicles).await.1;
        now.store(1_764_000_030, Ordering::SeqCst);
        let after = get(&client, &vehicles).await.1;
        assert_ne!(after, before);
        let feed = gtfs_rt::decode(&after).expect("a feed");
        assert_eq!(feed.header.timestamp, Some(1_764_000_030));
        assert_eq!(feed.entity.len(), 50);
        // Cached per path: the other feeds move on too when asked.
        let trips = gtfs_rt::decode(
            &get(&client, &format!("http://{addr}/trip_updates.pb"))
                .await
                .1,
        )
        .expect("a feed");
        assert_eq!(trips.header.timestamp, Some(1_764_000_030));
        let (status, body) = get(&client, &format!("http://{addr}/nope.pb")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(String::from_utf8_lossy(&body).contains("vehicle_positions.pb"));
    }
}
