//! `weir up`: runs the application until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use gtfs_rt::sample::Sample;

use super::ManifestArg;
use super::token::TokenArgs;
use crate::admin::AdminConfig;
use crate::devfeed::{self, FeedClock};
use crate::run::{Host, HostConfig, KafkaMode};
use crate::runtime::RuntimeConfig;
use crate::status;

/// Arguments of `weir up`.
#[derive(Debug, clap::Args)]
pub(super) struct UpArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    /// Address for `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "WEIR_LISTEN", default_value = "127.0.0.1:9464")]
    listen: SocketAddr,
    /// Run every cron trigger once, now, then exit (non-zero if any failed).
    #[arg(long)]
    once: bool,
    /// Also serve generated sample feeds at this address (as `weir dev-feed`
    /// does), for a pipeline that runs with nothing else installed.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8717")]
    dev_feed: Option<SocketAddr>,
    /// Kafka bootstrap servers (default: `[application.trigger.kafka] brokers`,
    /// else an embedded broker keeping its log under the data dir).
    #[arg(long, env = "WEIR_KAFKA_BROKERS")]
    brokers: Option<String>,
    /// Directory for durable host state, relative to the manifest's directory.
    #[arg(long, env = "WEIR_DATA_DIR", default_value = "data")]
    data_dir: std::path::PathBuf,
    /// Redeploy a function whenever its built component file changes
    /// (e.g. after `weir build`), with the same checks as `weir deploy`.
    #[arg(long)]
    watch: bool,
    /// Turn deploys and rollbacks through the admin API off.
    #[arg(long)]
    no_deploy: bool,
    /// Stop cleanly after this long (`30s`, `5m`), flushing open batches as
    /// Ctrl-C does; a later `weir up` continues where this one stopped.
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    run_for: Option<std::time::Duration>,
    #[command(flatten)]
    token: TokenArgs,
}

/// How often the status table is redrawn on a terminal, and logged otherwise.
const STATUS_ON_TERMINAL: std::time::Duration = std::time::Duration::from_secs(2);
const STATUS_IN_LOGS: std::time::Duration = std::time::Duration::from_secs(30);

/// How often `--watch` looks at the component files.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl UpArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let manifest = self.manifest.load()?;
        let data_dir = manifest.dir.join(&self.data_dir);
        let token = if self.no_deploy {
            None
        } else {
            Some(self.token.for_host(self.listen, &data_dir)?)
        };
        let brokers = self.brokers.or_else(|| {
            manifest
                .application
                .kafka
                .as_ref()
                .and_then(|k| k.brokers.clone())
        });
        let kafka = brokers.map_or(KafkaMode::Embedded, KafkaMode::Brokers);
        let config = HostConfig {
            manifest,
            data_dir: Some(data_dir),
            kafka,
            listen: self.listen,
            runtime: RuntimeConfig::default(),
            once: self.once,
            admin: AdminConfig {
                token,
                max_upload_bytes: None,
            },
            watch: self.watch.then_some(WATCH_EVERY),
        };
        let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
        runtime.block_on(async {
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            if let Some(addr) = self.dev_feed {
                let clock = FeedClock::Wall(std::time::Duration::from_secs(10));
                let (addr, server) =
                    devfeed::serve(addr, Sample::new(500, 1), clock, shutdown.clone())
                        .await
                        .with_context(|| format!("cannot serve sample feeds on {addr}"))?;
                tracing::info!(%addr, "serving generated sample feeds");
                tokio::spawn(server);
            }
            if let Some(limit) = self.run_for {
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(limit).await;
                    tracing::info!(after = %humantime::format_duration(limit), "--for: shutting down");
                    shutdown.cancel();
                });
            }
            let once = config.once;
            let host = Host::start(config, shutdown.clone()).await?;
            if !once {
                tokio::spawn(status::run(
                    Arc::clone(&host.metrics),
                    Arc::clone(&host.functions),
                    STATUS_ON_TERMINAL,
                    STATUS_IN_LOGS,
                    shutdown.clone(),
                ));
            }
            host.wait().await
        })
    }
}

/// Cancels `shutdown` on the first SIGINT (Ctrl-C) or SIGTERM.
pub(super) async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            tracing::error!("cannot listen for SIGTERM");
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
