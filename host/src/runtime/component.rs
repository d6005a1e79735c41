//! A component loaded for one world: compiled once, linked once into an
//! `InstancePre`, then instantiated fresh for every invocation.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Store, Trap, UpdateDeadline};

use super::error::{InvokeError, LoadError, TrapKind};
use super::messages::{BatchOutput, KafkaMessage, Outcome};
use super::state::{Capabilities, GuestOutput, State};
use super::{Limits, Runtime};
use crate::bindings::fetcher::weir::function::cron_types::{
    Error as CronError, Metadata as CronMetadata,
};
use crate::bindings::transformer::weir::function::batch_types::Error as BatchError;
use crate::bindings::{fetcher, transformer, typed_transformer};
use crate::imports;
use crate::imports::feed::FeedObservation;
use crate::imports::outbound_http::{AllowedHost, HttpLimits, OutboundHttp};
use crate::imports::producer::{OutMessage, Outbox};
use crate::imports::variables::Variables;

/// The world a trigger needs its component to implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum World {
    /// Cron-triggered: exports `handle-cron-event`.
    Fetcher,
    /// Kafka-triggered: exports `handle-typed-batch` (typed columns, the
    /// `typed-transformer` world) or `handle-batch` (JSON rows, the
    /// `transformer` world).
    Transformer,
}

impl World {
    /// The WIT world name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fetcher => "fetcher",
            Self::Transformer => "transformer",
        }
    }

    /// The exports that implement it, preferred first.
    fn exports(self) -> &'static [&'static str] {
        match self {
            Self::Fetcher => &["handle-cron-event"],
            Self::Transformer => &["handle-typed-batch", "handle-batch"],
        }
    }
}

/// A transformer of either flavour, ready to instantiate.
enum BatchPre<'a> {
    Json(&'a transformer::TransformerPre<State>),
    Typed(&'a typed_transformer::TypedTransformerPre<State>),
}

enum Pre {
    Fetcher(fetcher::FetcherPre<State>),
    Transformer(transformer::TransformerPre<State>),
    TypedTransformer(typed_transformer::TypedTransformerPre<State>),
}

/// How a component runs, from its manifest entry.
#[derive(Debug, Clone, Default)]
pub struct ComponentSettings {
    /// Deadline and memory cap of every invocation.
    pub limits: Limits,
    /// Environment variables the guest sees.
    pub environment: Vec<(String, String)>,
    /// Spin variables (templates expanded).
    pub variables: BTreeMap<String, String>,
    /// Where outbound HTTP may go.
    pub allowed_outbound_hosts: Vec<String>,
    /// Timeouts and size cap of outbound HTTP.
    pub http: HttpLimits,
}

/// What one cron tick hands its function besides the timestamp.
#[derive(Debug, Clone, Default)]
pub struct CronInvocation {
    /// Topics the function may send to.
    pub outputs: Arc<[String]>,
    /// The trigger's variables, over the component's.
    pub variables: BTreeMap<String, String>,
    /// The trigger's feed, for `feed.observe`.
    pub feed: Option<FeedObservation>,
}

/// What a successful cron invocation produced.
#[derive(Debug, Clone, Default)]
pub struct CronResult {
    /// Messages to publish, in send order.
    pub messages: Vec<OutMessage>,
    /// The feed header timestamp the function reported, if any.
    pub feed_timestamp: Option<u64>,
}

/// A component ready to be invoked; share it behind an `Arc`.
pub struct LoadedComponent {
    /// The component id from the manifest.
    pub id: String,
    /// `sha256:<hex>` of the component bytes: names the exact code that ran.
    pub digest: String,
    /// The world it was checked against.
    pub world: World,
    /// What it was loaded with (limits, environment, variables, outbound
    /// HTTP): a new version of the function is loaded with the same
    /// settings, so they carry over a swap.
    pub settings: ComponentSettings,
    /// Whether invocations count in the function's metrics; off while a
    /// candidate version is smoke-tested, so a refused upload's traps do
    /// not page anyone.
    metered: AtomicBool,
    function: Arc<str>,
    /// `settings.variables`, shared with every invocation.
    variables: Variables,
    /// `settings.allowed_outbound_hosts`, parsed.
    allowed: Arc<[AllowedHost]>,
    pre: Pre,
    runtime: Arc<Runtime>,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("id", &self.id)
            .field("digest", &self.digest)
            .field("world", &self.world)
            .finish_non_exhaustive()
    }
}

