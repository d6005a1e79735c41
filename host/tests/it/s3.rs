//! Delta tables on S3-compatible object storage. moto's S3 server on
//! 127.0.0.1 plays the store: it answers a second `PUT` with
//! `If-None-Match: *` with 412, which is what makes concurrent commits
//! safe. Hosts killed at the commit protocol's crash points, three writers
//! racing on one table and the endpoint hanging mid-stream: every offset
//! lands exactly once, and the secret key never reaches a log.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::{Int32Array, Int64Array, RecordBatch};
use futures::TryStreamExt as _;
use weir::sink::delta::{
    CommitInfo, StorageOptions, TableSchema, TableSettings, TableWriter, TxnUpdate, read,
};

use crate::crash::{
    Process, broker, create_topic, ever_committed, exited_within, host_command, stream,
};
use crate::delta::{
    assert_exactly_once, messages, offsets_at, produce, python_reader_agrees_at, start_with,
    wait_for_all_at,
};
use crate::support::{free_port, function, sample};

/// The access key weir's manifests name; the secret key comes from a
/// secret variable.
const ACCESS_KEY: &str = "weir-test";

/// moto's S3 server on a free port of 127.0.0.1, killed when dropped.
pub(crate) struct Moto {
    process: Process,
    /// `http://127.0.0.1:PORT`.
    pub(crate) endpoint: String,
}

impl Moto {
    /// Starts the server and waits until it answers.
    pub(crate) async fn start() -> Self {
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new("python3")
                .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 runs (moto: `pip install -r requirements-test.txt`)");
            let mut process = Process {
                child,
                _stdout: None,
            };
            let endpoint = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if process.child.try_wait().unwrap().is_some() {
                    break; // the port was taken in between: try another
                }
                if reqwest::get(&endpoint).await.is_ok() {
                    return Self { process, endpoint };
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("moto's S3 server did not start (is `moto[server]` installed?)");
    }

    /// Creates bucket `name`.
    pub(crate) async fn bucket(&self, name: &str) {
        reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }

    /// The standard AWS variables that point a client at this server.
    pub(crate) fn env(&self, secret: &str) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The same settings as table storage options.
    pub(crate) fn options(&self, secret: &str) -> StorageOptions {
        let mut options = StorageOptions::default();
        for (key, value) in self.env(secret) {
            options.insert(&key, value);
        }
        options
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the server.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.process.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }
}

/// A secret no log may show.
fn secret() -> String {
    format!("s3-secret-{}", uuid::Uuid::new_v4().simple())
}

/// vehicle-transform on `topic` into tables under `data` (an `s3://` URI),
/// the endpoint and keys in each table's storage options, the secret key
/// through the secret variable `s3_secret`.
fn manifest_text(topic: &str, data: &str, endpoint: &str, batch: &str) -> String {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../functions/vehicle-transform/tables/vehicle_positions.json");
    let storage = format!(
        r#"storage = {{ aws_endpoint = "{{{{ s3_endpoint }}}}", aws_allow_http = "true", aws_region = "us-east-1", aws_access_key_id = "{ACCESS_KEY}", aws_secret_access_key = "{{{{ s3_secret }}}}", timeout = "3s", retry_timeout = "5s" }}"#
    );
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "s3-test"
[variables]
s3_endpoint = {{ default = "{endpoint}" }}
s3_secret = {{ required = true, secret = true }}
[[trigger.kafka]]
id = "vehicles"
component = "vehicle-transform"
topics = ["{topic}"]
group = "vehicle-transform-{topic}"
batch = {batch}
session_timeout_ms = 6000
checkpoint_interval = 3
tables = {{ vehicle_positions = {{ uri = "{data}/vehicle_positions", partition_by = ["date"], schema = "{schema}", {storage} }} }}
dead_letter = {{ uri = "{data}/dead_letters", partition_by = ["date"], {storage} }}
[component.vehicle-transform]
source = "{source}"
"#,
        schema = schema.display(),
        source = function("vehicle-transform").display(),
    )
}

/// The parquet files of the table at `uri` no commit of its log added,
/// listed from the object store.
async fn unreferenced(uri: &str, storage: &StorageOptions) -> usize {
    let table = read::open_with(uri, storage).await.unwrap();
    let referenced = ever_committed(&table).await;
    let listed: Vec<_> = table.object_store().list(None).try_collect().await.unwrap();
    listed
        .iter()
        .map(|meta| meta.location.to_string())
        .filter(|p| {
            p.ends_with(".parquet") && !p.starts_with("_delta_log/") && !referenced.contains(p)
        })
        .count()
}

