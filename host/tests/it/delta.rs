//! Kafka → vehicle-transform → Delta, in-process over librdkafka's mock
//! cluster: valid messages become rows, malformed ones dead letters, each
//! offset exactly once, and a restarted host continues where it stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use deltalake::arrow::array::{Array, Int32Array, Int64Array, RecordBatch};
use gtfs_rt::sample::Sample;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;
use weir::run::KafkaMode;
use weir::sink::delta::{StorageOptions, read};
use weir::{Host, HostConfig, Manifest, RuntimeConfig};

use crate::support::{function, sample};

/// A manifest running vehicle-transform on `topic` into tables under `data`.
pub fn manifest_text(topic: &str, data: &Path, max_records: usize) -> String {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../functions/vehicle-transform/tables/vehicle_positions.json");
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "delta-test"
[[trigger.kafka]]
id = "vehicles"
component = "vehicle-transform"
topics = ["{topic}"]
group = "vehicle-transform-{topic}"
batch = {{ max_records = {max_records}, max_ms = 200 }}
session_timeout_ms = 6000
tables = {{ vehicle_positions = {{ uri = "{data}/vehicle_positions", partition_by = ["date"], schema = "{schema}" }} }}
dead_letter = {{ uri = "{data}/dead_letters", partition_by = ["date"] }}
[component.vehicle-transform]
source = "{source}"
"#,
        data = data.display(),
        schema = schema.display(),
        source = function("vehicle-transform").display(),
    )
}

