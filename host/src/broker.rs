//! The embedded Kafka-protocol broker of local mode: tansu with sqlite
//! storage under the data dir, so messages, watermarks and committed
//! offsets survive a restart (librdkafka's in-memory mock cluster would lose
//! them). Used by `weir up` without brokers and by `weir dev-broker`.
//!
//! tansu runs on a single-threaded runtime of its own, on its own thread.
//! Stopping it ends that runtime, which drops every tansu task unpolled: a
//! request in flight then is dropped silently, where on the host's shared
//! runtime it was polled once more during shutdown and logged an error
//! (measured in CI: `JoinError::Cancelled` lines at the end of a clean
//! `weir up --for`), and the sqlite log is closed, so a new broker may open
//! it in the same process.
//!
//! tansu's storage panics when sqlite fails under it (a full disk, measured:
//! docs/decisions.md) and answers nothing afterwards. A panic hook knows the
//! broker's threads; the broker's supervisor then logs what failed, counts
//! it, and starts the broker again in place — same address, same log — with
//! a growing pause while it keeps failing, so clients reconnect to it once
//! there is space again.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use url::Url;

/// The pause before the first restart of a failed broker; it doubles while
/// restarts keep failing, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// A running embedded broker; dropping it stops it (waiting for its thread).
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// `host:port` for `bootstrap.servers`.
    pub bootstrap: String,
    shared: Arc<Shared>,
    supervisor: CancellationToken,
}

/// Run after each failure, before the broker starts again.
type OnFailure = Box<dyn Fn() + Send + Sync>;

/// What the broker and its supervisor share.
struct Shared {
    spec: Spec,
    running: Mutex<Running>,
    failure: Arc<Failure>,
    on_failure: Mutex<Vec<OnFailure>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// Where a broker listens and keeps its log.
#[derive(Debug, Clone)]
struct Spec {
    listen: SocketAddr,
    listener: Url,
    advertised: Url,
    storage: Url,
    db: PathBuf,
}

/// One broker thread.
#[derive(Debug, Default)]
struct Running {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Tells the broker's thread to stop and waits for it: a few
    /// milliseconds while its runtime drops tansu's tasks.
    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the embedded broker's thread panicked");
        }
    }

    fn finished(&self) -> bool {
        self.thread.as_ref().is_some_and(JoinHandle::is_finished)
    }
}

/// A panic on one of the broker's threads, reported by the panic hook.
#[derive(Debug, Default)]
struct Failure {
    what: Mutex<Option<String>>,
    notify: Notify,
}

impl Failure {
    fn report(&self, what: String) {
        let mut slot = self.what.lock().unwrap_or_else(PoisonError::into_inner);
        // The first panic says why; those that follow it are its echo.
        slot.get_or_insert(what);
        self.notify.notify_one();
    }

    fn take(&self) -> Option<String> {
        self.what
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

thread_local! {
    /// On a broker's threads: where a panic there is reported.
    static BROKER_FAILURE: RefCell<Option<Arc<Failure>>> = const { RefCell::new(None) };
}

/// Installs (once per process) the panic hook that reports panics on a
/// broker's threads to its supervisor, then runs the hook before it.
fn hook_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let failure = BROKER_FAILURE
                .try_with(|f| f.borrow().clone())
                .ok()
                .flatten();
            if let Some(failure) = failure {
                let message = info.payload_as_str().unwrap_or("(no message)");
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                failure.report(format!("{message}{at}"));
            }
            previous(info);
        }));
    });
}

impl EmbeddedBroker {
    /// Starts a broker on 127.0.0.1:`port` (0 picks a free port) whose log
    /// lives in `dir/broker.db`, and waits until it accepts connections.
    pub async fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        Self::start_on(dir, SocketAddr::from((Ipv4Addr::LOCALHOST, port)), None).await
    }

    /// Starts a broker listening on `listen` (port 0 picks a free port) that
    /// tells clients to connect to `advertise` (a host name, e.g. a compose
    /// service's; default: the listening address), and waits until it
    /// accepts connections.
    pub async fn start_on(
        dir: &Path,
        listen: SocketAddr,
        advertise: Option<&str>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        let listen = match listen.port() {
            // tansu binds the listener itself and must advertise the real
            // port up front: take a free one from the OS first.
            0 => TcpListener::bind(listen)?.local_addr()?,
            _ => listen,
        };
        let address = match advertise {
            Some(host) => format!("{host}:{}", listen.port()),
            None => listen.to_string(),
        };
        let db = std::path::absolute(dir.join("broker.db"))?;
        let spec = Spec {
            listen,
            listener: Url::parse(&format!("tcp://{listen}"))?,
            advertised: Url::parse(&format!("tcp://{address}"))
                .with_context(|| format!("cannot advertise `{address}`"))?,
            // tansu joins the URL path onto its working directory after
            // dropping one leading `/`; a second `/` keeps an absolute
            // path absolute.
            storage: Url::parse(&format!("sqlite:///{}", db.display()))?,
            db,
        };
        hook_panics();
        let failure = Arc::new(Failure::default());
        let running = launch(&spec, &failure).await?;
        tracing::info!(bootstrap = %address, log = %spec.db.display(), "embedded Kafka broker (tansu, sqlite) started");
        let shared = Arc::new(Shared {
            spec,
            running: Mutex::new(running),
            failure,
            on_failure: Mutex::default(),
        });
        let supervisor = CancellationToken::new();
        tokio::spawn(supervise(Arc::clone(&shared), supervisor.clone()));
        Ok(Self {
            bootstrap: address,
            shared,
            supervisor,
        })
    }

    /// Runs `action` after each failure of the broker, before it starts
    /// again: counting it, and renewing the idempotent producers of its
    /// clients (the restarted broker may not know their producer ids, and
    /// tansu 0.6 panics on a batch of a producer it does not know).
    pub fn on_failure(&self, action: impl Fn() + Send + Sync + 'static) {
        self.shared
            .on_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(action));
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.supervisor.cancel();
        self.shared
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .halt();
    }
}

