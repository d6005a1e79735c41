//! Fetch + decode + JSON + produce of a 10,000-vehicle VehiclePositions feed:
//! the gtfs-fetch component in Wasm, the same code compiled natively, and the
//! seed-style Python producer (`bench/python_producer.py`), on the same local
//! feed server and the same broker (librdkafka's mock cluster, reachable from
//! the Python process over TCP). `cargo bench --bench fetch` prints a
//! Markdown table for BENCHMARKS.md; under `cargo test` it runs one round.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gtfs_rt::sample::Sample;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio_util::sync::CancellationToken;
use weir::imports::producer::OutMessage;
use weir::manifest::Limits;
use weir::runtime::{ComponentSettings, CronInvocation};
use weir::sink::Publish as _;
use weir::sink::kafka::{KafkaSink, KafkaSinkConfig};
use weir::{Metrics, Runtime, RuntimeConfig, World};
use weir_devfeed::{self as devfeed, FeedClock};

#[path = "../tests/guests/locate.rs"]
#[expect(dead_code, reason = "this bench uses only the functions")]
mod locate;

const VEHICLES: u32 = 10_000;
const T0: u64 = 1_764_000_000;

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The native twin of gtfs-fetch: same crate for decode and JSON.
async fn native(
    client: &reqwest::Client,
    url: &str,
    topic: &str,
) -> anyhow::Result<Vec<OutMessage>> {
    let body = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let feed = gtfs_rt::decode(&body)?;
    Ok(gtfs_rt::messages(&feed)
        .map(|m| OutMessage {
            topic: topic.to_owned(),
            key: Some(m.key.into_bytes()),
            value: m.value,
        })
        .collect())
}

fn python(url: &str, brokers: &str, iterations: usize) -> Result<Vec<Duration>, String> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/python_producer.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .args([url, brokers, "bench_python", &iterations.to_string()])
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "python producer failed (pip install gtfs-realtime-bindings confluent-kafka requests): {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ));
    }
    let seconds: Vec<f64> = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    Ok(seconds.into_iter().map(Duration::from_secs_f64).collect())
}

fn main() -> anyhow::Result<()> {
    let benching = std::env::args().any(|a| a == "--bench");
    let iterations = if benching { 10 } else { 1 };
    let cluster = MockCluster::<DefaultProducerContext>::new(1)?;
    let brokers = cluster.bootstrap_servers();
    for topic in ["bench_wasm", "bench_native", "bench_python"] {
        cluster.create_topic(topic, 3, 1)?;
    }
    let tokio = tokio::runtime::Runtime::new()?;
    let (wasm, native_times, url) = tokio.block_on(async {
        let now = Arc::new(AtomicU64::new(T0));
        let clock = FeedClock::Manual(Arc::clone(&now));
        let (addr, server) = devfeed::serve(
            "127.0.0.1:0".parse()?,
            Sample::new(VEHICLES, 1),
            clock,
            CancellationToken::new(),
        )
        .await?;
        tokio::spawn(server);
        let url = format!("http://{addr}/vehicle_positions.pb");
        let metrics = Arc::new(Metrics::new());
        let sink = KafkaSink::new(KafkaSinkConfig::new(&brokers), Arc::clone(&metrics))?;
        let runtime = Arc::new(Runtime::new(RuntimeConfig::default(), metrics)?);
        let settings = ComponentSettings {
            allowed_outbound_hosts: vec![format!("http://{addr}")],
            limits: Limits {
                max_memory: 512 << 20,
                ..Limits::default()
            },
            ..Default::default()
        };
        let fetcher = runtime.load_file(
            "gtfs-fetch",
            &locate::function("gtfs-fetch"),
            World::Fetcher,
            settings,
        )?;
        let client = reqwest::Client::new();
        let (mut wasm, mut native_times) = (Vec::new(), Vec::new());
        // One warm-up round, then alternate so both see the same machine load.
        for i in 0..=iterations {
            now.store(T0 + 30 * i as u64, Ordering::SeqCst);
            // The server generates and encodes this second's feed on the
            // first request; neither timed fetch pays for that.
            client.get(&url).send().await?.bytes().await?;
            let started = Instant::now();
            let invocation = CronInvocation {
                outputs: Arc::from(vec!["bench_wasm".to_owned()]),
                variables: BTreeMap::from([
                    ("feed_url".to_owned(), url.clone()),
                    ("topic".to_owned(), "bench_wasm".to_owned()),
                ]),
                feed: None,
            };
            let messages = fetcher
                .handle_cron(0, invocation)
                .await
                .0
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .messages;
            anyhow::ensure!(
                messages.len() == VEHICLES as usize,
                "wasm sent {} messages",
                messages.len()
            );
            let wasm_compute = started.elapsed();
            sink.publish("wasm", messages).await?;
            let wasm_time = started.elapsed();

            let started = Instant::now();
            let messages = native(&client, &url, "bench_native").await?;
            anyhow::ensure!(
                messages.len() == VEHICLES as usize,
                "native sent {} messages",
                messages.len()
            );
            let native_compute = started.elapsed();
            sink.publish("native", messages).await?;
            let native_time = started.elapsed();
            if i > 0 {
                wasm.push((wasm_time, wasm_compute));
                native_times.push((native_time, native_compute));
            }
        }
        anyhow::Ok((wasm, native_times, url))
    })?;
    let split = |runs: Vec<(Duration, Duration)>| -> (Duration, Duration) {
        let (mut total, mut compute): (Vec<_>, Vec<_>) = runs.into_iter().unzip();
        (median(&mut total), median(&mut compute))
    };
    let (wasm, wasm_compute) = split(wasm);
    let (native_median, native_compute) = split(native_times);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {VEHICLES} vehicles | runs | GET + decode + JSON | + produce (acks=all): total | total vs native |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| native Rust (same gtfs-rt crate) | {iterations} | {:.1} ms | {:.1} ms | 1.00× |",
        ms(native_compute),
        ms(native_median)
    );
    println!(
        "| gtfs-fetch.wasm in weir | {iterations} | {:.1} ms ({:.2}× native) | {:.1} ms | {:.2}× |",
        ms(wasm_compute),
        wasm_compute.as_secs_f64() / native_compute.as_secs_f64(),
        ms(wasm),
        wasm.as_secs_f64() / native_median.as_secs_f64()
    );
    // The Python process reaches the same feed server (still served by `tokio`) and broker.
    match tokio.block_on(async {
        tokio::task::spawn_blocking({
            let (url, brokers) = (url.clone(), brokers.clone());
            move || python(&url, &brokers, iterations)
        })
        .await
    }) {
        Ok(Ok(mut times)) => {
            let python = median(&mut times);
            println!(
                "| Python seed producer (protobuf + json + confluent-kafka) | {iterations} | — | {:.1} ms | {:.2}× (wasm is {:.1}× faster) |",
                python.as_secs_f64() * 1e3,
                python.as_secs_f64() / native_median.as_secs_f64(),
                python.as_secs_f64() / wasm.as_secs_f64()
            );
        }
        Ok(Err(why)) => println!("| Python seed producer | skipped: {why} | | | |"),
        Err(e) => println!("| Python seed producer | failed: {e} | | | |"),
    }
    Ok(())
}
