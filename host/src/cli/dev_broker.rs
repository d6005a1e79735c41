//! `weir dev-broker`: the embedded Kafka-protocol broker as a process of its
//! own, for other processes and tests; its log survives restarts.

use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::broker::EmbeddedBroker;

/// Arguments of `weir dev-broker`.
#[derive(Debug, clap::Args)]
pub(super) struct DevBrokerArgs {
    /// Directory of the broker's sqlite log.
    #[arg(long, default_value = "data/broker")]
    data_dir: PathBuf,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 9092)]
    port: u16,
    /// Address to listen on; `0.0.0.0` in a container, so that other
    /// containers reach it.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Host name clients are told to connect to (Kafka's advertised
    /// listener), e.g. the compose service's name; default: the address
    /// listened on.
    #[arg(long)]
    advertise: Option<String>,
}

impl DevBrokerArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
        runtime.block_on(async {
            let shutdown = CancellationToken::new();
            tokio::spawn(super::up::cancel_on_signal(shutdown.clone()));
            let listen = std::net::SocketAddr::new(self.host, self.port);
            let broker =
                EmbeddedBroker::start_on(&self.data_dir, listen, self.advertise.as_deref()).await?;
            println!("{}", broker.bootstrap);
            shutdown.cancelled().await;
            drop(broker);
            Ok(())
        })
    }
}