/// Starts a broker thread for `spec` and waits until it accepts
/// connections; a panic on its threads is reported to `failure`.
async fn launch(spec: &Spec, failure: &Arc<Failure>) -> anyhow::Result<Running> {
    let (built, ready) = oneshot::channel();
    let (stop, stopped) = oneshot::channel();
    let (listener, advertised, storage) = (
        spec.listener.clone(),
        spec.advertised.clone(),
        spec.storage.clone(),
    );
    let failure = Arc::clone(failure);
    let thread = std::thread::Builder::new()
        .name("weir-broker".into())
        .spawn(move || serve(listener, advertised, storage, failure, built, stopped))
        .context("cannot start the embedded broker's thread")?;
    let mut running = Running {
        stop: Some(stop),
        thread: Some(thread),
    };
    match ready.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            running.halt();
            return Err(e);
        }
        Err(_) => {
            running.halt();
            anyhow::bail!("the embedded broker's thread ended while starting");
        }
    }
    // A wildcard listener is probed on loopback.
    let listen = spec.listen;
    let addr = match listen.ip() {
        ip if ip.is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, listen.port())),
        _ => listen,
    };
    let listening = async {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            // A listener that cannot bind ends the thread (its log says why).
            if running.finished() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let timed_out = tokio::time::timeout(Duration::from_secs(30), listening)
        .await
        .is_err();
    if timed_out || running.finished() {
        running.halt();
        anyhow::bail!(
            "the embedded broker did not listen on {listen} ({})",
            if timed_out {
                "not within 30 s"
            } else {
                "it stopped"
            }
        );
    }
    Ok(running)
}

/// Waits for the broker to fail, says so, and starts it again in place,
/// pausing longer while it keeps failing, until `stop`.
async fn supervise(shared: Arc<Shared>, stop: CancellationToken) {
    let mut pause = FIRST_PAUSE;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = shared.failure.notify.notified() => {}
        }
        let Some(what) = shared.failure.take() else {
            continue;
        };
        tracing::error!(
            log = %shared.spec.db.display(),
            panic = %what,
            restart_in_s = pause.as_secs(),
            "the embedded Kafka broker failed: its storage stopped and it answers no request; restarting it. A full disk under its log is the usual cause (weir_disk_free_bytes)"
        );
        for action in shared
            .on_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            action();
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        let halted = {
            let shared = Arc::clone(&shared);
            tokio::task::spawn_blocking(move || {
                std::mem::take(
                    &mut *shared
                        .running
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner),
                )
                .halt();
            })
        };
        let _ = halted.await;
        if stop.is_cancelled() {
            return;
        }
        // What the stopped broker's threads reported while they ran on.
        let _ = shared.failure.take();
        match launch(&shared.spec, &shared.failure).await {
            Ok(running) => {
                *shared
                    .running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = running;
                tracing::info!(log = %shared.spec.db.display(), "the embedded Kafka broker started again");
            }
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "the embedded Kafka broker did not start again; trying later"
                );
                shared.failure.report(format!("{e:#}"));
            }
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// The broker's thread: builds tansu on a runtime of its own, reports
/// through `built`, serves until `stop`, then drops the runtime and with it
/// every task tansu spawned. Panics on its threads go to `failure`.
fn serve(
    listener: Url,
    advertised: Url,
    storage: Url,
    failure: Arc<Failure>,
    built: oneshot::Sender<anyhow::Result<()>>,
    stop: oneshot::Receiver<()>,
) {
    BROKER_FAILURE.with(|f| *f.borrow_mut() = Some(Arc::clone(&failure)));
    let on_start = Arc::clone(&failure);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || {
            BROKER_FAILURE.with(|f| *f.borrow_mut() = Some(Arc::clone(&on_start)));
        })
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = built.send(Err(
                anyhow::Error::new(e).context("cannot start its runtime")
            ));
            return;
        }
    };
    runtime.block_on(async move {
        let broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
            .node_id(1)
            .cluster_id("weir-local")
            .incarnation_id(uuid::Uuid::new_v4())
            .advertised_listener(advertised)
            .listener(listener)
            .storage(storage)
            .silent(true)
            .build()
            .await;
        let mut broker = match broker {
            Ok(broker) => broker,
            Err(e) => {
                let _ = built.send(Err(anyhow::anyhow!(
                    "cannot start the embedded broker: {e:?}"
                )));
                return;
            }
        };
        let _ = built.send(Ok(()));
        tokio::select! {
            served = broker.serve(tokio::time::Instant::now()) => {
                if let Err(e) = served {
                    failure.report(format!("it stopped serving: {e:?}"));
                }
            }
            _ = stop => {}
        }
    });
}