/// A checkpoint every five commits.
const EVERY_5: TableSettings = TableSettings {
    checkpoint_interval: 5,
    history: Duration::from_secs(3600),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_killed_at_crash_points_commit_to_s3_exactly_once_and_never_log_the_secret() {
    let moto = Moto::start().await;
    moto.bucket("weir-crash").await;
    let secret = secret();
    let storage = moto.options(&secret);
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(&dir.path().join("broker"));
    let topic = "vehicles-s3";
    create_topic(&brokers, topic, 3).await;
    let data = "s3://weir-crash/data";
    let manifest = dir.path().join("spin.toml");
    let text = manifest_text(
        topic,
        data,
        &moto.endpoint,
        "{ max_records = 100, max_ms = 200 }",
    );
    std::fs::write(&manifest, text).unwrap();
    let up = |failpoint: Option<&str>, log: &Path, port: u16| {
        let mut command = host_command(&manifest, &brokers, port, failpoint, log);
        command.env("SPIN_VARIABLE_S3_SECRET", &secret);
        Process {
            child: command.spawn().unwrap(),
            _stdout: None,
        }
    };

    let all = messages(900, 1_764_000_000);
    let (crashing, backlog) = all.split_at(600);
    let producer = stream(&brokers, topic, crashing, 50, Duration::from_secs(1));
    for (round, point) in [
        "delta-after-write:1",
        "delta-between-tables:1",
        "delta-before-offset-commit:2",
    ]
    .into_iter()
    .enumerate()
    {
        let log = dir.path().join(format!("host-{round}.log"));
        let mut process = up(Some(point), &log, free_port());
        let status = exited_within(&mut process, Duration::from_secs(90)).await;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(
            status.and_then(|s| s.signal()),
            Some(6),
            "round {round} did not abort at {point}:\n{text}"
        );
    }
    producer.await.unwrap();
    produce(&brokers, topic, backlog).await;

    // The last host logs at debug level: not even there is the secret.
    let port = free_port();
    let mut last = {
        let log = dir.path().join("host-last.log");
        let mut command = host_command(&manifest, &brokers, port, None, &log);
        command
            .env("SPIN_VARIABLE_S3_SECRET", &secret)
            .env("RUST_LOG", "debug");
        Process {
            child: command.spawn().unwrap(),
            _stdout: None,
        }
    };
    let (rows, letters) =
        wait_for_all_at(data, &storage, all.len(), Duration::from_secs(120)).await;
    let malformed = all.iter().filter(|m| m.2).count();
    assert_exactly_once(&rows, &letters, all.len() - malformed, malformed);

    // The files of the attempt killed after writing them are reported.
    let metrics = crate::support::scrape(port).await;
    let _ = last.child.kill();
    let _ = last.child.wait();
    let rows_at = format!("{data}/vehicle_positions");
    let reported = sample(
        &metrics,
        r#"weir_delta_orphan_files{function="vehicle-transform",table="vehicle_positions"}"#,
    );
    assert_eq!(
        reported,
        Some(unreferenced(&rows_at, &storage).await as f64),
        "{metrics}"
    );

    // Checkpoints are written to the bucket too.
    let table = read::open_with(&rows_at, &storage).await.unwrap();
    let checkpoint = deltalake::Path::from("_delta_log/_last_checkpoint");
    object_store::ObjectStoreExt::head(table.object_store().as_ref(), &checkpoint)
        .await
        .expect("a checkpoint in the bucket");

    // The Python reader, configured by the standard AWS variables, agrees.
    for (table, partition, offset) in [
        ("vehicle_positions", "kafka_partition", "kafka_offset"),
        ("dead_letters", "partition", "offset"),
    ] {
        let uri = format!("{data}/{table}");
        python_reader_agrees_at(&uri, &storage, &moto.env(&secret), partition, offset).await;
    }

    // `weir table` and `weir lineage` find the tables through the manifest.
    let mut shown = String::new();
    for command in ["table", "lineage"] {
        let output = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args([command, "vehicle_positions", "-f"])
            .arg(&manifest)
            .env("SPIN_VARIABLE_S3_SECRET", &secret)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&output.stdout).into_owned();
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "weir {command}: {out}{err}");
        assert!(out.contains("vehicle-transform"), "weir {command}: {out}");
        shown.push_str(&out);
        shown.push_str(&err);
    }
    assert!(
        shown.contains(&format!("rows        {} in ", all.len() - malformed)),
        "{shown}"
    );

    // No log line and no output ever showed the secret key.
    assert!(!shown.contains(&secret));
    let mut logs = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains(&secret),
                "{} shows the secret",
                path.display()
            );
            logs += 1;
        }
    }
    assert_eq!(logs, 5, "three crashed hosts, the last one and the broker");
    // The debug log does show the object store it talked to.
    let debug = std::fs::read_to_string(dir.path().join("host-last.log")).unwrap();
    assert!(debug.contains("weir-crash"), "{debug}");
}