/// The `sha256:<hex>` digest of component bytes.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Runtime {
    /// Reads, compiles and type-checks the component at `path` for `world`.
    pub fn load_file(
        self: &Arc<Self>,
        id: &str,
        path: &Path,
        world: World,
        settings: ComponentSettings,
    ) -> Result<LoadedComponent, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            function: id.to_owned(),
            path: path.display().to_string(),
            source,
        })?;
        self.load(id, &bytes, world, settings)
    }

    /// Compiles and type-checks component `bytes` for `world`. Nothing runs.
    pub fn load(
        self: &Arc<Self>,
        id: &str,
        bytes: &[u8],
        world: World,
        settings: ComponentSettings,
    ) -> Result<LoadedComponent, LoadError> {
        let function = id.to_owned();
        let allowed = settings
            .allowed_outbound_hosts
            .iter()
            .map(|h| AllowedHost::parse(h))
            .collect::<Result<_, _>>()
            .map_err(|reason| LoadError::AllowedHosts {
                function: function.clone(),
                reason,
            })?;
        let component = Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile {
            function: function.clone(),
            reason: format!("{e:#}"),
        })?;
        check_export(&self.engine, &component, world).map_err(|reason| LoadError::WrongWorld {
            function: function.clone(),
            world: world.name(),
            reason,
        })?;
        let pre = self
            .link(&component, world)
            .map_err(|e| LoadError::Imports {
                function: function.clone(),
                reason: format!("{e:#}"),
            })?;
        let typed = component
            .component_type()
            .get_export(&self.engine, "handle-typed-batch")
            .is_some();
        let pre = match (world, pre) {
            (World::Fetcher, instance) => fetcher::FetcherPre::new(instance).map(Pre::Fetcher),
            (World::Transformer, instance) if typed => {
                typed_transformer::TypedTransformerPre::new(instance).map(Pre::TypedTransformer)
            }
            (World::Transformer, instance) => {
                transformer::TransformerPre::new(instance).map(Pre::Transformer)
            }
        }
        .map_err(|e| LoadError::WrongWorld {
            function: function.clone(),
            world: world.name(),
            reason: format!("{e:#}"),
        })?;
        Ok(LoadedComponent {
            function: Arc::from(function.as_str()),
            id: function,
            digest: digest(bytes),
            world,
            metered: AtomicBool::new(true),
            variables: Arc::new(settings.variables.clone()),
            allowed,
            settings,
            pre,
            runtime: Arc::clone(self),
        })
    }

    fn link(
        &self,
        component: &Component,
        world: World,
    ) -> wasmtime::Result<wasmtime::component::InstancePre<State>> {
        let mut linker = Linker::<State>::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        imports::variables::add_to_linker(&mut linker, |s| &mut s.variables)?;
        if world == World::Fetcher {
            fetcher::weir::function::cron_types::add_to_linker::<_, HasSelf<State>>(
                &mut linker,
                |s| s,
            )?;
            imports::producer::add_to_linker(&mut linker, |s| &mut s.outbox)?;
            imports::feed::add_to_linker(&mut linker, |s| &mut s.feed)?;
        }
        linker.instantiate_pre(component)
    }
}

impl crate::bindings::fetcher::weir::function::cron_types::Host for State {}

/// A readable check that the world's export exists, before bindgen's exact
/// type check (whose message is terser).
fn check_export(
    engine: &wasmtime::Engine,
    component: &Component,
    world: World,
) -> Result<(), String> {
    let ty = component.component_type();
    if world
        .exports()
        .iter()
        .any(|name| ty.get_export(engine, name).is_some())
    {
        return Ok(());
    }
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let wanted: Vec<String> = world.exports().iter().map(|e| format!("`{e}`")).collect();
    Err(format!(
        "missing export {}; the component exports [{}]",
        wanted.join(" or "),
        exports.join(", ")
    ))
}

