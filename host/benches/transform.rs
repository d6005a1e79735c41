//! Kafka → transform → Delta: throughput and Kafka-to-Delta-visible latency
//! of vehicle messages through the real Kafka trigger and Delta sink, with
//! the vehicle transform (a) as the Wasm component and (b) the same crate
//! compiled natively. Latency is measured on one partition, so rows become
//! visible in offset order. The broker (librdkafka's mock cluster) runs in a child
//! process pinned to another core than the host where `taskset` exists.
//! `cargo bench --bench transform` prints Markdown for BENCHMARKS.md; under
//! `cargo test` it runs a small round.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use gtfs_rt::sample::Sample;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use tokio_util::sync::CancellationToken;
use weir::manifest::Limits;
use weir::runtime::{BatchOutput, ComponentSettings, KafkaMessage};
use weir::sink::delta::{TableSchema, TableSettings};
use weir::trigger::kafka::{KafkaRunner, KafkaTrigger, RunnerConfig, TableTarget, Transform};
use weir::{Metrics, Runtime, RuntimeConfig, World};

#[path = "support/empty_call.rs"]
mod empty_call;
#[path = "../tests/guests/locate.rs"]
mod locate;
#[path = "support/typed.rs"]
mod typed;

const T0: u64 = 1_764_000_000;

/// vehicle-transform compiled natively, behind the same trait.
struct Native;

impl Transform for Native {
    fn id(&self) -> &str {
        "vehicle-transform"
    }

    fn digest(&self) -> &str {
        "native"
    }

    fn handle<'a>(
        &'a self,
        batch: &'a [KafkaMessage],
    ) -> BoxFuture<'a, Result<BatchOutput, String>> {
        Box::pin(async move {
            let mut out = weir_guest::Output::default();
            for m in batch {
                let message = weir_guest::Message {
                    topic: &m.topic,
                    partition: m.partition,
                    offset: m.offset,
                    timestamp_ms: m.timestamp_ms,
                    key: m.key.as_deref(),
                    value: m.value.as_deref(),
                    headers: Vec::new(),
                };
                out.handle(&message, vehicle_transform::transform);
            }
            Ok(typed::output(out))
        })
    }
}

/// Starts a new peak for `peak_rss_mib` (Linux: writing 5 to clear_refs
/// resets the process's high-water mark); elsewhere the peak is the life's.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident set since the last reset, in MiB (0 where
/// /proc is not there).
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}

/// In the child: a mock cluster with the bench topics; prints its address,
/// then for each line `produce N` on stdin generates N vehicle messages,
/// produces them to `bench_throughput` and prints `produced`, so the host's
/// memory never holds them; lives until stdin closes.
fn broker_process() -> anyhow::Result<()> {
    let cluster =
        rdkafka::mocking::MockCluster::<rdkafka::producer::DefaultProducerContext>::new(1)?;
    // The mock cluster keeps only a few MB per partition: 32 partitions
    // hold the whole throughput run; the latency run is consumed live.
    cluster.create_topic("bench_throughput", 32, 1)?;
    cluster.create_topic("bench_latency", 1, 1)?;
    let brokers = cluster.bootstrap_servers();
    println!("{brokers}");
    std::io::stdout().flush()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line)? > 0 {
        if let Some(count) = line.trim().strip_prefix("produce ") {
            let messages = vehicle_messages(count.parse()?);
            runtime.block_on(produce(&brokers, &messages))?;
            println!("produced");
            std::io::stdout().flush()?;
        }
        line.clear();
    }
    Ok(())
}

/// Produces `messages` to `bench_throughput` and waits for every ack.
async fn produce(brokers: &str, messages: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let producer = producer(brokers)?;
    for (key, value) in messages {
        producer
            .send_result(FutureRecord::to("bench_throughput").key(key).payload(value))
            .map_err(|(e, _)| e)?;
        while producer.in_flight_count() > 50_000 {
            producer.poll(Duration::from_millis(1));
        }
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}

fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
}

fn vehicle_messages(count: usize) -> Vec<(String, Vec<u8>)> {
    let network = Sample::new(10_000, 7);
    let mut out = Vec::with_capacity(count);
    let mut t = T0;
    while out.len() < count {
        let feed = network.vehicle_positions(t);
        out.extend(
            gtfs_rt::messages(&feed)
                .map(|m| (m.key, m.value))
                .take(count - out.len()),
        );
        t += 30;
    }
    out
}