/// Two columns: which writer, and its commit's sequence number.
const RACE_SCHEMA: &str = r#"{"version": 1, "columns": [{"name": "writer", "type": "integer", "nullable": false}, {"name": "seq", "type": "long", "nullable": false}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_writers_racing_on_one_s3_table_lose_no_commit() {
    const WRITERS: i32 = 3;
    const COMMITS: i64 = 12;
    let moto = Moto::start().await;
    moto.bucket("weir-race").await;
    let storage = moto.options(&secret());
    let uri = "s3://weir-race/table";
    let schema = TableSchema::parse(RACE_SCHEMA).unwrap();
    let info = CommitInfo {
        function: "race".to_owned(),
        component_digest: "none".to_owned(),
        trigger: "race".to_owned(),
        host_id: "race".to_owned(),
    };
    // Three writers, each with its own object-store client, as three
    // hosts have: they create the table at the same moment, then commit
    // as fast as they can.
    let writers = (0..WRITERS).map(|writer| {
        let (storage, schema, info) = (storage.clone(), schema.clone(), info.clone());
        tokio::spawn(async move {
            let mut table = TableWriter::open("race", uri, &storage, &schema, &[], &EVERY_5)
                .await
                .unwrap();
            let app_id = format!("writer-{writer}");
            for seq in 0..COMMITS {
                let rows = RecordBatch::try_new(
                    Arc::clone(table.arrow_schema()),
                    vec![
                        Arc::new(Int32Array::from(vec![writer; 4])),
                        Arc::new(Int64Array::from(vec![seq; 4])),
                    ],
                )
                .unwrap();
                let txn = TxnUpdate {
                    app_id: app_id.clone(),
                    expected: (seq > 0).then(|| seq - 1),
                    version: seq,
                };
                if let Err(e) = table.commit(Some(rows), &[txn], &info).await {
                    panic!("writer {writer} commit {seq}: {:#}", anyhow::Error::new(e));
                }
            }
        })
    });
    for writer in writers.collect::<Vec<_>>() {
        writer.await.unwrap();
    }

    // Every commit is in the log, every row once, every writer's txn at
    // its last commit.
    let table = read::open_with(uri, &storage).await.unwrap();
    let history: Vec<_> = table.history(None).try_collect().await.unwrap();
    let appends = history
        .iter()
        .filter(|c| c.operation.as_deref() == Some("WRITE"))
        .count();
    assert_eq!(appends, (i64::from(WRITERS) * COMMITS) as usize);
    let mut seen = std::collections::BTreeMap::new();
    for batch in read::scan(&table).await.unwrap() {
        let writers: &Int32Array = crate::delta::column(&batch, "writer");
        let seqs: &Int64Array = crate::delta::column(&batch, "seq");
        for i in 0..batch.num_rows() {
            *seen.entry((writers.value(i), seqs.value(i))).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), (i64::from(WRITERS) * COMMITS) as usize);
    assert!(seen.values().all(|n| *n == 4), "{seen:?}");
    let mut check = TableWriter::open("race", uri, &storage, &schema, &[], &EVERY_5)
        .await
        .unwrap();
    let app_ids: Vec<String> = (0..WRITERS).map(|w| format!("writer-{w}")).collect();
    let versions = check.versions(&app_ids).await.unwrap();
    assert_eq!(versions, vec![Some(COMMITS - 1); WRITERS as usize]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_endpoint_hanging_for_30_seconds_mid_stream_loses_and_duplicates_nothing() {
    let moto = Moto::start().await;
    moto.bucket("weir-outage").await;
    let secret = secret();
    let storage = moto.options(&secret);
    let topic = "vehicles-s3-outage";
    let (_cluster, brokers) = crate::support::cluster(topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    let data = "s3://weir-outage/data";
    let text = manifest_text(
        topic,
        data,
        &moto.endpoint,
        "{ max_records = 50, max_ms = 200 }",
    );
    std::fs::write(&manifest, text).unwrap();
    let env = vec![("SPIN_VARIABLE_S3_SECRET".to_owned(), secret.clone())];
    let (host, shutdown) = start_with(&manifest, &brokers, dir.path(), env).await;

    let all = messages(600, 1_764_000_000);
    let (before, rest) = all.split_at(200);
    let (during, after) = rest.split_at(200);
    produce(&brokers, topic, before).await;
    let (rows, letters) =
        wait_for_all_at(data, &storage, before.len(), Duration::from_secs(60)).await;
    assert_eq!(rows.len() + letters.len(), before.len());

    // The endpoint stops answering (connections open, nothing comes
    // back) while messages keep arriving.
    moto.signal("-STOP");
    let errors = |text: &str| {
        sample(
            text,
            r#"weir_delta_commit_errors_total{function="vehicle-transform",kind="error",table="vehicle_positions"}"#,
        )
        .unwrap_or(0.0)
    };
    produce(&brokers, topic, during).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let counted = errors(&host.metrics.encode());
    moto.signal("-CONT");
    assert!(
        counted > 0.0,
        "failed commits are counted:\n{}",
        host.metrics.encode()
    );

    produce(&brokers, topic, after).await;
    let (rows, letters) = wait_for_all_at(data, &storage, all.len(), Duration::from_secs(90)).await;
    let malformed = all.iter().filter(|m| m.2).count();
    assert_exactly_once(&rows, &letters, all.len() - malformed, malformed);
    let check = offsets_at(
        &format!("{data}/vehicle_positions"),
        &storage,
        "kafka_partition",
        "kafka_offset",
    )
    .await;
    assert_eq!(check, rows);
    shutdown.cancel();
    host.wait().await.unwrap();
}
