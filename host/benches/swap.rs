//! Hot swap under load: the vehicle transform runs on a steady stream of
//! vehicle messages while the benchmark deploys a new version through the
//! admin API over and over (two builds that differ by a custom section, so
//! each deploy compiles and smoke-tests a real 1 MB-class component).
//! Measures the pause (how long a switch holds the stream back), the deploy
//! call's latency (compile + smoke test + wait for the batch boundary), and
//! checks that every message landed once.
//!
//! `cargo bench --bench swap` prints Markdown for BENCHMARKS.md (100 swaps);
//! under `cargo test` it runs 5.
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark that cannot unwrap should stop loudly"
)]

#[path = "../tests/guests/locate.rs"]
#[expect(dead_code, reason = "this bench uses only the functions")]
mod locate;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gtfs_rt::sample::Sample;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord, Producer as _};
use tokio_util::sync::CancellationToken;
use weir::admin::AdminConfig;
use weir::run::KafkaMode;
use weir::{Host, HostConfig, Manifest, RuntimeConfig};

const TOKEN: &str = "bench";

/// `bytes` with a custom section named `weir-bench` holding `tag`: the
/// same code under another digest.
fn variant(bytes: &[u8], tag: u8) -> Vec<u8> {
    let name = b"weir-bench";
    let mut payload = vec![u8::try_from(name.len()).unwrap()];
    payload.extend_from_slice(name);
    payload.push(tag);
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(u8::try_from(payload.len()).unwrap());
    out.extend(payload);
    out
}

fn manifest(dir: &Path, topic: &str) -> std::path::PathBuf {
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let text = format!(
        r#"
spin_manifest_version = 2
[application]
name = "swap-bench"
[[trigger.kafka]]
component = "vehicle-transform"
topics = ["{topic}"]
batch = {{ max_records = 2000, max_ms = 250 }}
tables = {{ vehicle_positions = {{ uri = "data/vehicle_positions", partition_by = ["date"], schema = "{schema}" }} }}
dead_letter = {{ uri = "data/dead_letters", partition_by = ["date"] }}
[component.vehicle-transform]
source = "{source}"
"#,
        schema = functions
            .join("vehicle-transform/tables/vehicle_positions.json")
            .display(),
        source = locate::function("vehicle-transform").display(),
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    weir::telemetry::init();
    let full = std::env::args().any(|a| a == "--bench");
    let swaps = if full { 100 } else { 5 };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(swaps));
}

async fn run(swaps: usize) {
    let cluster = MockCluster::<DefaultProducerContext>::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let topic = "bench_swap";
    cluster.create_topic(topic, 4, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let host = Host::start(
        HostConfig {
            manifest: Manifest::load(&manifest(dir.path(), topic), Vec::new()).unwrap(),
            listen: "127.0.0.1:0".parse().unwrap(),
            runtime: RuntimeConfig::default(),
            once: false,
            data_dir: Some(dir.path().join("data")),
            kafka: KafkaMode::Brokers(brokers.clone()),
            admin: AdminConfig {
                token: Some(TOKEN.to_owned()),
                max_upload_bytes: None,
                upload_timeout: None,
            },
            watch: None,
            parallelism: weir::trigger::kafka::default_parallelism(),
        },
        shutdown.clone(),
    )
    .await
    .unwrap();

    // A steady stream: 4,000 vehicle messages/s until told to stop.
    let messages: Vec<(String, Vec<u8>)> =
        gtfs_rt::messages(&Sample::new(2000, 3).vehicle_positions(1_764_000_000))
            .map(|m| (m.key, m.value))
            .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let streaming = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                for _ in 0..40 {
                    let (key, value) = &messages[i % messages.len()];
                    producer
                        .send_result(FutureRecord::to(topic).key(key).payload(value))
                        .map_err(|(e, _)| e)
                        .unwrap();
                    i += 1;
                }
            }
            producer.flush(Duration::from_secs(30)).unwrap();
            sent.store(i, Ordering::Relaxed);
        })
    };
    let rows = || {
        host.metrics
            .delta_rows_written
            .with_label_values(&["vehicle-transform", "vehicle_positions"])
            .get()
    };
    let until_rows_after = |before: u64| async move {
        while rows() <= before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    until_rows_after(0).await;

    let original = std::fs::read(locate::function("vehicle-transform")).unwrap();
    let builds = [variant(&original, 1), variant(&original, 2)];
    let client = reqwest::Client::new();
    let url = format!("http://{}/functions/vehicle-transform/component", host.addr);
    let (mut pauses, mut calls) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for i in 0..swaps {
        let call = Instant::now();
        let response = client
            .put(&url)
            .bearer_auth(TOKEN)
            .body(builds[i % 2].clone())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "swap {i} refused");
        let swap: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(swap["result"], "swapped");
        calls.push(call.elapsed().as_secs_f64() * 1000.0);
        pauses.push(swap["pause_ms"].as_f64().unwrap());
        // One commit by the new version before the next deploy.
        until_rows_after(rows()).await;
    }
    let swapping = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    streaming.await.unwrap();
    let produced = sent.load(Ordering::Relaxed) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while rows() < produced && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let written = rows();
    shutdown.cancel();
    host.wait().await.unwrap();
    assert_eq!(written, produced, "rows written vs messages produced");

    pauses.sort_by(f64::total_cmp);
    calls.sort_by(f64::total_cmp);
    println!(
        "| swaps | pause p50 | pause p99 | pause max | deploy call p50 | deploy call p99 | messages | rows written |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {swaps} in {:.1} s | {:.3} ms | {:.3} ms | {:.3} ms | {:.0} ms | {:.0} ms | {produced} | {written} |",
        swapping.as_secs_f64(),
        percentile(&pauses, 0.5),
        percentile(&pauses, 0.99),
        pauses[pauses.len() - 1],
        percentile(&calls, 0.5),
        percentile(&calls, 0.99),
    );
}