/// The transforms alone (no Kafka, no Delta): the fastest and the median
/// time of one batch of `messages` for each, over `rounds` calls that
/// alternate between them (so a machine changing speed affects all alike),
/// after a warm-up call. On a shared machine the fastest call is the
/// stable number; medians move by a third between runs.
async fn transform_alone<'a>(
    transforms: &[(&'a str, &dyn Transform)],
    messages: &[(String, Vec<u8>)],
    rounds: usize,
) -> anyhow::Result<BTreeMap<&'a str, (Duration, Duration)>> {
    let batch: Vec<KafkaMessage> = messages
        .iter()
        .zip(0..)
        .map(|((key, value), offset)| KafkaMessage {
            topic: "bench".to_owned(),
            partition: 0,
            offset,
            timestamp_ms: None,
            key: Some(key.clone().into_bytes()),
            value: Some(value.clone()),
            headers: Vec::new(),
        })
        .collect();
    let mut times: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for round in 0..=rounds {
        for (name, transform) in transforms {
            let started = Instant::now();
            let output = transform
                .handle(&batch)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            if round > 0 {
                times.entry(name).or_default().push(started.elapsed());
            }
            anyhow::ensure!(
                output.rows() + output.rejects.len() == batch.len(),
                "one row or reject per message"
            );
        }
    }
    Ok(times
        .into_iter()
        .map(|(name, mut times)| {
            times.sort();
            (name, (times[0], percentile(&times, 0.5)))
        })
        .collect())
}

fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        // Record batches under the consumer's per-partition fetch size:
        // the mock cluster serves nothing past a batch larger than that.
        .set("batch.size", "262144")
        .create()?)
}

fn trigger(
    topic: &str,
    group: &str,
    data: &Path,
    max_records: usize,
) -> anyhow::Result<KafkaTrigger> {
    let schema = TableSchema::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../functions/vehicle-transform/tables/vehicle_positions.json"),
    )?;
    Ok(KafkaTrigger {
        id: group.to_owned(),
        component: "vehicle-transform".to_owned(),
        topics: vec![topic.to_owned()],
        group: group.to_owned(),
        max_records,
        max_bytes: 64 << 20,
        max_wait: Duration::from_millis(1000),
        tables: BTreeMap::from([(
            "vehicle_positions".to_owned(),
            TableTarget {
                uri: data.join("vehicle_positions").display().to_string(),
                partition_by: vec!["date".to_owned()],
                schema,
                storage: Default::default(),
            },
        )]),
        dead_letter: TableTarget {
            uri: data.join("dead_letters").display().to_string(),
            partition_by: vec!["date".to_owned()],
            schema: TableSchema::dead_letters(),
            storage: Default::default(),
        },
        table_settings: TableSettings {
            checkpoint_interval: 100,
            ..TableSettings::default()
        },
        session_timeout: Duration::from_secs(10),
    })
}

fn rows_written(metrics: &Metrics) -> u64 {
    metrics
        .delta_rows_written
        .with_label_values(&["vehicle-transform", "vehicle_positions"])
        .get()
}

/// Starts a runner on `topic` with a fresh group and tables.
async fn start(
    brokers: &str,
    topic: &str,
    transform: Arc<dyn Transform>,
    max_records: usize,
) -> anyhow::Result<(
    Arc<Metrics>,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    tempfile::TempDir,
)> {
    let dir = tempfile::tempdir()?;
    let group = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let metrics = Arc::new(Metrics::new());
    let runner = KafkaRunner::start(
        RunnerConfig {
            trigger: trigger(topic, &group, dir.path(), max_records)?,
            app: "bench".to_owned(),
            brokers: brokers.to_owned(),
            host_id: "bench".to_owned(),
            ownership: weir::trigger::kafka::Ownership::Group,
            parallelism: weir::trigger::kafka::default_parallelism(),
        },
        transform,
        Arc::clone(&metrics),
    )
    .await?;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(runner.run(shutdown.clone()));
    Ok((metrics, shutdown, task, dir))
}

/// CPU seconds (user + system) this process has used so far, from
/// `/proc/self/stat` (Linux; `None` elsewhere).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, in clock ticks (100 per second).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Throughput rounds: records/s per (transform, cores) and each
/// transform's peak RSS.
#[derive(Debug, Default)]
struct Rounds {
    rates: BTreeMap<(&'static str, usize), Vec<f64>>,
    peaks: BTreeMap<&'static str, u64>,
}

impl Rounds {
    /// One round of `name` with the host on `cores` cores.
    async fn run(
        &mut self,
        brokers: &str,
        name: &'static str,
        cores: usize,
        transform: Arc<dyn Transform>,
        total: usize,
    ) -> anyhow::Result<()> {
        reset_peak_rss();
        let rate = throughput(brokers, transform, total as u64).await?;
        let peak = peak_rss_mib();
        eprintln!("{name} on {cores} core(s): {rate:.0} records/s, peak RSS {peak} MiB");
        self.rates.entry((name, cores)).or_default().push(rate);
        let highest = self.peaks.entry(name).or_default();
        *highest = (*highest).max(peak);
        Ok(())
    }