impl LoadedComponent {
    /// The metrics this component's invocations report to.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.runtime.metrics
    }

    /// The runtime it was compiled by (new versions use the same one).
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Turns counting of invocations in the metrics on or off.
    pub fn set_metered(&self, metered: bool) {
        self.metered.store(metered, Ordering::Relaxed);
    }

    /// Runs one cron tick. On success returns what the guest sent.
    pub async fn handle_cron(
        &self,
        timestamp: u64,
        invocation: CronInvocation,
    ) -> (Result<CronResult, InvokeError>, GuestOutput) {
        let Pre::Fetcher(pre) = &self.pre else {
            return (Err(self.wrong_world()), GuestOutput::default());
        };
        let variables = if invocation.variables.is_empty() {
            Arc::clone(&self.variables)
        } else {
            let mut merged = (*self.variables).clone();
            merged.extend(invocation.variables);
            Arc::new(merged)
        };
        let mut store = self.store(Capabilities {
            variables,
            outbox: Outbox::new(invocation.outputs),
            feed: invocation.feed,
            hooks: self.hooks(),
        });
        let started = Instant::now();
        let result = self
            .deadline(async {
                // Called through a typed func, not bindgen's `call_concurrent`:
                // the WIT export is `async func`, yet a sync export of the
                // same shape (Spin's cron world) must run too.
                let instance = pre.instance_pre().instantiate_async(&mut store).await?;
                let handle = instance.get_typed_func::<(CronMetadata,), (Result<(), CronError>,)>(
                    &mut store,
                    "handle-cron-event",
                )?;
                let metadata = CronMetadata { timestamp };
                handle
                    .call_async(&mut store, (metadata,))
                    .await
                    .map(|(r,)| r)
            })
            .await;
        let result = match result {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(CronError::Other(message)))) => Err(self.guest_error(message)),
            Ok(Err(trap)) => Err(self.trap(&store, &trap)),
            Err(elapsed) => Err(elapsed),
        };
        self.record(started, &result, store.data().limiter.peak);
        let output = store.data().output();
        let state = store.data_mut();
        let outbox = std::mem::take(&mut state.outbox);
        let feed_timestamp = state.feed.0.as_ref().and_then(|f| f.observed);
        let result = result.map(|()| CronResult {
            messages: outbox.into_messages(),
            feed_timestamp,
        });
        (result, output)
    }

    /// Runs one batch. On success returns its rows and rejects, every one
    /// naming a message of the batch, within [`Limits::check_output`]'s caps.
    pub async fn handle_batch(
        &self,
        messages: &[KafkaMessage],
    ) -> (Result<BatchOutput, InvokeError>, GuestOutput) {
        let pre = match &self.pre {
            Pre::Fetcher(_) => return (Err(self.wrong_world()), GuestOutput::default()),
            Pre::Transformer(pre) => BatchPre::Json(pre),
            Pre::TypedTransformer(pre) => BatchPre::Typed(pre),
        };
        let expected = messages.len();
        let mut store = self.store(Capabilities {
            variables: Arc::clone(&self.variables),
            outbox: Outbox::default(),
            feed: None,
            hooks: self.hooks(),
        });
        let started = Instant::now();
        let headers: Vec<_> = messages
            .iter()
            .map(KafkaMessage::borrowed_headers)
            .collect();
        let input: Vec<_> = messages
            .iter()
            .zip(&headers)
            .map(|(m, h)| m.borrowed(h))
            .collect();
        let result = self
            .deadline(async {
                let output = match pre {
                    BatchPre::Typed(pre) => {
                        let instance = pre.instantiate_async(&mut store).await?;
                        match instance.call_handle_typed_batch(&mut store, &input).await? {
                            Ok(output) => Ok(BatchOutput::from(output)),
                            Err(BatchError::Other(message)) => Err(message),
                        }
                    }
                    BatchPre::Json(pre) => {
                        let instance = pre.instantiate_async(&mut store).await?;
                        match instance.call_handle_batch(&mut store, &input).await? {
                            Ok(outcomes) if outcomes.len() == expected => {
                                Ok(BatchOutput::from_outcomes(
                                    outcomes.into_iter().map(Outcome::from).collect(),
                                ))
                            }
                            Ok(outcomes) => Err(format!(
                                "returned {} outcomes for {expected} messages",
                                outcomes.len()
                            )),
                            Err(BatchError::Other(message)) => Err(message),
                        }
                    }
                };
                wasmtime::Result::Ok(output.and_then(|output| {
                    output.check_sources(expected)?;
                    self.settings.limits.check_output(&output, expected)?;
                    Ok(output)
                }))
            })
            .await;
        let result = match result {
            Ok(Ok(Ok(output))) => Ok(output),
            Ok(Ok(Err(message))) => Err(self.guest_error(message)),
            Ok(Err(trap)) => Err(self.trap(&store, &trap)),
            Err(elapsed) => Err(elapsed),
        };
        self.record(started, &result, store.data().limiter.peak);
        (result, store.data().output())
    }

    fn hooks(&self) -> OutboundHttp {
        OutboundHttp::new(
            Arc::clone(&self.function),
            Arc::clone(&self.allowed),
            self.settings.http,
            Arc::clone(&self.runtime.metrics),
        )
    }

    fn store(&self, caps: Capabilities) -> Store<State> {
        let state = State::new(
            &self.settings.environment,
            self.settings.limits.max_memory,
            caps,
        );
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Every epoch tick the guest hands its thread back to the executor,
        // so a guest that computes without pause delays the host's other
        // work (other functions, triggers, /metrics) by a tick at most
        // instead of holding a worker thread until its deadline; at the
        // deadline it is stopped.
        let deadline = Instant::now() + self.settings.limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Bounds the whole call in wall-clock time too: epoch interruption only
    /// stops guest code, not a guest parked in an async host call.
    async fn deadline<T>(&self, call: impl Future<Output = T>) -> Result<T, InvokeError> {
        let grace = self.runtime.config.epoch_tick * 2;
        tokio::time::timeout(self.settings.limits.timeout + grace, call)
            .await
            .map_err(|_| InvokeError::Trap {
                function: self.id.clone(),
                kind: TrapKind::Timeout,
                message: format!(
                    "deadline of {:?} passed while waiting on the host",
                    self.settings.limits.timeout
                ),
            })
    }

    fn trap(&self, store: &Store<State>, error: &wasmtime::Error) -> InvokeError {
        let kind = if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            TrapKind::Timeout
        } else if store.data().limiter.refused {
            TrapKind::Memory
        } else {
            TrapKind::Trap
        };
        let mut message = format!("{error:#}");
        if kind == TrapKind::Timeout {
            message = format!(
                "deadline of {:?} passed: {message}",
                self.settings.limits.timeout
            );
        } else if kind == TrapKind::Memory {
            message = format!(
                "memory cap of {} bytes reached: {message}",
                self.settings.limits.max_memory
            );
        }
        InvokeError::Trap {
            function: self.id.clone(),
            kind,
            message,
        }
    }

    fn guest_error(&self, message: String) -> InvokeError {
        InvokeError::Guest {
            function: self.id.clone(),
            message,
        }
    }

    fn wrong_world(&self) -> InvokeError {
        InvokeError::Trap {
            function: self.id.clone(),
            kind: TrapKind::Trap,
            message: format!("component was loaded for the `{}` world", self.world.name()),
        }
    }

    fn record<T>(&self, started: Instant, result: &Result<T, InvokeError>, memory: usize) {
        if !self.metered.load(Ordering::Relaxed) {
            return;
        }
        let metrics = &self.runtime.metrics;
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        metrics
            .invocations
            .with_label_values(&[self.id.as_str(), outcome])
            .inc();
        metrics
            .invocation_duration
            .with_label_values(&[self.id.as_str()])
            .observe(started.elapsed().as_secs_f64());
        #[expect(clippy::cast_precision_loss, reason = "a histogram sample")]
        metrics
            .invocation_memory
            .with_label_values(&[self.id.as_str()])
            .observe(memory as f64);
        if let Err(InvokeError::Trap { kind, .. }) = result {
            metrics
                .traps
                .with_label_values(&[self.id.as_str(), kind.as_str()])
                .inc();
        }
    }
}
