//! `weir up`: runs the application until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use weir_devfeed::{self as devfeed, FeedClock, Sample};

use super::ManifestArg;
use super::token::TokenArgs;
use crate::admin::AdminConfig;
use crate::manifest::Manifest;
use crate::run::{Host, HostConfig, KafkaMode};
use crate::runtime::RuntimeConfig;
use crate::status;
use crate::trigger::Trigger;
use crate::trigger::kafka::default_parallelism;

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
    /// Also serve generated sample feeds (as `weir dev-feed` does), for a
    /// pipeline that runs with nothing else installed. Without an address,
    /// where the manifest's feed URLs point (127.0.0.1:8717 in the shipped one).
    #[arg(long, value_name = "ADDR", num_args = 0..=1)]
    dev_feed: Option<Option<SocketAddr>>,
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
    #[arg(long = "for", env = "WEIR_RUN_FOR", value_name = "DURATION", value_parser = humantime::parse_duration)]
    run_for: Option<std::time::Duration>,
    /// Do not build components first (by default `weir up` runs the build
    /// of each component whose file is missing or older than a file its
    /// `watch` patterns match, as `spin up --build` would).
    #[arg(long)]
    no_build: bool,
    /// How many instances of a Kafka trigger's transform run a batch at
    /// once, each on whole partitions (default: the CPUs weir may use).
    #[arg(long, env = "WEIR_PARALLELISM", value_name = "N")]
    parallelism: Option<std::num::NonZeroUsize>,
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
        if !self.no_build {
            super::build::build_outdated(&manifest)?;
        }
        let data_dir = manifest.dir.join(&self.data_dir);
        writable(&data_dir)?;
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
        let dev_feed = self
            .dev_feed
            .map(|addr| addr.unwrap_or_else(|| dev_feed_addr(&manifest)));
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
                upload_timeout: None,
            },
            watch: self.watch.then_some(WATCH_EVERY),
            parallelism: self
                .parallelism
                .map_or_else(default_parallelism, std::num::NonZeroUsize::get),
        };
        let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
        runtime.block_on(async {
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            if let Some(addr) = dev_feed {
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

/// Where `--dev-feed` serves when given no address: the loopback address of
/// the first feed URL in the manifest that names a sample feed path, so
/// moving the port in `spin.toml` moves the server too.
fn dev_feed_addr(manifest: &Manifest) -> SocketAddr {
    let cron_values = manifest.triggers.iter().flat_map(|t| match t {
        Trigger::Cron(cron) => cron.variables.values().collect::<Vec<_>>(),
        Trigger::Kafka(_) => Vec::new(),
    });
    let component_values = manifest
        .components
        .values()
        .flat_map(|c| c.variables.values());
    cron_values
        .chain(component_values)
        .find_map(|value| {
            let url = url::Url::parse(value).ok()?;
            let name = url.path().trim_start_matches('/');
            if url.scheme() != "http" || !devfeed::PATHS.contains(&name) {
                return None;
            }
            let ip: std::net::IpAddr = match url.host()? {
                url::Host::Ipv4(ip) => ip.into(),
                url::Host::Ipv6(ip) => ip.into(),
                url::Host::Domain(_) => return None,
            };
            ip.is_loopback()
                .then(|| SocketAddr::new(ip, url.port_or_known_default().unwrap_or(80)))
        })
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8717)))
}

/// Makes the data dir if missing and checks that this process can write in
/// it, so that a bind mount owned by another user (a Windows folder under
/// WSL2, a host folder mounted into the image's non-root user) fails at
/// start with what to do, not at the first table commit.
fn writable(dir: &std::path::Path) -> anyhow::Result<()> {
    let probe = dir.join(format!(
        ".weir-write-check-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let checked = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe));
    checked.map_err(|e| {
        let owner = owner(dir).unwrap_or_default();
        let user = current_uid().map_or_else(String::new, |uid| format!(" (uid {uid})"));
        anyhow::anyhow!(
            "the data directory `{}`{owner} is not writable by this process{user}: {e}. \
             Give it write access (`chown` the folder to that uid, or mount a named volume \
             there; docs/windows-wsl2.md), or point --data-dir / WEIR_DATA_DIR elsewhere",
            dir.display()
        )
    })
}

/// ` (owned by uid N, mode NNN)` for an existing path.
fn owner(path: &std::path::Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(format!(
            " (owned by uid {}, mode {:o})",
            meta.uid(),
            meta.mode() & 0o7777
        ))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// This process's real user id, where /proc tells it.
fn current_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().next()?.parse().ok()
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{dev_feed_addr, writable};
    use crate::manifest::Manifest;

    #[test]
    fn a_data_dir_that_cannot_be_written_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("new/data");
        writable(&made).unwrap();
        assert!(made.is_dir(), "made if missing");
        assert_eq!(
            std::fs::read_dir(&made).unwrap().count(),
            0,
            "probe removed"
        );
        // A file where the data dir should be (as root, a mode alone
        // cannot refuse; the image's non-root case is the live compose test).
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let message = writable(&file.join("data")).unwrap_err().to_string();
        assert!(
            message.contains("is not writable by this process"),
            "{message}"
        );
        assert!(message.contains("docs/windows-wsl2.md"), "{message}");
    }

    fn addr_for(env: &[(&str, &str)]) -> String {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml");
        let text = std::fs::read_to_string(&shipped).unwrap();
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        let manifest = Manifest::parse(&shipped, &text, env).unwrap();
        dev_feed_addr(&manifest).to_string()
    }

    #[test]
    fn dev_feed_serves_where_the_manifest_points() {
        assert_eq!(addr_for(&[]), "127.0.0.1:8717");
        let moved = [(
            "SPIN_VARIABLE_VEHICLE_FEED_URL",
            "http://127.0.0.1:9123/vehicle_positions.pb",
        )];
        assert_eq!(addr_for(&moved), "127.0.0.1:9123");
        // A real feed for vehicles: the next sample URL still names the port.
        let real = [
            (
                "SPIN_VARIABLE_VEHICLE_FEED_URL",
                "https://api-public.odpt.org/api/v4/gtfs/realtime/toei_odpt_train_vehicle",
            ),
            (
                "SPIN_VARIABLE_TRIP_UPDATE_FEED_URL",
                "http://[::1]:8800/trip_updates.pb",
            ),
        ];
        assert_eq!(addr_for(&real), "[::1]:8800");
    }
}
