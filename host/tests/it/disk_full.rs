//! Delta tables on a filesystem that fills up mid-stream (issue 22): a
//! small tmpfs (mounting it needs root, as CI has). While it is full every
//! commit fails cleanly — counted in `weir_delta_commit_errors_total`, the
//! table still opens and every file its log references is whole — the
//! partition retries with backoff, and once space comes back the stream
//! resumes with every offset exactly once. `weir_disk_free_bytes` shows the
//! full disk under the table's path meanwhile.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use weir::sink::delta::read;

use crate::crash::referenced;
use crate::delta::{
    assert_exactly_once, manifest_text, messages, produce, python_reader_agrees_at, start_with,
    wait_for_all,
};
use crate::support::sample;

/// A tmpfs of `size` mounted on a temp dir, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "weir-test"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs (the disk-full test needs root)"
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the filesystem of `dir` with one file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC, not {e}");
                break;
            }
        }
    }
    // What a partial chunk left: the last bytes, one at a time.
    while file.write(&[0]).is_ok_and(|n| n == 1) {}
    path
}

/// Every table under `data` opens, and every file its log references is there.
async fn whole(data: &Path) {
    for table in ["vehicle_positions", "dead_letters"] {
        let uri = data.join(table);
        let delta = read::open(&uri.display().to_string()).await.unwrap();
        for file in referenced(&delta) {
            assert!(
                uri.join(&file).is_file(),
                "{table}: the log references {file}, which is missing"
            );
        }
        read::scan(&delta).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_commits_cleanly_and_the_stream_resumes_exactly_once() {
    let topic = "disk_full";
    let (_cluster, brokers) = crate::support::cluster(topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount("24m");
    let data = disk.path().join("delta");
    let manifest = dir.path().join("spin.toml");
    std::fs::write(&manifest, manifest_text(topic, &data, 200)).unwrap();
    let (host, shutdown) = start_with(&manifest, &brokers, dir.path(), Vec::new()).await;
    let first = messages(600, 1_764_000_000);
    produce(&brokers, topic, &first).await;
    wait_for_all(&data, first.len(), Duration::from_secs(60)).await;

    // The disk fills up; more messages arrive.
    let filler = fill(disk.path());
    let second = messages(600, 1_764_000_100);
    produce(&brokers, topic, &second).await;
    let errors = r#"weir_delta_commit_errors_total{function="vehicle-transform",kind="error",table="vehicle_positions"}"#;
    let started = Instant::now();
    loop {
        let text = host.metrics.encode();
        if sample(&text, errors).is_some_and(|n| n >= 2.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no failed commits counted on a full disk:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The host says why: the table's disk is (almost) full.
    let free = format!(
        r#"weir_disk_free_bytes{{path="{}"}}"#,
        data.join("vehicle_positions").display()
    );
    let started = Instant::now();
    while sample(&host.metrics.encode(), &free).is_none_or(|n| n >= weir::disk::LOW as f64) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "weir_disk_free_bytes does not show the full disk:\n{}",
            host.metrics.encode()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Failed commits left the tables as they were: readable, whole, and
    // holding the first messages only.
    whole(&data).await;
    let (rows, letters) = wait_for_all(&data, first.len(), Duration::from_secs(1)).await;
    assert_eq!(rows.len() + letters.len(), first.len());

    // Space comes back: the stream resumes where it stopped.
    std::fs::remove_file(&filler).unwrap();
    let total = first.len() + second.len();
    let (rows, letters) = wait_for_all(&data, total, Duration::from_secs(90)).await;
    let malformed = first
        .iter()
        .chain(&second)
        .filter(|(_, _, bad)| *bad)
        .count();
    assert_exactly_once(&rows, &letters, total - malformed, malformed);
    whole(&data).await;
    shutdown.cancel();
    host.wait().await.unwrap();
    python_reader_agrees_at(
        &data.join("vehicle_positions").display().to_string(),
        &Default::default(),
        &[],
        "kafka_partition",
        "kafka_offset",
    )
    .await;
}

/// The embedded broker's log on a filesystem that fills up: tansu's storage
/// fails under it (its sqlite cannot write, and it panics), weir says so,
/// counts it, renews the sink's producer and restarts the broker in place;
/// once space is back, publishes go through again and every message the
/// broker acknowledged is on the topic once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_on_a_full_disk_is_restarted_and_serves_again_once_space_is_back() {
    use weir::broker::EmbeddedBroker;
    use weir::imports::producer::OutMessage;
    use weir::sink::Publish as _;
    use weir::sink::kafka::{KafkaSink, KafkaSinkConfig};

    let disk = Tmpfs::mount("32m");
    let broker = EmbeddedBroker::start(&disk.path().join("broker"), 0)
        .await
        .unwrap();
    let failures = prometheus::IntCounter::new("failures", "broker failures").unwrap();
    let counted = failures.clone();
    broker.on_failure(move || counted.inc());
    let mut config = KafkaSinkConfig::new(&broker.bootstrap);
    config.delivery_timeout = Duration::from_secs(5);
    let sink = std::sync::Arc::new(
        KafkaSink::new(config, std::sync::Arc::new(weir::Metrics::new())).unwrap(),
    );
    // As `weir up` does: the restarted broker may not know the producer.
    let renewed = std::sync::Arc::clone(&sink);
    broker.on_failure(move || renewed.renew().unwrap());
    let topic = "filling";
    sink.ensure_topics(&[topic.to_owned()]).await.unwrap();
    let batch = |round: usize| -> Vec<OutMessage> {
        (0..50)
            .map(|i| OutMessage {
                topic: topic.into(),
                key: Some(format!("k{i}").into_bytes()),
                value: format!("{round}-{i}-{}", "x".repeat(2_000)).into_bytes(),
            })
            .collect()
    };
    let mut acknowledged = Vec::new();
    let mut round = 0;
    let mut publish = async |round: &mut usize| {
        *round += 1;
        let messages = batch(*round);
        let values: Vec<Vec<u8>> = messages.iter().map(|m| m.value.clone()).collect();
        let sent = sink.publish("test", messages).await;
        if sent.is_ok() {
            acknowledged.extend(values);
        }
        sent.is_ok()
    };
    assert!(
        publish(&mut round).await,
        "the broker takes messages at first"
    );

    let filler = fill(disk.path());
    let failed_by = Instant::now() + Duration::from_secs(120);
    while failures.get() == 0 {
        assert!(
            Instant::now() < failed_by,
            "the broker's storage never failed on a full disk ({round} batches sent)"
        );
        publish(&mut round).await;
    }
    std::fs::remove_file(&filler).unwrap();
    let back_by = Instant::now() + Duration::from_secs(120);
    while !publish(&mut round).await {
        assert!(
            Instant::now() < back_by,
            "no publish went through after space came back ({} failures)",
            failures.get()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every acknowledged message is on the topic once.
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", "after-the-full-disk")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    use rdkafka::consumer::Consumer as _;
    use rdkafka::message::Message as _;
    consumer.subscribe(&[topic]).unwrap();
    let mut seen: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
    let read_by = Instant::now() + Duration::from_secs(60);
    while acknowledged.iter().any(|v| !seen.contains_key(v)) {
        assert!(
            Instant::now() < read_by,
            "{} acknowledged messages are missing",
            acknowledged
                .iter()
                .filter(|v| !seen.contains_key(*v))
                .count()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            *seen
                .entry(m.payload().unwrap_or_default().to_vec())
                .or_default() += 1;
        }
    }
    let twice = seen.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "messages on the topic twice");
}
