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
