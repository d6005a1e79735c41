//! The embedded Kafka-protocol broker of local mode: tansu with sqlite
//! storage under the data dir, so messages, watermarks and committed
//! offsets survive a restart (librdkafka's in-memory mock cluster would lose
//! them). Used by `weir up` without brokers and by `weir dev-broker`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use tokio::task::JoinHandle;
use url::Url;

/// A running embedded broker. Dropping it stops the listener, but tansu's
/// storage tasks keep the sqlite log locked until the process exits: restart
/// a broker on the same log in a new process (as `weir dev-broker` does).
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// `host:port` for `bootstrap.servers`.
    pub bootstrap: String,
    task: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Starts a broker on 127.0.0.1:`port` (0 picks a free port) whose log
    /// lives in `dir/broker.db`, and waits until it accepts connections.
    pub async fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        let port = match port {
            // tansu binds the listener itself and must advertise the real
            // port up front: take a free one from the OS first.
            0 => TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()?
                .port(),
            port => port,
        };
        let address = format!("127.0.0.1:{port}");
        let listener = Url::parse(&format!("tcp://{address}"))?;
        let db = std::path::absolute(dir.join("broker.db"))?;
        // tansu joins the URL path onto its working directory after dropping
        // one leading `/`; a second `/` keeps an absolute path absolute.
        let storage = Url::parse(&format!("sqlite:///{}", db.display()))?;
        let mut broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
            .node_id(1)
            .cluster_id("weir-local")
            .incarnation_id(uuid::Uuid::new_v4())
            .advertised_listener(listener.clone())
            .listener(listener)
            .storage(storage)
            .silent(true)
            .build()
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the embedded broker: {e:?}"))?;
        let task = tokio::spawn(async move {
            if let Err(e) = broker.serve(tokio::time::Instant::now()).await {
                tracing::error!(error = ?e, "embedded broker stopped");
            }
        });
        let addr: SocketAddr = address.parse()?;
        let ready = async {
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), ready)
            .await
            .with_context(|| {
                format!("the embedded broker did not listen on {address} within 30 s")
            })?;
        tracing::info!(bootstrap = %address, log = %db.display(), "embedded Kafka broker (tansu, sqlite) started");
        Ok(Self {
            bootstrap: address,
            task,
        })
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