    fn median(&self, name: &str, cores: usize) -> Option<f64> {
        let (_, rates) = self
            .rates
            .iter()
            .find(|((n, c), _)| *n == name && *c == cores)?;
        let mut v = rates.clone();
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }
}

/// Records per second from the first commit to the last (group join and
/// the first batch excluded).
async fn throughput(
    brokers: &str,
    transform: Arc<dyn Transform>,
    total: u64,
) -> anyhow::Result<f64> {
    // At least ten batches, so excluding the first one leaves a rate.
    let batch = usize::try_from(total / 10).unwrap_or(10_000).min(10_000);
    let (metrics, shutdown, task, _dir) =
        start(brokers, "bench_throughput", transform, batch).await?;
    let mut first: Option<(Instant, u64)> = None;
    let mut cpu_first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let end = loop {
        let rows = rows_written(&metrics);
        if rows > 0 && first.is_none() {
            first = Some((Instant::now(), rows));
            cpu_first = cpu_seconds();
        }
        if rows >= total || Instant::now() > deadline {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let cpu_end = cpu_seconds();
    shutdown.cancel();
    task.await??;
    let (start, rows) = first.ok_or_else(|| anyhow::anyhow!("nothing written"))?;
    if let (Some(a), Some(b)) = (cpu_first, cpu_end) {
        // How busy the host was: below 100 % of one core, it waited.
        eprintln!(
            "host cpu while writing: {:.0} % of one core",
            100.0 * (b - a) / (end - start).as_secs_f64()
        );
    }
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    Ok((total - rows) as f64 / (end - start).as_secs_f64())
}

/// Produces `rate` messages per second for `seconds` and returns each
/// message's produce-to-visible-in-Delta latency.
async fn latency(
    brokers: &str,
    transform: Arc<dyn Transform>,
    messages: &[(String, Vec<u8>)],
    rate: usize,
) -> anyhow::Result<Vec<Duration>> {
    let (metrics, shutdown, task, _dir) =
        start(brokers, "bench_latency", transform, 10_000).await?;
    // Let the consumer join its group and position the partition.
    let warmup = producer(brokers)?;
    let before = rows_written(&metrics);
    warmup
        .send(
            FutureRecord::to("bench_latency")
                .key("warmup")
                .payload(&messages[0].1),
            Duration::from_secs(5),
        )
        .await
        .map_err(|(e, _)| e)?;
    while rows_written(&metrics) == before {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let base = rows_written(&metrics);
    let producer = producer(brokers)?;
    let chunk = rate / 100;
    let started = Instant::now();
    let mut sent_at = Vec::with_capacity(messages.len());
    let watcher = {
        let metrics = Arc::clone(&metrics);
        let total = messages.len() as u64;
        tokio::spawn(async move {
            let mut visible: Vec<(Instant, u64)> = Vec::new();
            loop {
                let rows = rows_written(&metrics) - base;
                if visible.last().is_none_or(|(_, r)| *r != rows) {
                    visible.push((Instant::now(), rows));
                }
                if rows >= total {
                    return visible;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    for (i, batch) in messages.chunks(chunk).enumerate() {
        let due = started + Duration::from_millis(10 * i as u64);
        tokio::time::sleep_until(due.into()).await;
        for (key, value) in batch {
            sent_at.push(Instant::now());
            producer
                .send_result(FutureRecord::to("bench_latency").key(key).payload(value))
                .map_err(|(e, _)| e)?;
        }
    }
    producer.flush(Duration::from_secs(30))?;
    let visible = tokio::time::timeout(Duration::from_secs(120), watcher).await??;
    shutdown.cancel();
    task.await??;
    // One partition: rows become visible in offset order.
    let mut latencies = Vec::with_capacity(sent_at.len());
    let mut at = 0;
    for (i, sent) in sent_at.iter().enumerate() {
        while visible[at].1 < i as u64 + 1 {
            at += 1;
        }
        latencies.push(visible[at].0 - *sent);
    }
    latencies.sort();
    Ok(latencies)
}

/// The Python baseline (`bench/python_consumer.py`) on the same topic:
/// records/s, `Ok(None)` if the run was too small to measure, `Err` with
/// the reason if it cannot run here.
fn python(brokers: &str, total: u64) -> Result<Option<f64>, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/python_consumer.py");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let output = Command::new("python3")
        .arg(script)
        .args([brokers, "bench_throughput", &total.to_string()])
        .arg(dir.path().join("vehicle_positions"))
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "skipped (pip install confluent-kafka deltalake pyarrow): {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ));
    }
    let result: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    Ok(result["records_per_second"].as_f64())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() -> anyhow::Result<()> {
    if std::env::var_os("WEIR_BENCH_BROKER").is_some() {
        return broker_process();
    }
    weir::telemetry::init();
    let full = std::env::args().any(|a| a == "--bench");
    let (total, latency_seconds, rate) = if full {
        (200_000, 10, 10_000)
    } else {
        (5_000, 1, 2_000)
    };
    let total = std::env::var("WEIR_BENCH_TOTAL")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(total);
    let pin = full && taskset_available() && std::env::var_os("WEIR_BENCH_NO_PIN").is_none();
    let exe = std::env::current_exe()?;
    let mut broker = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "1"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let mut broker = broker
        .env("WEIR_BENCH_BROKER", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut from_broker = BufReader::new(
        broker
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
    );
    let mut bootstrap = String::new();
    from_broker.read_line(&mut bootstrap)?;
    let brokers = bootstrap.trim().to_owned();
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if pin {
        // The host (this process, every thread) on core 0, the broker on core 1.
        Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status()?;
    }
    let alone_rounds = if full { 20 } else { 2 };
    // As many workers as the machine has cores, although the host starts
    // pinned to one: tokio would start one, and the two-core rows need two.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let rt = Arc::new(Runtime::new(
            RuntimeConfig::default(),
            Arc::new(Metrics::new()),
        )?);
        let wasm: Arc<dyn Transform> = Arc::new(rt.load_file(
            "vehicle-transform",
            &locate::function("vehicle-transform"),
            World::Transformer,
            ComponentSettings {
                limits: Limits {
                    timeout: Duration::from_secs(60),
                    max_memory: 256 << 20,
                    ..Limits::default()
                },
                ..Default::default()
            },
        )?);
        let native: Arc<dyn Transform> = Arc::new(Native);
        let alone = transform_alone(
            &[("wasm", wasm.as_ref()), ("native", native.as_ref())],
            &vehicle_messages(10_000),
            alone_rounds,
        )
        .await?;
        if std::env::var_os("WEIR_BENCH_ONLY_ALONE").is_some() {
            // For profiling the transform itself (`WEIR_PERF_MAP=1 perf record`).
            eprintln!("transform alone: {alone:?}");
            std::process::exit(0);
        }
        // The broker's process generates and produces the messages.
        let to_broker = broker
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
        writeln!(to_broker, "produce {total}")?;
        to_broker.flush()?;
        let mut produced = String::new();
        from_broker.read_line(&mut produced)?;
        anyhow::ensure!(produced.trim() == "produced", "broker said {produced:?}");
        eprintln!("produced {total} messages");

        let mut rounds = Rounds::default();
        let repeat = if full { 3 } else { 1 };
        // For profiling the whole path with one transform
        // (`WEIR_BENCH_ONLY_THROUGHPUT=native` or `=wasm`).
        let only = std::env::var("WEIR_BENCH_ONLY_THROUGHPUT").ok();
        let transforms = [("wasm", &wasm), ("native", &native)];
        let transforms: Vec<_> = transforms
            .into_iter()
            .filter(|(name, _)| only.as_deref().is_none_or(|only| only == *name))
            .collect();
        let cores = if pin { 1 } else { cpus };
        for _ in 0..repeat {
            for (name, transform) in &transforms {
                rounds
                    .run(&brokers, name, cores, Arc::clone(transform), total)
                    .await?;
            }
        }
        if only.is_some() {
            eprintln!("throughput: {:?}", rounds.rates);
            std::process::exit(0);
        }
        let latency_messages = vehicle_messages(rate * latency_seconds);
        let mut latencies = BTreeMap::new();
        for (name, transform) in [("wasm", &wasm), ("native", &native)] {
            latencies.insert(
                name,
                latency(&brokers, Arc::clone(transform), &latency_messages, rate).await?,
            );
        }
        let python = {
            let brokers = brokers.clone();
            tokio::task::spawn_blocking(move || python(&brokers, total as u64)).await?
        };
        let calls = empty_call::times(&rt, if full { 2000 } else { 20 }).await?;
        let empty_call = calls[calls.len() / 2];
        if pin {
            // Then the host on every core (the broker shares one of them).
            Command::new("taskset")
                .args(["-a", "-p", "-c", &format!("0-{}", cpus - 1)])
                .arg(std::process::id().to_string())
                .stdout(Stdio::null())
                .status()?;
            for _ in 0..repeat {
                for (name, transform) in &transforms {
                    rounds
                        .run(&brokers, name, cpus, Arc::clone(transform), total)
                        .await?;
                }
            }
        }
        anyhow::Ok((rounds, latencies, python, alone, empty_call))
    });
    drop(broker.stdin.take());
    let _ = broker.wait();
    let (rounds, latencies, python, alone, empty_call) = result?;
    let cores = if pin { 1 } else { cpus };
    let one = |name| rounds.median(name, cores);
    let wasm_rate = one("wasm");
    let cores_label = |n: usize| {
        if n == 1 {
            "1 core".to_owned()
        } else {
            format!("{n} cores")
        }
    };
    println!(
        "\n| {total} vehicle messages (32 partitions), batches of 10,000 | host on | rounds | records/s (median) | vs Python | vs the same on one core | latency p50 | latency p99 ({rate} msg/s, max_ms 1000) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let python_rate = python.as_ref().ok().copied().flatten();
    let versus_python = |r: f64| python_rate.map_or("—".to_owned(), |p| format!("{:.2}×", r / p));
    let counts = if pin && cpus > cores {
        vec![cores, cpus]
    } else {
        vec![cores]
    };
    for n in counts {
        for (name, label) in [
            ("wasm", "(a) vehicle-transform.wasm in weir"),
            ("native", "(b) native Rust (same vehicle-transform crate)"),
        ] {
            let Some(r) = rounds.median(name, n) else {
                continue;
            };
            let scaling = match (n == cores, one(name)) {
                (false, Some(base)) => format!("{:.2}×", r / base),
                _ => "—".to_owned(),
            };
            let (p50, p99) = match (n == cores, latencies.get(name)) {
                (true, Some(l)) => (
                    format!("{:.0} ms", percentile(l, 0.5).as_secs_f64() * 1e3),
                    format!("{:.0} ms", percentile(l, 0.99).as_secs_f64() * 1e3),
                ),
                _ => ("—".to_owned(), "—".to_owned()),
            };
            println!(
                "| {label} | {} | {} | {r:.0} | {} | {scaling} | {p50} | {p99} |",
                cores_label(n),
                rounds.rates[&(name, n)].len(),
                versus_python(r),
            );
        }
        if n == cores {
            match &python {
                Ok(Some(r)) => println!(
                    "| (c) Python consumer (confluent-kafka + json + deltalake/pyarrow) | {} | 1 | {r:.0} | 1.00× | — | — | — |",
                    cores_label(n)
                ),
                Ok(None) => println!(
                    "| (c) Python consumer | {} | 1 | run too small to measure | — | — | — | — |",
                    cores_label(n)
                ),
                Err(why) => println!("| (c) Python consumer | — | — | {why} | — | — | — | — |"),
            }
        }
    }
    if let Some(w) = wasm_rate {
        eprintln!("wasm on {}: {w:.0} records/s", cores_label(cores));
    }
    println!(
        "\ntransform alone, one batch of 10,000 messages, fastest of {alone_rounds} (median): native {:.1} ms ({:.1} ms), Wasm {:.1} ms ({:.1} ms), Wasm/native {:.2}× ({:.2}×)",
        alone["native"].0.as_secs_f64() * 1e3,
        alone["native"].1.as_secs_f64() * 1e3,
        alone["wasm"].0.as_secs_f64() * 1e3,
        alone["wasm"].1.as_secs_f64() * 1e3,
        alone["wasm"].0.as_secs_f64() / alone["native"].0.as_secs_f64(),
        alone["wasm"].1.as_secs_f64() / alone["native"].1.as_secs_f64(),
    );
    println!(
        "\npeak host RSS during the throughput rounds (the bench process: the host, its tables, consumer and instances; the messages are generated in the broker's process): {} MiB with Wasm, {} MiB native",
        rounds.peaks.get("wasm").copied().unwrap_or_default(),
        rounds.peaks.get("native").copied().unwrap_or_default(),
    );
    println!(
        "machine speed in this run: an empty guest's call (instantiate + call + drop) takes {:.1} µs (median)",
        empty_call.as_secs_f64() * 1e6
    );
    println!(
        "\nhost pinned to one core: {}",
        if pin {
            "yes for the one-core rows and the latency and Python runs (taskset: host core 0, broker core 1); the other rows let the host run on every core, the broker's among them"
        } else {
            "no"
        }
    );
    Ok(())
}
