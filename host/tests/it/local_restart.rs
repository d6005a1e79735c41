//! Local mode after crashes, as a user meets them: `weir up --dev-feed` on
//! its embedded broker is SIGKILLed at random moments ten times and started
//! again at once each time, then run once more with `--for`. In the end
//! every message the broker's log holds (its high watermarks, read from the
//! broker itself afterwards) is in a table or the dead letters, exactly
//! once. A restarted host used to own no partition while the broker still
//! assigned them to the killed process (tansu keeps a dead member's
//! assignment): every restart consumed nothing.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};

use crate::crash::{Process, Rng, broker, show_logs};
use crate::docs::{Project, TABLES, exactly_once};
use crate::support::{free_port, sample};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const TRANSFORMS: [&str; 3] = [
    "vehicle-transform",
    "trip-update-transform",
    "alert-transform",
];

/// `weir up` in the project, with `args`; its log goes to `log`.
fn up(project: &Project, args: &[&str], port: u16, log: &str) -> Process {
    let child = Command::new(WEIR)
        .arg("up")
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .current_dir(project.path())
        .env("RUST_LOG", "warn,weir=info")
        .env_remove("WEIR_KAFKA_BROKERS")
        .env_remove("WEIR_DATA_DIR")
        .env_remove("WEIR_MANIFEST")
        .env_remove("WEIR_RUN_FOR")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(project.path().join(log)).unwrap())
        .spawn()
        .unwrap();
    Process {
        child,
        _stdout: None,
    }
}

/// The high watermark of every partition of `topics`, from the broker.
fn watermarks(brokers: &str, topics: &[&str]) -> BTreeMap<(String, i32), i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let mut ends = BTreeMap::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
        for partition in metadata.topics()[0].partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition.id(), timeout)
                .unwrap();
            assert_eq!(low, 0, "{topic} [{}]: nothing expires here", partition.id());
            ends.insert(((*topic).to_owned(), partition.id()), high);
        }
    }
    ends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_killed_ten_times_then_catches_up_exactly_once() {
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("local restart test seed {seed}");
    let mut rng = Rng(seed);
    let project = Project::new();
    // Fetches every 2 s instead of 15 s (alerts every 4 s), so messages
    // arrive between kills; everything else is the shipped manifest.
    let manifest = project.path().join("spin.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("\"*/15 * * * * *\"", "\"*/2 * * * * *\"")
        .replace("\"5/15 * * * * *\"", "\"1/2 * * * * *\"")
        .replace("\"10 * * * * *\"", "\"*/4 * * * * *\"");
    std::fs::write(&manifest, text).unwrap();

    for round in 0..10 {
        let process = up(
            &project,
            &["--dev-feed"],
            free_port(),
            &format!("up-{round}.log"),
        );
        let alive = Duration::from_millis(1_000 + rng.next(6_000));
        tokio::time::sleep(alive).await;
        println!("round {round}: SIGKILL after {alive:?}");
        drop(process); // SIGKILL, and straight on to the next start
    }

    // Once more, bounded by --for. Without the dev feed the fetches fail
    // (counted), so nothing new arrives while it catches up.
    let port = free_port();
    let started = Instant::now();
    let mut last = up(&project, &["--for", "45s"], port, "up-last.log");
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let owned = |metrics: &str| {
        TRANSFORMS.iter().all(|f| {
            sample(
                metrics,
                &format!("weir_kafka_assigned_partitions{{function=\"{f}\"}}"),
            ) == Some(3.0)
        })
    };
    // The lag probe sees every message committed once it has caught up.
    let caught_up = |metrics: &str| {
        TABLES.iter().zip(TRANSFORMS).all(|((_, topic), f)| {
            sample(
                metrics,
                &format!("weir_kafka_topic_lag{{function=\"{f}\",topic=\"{topic}\"}}"),
            ) == Some(0.0)
        })
    };
    let (mut took, mut lag_zero) = (None, false);
    while started.elapsed() < Duration::from_secs(42) && !lag_zero {
        if let Ok(answer) = reqwest::get(&metrics_url).await {
            let metrics = answer.text().await.unwrap();
            if took.is_none() && owned(&metrics) {
                took = Some(started.elapsed());
            }
            lag_zero = took.is_some() && caught_up(&metrics);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status = tokio::task::spawn_blocking(move || last.child.wait().map(|s| (s, last)))
        .await
        .unwrap()
        .unwrap()
        .0;
    if took.is_none() || !status.success() {
        show_logs(project.path());
    }
    assert!(status.success(), "the last run exits cleanly: {status:?}");
    let took = took.expect("every transform owns its 3 partitions after the restart");
    println!("the last run owned every partition {took:?} after its start");
    assert!(took < Duration::from_secs(20), "owned after {took:?}");
    assert!(
        lag_zero,
        "weir_kafka_topic_lag came down to 0 before the run ended"
    );

    // What the broker's log holds, read from the broker itself.
    let (_broker, brokers) = broker(&project.path().join("data/broker"));
    let topics: Vec<&str> = TABLES.iter().map(|(_, topic)| *topic).collect();
    let ends = watermarks(&brokers, &topics);
    let data = project.path().join("data/delta");
    let tables = exactly_once(&data).await;
    let mut missing = Vec::new();
    for (table, topic) in TABLES {
        let letters = crate::docs::dead_letters(&data.join("dead_letters"), topic).await;
        let mut landed: BTreeMap<i32, i64> = BTreeMap::new();
        for (partition, _) in tables[table].per_offset.keys().chain(letters.keys()) {
            *landed.entry(*partition).or_default() += 1;
        }
        for ((t, partition), end) in ends.iter().filter(|((t, _), _)| t == topic) {
            let got = landed.get(partition).copied().unwrap_or(0);
            println!("{t} [{partition}]: {got} of {end} messages landed");
            if got != *end {
                missing.push(format!("{t} [{partition}]: {got} of {end}"));
            }
        }
    }
    let total: i64 = ends.values().sum();
    assert!(
        total > 1_000,
        "the runs published too little to test: {ends:?}"
    );
    if !missing.is_empty() {
        show_logs(project.path());
    }
    assert!(missing.is_empty(), "not every message landed: {missing:?}");
}
