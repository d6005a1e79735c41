//! `weir dev-feed`: serves generated GTFS-Realtime feeds on a local port.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use weir_devfeed::{self as devfeed, FeedClock, Sample};

/// Arguments of `weir dev-feed`.
#[derive(Debug, clap::Args)]
pub(super) struct DevFeedArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8717")]
    listen: SocketAddr,
    /// Vehicles (and trips) in the generated network.
    #[arg(long, default_value_t = 500)]
    vehicles: u32,
    /// Seconds between feed updates (the header timestamp's step).
    #[arg(long, default_value_t = 10)]
    interval: u64,
    /// Varies the generated network.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl DevFeedArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
        runtime.block_on(async {
            let shutdown = CancellationToken::new();
            tokio::spawn(super::up::cancel_on_signal(shutdown.clone()));
            let clock = FeedClock::Wall(Duration::from_secs(self.interval));
            let sample = Sample::new(self.vehicles, self.seed);
            let (addr, server) = devfeed::serve(self.listen, sample, clock, shutdown)
                .await
                .with_context(|| format!("cannot listen on {}", self.listen))?;
            for path in devfeed::PATHS {
                println!("http://{addr}/{path}");
            }
            server.await.context("feed server failed")
        })
    }
}