/// Valid vehicle messages from the sample network, with a malformed one
/// (of a rotating kind) every fifth: (key, value, malformed).
pub fn messages(count: usize, t: u64) -> Vec<(String, Option<Vec<u8>>, bool)> {
    let feed = Sample::new(u32::try_from(count).unwrap(), 11).vehicle_positions(t);
    gtfs_rt::messages(&feed)
        .enumerate()
        .map(|(i, m)| {
            let bad: Option<Option<Vec<u8>>> = match (i % 5 == 4).then_some(i / 5 % 4) {
                Some(0) => Some(Some(b"{not json".to_vec())),
                Some(1) => Some(None),
                Some(2) => Some(Some(
                    String::from_utf8(m.value.clone())
                        .unwrap()
                        .replace("\"latitude\":", "\"latitude\":1000,\"x\":")
                        .into_bytes(),
                )),
                Some(_) => Some(Some(br#"{"entity_type":"alert","id":"a1"}"#.to_vec())),
                None => None,
            };
            match bad {
                Some(value) => (m.key, value, true),
                None => (m.key, Some(m.value), false),
            }
        })
        .collect()
}

/// Produces the messages (partitioned by key) and waits for every ack.
pub async fn produce(brokers: &str, topic: &str, messages: &[(String, Option<Vec<u8>>, bool)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for (key, value, _) in messages {
        let mut record = FutureRecord::<String, Vec<u8>>::to(topic).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

/// Column `name` of `batch` as array type `T`.
pub fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column `{name}`"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("column `{name}` has another type"))
}

/// How many times each (partition, offset) appears in the table, read
/// from the column pair `partition`/`offset`.
pub async fn offsets(uri: &Path, partition: &str, offset: &str) -> BTreeMap<(i32, i64), usize> {
    offsets_at(
        &uri.display().to_string(),
        &StorageOptions::default(),
        partition,
        offset,
    )
    .await
}

/// Like [`offsets`], for a table at any URI.
pub async fn offsets_at(
    uri: &str,
    storage: &StorageOptions,
    partition: &str,
    offset: &str,
) -> BTreeMap<(i32, i64), usize> {
    let mut seen = BTreeMap::new();
    let Ok(table) = read::open_with(uri, storage).await else {
        return seen;
    };
    for batch in read::scan(&table).await.unwrap() {
        let partitions: &Int32Array = column(&batch, partition);
        let offsets: &Int64Array = column(&batch, offset);
        for i in 0..batch.num_rows() {
            *seen
                .entry((partitions.value(i), offsets.value(i)))
                .or_default() += 1;
        }
    }
    seen
}

/// Rows and dead letters by (partition, offset), once `expected` are in
/// or nothing new has landed for `stalled`: a slow machine that still
/// makes progress gets its time, a stuck host does not.
pub async fn wait_for_all(
    data: &Path,
    expected: usize,
    stalled: Duration,
) -> (BTreeMap<(i32, i64), usize>, BTreeMap<(i32, i64), usize>) {
    let data = data.display().to_string();
    wait_for_all_at(&data, &StorageOptions::default(), expected, stalled).await
}

/// Like [`wait_for_all`], for tables under any URI.
pub async fn wait_for_all_at(
    data: &str,
    storage: &StorageOptions,
    expected: usize,
    stalled: Duration,
) -> (BTreeMap<(i32, i64), usize>, BTreeMap<(i32, i64), usize>) {
    let mut last = (0, tokio::time::Instant::now());
    let (rows_at, letters_at) = (
        format!("{data}/vehicle_positions"),
        format!("{data}/dead_letters"),
    );
    loop {
        let rows = offsets_at(&rows_at, storage, "kafka_partition", "kafka_offset").await;
        let letters = offsets_at(&letters_at, storage, "partition", "offset").await;
        let total: usize = rows.values().sum::<usize>() + letters.values().sum::<usize>();
        let now = tokio::time::Instant::now();
        if total != last.0 {
            last = (total, now);
        }
        if total >= expected || now - last.1 > stalled {
            return (rows, letters);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start(manifest: &Path, brokers: &str, data: &Path) -> (Host, CancellationToken) {
    start_with(manifest, brokers, data, Vec::new()).await
}

/// Like [`start`], with `env` overriding the manifest's variables.
pub async fn start_with(
    manifest: &Path,
    brokers: &str,
    data: &Path,
    env: Vec<(String, String)>,
) -> (Host, CancellationToken) {
    let shutdown = CancellationToken::new();
    let config = HostConfig {
        manifest: Manifest::load(manifest, env).unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        runtime: RuntimeConfig::default(),
        once: false,
        data_dir: Some(data.to_path_buf()),
        kafka: KafkaMode::Brokers(brokers.to_owned()),
        admin: weir::admin::AdminConfig::default(),
        watch: None,
        // Two parts per batch on any machine: these tests prove the concurrent path.
        parallelism: 2,
    };
    (
        Host::start(config, shutdown.clone()).await.unwrap(),
        shutdown,
    )
}

/// Every produced message is in exactly one of the two tables, once;
/// valid ones as rows, malformed ones as dead letters.
pub fn assert_exactly_once(
    rows: &BTreeMap<(i32, i64), usize>,
    letters: &BTreeMap<(i32, i64), usize>,
    valid: usize,
    malformed: usize,
) {
    let duplicated: Vec<_> = rows
        .iter()
        .chain(letters.iter())
        .filter(|(_, n)| **n > 1)
        .collect();
    assert!(duplicated.is_empty(), "duplicated offsets: {duplicated:?}");
    let both: Vec<_> = rows.keys().filter(|k| letters.contains_key(k)).collect();
    assert!(both.is_empty(), "offsets in both tables: {both:?}");
    assert_eq!((rows.len(), letters.len()), (valid, malformed));
    // Offsets are dense per partition: nothing skipped.
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (p, o) in rows.keys().chain(letters.keys()) {
        per_partition.entry(*p).or_default().push(*o);
    }
    for (p, mut offsets) in per_partition {
        offsets.sort_unstable();
        let dense: Vec<i64> = (0..i64::try_from(offsets.len()).unwrap()).collect();
        assert_eq!(offsets, dense, "partition {p} has gaps");
    }
}

#[tokio::test]
async fn rows_and_dead_letters_exactly_once_across_a_restart() {
    let topic = "vehicles-delta";
    let (_cluster, brokers) = crate::support::cluster(topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifest = dir.path().join("spin.toml");
    std::fs::write(&manifest, manifest_text(topic, &data, 100)).unwrap();

    let first = messages(500, 1_764_000_000);
    produce(&brokers, topic, &first).await;
    let (host, shutdown) = start(&manifest, &brokers, &data).await;
    let (rows, letters) = wait_for_all(&data, first.len(), Duration::from_secs(90)).await;
    let malformed = first.iter().filter(|m| m.2).count();
    assert_exactly_once(&rows, &letters, first.len() - malformed, malformed);
    let text = host.metrics.encode();
    assert_eq!(
        sample(
            &text,
            r#"weir_delta_rows_written_total{function="vehicle-transform",table="vehicle_positions"}"#
        ),
        Some((first.len() - malformed) as f64),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"weir_dead_letters_total{function="vehicle-transform",reason="rejected",table="dead_letters"}"#
        ),
        Some(malformed as f64),
        "{text}"
    );
    shutdown.cancel();
    host.wait().await.unwrap();

    // A new host over the same tables and group: only the new messages.
    let second = messages(300, 1_764_000_030);
    produce(&brokers, topic, &second).await;
    let (host, shutdown) = start(&manifest, &brokers, &data).await;
    let total = first.len() + second.len();
    let (rows, letters) = wait_for_all(&data, total, Duration::from_secs(90)).await;
    let malformed = first.iter().chain(&second).filter(|m| m.2).count();
    assert_exactly_once(&rows, &letters, total - malformed, malformed);
    shutdown.cancel();
    host.wait().await.unwrap();

    for (table, partition, offset) in [
        ("vehicle_positions", "kafka_partition", "kafka_offset"),
        ("dead_letters", "partition", "offset"),
    ] {
        python_reader_agrees(&data.join(table), partition, offset).await;
    }
    weir_table_shows(&manifest, total - malformed);

    // The same topic name on a broker that lost its log (a fresh cluster):
    // the tables hold offsets beyond its end, so every partition is
    // refused with a clear error instead of skipped or re-filled.
    let lost = MockCluster::<DefaultProducerContext>::new(1).unwrap();
    lost.create_topic(topic, 3, 1).unwrap();
    produce(
        &lost.bootstrap_servers(),
        topic,
        &messages(30, 1_764_000_060),
    )
    .await;
    let (host, shutdown) = start(&manifest, &lost.bootstrap_servers(), &data).await;
    let stopped = |text: &str| {
        (0..3)
            .filter(|p| {
                sample(
                    text,
                    &format!(
                        r#"weir_kafka_partition_stopped{{function="vehicle-transform",partition="{p}",topic="{topic}"}}"#
                    ),
                ) == Some(1.0)
            })
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stopped(&host.metrics.encode()) < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stopped(&host.metrics.encode()),
        3,
        "{}",
        host.metrics.encode()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = offsets(
        &data.join("vehicle_positions"),
        "kafka_partition",
        "kafka_offset",
    )
    .await;
    assert_eq!(after, rows, "nothing written from the new log");
    shutdown.cancel();
    host.wait().await.unwrap();

    // Lineage: every commit names the component that wrote it.
    let table = read::open(&data.join("vehicle_positions").display().to_string())
        .await
        .unwrap();
    let history: Vec<_> = futures::TryStreamExt::try_collect(table.history(None))
        .await
        .unwrap();
    let digest = weir::runtime::digest(&std::fs::read(function("vehicle-transform")).unwrap());
    let appends: Vec<_> = history
        .iter()
        .filter(|c| c.operation.as_deref() == Some("WRITE"))
        .collect();
    assert!(!appends.is_empty());
    for commit in appends {
        assert_eq!(
            commit.info.get("weir.componentDigest"),
            Some(&serde_json::Value::String(digest.clone())),
            "{commit:?}"
        );
    }
}

/// A manifest running test guest `guest` (`poison` or `typed`) with tables
/// `a` and `b` and their schemas.
fn poison_manifest(guest: &str, topic: &str, dir: &Path) -> String {
    std::fs::write(
        dir.join("a.json"),
        r#"{"version": 1, "columns": [{"name": "partition", "type": "integer", "nullable": false}, {"name": "offset", "type": "long", "nullable": false}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("b.json"),
        r#"{"version": 1, "columns": [{"name": "partition", "type": "integer", "nullable": false}, {"name": "offset", "type": "long", "nullable": false}, {"name": "n", "type": "long", "nullable": false}]}"#,
    )
    .unwrap();
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "poison-test"
[[trigger.kafka]]
component = "poison"
topics = ["{topic}"]
batch = {{ max_records = 4, max_ms = 100 }}
checkpoint_interval = 3
tables = {{ a = {{ uri = "data/a", schema = "a.json" }}, b = {{ uri = "data/b", schema = "b.json" }} }}
dead_letter = {{ uri = "data/dead_letters", partition_by = ["date"] }}
[component.poison]
source = "{source}"
[component.poison.tool.weir]
timeout_ms = 300
"#,
        source = crate::support::guest(guest).display()
    )
}

/// Dead letters as (partition, offset) → kind.
async fn letter_kinds(uri: &Path) -> BTreeMap<(i32, i64), String> {
    letter_texts(uri, "kind").await
}

/// Dead letters as (partition, offset) → the text of `field`.
pub(crate) async fn letter_texts(uri: &Path, field: &str) -> BTreeMap<(i32, i64), String> {
    let table = read::open(&uri.display().to_string()).await.unwrap();
    let mut texts = BTreeMap::new();
    for batch in read::scan(&table).await.unwrap() {
        let partitions: &Int32Array = column(&batch, "partition");
        let offsets: &Int64Array = column(&batch, "offset");
        let text: &deltalake::arrow::array::StringArray = column(&batch, field);
        for i in 0..batch.num_rows() {
            texts.insert(
                (partitions.value(i), offsets.value(i)),
                text.value(i).to_owned(),
            );
        }
    }
    texts
}

async fn send_values(brokers: &str, topic: &str, values: &[&str]) {
    let messages: Vec<_> = values
        .iter()
        .map(|v| ("k".to_owned(), Some(v.as_bytes().to_vec()), false))
        .collect();
    produce(brokers, topic, &messages).await;
}

/// Waits until tables `a` and the dead letters hold `expected` offsets.
async fn wait_poison(
    data: &Path,
    expected: usize,
) -> (BTreeMap<(i32, i64), usize>, BTreeMap<(i32, i64), usize>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let a = offsets(&data.join("a"), "partition", "offset").await;
        let letters = offsets(&data.join("dead_letters"), "partition", "offset").await;
        if a.len() + letters.len() >= expected || tokio::time::Instant::now() > deadline {
            return (a, letters);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A test guest (`poison` or `typed`) run on phases of message values,
/// each phase sent once the one before has landed, and what landed.
struct Phases {
    _cluster: MockCluster<'static, DefaultProducerContext>,
    _dir: tempfile::TempDir,
    data: PathBuf,
    host: Host,
    shutdown: CancellationToken,
    /// Offsets in table `a`.
    a: BTreeMap<(i32, i64), usize>,
    /// Offsets in the dead letters.
    letters: BTreeMap<(i32, i64), usize>,
}

impl Phases {
    async fn run(guest: &str, phases: &[&[&str]]) -> Self {
        let topic = guest;
        let (cluster, brokers) = crate::support::cluster(topic, 1);
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("spin.toml");
        std::fs::write(&manifest, poison_manifest(guest, topic, dir.path())).unwrap();
        let data = dir.path().join("data");
        let (host, shutdown) = start(&manifest, &brokers, &data).await;
        let mut sent = 0;
        for values in phases {
            send_values(&brokers, topic, values).await;
            sent += values.len();
            wait_poison(&data, sent).await;
        }
        let (a, letters) = wait_poison(&data, sent).await;
        Self {
            _cluster: cluster,
            _dir: dir,
            data,
            host,
            shutdown,
            a,
            letters,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.host.wait().await.unwrap();
    }
}

#[tokio::test]
async fn traps_timeouts_and_bad_rows_are_dead_lettered_and_the_stream_goes_on() {
    // Offsets 0-3 fine, 4 traps (its batch is dead-lettered after one
    // retry), then the stream goes on; likewise for a guest that hangs.
    let run = Phases::run(
        "poison",
        &[
            &["x", "yy", "zzz", "w"],
            &["trap"],
            &["x", "reject", "badrow", "stray"],
            &["hang"],
            &["x", "yy"],
        ],
    )
    .await;
    let (data, host, a, letters) = (&run.data, &run.host, &run.a, &run.letters);
    assert_exactly_once(a, letters, 7, 5);
    let kinds = letter_kinds(&data.join("dead_letters")).await;
    assert_eq!(kinds[&(0, 4)], "invocation_failed");
    assert_eq!(kinds[&(0, 6)], "rejected");
    assert_eq!(kinds[&(0, 7)], "invalid_row");
    assert_eq!(kinds[&(0, 8)], "unknown_table");
    assert_eq!(kinds[&(0, 9)], "invocation_failed");
    // Checkpoints every third commit (five batches committed to each table).
    let last_checkpoint =
        std::fs::read_to_string(data.join("a/_delta_log/_last_checkpoint")).unwrap();
    let last_checkpoint: serde_json::Value = serde_json::from_str(&last_checkpoint).unwrap();
    let version = last_checkpoint["version"].as_u64().unwrap();
    assert!(version >= 2, "{last_checkpoint}");
    assert!(
        data.join(format!("a/_delta_log/{version:020}.checkpoint.parquet"))
            .exists()
    );
    // Fan-out: every row of `a` has its twin in `b`, nothing else there.
    let b = offsets(&data.join("b"), "partition", "offset").await;
    assert_eq!(*a, b);

    let text = host.metrics.encode();
    for (outcome, count) in [("trap", 2.0), ("timeout", 2.0)] {
        assert_eq!(
            sample(
                &text,
                &format!(r#"weir_invocations_total{{function="poison",outcome="{outcome}"}}"#)
            ),
            Some(count),
            "retried once: {text}"
        );
    }
    run.stop().await;
}

#[tokio::test]
async fn typed_columns_that_do_not_fit_dead_letter_their_messages_and_the_stream_goes_on() {
    // One phase per batch: a bad column spoils the batch's rows of its
    // table, so each bad command goes alone.
    let run = Phases::run(
        "typed",
        &[
            &["x", "yy", "reject"],
            &["wrongtype"],
            &["missing"],
            &["short"],
            &["flood"],
            &["x", "yy"],
            &["zzz"],
        ],
    )
    .await;
    let (data, a, letters) = (&run.data, &run.a, &run.letters);
    // Offsets 0, 1, 7, 8, 9 in `a` (and `b`); 2-6 dead letters.
    assert_exactly_once(a, letters, 5, 5);
    assert_eq!(*a, offsets(&data.join("b"), "partition", "offset").await);
    let kinds = letter_kinds(&data.join("dead_letters")).await;
    assert_eq!(kinds[&(0, 2)], "rejected");
    for offset in 3..=5 {
        assert_eq!(kinds[&(0, offset)], "invalid_row", "offset {offset}");
    }
    assert_eq!(
        kinds[&(0, 6)],
        "invocation_failed",
        "past max_rows_per_message"
    );
    let reasons = letter_texts(&data.join("dead_letters"), "reason").await;
    assert!(
        reasons[&(0, 3)].contains("column `n` holds text"),
        "{reasons:?}"
    );
    assert!(
        reasons[&(0, 4)].contains("missing non-null column `n`"),
        "{reasons:?}"
    );
    assert!(
        reasons[&(0, 5)].contains("column `n` has 0 values for 1 rows"),
        "{reasons:?}"
    );
    assert!(
        reasons[&(0, 6)].contains("max_rows_per_message"),
        "{reasons:?}"
    );
    run.stop().await;
}

/// Reads the table with the Python `deltalake` package (an independent
/// reader with its own query engine) and checks it sees what weir's reader
/// sees: version, schema, partitioning, rows, rows per partition value.
async fn python_reader_agrees(uri: &Path, partition: &str, offset: &str) {
    let uri = uri.display().to_string();
    python_reader_agrees_at(&uri, &StorageOptions::default(), &[], partition, offset).await;
}

/// Like [`python_reader_agrees`], for a table at any URI; `env` configures
/// the Python side's object store.
pub async fn python_reader_agrees_at(
    uri: &str,
    storage: &StorageOptions,
    env: &[(String, String)],
    partition: &str,
    offset: &str,
) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_delta.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(uri)
        .args([partition, offset])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python reader failed (hint: `pip install -r requirements-test.txt`):\n{stderr}"
    );
    let python: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let table = read::open_with(uri, storage).await.unwrap();
    let state = table.snapshot().unwrap();
    let schema: Vec<serde_json::Value> = state
        .schema()
        .fields()
        .map(|f| {
            let deltalake::kernel::DataType::Primitive(p) = f.data_type() else {
                panic!("weir writes primitive columns only");
            };
            serde_json::json!([f.name(), p, f.is_nullable()])
        })
        .collect();
    let batches = read::scan(&table).await.unwrap();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut by_partition: BTreeMap<String, usize> = BTreeMap::new();
    for batch in &batches {
        let dates: &deltalake::arrow::array::StringArray = column(batch, "date");
        for i in 0..batch.num_rows() {
            *by_partition.entry(dates.value(i).to_owned()).or_default() += 1;
        }
    }
    let seen = offsets_at(uri, storage, partition, offset).await;
    assert_eq!(python["version"], table.version().unwrap(), "{python}");
    assert_eq!(
        python["schema"],
        serde_json::Value::Array(schema),
        "{python}"
    );
    assert_eq!(python["partition_columns"], serde_json::json!(["date"]));
    assert_eq!(python["rows"], rows, "{python}");
    assert_eq!(python["distinct_offsets"], seen.len(), "{python}");
    assert_eq!(
        python["rows_by_partition"],
        serde_json::json!(by_partition),
        "{python}"
    );
    assert!(rows > 0, "{uri} is empty");
}

#[tokio::test]
async fn three_transforms_fill_their_tables_and_share_the_dead_letters() {
    let cluster = MockCluster::<DefaultProducerContext>::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let mut text = "spin_manifest_version = 2\n[application]\nname = \"three\"\n".to_owned();
    for (component, topic, table) in [
        ("vehicle-transform", "v3", "vehicle_positions"),
        ("trip-update-transform", "t3", "trip_updates"),
        ("alert-transform", "a3", "alerts"),
    ] {
        cluster.create_topic(topic, 2, 1).unwrap();
        text += &format!(
            r#"
[[trigger.kafka]]
component = "{component}"
topics = ["{topic}"]
batch = {{ max_records = 500, max_ms = 200 }}
tables = {{ {table} = {{ uri = "{data}/{table}", partition_by = ["date"], schema = "{schema}" }} }}
dead_letter = {{ uri = "{data}/dead_letters", partition_by = ["date"] }}
[component.{component}]
source = "{source}"
"#,
            data = data.display(),
            schema = functions
                .join(component)
                .join("tables")
                .join(format!("{table}.json"))
                .display(),
            source = function(component).display(),
        );
    }
    let manifest = dir.path().join("spin.toml");
    std::fs::write(&manifest, text).unwrap();

    let network = Sample::new(300, 5);
    let t = 1_764_000_000;
    let feeds = [
        ("v3", network.vehicle_positions(t)),
        ("t3", network.trip_updates(t)),
        ("a3", network.alerts(t)),
    ];
    let stop_time_updates: usize = feeds[1]
        .1
        .entity
        .iter()
        .map(|e| {
            e.trip_update
                .as_ref()
                .unwrap()
                .stop_time_update
                .len()
                .max(1)
        })
        .sum();
    let alerts = feeds[2].1.entity.len();
    for (topic, feed) in &feeds {
        let mut messages: Vec<_> = gtfs_rt::messages(feed)
            .map(|m| (m.key, Some(m.value), false))
            .collect();
        // One message of another feed's type on each topic: a dead letter.
        messages.push((
            "x".to_owned(),
            Some(br#"{"entity_type":"shape","id":"s"}"#.to_vec()),
            true,
        ));
        produce(&brokers, topic, &messages).await;
    }
    let (host, shutdown) = start(&manifest, &brokers, &data).await;
    let expected = [
        ("vehicle_positions", 300),
        ("trip_updates", stop_time_updates),
        ("alerts", alerts),
        ("dead_letters", 3),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let mut counts = Vec::new();
        for (table, _) in expected {
            let rows = match read::open(&data.join(table).display().to_string()).await {
                Ok(t) => read::scan(&t)
                    .await
                    .unwrap()
                    .iter()
                    .map(RecordBatch::num_rows)
                    .sum(),
                Err(_) => 0,
            };
            counts.push((table, rows));
        }
        if counts == expected || tokio::time::Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(counts, expected);
    for (table, partition, offset) in [
        ("trip_updates", "kafka_partition", "kafka_offset"),
        ("alerts", "kafka_partition", "kafka_offset"),
        ("dead_letters", "partition", "offset"),
    ] {
        python_reader_agrees(&data.join(table), partition, offset).await;
    }
    shutdown.cancel();
    host.wait().await.unwrap();
}

#[tokio::test]
async fn a_table_that_cannot_be_committed_to_is_retried_without_loss_or_duplicates() {
    let topic = "vehicles-broken-log";
    let (_cluster, brokers) = crate::support::cluster(topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifest = dir.path().join("spin.toml");
    std::fs::write(&manifest, manifest_text(topic, &data, 50)).unwrap();
    let (host, shutdown) = start(&manifest, &brokers, &data).await;

    let first = messages(100, 1_764_000_000);
    produce(&brokers, topic, &first).await;
    wait_for_all(&data, first.len(), Duration::from_secs(60)).await;

    // The table's log becomes unreadable: its commits fail and are counted,
    // its partitions wait for a resync, the host keeps running.
    let log = data.join("vehicle_positions/_delta_log");
    let aside = data.join("vehicle_positions/_delta_log.aside");
    std::fs::rename(&log, &aside).unwrap();
    std::fs::write(&log, b"not a directory").unwrap();
    let second = messages(100, 1_764_000_030);
    produce(&brokers, topic, &second).await;
    let errors = |text: &str| {
        sample(
            text,
            r#"weir_delta_commit_errors_total{function="vehicle-transform",kind="error",table="vehicle_positions"}"#,
        )
        .unwrap_or(0.0)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while errors(&host.metrics.encode()) < 1.0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        errors(&host.metrics.encode()) >= 1.0,
        "{}",
        host.metrics.encode()
    );

    // Repaired: the partitions are re-read and finished, exactly once.
    std::fs::remove_file(&log).unwrap();
    std::fs::rename(&aside, &log).unwrap();
    let total = first.len() + second.len();
    let (rows, letters) = wait_for_all(&data, total, Duration::from_secs(90)).await;
    let malformed = first.iter().chain(&second).filter(|m| m.2).count();
    assert_exactly_once(&rows, &letters, total - malformed, malformed);
    shutdown.cancel();
    host.wait().await.unwrap();
}

/// `weir table vehicle_positions` prints the table as the log describes it
/// and its newest rows as JSON.
fn weir_table_shows(manifest: &Path, rows: usize) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["table", "vehicle_positions", "-n", "3", "-f"])
        .arg(manifest)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.starts_with("table       vehicle_positions ("), "{out}");
    assert!(out.contains(&format!("rows        {rows} in ")), "{out}");
    assert!(out.contains("partitions  1\n  date="), "{out}");
    assert!(out.contains(&format!("{rows:>10} rows")), "{out}");
    assert!(
        out.contains("  kafka_offset                 long         not null"),
        "{out}"
    );
    assert!(out.contains("last commits\nversion"), "{out}");
    assert!(out.contains("vehicle-transform"), "{out}");
    let newest = out.split("newest rows\n").nth(1).unwrap();
    let rows: Vec<serde_json::Value> = newest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows.iter()
            .all(|r| r["vehicle_id"].is_string() && r["date"].is_string()),
        "{out}"
    );
}
