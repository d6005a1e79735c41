//! Shared fixtures: the guest components (built once per test run), a
//! runtime, and helpers to write manifests into temp dirs.

use std::path::PathBuf;
use std::sync::Arc;

use weir::{Metrics, Runtime, RuntimeConfig};

#[path = "../guests/locate.rs"]
mod locate;
pub use locate::{function, guest};

/// A runtime with its own metrics.
pub fn runtime() -> Arc<Runtime> {
    Arc::new(Runtime::new(RuntimeConfig::default(), Arc::new(Metrics::new())).expect("runtime"))
}

/// Writes `text` as `spin.toml` in a new temp dir, with `{guest:NAME}`
/// replaced by the path of that built guest.
pub fn manifest(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = text.to_owned();
    while let Some(start) = text.find("{guest:") {
        let end = start + text[start..].find('}').expect("closing brace");
        let path = guest(&text[start + 7..end]);
        text.replace_range(start..=end, &path.display().to_string());
    }
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, text).expect("write manifest");
    (dir, path)
}

/// The value of the sample `name{labels}` in Prometheus text, if present.
pub fn sample(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name_and_labels)?;
        rest.trim().parse().ok()
    })
}

/// Settings with `limits` and guest environment `environment`.
pub fn settings(
    limits: weir::manifest::Limits,
    environment: Vec<(String, String)>,
) -> weir::runtime::ComponentSettings {
    weir::runtime::ComponentSettings {
        http: (&limits).into(),
        limits,
        environment,
        ..Default::default()
    }
}

/// A cron invocation allowed to send to `outputs`.
pub fn outputs(outputs: Arc<[String]>) -> weir::runtime::CronInvocation {
    weir::runtime::CronInvocation {
        outputs,
        ..Default::default()
    }
}

/// Loads guest fixture `name` as function `id` for `world`.
pub fn load(
    rt: &Arc<Runtime>,
    id: &str,
    name: &str,
    world: weir::World,
    limits: weir::manifest::Limits,
    environment: Vec<(String, String)>,
) -> weir::LoadedComponent {
    rt.load_file(id, &guest(name), world, settings(limits, environment))
        .unwrap()
}

/// librdkafka's in-process mock cluster holding `topic` with `partitions`
/// partitions, and its bootstrap servers.
pub fn cluster(
    topic: &str,
    partitions: i32,
) -> (
    rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(topic, partitions, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// The `/metrics` text of the host serving on 127.0.0.1:`port`.
pub async fn scrape(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
