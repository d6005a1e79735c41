//! Soak: `weir up` (its own process) running the three transforms against
//! a `weir dev-broker` process, fed a steady 5,000 messages/s (vehicle
//! positions 3,000, trip updates 1,500, alerts 500) for an hour. Every
//! minute it samples the host's RSS, open file descriptors and threads,
//! each table's Delta log size and live data files, and the rows written;
//! at the end it prints the RSS slope after warm-up (least squares, MB per
//! 10 minutes), the files per table (live and on disk), and checks that
//! every message landed.
//!
//! `cargo bench --bench soak` runs 60 minutes (`WEIR_SOAK_MINUTES` changes
//! it) and prints Markdown for BENCHMARKS.md; under `cargo test` it runs
//! 20 seconds, sampling every 5.
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark that cannot unwrap should stop loudly"
)]

#[path = "../tests/guests/locate.rs"]
#[expect(dead_code, reason = "this bench uses only the functions")]
mod locate;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gtfs_rt::sample::Sample;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// The transforms, their input topics, tables and share of the rate.
const FLOWS: [(&str, &str, &str, u64); 3] = [
    (
        "vehicle-transform",
        "vehicle_topic",
        "vehicle_positions",
        3_000,
    ),
    (
        "trip-update-transform",
        "trip_update_topic",
        "trip_updates",
        1_500,
    ),
    ("alert-transform", "alert_topic", "alerts", 500),
];

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tables' history (`history_minutes`): what the host keeps of each
/// table — log entries, tombstones in every checkpoint, replaced files —
/// grows for this long and then stays level.
const HISTORY_MINUTES: u64 = 10;

fn manifest(dir: &Path) -> std::path::PathBuf {
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let mut text = String::from("spin_manifest_version = 2\n[application]\nname = \"soak\"\n");
    for (component, topic, table, _) in FLOWS {
        text.push_str(&format!(
            r#"
[[trigger.kafka]]
component = "{component}"
topics = ["{topic}"]
group = "{component}"
batch = {{ max_records = 10000, max_ms = 1000 }}
tables = {{ {table} = {{ uri = "data/delta/{table}", partition_by = ["date"], schema = "{schema}" }} }}
dead_letter = {{ uri = "data/delta/dead_letters", partition_by = ["date"] }}
history_minutes = {HISTORY_MINUTES}
[component.{component}]
source = "{source}"
"#,
            schema = functions
                .join(format!("{component}/tables/{table}.json"))
                .display(),
            source = locate::function(component).display(),
        ));
    }
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One minute's (or, under `cargo test`, five seconds') sample.
#[derive(Debug, Clone)]
struct Sample1 {
    at: Duration,
    rss_mb: f64,
    /// What live allocations hold and what jemalloc keeps resident, MB.
    heap_mb: (f64, f64),
    fds: usize,
    threads: usize,
    log_kb: Vec<u64>,
    /// Data files in each table's version (`weir_delta_files`).
    live: Vec<u64>,
    rows: u64,
    sent: u64,
}

fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

/// Data files under a table (every partition directory).
fn parquet_files(table: &Path) -> usize {
    let mut count = 0;
    let mut dirs = vec![table.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("_delta_log") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                count += 1;
            }
        }
    }
    count
}

