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

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use tokio::sync::oneshot;
use url::Url;

/// A running embedded broker; dropping it stops it (waiting for its thread).
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// `host:port` for `bootstrap.servers`.
    pub bootstrap: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
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
        let listener = Url::parse(&format!("tcp://{listen}"))?;
        let advertised = Url::parse(&format!("tcp://{address}"))
            .with_context(|| format!("cannot advertise `{address}`"))?;
        let db = std::path::absolute(dir.join("broker.db"))?;
        // tansu joins the URL path onto its working directory after dropping
        // one leading `/`; a second `/` keeps an absolute path absolute.
        let storage = Url::parse(&format!("sqlite:///{}", db.display()))?;
        let (built, ready) = oneshot::channel();
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("weir-broker".into())
            .spawn(move || serve(listener, advertised, storage, built, stopped))
            .context("cannot start the embedded broker's thread")?;
        let mut broker = Self {
            bootstrap: address,
            stop: Some(stop),
            thread: Some(thread),
        };
        ready
            .await
            .context("the embedded broker's thread ended while starting")??;
        // A wildcard listener is probed on loopback.
        let addr = match listen.ip() {
            ip if ip.is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, listen.port())),
            _ => listen,
        };
        let thread = broker.thread.as_ref();
        let listening = async {
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                // A listener that cannot bind ends the thread (its log says why).
                if thread.is_some_and(JoinHandle::is_finished) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let timed_out = tokio::time::timeout(Duration::from_secs(30), listening)
            .await
            .is_err();
        if timed_out || broker.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            broker.halt();
            anyhow::bail!(
                "the embedded broker did not listen on {listen} ({})",
                if timed_out {
                    "not within 30 s"
                } else {
                    "it stopped"
                }
            );
        }
        tracing::info!(bootstrap = %broker.bootstrap, log = %db.display(), "embedded Kafka broker (tansu, sqlite) started");
        Ok(broker)
    }

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
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The broker's thread: builds tansu on a runtime of its own, reports
/// through `built`, serves until `stop`, then drops the runtime and with it
/// every task tansu spawned.
fn serve(
    listener: Url,
    advertised: Url,
    storage: Url,
    built: oneshot::Sender<anyhow::Result<()>>,
    stop: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
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
                    tracing::error!(error = ?e, "embedded broker stopped");
                }
            }
            _ = stop => {}
        }
    });
}
