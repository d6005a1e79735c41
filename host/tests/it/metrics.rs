//! `/metrics`, `/healthz` and `/readyz` of a host running in-process.

use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weir::{Host, HostConfig, Manifest, RuntimeConfig};

use crate::support::{manifest, sample};

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "metrics-test"
[[trigger.cron]]
component = "hello"
cron_expression = "* * * * * *"
[component.hello]
source = "{guest:ok}"
"#;

async fn get(client: &reqwest::Client, addr: SocketAddr, path: &str) -> (u16, String) {
    let response = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_endpoint_shows_counters_moving() {
    let (_dir, path) = manifest(APP);
    let config = HostConfig {
        manifest: Manifest::load(&path, Vec::new()).unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        runtime: RuntimeConfig::default(),
        once: false,
        data_dir: None,
        kafka: weir::run::KafkaMode::Off,
        admin: weir::admin::AdminConfig::default(),
        watch: None,
        parallelism: weir::trigger::kafka::default_parallelism(),
    };
    let shutdown = CancellationToken::new();
    let host = Host::start(config, shutdown.clone()).await.unwrap();
    let addr = host.addr;
    let client = reqwest::Client::new();
    assert_eq!(get(&client, addr, "/healthz").await.0, 200);
    assert_eq!(get(&client, addr, "/readyz").await.0, 200);

    let ok = r#"weir_invocations_total{function="hello",outcome="ok"}"#;
    let (status, first) = get(&client, addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        first.contains(r#"weir_component_info{digest="sha256:"#),
        "{first}"
    );
    assert!(first.contains("weir_build_info{version="), "{first}");
    let before = sample(&first, ok).unwrap_or(0.0);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, second) = get(&client, addr, "/metrics").await;
    let after = sample(&second, ok).unwrap_or(0.0);
    assert!(
        after >= before + 2.0,
        "counter did not move: {before} -> {after}\n{second}"
    );
    assert!(
        second.contains(r#"weir_invocation_duration_seconds_count{function="hello"}"#),
        "{second}"
    );
    // Peak linear memory per invocation: a Rust guest has at least a page.
    let memory = sample(
        &second,
        r#"weir_invocation_memory_bytes_sum{function="hello"}"#,
    )
    .unwrap_or(0.0);
    let calls = sample(
        &second,
        r#"weir_invocation_memory_bytes_count{function="hello"}"#,
    )
    .unwrap_or(0.0);
    assert!(calls >= 2.0 && memory / calls >= 65_536.0, "{second}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), host.wait())
        .await
        .unwrap()
        .unwrap();
}

/// `/readyz` of `addr` until it answers `status` with a body containing
/// `naming`; panics after `limit`.
async fn wait_readyz(addr: SocketAddr, status: u16, naming: &str, limit: Duration) {
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    loop {
        let (now, body) = get(&client, addr, "/readyz").await;
        if now == status && body.contains(naming) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "/readyz answers {now} {body:?}, not {status} naming {naming:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_brokers_do_not_answer_and_200_once_they_do() {
    let topic = "readyz_vehicles";
    let (cluster, brokers) = crate::support::cluster(topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("delta");
    let manifest = dir.path().join("spin.toml");
    std::fs::write(&manifest, crate::delta::manifest_text(topic, &data, 100)).unwrap();
    let (host, shutdown) =
        crate::delta::start_with(&manifest, &brokers, dir.path(), Vec::new()).await;
    let reachable = r#"weir_kafka_reachable{trigger="vehicles"}"#;
    wait_readyz(host.addr, 200, "ready", Duration::from_secs(30)).await;
    assert_eq!(sample(&host.metrics.encode(), reachable), Some(1.0));

    cluster.broker_down(1).unwrap();
    // The lag probe asks every 10 s and waits 10 s for an answer.
    wait_readyz(
        host.addr,
        503,
        "the Kafka brokers do not answer trigger(s) vehicles",
        Duration::from_secs(40),
    )
    .await;
    assert_eq!(sample(&host.metrics.encode(), reachable), Some(0.0));

    cluster.broker_up(1).unwrap();
    wait_readyz(host.addr, 200, "ready", Duration::from_secs(40)).await;
    assert_eq!(sample(&host.metrics.encode(), reachable), Some(1.0));
    // The stream goes on.
    let sent = crate::delta::messages(50, 1_764_000_000);
    crate::delta::produce(&brokers, topic, &sent).await;
    let (rows, letters) =
        crate::delta::wait_for_all(&data, sent.len(), Duration::from_secs(30)).await;
    let malformed = sent.iter().filter(|(_, _, bad)| *bad).count();
    crate::delta::assert_exactly_once(&rows, &letters, sent.len() - malformed, malformed);
    shutdown.cancel();
    host.wait().await.unwrap();
}