fn rows_written(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("weir_delta_rows_written_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The value of the unlabelled gauge `name`, in MB.
fn gauge_mb(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / (1024.0 * 1024.0)
}

/// Data files in `table`'s version as the host last read or committed it.
fn live_files(metrics: &str, table: &str) -> u64 {
    let label = format!("table=\"{table}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("weir_delta_files{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .max()
        .unwrap_or(0)
}

/// Messages on the input topics not yet committed, over every topic.
fn topic_lag(metrics: &str) -> u64 {
    let lags: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with("weir_kafka_topic_lag{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    if lags.len() < FLOWS.len() {
        return u64::MAX;
    }
    lags.iter().sum::<f64>() as u64
}

async fn scrape(port: u16) -> String {
    match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Least-squares slope of `ys` over `xs`.
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if var == 0.0 { 0.0 } else { cov / var }
}

fn main() {
    weir::telemetry::init();
    let full = std::env::args().any(|a| a == "--bench");
    let (run, every, warm_up) = if full {
        let minutes = std::env::var("WEIR_SOAK_MINUTES")
            .ok()
            .and_then(|m| m.parse().ok())
            .unwrap_or(60u64);
        (
            Duration::from_secs(minutes * 60),
            Duration::from_secs(60),
            // Until the tables' history is full and checkpointed twice over.
            Duration::from_secs((2 * HISTORY_MINUTES * 60).min(minutes * 60 / 3)),
        )
    } else {
        (
            Duration::from_secs(20),
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(soak(run, every, warm_up));
}

async fn soak(run: Duration, every: Duration, warm_up: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Command::new(WEIR)
        .args(["dev-broker", "--port", "0", "--data-dir"])
        .arg(dir.path().join("broker"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("broker.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(broker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let broker = Process(broker);
    let brokers = line.trim().to_owned();
    let manifest = manifest(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = Process(
        Command::new(WEIR)
            .args(["up", "--no-build", "--file"])
            .arg(&manifest)
            .args([
                "--brokers",
                &brokers,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("weir.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = host.0.id();

    // The messages, cycled: real JSON of the sample network.
    let sample = Sample::new(2000, 7);
    let t = 1_764_000_000;
    let feeds = [
        sample.vehicle_positions(t),
        sample.trip_updates(t),
        sample.alerts(t),
    ];
    let messages: Vec<Vec<(String, Vec<u8>)>> = feeds
        .iter()
        .map(|feed| gtfs_rt::messages(feed).map(|m| (m.key, m.value)).collect())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let producing = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        tokio::spawn(async move {
            // Every 10 ms, each flow's hundredth of its per-second rate.
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut i = [0usize; 3];
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                for (flow, (_, topic, _, rate)) in FLOWS.iter().enumerate() {
                    for _ in 0..rate / 100 {
                        let (key, value) = &messages[flow][i[flow] % messages[flow].len()];
                        i[flow] += 1;
                        while let Err((e, _)) =
                            producer.send_result(FutureRecord::to(topic).key(key).payload(value))
                        {
                            // A full local queue: wait for the broker.
                            assert!(
                                matches!(
                                    e.rdkafka_error_code(),
                                    Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                                ),
                                "{e}"
                            );
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            producer.flush(Duration::from_secs(60)).unwrap();
        })
    };

    let started = Instant::now();
    let mut samples = Vec::new();
    // RSS alone, every few seconds: one sample a minute lands anywhere
    // in the swing of the allocator's peaks, and the slope fitted to
    // them is that much less certain.
    let mut rss = Vec::new();
    let fine = every / 12;
    while started.elapsed() < run {
        let due = (samples.len() as u32 + 1) * every;
        while started.elapsed() + fine < due.min(run) {
            tokio::time::sleep(fine).await;
            rss.push((
                started.elapsed(),
                status_field(pid, "VmRSS:") as f64 / 1024.0,
            ));
        }
        tokio::time::sleep(due.min(run).saturating_sub(started.elapsed())).await;
        let metrics = scrape(port).await;
        samples.push(Sample1 {
            at: started.elapsed(),
            rss_mb: status_field(pid, "VmRSS:") as f64 / 1024.0,
            heap_mb: (
                gauge_mb(&metrics, "weir_memory_allocated_bytes"),
                gauge_mb(&metrics, "weir_memory_resident_bytes"),
            ),
            fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .count(),
            threads: status_field(pid, "Threads:") as usize,
            log_kb: FLOWS
                .iter()
                .map(|(_, _, table, _)| {
                    dir_bytes(&dir.path().join(format!("data/delta/{table}/_delta_log"))) / 1024
                })
                .collect(),
            live: FLOWS
                .iter()
                .map(|(_, _, table, _)| live_files(&metrics, table))
                .collect(),
            rows: rows_written(&metrics),
            sent: sent.load(Ordering::Relaxed),
        });
    }
    stop.store(true, Ordering::Relaxed);
    producing.await.unwrap();
    let produced = sent.load(Ordering::Relaxed);
    // Drained: the lag probe (every 10 s) sees nothing left on any topic.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut rows = 0;
    let mut lag = u64::MAX;
    while Instant::now() < deadline {
        let metrics = scrape(port).await;
        rows = rows_written(&metrics);
        lag = topic_lag(&metrics);
        if lag == 0 && rows > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let peak_mb = status_field(pid, "VmHWM:") as f64 / 1024.0;
    drop(host);
    drop(broker);

    println!(
        "| minute | RSS MB | heap MB (allocated / resident) | fds | threads | Delta log KB (vehicle / trip / alert) | live files | messages sent | rows written |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for s in &samples {
        println!(
            "| {:.1} | {:.1} | {:.1} / {:.1} | {} | {} | {} | {} | {} | {} |",
            s.at.as_secs_f64() / 60.0,
            s.rss_mb,
            s.heap_mb.0,
            s.heap_mb.1,
            s.fds,
            s.threads,
            s.log_kb
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / "),
            s.live
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / "),
            s.sent,
            s.rows
        );
    }
    let after: Vec<&Sample1> = samples.iter().filter(|s| s.at >= warm_up).collect();
    let xs: Vec<f64> = after.iter().map(|s| s.at.as_secs_f64() / 600.0).collect();
    let ys: Vec<f64> = after.iter().map(|s| s.rss_mb).collect();
    let allocated: Vec<f64> = after.iter().map(|s| s.heap_mb.0).collect();
    let (fine_xs, fine_ys): (Vec<f64>, Vec<f64>) = rss
        .iter()
        .filter(|(at, _)| *at >= warm_up)
        .map(|(at, mb)| (at.as_secs_f64() / 600.0, *mb))
        .unzip();
    let files: Vec<String> = FLOWS
        .iter()
        .enumerate()
        .map(|(i, (_, _, table, _))| {
            let table_dir = dir.path().join(format!("data/delta/{table}"));
            // The newest version + 1; entries past the history are deleted.
            let versions = std::fs::read_dir(table_dir.join("_delta_log")).map_or(0, |d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        name.strip_suffix(".json")?.parse::<u64>().ok()
                    })
                    .max()
                    .map_or(0, |newest| newest + 1)
            });
            let live = samples.last().map_or(0, |s| s.live[i]);
            format!(
                "{table}: {live} live files ({} on disk), {versions} commits",
                parquet_files(&table_dir)
            )
        })
        .collect();
    println!();
    println!(
        "RSS slope after {:.0} min of warm-up: {:+.2} MB per 10 minutes ({:+.2} from {} samples {:.0} s apart; allocated heap: {:+.2}); peak RSS {peak_mb:.1} MB; \
         fds {}→{}, threads {}→{}; {}; {produced} messages sent, {rows} rows written in {:.0} min",
        warm_up.as_secs_f64() / 60.0,
        slope(&xs, &ys),
        slope(&fine_xs, &fine_ys),
        fine_xs.len(),
        fine.as_secs_f64(),
        slope(&xs, &allocated),
        samples[0].fds,
        samples[samples.len() - 1].fds,
        samples[0].threads,
        samples[samples.len() - 1].threads,
        files.join("; "),
        run.as_secs_f64() / 60.0
    );
    assert_eq!(lag, 0, "every message sent was consumed and committed");
    assert!(rows >= produced, "{rows} rows for {produced} messages");
}
