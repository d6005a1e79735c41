//! The run loop of `weir up`: load every trigger's component, start the
//! admin server and the triggers, and stop them all on shutdown.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use futures::FutureExt as _;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminConfig, AdminState};
use crate::broker::EmbeddedBroker;
use crate::disk;
use crate::imports::feed::FeedLedger;
use crate::imports::producer::OutMessage;
use crate::manifest::Manifest;
use crate::memory;
use crate::metrics::Metrics;
use crate::runtime::{Runtime, RuntimeConfig, World};
use crate::sink::Publish;
use crate::sink::kafka::{KafkaSink, KafkaSinkConfig};
use crate::trigger::Trigger;
use crate::trigger::cron::CronRunner;
use crate::trigger::cron::fleet::{Fleet, FleetMode};
#[cfg(doc)]
use crate::trigger::kafka::default_parallelism;
use crate::trigger::kafka::{KafkaRunner, Ownership, RunnerConfig};
use crate::versions::{self, Function, Functions};

/// Everything `weir up` needs, already read from files and environment.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The validated manifest.
    pub manifest: Manifest,
    /// Address of `/metrics`, `/healthz`, `/readyz`; port 0 picks one.
    pub listen: SocketAddr,
    /// Engine settings.
    pub runtime: RuntimeConfig,
    /// Run every cron trigger once, immediately, then exit.
    pub once: bool,
    /// Which Kafka cluster output goes to.
    pub kafka: KafkaMode,
    /// Where durable host state lives (feed ledger; later Delta tables);
    /// `None` keeps it in memory.
    pub data_dir: Option<std::path::PathBuf>,
    /// Who may deploy through the admin API.
    pub admin: AdminConfig,
    /// Redeploy a function when its component file changes, polling this often.
    pub watch: Option<std::time::Duration>,
    /// Into how many parts, each on its own instance, a Kafka trigger cuts
    /// a batch at most ([`default_parallelism`]: the CPUs this process may use).
    pub parallelism: usize,
}

/// Which Kafka cluster the host talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaMode {
    /// An existing cluster: bootstrap servers `host:port[,…]`.
    Brokers(String),
    /// Start the embedded broker (tansu, sqlite under `data_dir/broker`)
    /// if any trigger needs Kafka.
    Embedded,
    /// No Kafka: a tick that sends messages fails.
    Off,
}

/// A started host: triggers running, server bound.
#[derive(Debug)]
pub struct Host {
    /// Where the admin server listens.
    pub addr: SocketAddr,
    /// The host's metrics.
    pub metrics: Arc<Metrics>,
    /// The running functions (deploy and roll back through them).
    pub functions: Arc<Functions>,
    /// Bootstrap servers in use, if any.
    pub kafka_brokers: Option<String>,
    tasks: JoinSet<anyhow::Result<()>>,
    /// Kept alive for as long as the host runs.
    _broker: Option<EmbeddedBroker>,
}

/// Runs the host until `shutdown` is cancelled (or, with `once`, until every
/// cron trigger has run once).
pub async fn run(config: HostConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    Host::start(config, shutdown).await?.wait().await
}

impl Host {
    /// Loads components, binds the server and starts every trigger.
    pub async fn start(config: HostConfig, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let manifest = &config.manifest;
        manifest.check_sources()?;
        let metrics = Arc::new(Metrics::new());
        let runtime = Arc::new(Runtime::new(config.runtime.clone(), Arc::clone(&metrics))?);
        let functions = Arc::new(load_functions(&runtime, manifest)?);
        let state = AdminState {
            metrics: Arc::clone(&metrics),
            ready: Arc::new(AtomicBool::new(false)),
            functions: Arc::clone(&functions),
            config: config.admin.clone(),
        };
        let (addr, server) = admin::serve(config.listen, state.clone(), shutdown.clone())
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        tracing::info!(%addr, deploys = state.config.token.is_some(), "serving /metrics, /healthz, /readyz and /functions");
        let mut tasks = JoinSet::new();
        tasks.spawn(async move { server.await.context("admin server failed") });
        if !config.once {
            let tables = manifest.triggers.iter().filter_map(|t| match t {
                Trigger::Kafka(k) => Some(k.tables.values().chain([&k.dead_letter])),
                Trigger::Cron(_) => None,
            });
            let paths = config
                .data_dir
                .iter()
                .cloned()
                .chain(tables.flatten().filter_map(|t| disk::local_table(&t.uri)))
                .collect();
            tasks.spawn(disk::watch(paths, Arc::clone(&metrics), shutdown.clone()).map(Ok));
            tasks.spawn(memory::watch(Arc::clone(&metrics), shutdown.clone()).map(Ok));
        }
        let locks: HashMap<&str, Arc<Mutex<()>>> = manifest
            .components
            .keys()
            .map(|id| (id.as_str(), Arc::default()))
            .collect();
        let outputs: Vec<String> = manifest
            .triggers
            .iter()
            .filter_map(|t| match t {
                Trigger::Cron(c) => Some(c.outputs.iter().cloned()),
                Trigger::Kafka(_) => None,
            })
            .flatten()
            .collect();
        let needs_kafka = !outputs.is_empty()
            || manifest
                .triggers
                .iter()
                .any(|t| matches!(t, Trigger::Kafka(_)));
        let broker = match (&config.kafka, &config.data_dir) {
            (KafkaMode::Embedded, Some(dir)) if needs_kafka => {
                let broker = EmbeddedBroker::start(&dir.join("broker"), 0).await?;
                let failures = metrics.embedded_broker_failures.clone();
                broker.on_failure(move || failures.inc());
                Some(broker)
            }
            (KafkaMode::Embedded, None) if needs_kafka => {
                anyhow::bail!(
                    "the embedded Kafka broker needs a data dir; or set WEIR_KAFKA_BROKERS"
                )
            }
            _ => None,
        };
        let kafka_brokers = match (&config.kafka, &broker) {
            (KafkaMode::Brokers(brokers), _) => Some(brokers.clone()),
            (_, Some(broker)) => Some(broker.bootstrap.clone()),
            _ => None,
        };
        let publish = Arc::new(match &kafka_brokers {
            Some(brokers) => {
                let sink = KafkaSink::new(KafkaSinkConfig::new(brokers), Arc::clone(&metrics))?;
                let consumed = manifest.triggers.iter().filter_map(|t| match t {
                    Trigger::Kafka(k) => Some(k.topics.iter().cloned()),
                    Trigger::Cron(_) => None,
                });
                let topics: Vec<String> =
                    outputs.iter().cloned().chain(consumed.flatten()).collect();
                sink.ensure_topics(&topics)
                    .await
                    .with_context(|| format!("preparing the output topics on `{brokers}`"))?;
                Publisher::Kafka(sink)
            }
            None => Publisher::Unconfigured,
        });
        let ledger = Arc::new(match &config.data_dir {
            Some(dir) => FeedLedger::open(&dir.join("feeds.json"))?,
            None => FeedLedger::in_memory(),
        });
        let host_id = host_id();
        let crons: Vec<(String, std::time::Duration)> = manifest
            .triggers
            .iter()
            .filter_map(|t| match t {
                Trigger::Cron(c) => Some((c.id.clone(), c.period())),
                Trigger::Kafka(_) => None,
            })
            .collect();
        // With Kafka, each cron trigger runs on one host of the fleet; a
        // broker only this host uses gives it every trigger.
        let fleet = match &kafka_brokers {
            Some(brokers) if !crons.is_empty() && !config.once => Some(
                Fleet::start(
                    brokers,
                    &manifest.application.name,
                    &crons,
                    &host_id,
                    if broker.is_some() {
                        FleetMode::All
                    } else {
                        FleetMode::Group
                    },
                    Arc::clone(&metrics),
                    shutdown.clone(),
                )
                .await
                .context("joining the fleet that shares the cron triggers")?,
            ),
            _ => None,
        };
        if let Some(broker) = &broker {
            renew_producers_on_failure(broker, &publish, fleet.as_ref());
        }
        let mut once = JoinSet::new();
        for trigger in &manifest.triggers {
            match trigger {
                Trigger::Cron(cron) => {
                    let function = function(&functions, &cron.component)?;
                    metrics.init_feed(&cron.component, &cron.id, &cron.outputs);
                    let runner = CronRunner::new(
                        cron.clone(),
                        function,
                        Arc::clone(&locks[cron.component.as_str()]),
                        Arc::clone(&ledger),
                        fleet.clone(),
                    );
                    let publish = Arc::clone(&publish);
                    if config.once {
                        once.spawn(async move {
                            runner.tick(chrono::Utc::now(), publish.as_ref()).await
                        });
                    } else {
                        let shutdown = shutdown.clone();
                        tasks.spawn(async move {
                            runner.run(publish, shutdown).await;
                            Ok(())
                        });
                    }
                }
                Trigger::Kafka(kafka) if config.once => {
                    tracing::info!(trigger = %kafka.id, "--once runs cron triggers only; kafka trigger not started");
                }
                Trigger::Kafka(kafka) => {
                    let brokers = kafka_brokers
                        .clone()
                        .with_context(|| format!("trigger `{}` needs Kafka brokers", kafka.id))?;
                    let function = function(&functions, &kafka.component)?;
                    let runner = KafkaRunner::start(
                        RunnerConfig {
                            trigger: kafka.clone(),
                            app: manifest.application.name.clone(),
                            brokers,
                            host_id: host_id.clone(),
                            // Only this host consumes from its embedded broker.
                            ownership: if broker.is_some() {
                                Ownership::All
                            } else {
                                Ownership::Group
                            },
                            parallelism: config.parallelism,
                        },
                        function,
                        Arc::clone(&metrics),
                    )
                    .await?;
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move { runner.run(shutdown).await });
                }
            }
        }
        if let Some(every) = config.watch.filter(|_| !config.once) {
            let sources = functions
                .iter()
                .map(|f| (Arc::clone(f), manifest.components[&f.id].source.clone()))
                .collect();
            tasks.spawn(versions::watch::run(sources, every, shutdown.clone()).map(Ok));
        }
        admin::set_ready(&state);
        if config.once {
            let mut failed = 0;
            while let Some(ok) = once.join_next().await {
                failed += usize::from(!ok.unwrap_or(false));
            }
            shutdown.cancel();
            if failed > 0 {
                anyhow::bail!("{failed} cron invocation(s) failed");
            }
        }
        Ok(Self {
            addr,
            metrics,
            functions,
            kafka_brokers,
            tasks,
            _broker: broker,
        })
    }

    /// Waits for every task to end (after shutdown), returning the first error.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let outcome = joined.context("a host task panicked").and_then(|r| r);
            if let Err(e) = outcome
                && result.is_ok()
            {
                result = Err(e);
            }
        }
        result
    }
}

/// Loads, type-checks and digests the component of every trigger: one
/// function per component, in the one world its triggers share.
fn load_functions(runtime: &Arc<Runtime>, manifest: &Manifest) -> anyhow::Result<Functions> {
    let mut triggers: BTreeMap<&str, (World, Vec<String>)> = BTreeMap::new();
    for trigger in &manifest.triggers {
        let (world, ids) = triggers
            .entry(trigger.component())
            .or_insert_with(|| (trigger.world(), Vec::new()));
        if *world != trigger.world() {
            anyhow::bail!(
                "component `{}` is used by a cron and a kafka trigger; a component runs in one world (`fetcher` or `transformer`)",
                trigger.component()
            );
        }
        ids.push(trigger.id().to_owned());
    }
    let mut functions = Functions::default();
    for (id, (world, trigger_ids)) in triggers {
        let config = &manifest.components[id];
        let component = runtime.load_file(&config.id, &config.source, world, config.into())?;
        tracing::info!(function = %component.id, digest = %component.digest, world = world.name(), "loaded component");
        runtime
            .metrics()
            .set_component(&component.id, world.name(), &component.digest);
        runtime.metrics().init_function(&component.id, world.name());
        functions.insert(Function::new(Arc::new(component), trigger_ids));
    }
    Ok(functions)
}

fn function(functions: &Functions, id: &str) -> anyhow::Result<Arc<Function>> {
    functions
        .get(id)
        .cloned()
        .with_context(|| format!("component `{id}` was not loaded"))
}

/// Where cron ticks publish: the Kafka sink, or nothing configured, in
/// which case a tick that sends messages fails loudly instead of losing them.
#[derive(Debug)]
enum Publisher {
    Kafka(KafkaSink),
    Unconfigured,
}

impl Publish for Publisher {
    async fn publish(&self, function: &str, messages: Vec<OutMessage>) -> anyhow::Result<()> {
        match self {
            Self::Kafka(sink) => sink.publish(function, messages).await,
            Self::Unconfigured if messages.is_empty() => Ok(()),
            Self::Unconfigured => anyhow::bail!(
                "`{function}` sent {} message(s) but no Kafka brokers are configured (set WEIR_KAFKA_BROKERS)",
                messages.len()
            ),
        }
    }
}

/// After the embedded broker fails, and before it starts again, the
/// host's idempotent producers are replaced: the restarted broker may have
/// lost their producer ids, and tansu panics on a batch of a producer it
/// does not know. The broker holds them weakly: they end with the host,
/// before the broker stops, as without it.
fn renew_producers_on_failure(
    broker: &EmbeddedBroker,
    publish: &Arc<Publisher>,
    fleet: Option<&Arc<Fleet>>,
) {
    if matches!(publish.as_ref(), Publisher::Kafka(_)) {
        let publish = Arc::downgrade(publish);
        broker.on_failure(move || {
            if let Some(publish) = publish.upgrade()
                && let Publisher::Kafka(sink) = publish.as_ref()
                && let Err(e) = sink.renew()
            {
                tracing::error!(error = %e, "cannot renew the feed publisher's Kafka producer");
            }
        });
    }
    if let Some(fleet) = fleet {
        let fleet = Arc::downgrade(fleet);
        broker.on_failure(move || {
            if let Some(fleet) = fleet.upgrade()
                && let Err(e) = fleet.renew_producer()
            {
                tracing::error!(
                    error = format!("{e:#}"),
                    "cannot renew the cron ledger's Kafka producer"
                );
            }
        });
    }
}

/// This process's id in commit lineage: the machine's hostname and a
/// random suffix (several hosts may run on one machine).
fn host_id() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|n| n.trim().to_owned())
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{name}-{}", &suffix[..8])
}
