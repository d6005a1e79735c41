//! Hot swap under a running stream, in-process over librdkafka's mock
//! cluster: deploys through the admin API (20 back and forth), refused
//! uploads, tokens, rollback, `--watch`, and the lineage that ties every
//! row to the component that wrote it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deltalake::arrow::array::{Array, StringArray};
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;
use weir::admin::AdminConfig;
use weir::run::KafkaMode;
use weir::sink::delta::{lineage, read};
use weir::{Host, HostConfig, Manifest, RuntimeConfig};

use crate::delta::offsets;
use crate::support::guest;

pub(crate) const TOKEN: &str = "s3cret-token";

/// A manifest running the `mark` transform (its component file at
/// `source`) on `topic`, writing table `rows` under `dir/data`.
pub(crate) fn manifest(dir: &Path, topic: &str, source: &Path) -> PathBuf {
    std::fs::write(
        dir.join("rows.json"),
        r#"{"version": 1, "columns": [{"name": "partition", "type": "integer", "nullable": false}, {"name": "offset", "type": "long", "nullable": false}, {"name": "mark", "type": "string", "nullable": false}]}"#,
    )
    .unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(
        &path,
        format!(
            r#"
spin_manifest_version = 2
[application]
name = "swap-test"
[[trigger.kafka]]
id = "marks"
component = "mark"
topics = ["{topic}"]
group = "mark-{topic}"
batch = {{ max_records = 40, max_ms = 100 }}
session_timeout_ms = 6000
tables = {{ rows = {{ uri = "data/rows", schema = "rows.json" }} }}
dead_letter = {{ uri = "data/dead_letters" }}
[component.mark]
source = "{source}"
"#,
            source = source.display()
        ),
    )
    .unwrap();
    path
}

pub(crate) async fn start(
    manifest: &Path,
    brokers: &str,
    admin: AdminConfig,
    watch: Option<Duration>,
) -> (Host, CancellationToken) {
    let shutdown = CancellationToken::new();
    let config = HostConfig {
        manifest: Manifest::load(manifest, Vec::new()).unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        runtime: RuntimeConfig::default(),
        once: false,
        data_dir: Some(manifest.parent().unwrap().join("data")),
        kafka: KafkaMode::Brokers(brokers.to_owned()),
        admin,
        watch,
        parallelism: weir::trigger::kafka::default_parallelism(),
    };
    (
        Host::start(config, shutdown.clone()).await.unwrap(),
        shutdown,
    )
}

/// How long the test hosts wait for an upload's body.
pub(crate) const UPLOAD_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn with_token() -> AdminConfig {
    AdminConfig {
        token: Some(TOKEN.to_owned()),
        max_upload_bytes: Some(1 << 20),
        upload_timeout: Some(UPLOAD_TIMEOUT),
    }
}

/// Produces a steady stream (~400 messages/s) until `stop`; returns how
/// many were acknowledged.
fn stream(brokers: &str, topic: &str, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let topic = topic.to_owned();
    tokio::spawn(async move {
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..4 {
                let key = format!("k{sent}");
                producer
                    .send(
                        FutureRecord::to(&topic).key(&key).payload("m"),
                        Duration::from_secs(10),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .unwrap();
                sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sent
    })
}

fn rows_written(host: &Host) -> u64 {
    host.metrics
        .delta_rows_written
        .with_label_values(&["mark", "rows"])
        .get()
}

/// Waits until more rows than `before` are committed.
async fn rows_after(host: &Host, before: u64) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while rows_written(host) <= before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no rows committed after the swap");
}

/// `PUT /functions/<id>/component`: status and JSON body.
async fn upload(
    host: &Host,
    id: &str,
    bytes: Vec<u8>,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .put(format!("http://{}/functions/{id}/component", host.addr))
        .body(bytes);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    answer(request).await
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, body)
}

/// Every offset the stream produced is in `rows` exactly once, and no
/// message was dead-lettered.
async fn assert_every_offset_once(data: &Path, produced: usize) -> BTreeMap<(i32, i64), usize> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let rows = offsets(&data.join("rows"), "partition", "offset").await;
        if rows.values().sum::<usize>() >= produced || tokio::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let letters = offsets(&data.join("dead_letters"), "partition", "offset").await;
    assert!(letters.is_empty(), "dead letters: {letters:?}");
    let duplicated: Vec<_> = rows.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "duplicated offsets: {duplicated:?}");
    assert_eq!(rows.len(), produced, "every produced message once");
    rows
}

/// For every commit that added rows: its digest, and the marks in the
/// files it added.
async fn commits_and_marks(table: &Path) -> Vec<(String, Vec<String>)> {
    let opened = read::open(&table.display().to_string()).await.unwrap();
    let mut out = Vec::new();
    for commit in lineage::commits(&opened, None).await.unwrap() {
        if commit.rows == 0 {
            continue;
        }
        let mut marks = Vec::new();
        for path in &commit.paths {
            let bytes = bytes::Bytes::from(std::fs::read(table.join(path)).unwrap());
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let column = batch.column_by_name("mark").unwrap();
                let column = column.as_any().downcast_ref::<StringArray>().unwrap();
                marks.extend((0..column.len()).map(|i| column.value(i).to_owned()));
            }
        }
        out.push((commit.digest.unwrap(), marks));
    }
    out
}

#[tokio::test]
async fn twenty_swaps_under_a_steady_stream_land_every_offset_once() {
    let topic = "swap-twenty";
    let (_cluster, brokers) = crate::support::cluster(topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (
        std::fs::read(guest("mark_a")).unwrap(),
        std::fs::read(guest("mark_b")).unwrap(),
    );
    let (d1, d2) = (weir::runtime::digest(&v1), weir::runtime::digest(&v2));
    let manifest = manifest(dir.path(), topic, &guest("mark_a"));
    let (host, shutdown) = start(&manifest, &brokers, with_token(), None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = stream(&brokers, topic, Arc::clone(&stop));
    rows_after(&host, 0).await;

    for i in 0..20 {
        let (bytes, old, new) = if i % 2 == 0 {
            (v2.clone(), &d1, &d2)
        } else {
            (v1.clone(), &d2, &d1)
        };
        let (status, swap) = upload(&host, "mark", bytes, Some(TOKEN)).await;
        // Sampled after the switch: the batch in flight during the deploy
        // committed (with the old version) before it returned.
        let before = rows_written(&host);
        assert_eq!(status, 200, "swap {i}: {swap}");
        assert_eq!(swap["result"], "swapped", "swap {i}: {swap}");
        assert_eq!(swap["old"], old.as_str());
        assert_eq!(swap["new"], new.as_str());
        assert_eq!(swap["smoke_test"]["status"], "passed", "swap {i}: {swap}");
        rows_after(&host, before).await;
    }
    stop.store(true, Ordering::Relaxed);
    let produced = producing.await.unwrap();
    let data = dir.path().join("data");
    assert_every_offset_once(&data, produced).await;

    // Every commit's rows carry the mark of the digest its commitInfo names,
    // and the digests alternate exactly as the swaps did.
    let commits = commits_and_marks(&data.join("rows")).await;
    let mut runs: Vec<&str> = Vec::new();
    for (digest, marks) in &commits {
        let mark = if *digest == d1 { "v1" } else { "v2" };
        assert!(*digest == d1 || *digest == d2, "unknown digest {digest}");
        assert!(
            marks.iter().all(|m| m == mark),
            "commit by {digest} holds rows of another version: {marks:?}"
        );
        if runs.last() != Some(&digest.as_str()) {
            runs.push(digest);
        }
    }
    assert_eq!(runs.len(), 21, "20 swaps make 21 runs of one version");

    let metrics = host.metrics.encode();
    let swaps =
        crate::support::sample(&metrics, r#"weir_swaps_total{function="mark",result="ok"}"#);
    assert_eq!(swaps, Some(20.0), "{metrics}");
    let pauses = crate::support::sample(
        &metrics,
        r#"weir_swap_pause_seconds_count{function="mark"}"#,
    );
    assert_eq!(pauses, Some(20.0));
    assert!(metrics.contains(&format!(
        r#"weir_component_info{{digest="{d1}",function="mark",world="transformer"}} 1"#
    )));
    assert!(
        !metrics.contains(&format!(r#"digest="{d2}""#)),
        "old digest still shown"
    );
    shutdown.cancel();
    host.wait().await.unwrap();
}

#[tokio::test]
async fn bad_uploads_and_bad_tokens_are_refused_and_the_stream_goes_on() {
    let topic = "swap-refused";
    let (_cluster, brokers) = crate::support::cluster(topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), topic, &guest("mark_a"));
    let (host, shutdown) = start(&manifest, &brokers, with_token(), None).await;
    let d1 = weir::runtime::digest(&std::fs::read(guest("mark_a")).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let producing = stream(&brokers, topic, Arc::clone(&stop));
    rows_after(&host, 0).await;

    let refusals: [(Vec<u8>, u16, &str); 4] = [
        (
            b"\0asm but not really".to_vec(),
            422,
            "not a valid WebAssembly component",
        ),
        (
            std::fs::read(guest("ok")).unwrap(),
            422,
            "does not fit the `transformer` world: missing export `handle-typed-batch` or `handle-batch`",
        ),
        (
            std::fs::read(guest("trap_batch")).unwrap(),
            422,
            "failed the smoke test on the last batch",
        ),
        (vec![0; 2 << 20], 413, ""),
    ];
    for (bytes, status, message) in refusals {
        let (got, body) = upload(&host, "mark", bytes, Some(TOKEN)).await;
        assert_eq!(got, status, "{body}");
        assert!(body.to_string().contains(message), "{body}");
    }
    let v2 = std::fs::read(guest("mark_b")).unwrap();
    for token in [None, Some("wrong")] {
        let (got, body) = upload(&host, "mark", v2.clone(), token).await;
        assert_eq!(got, 401, "{body}");
    }
    let rollback = reqwest::Client::new()
        .post(format!("http://{}/functions/mark/rollback", host.addr))
        .bearer_auth(TOKEN);
    let (got, body) = answer(rollback).await;
    assert_eq!(got, 409, "nothing to roll back to: {body}");
    let (got, _) = upload(&host, "nope", v2.clone(), Some(TOKEN)).await;
    assert_eq!(got, 404);

    // Nothing changed, and the list says so.
    let (got, function) =
        answer(reqwest::Client::new().get(format!("http://{}/functions/mark", host.addr))).await;
    assert_eq!(got, 200);
    assert_eq!(function["digest"], d1.as_str(), "{function}");
    assert_eq!(function["origin"], "manifest");
    assert_eq!(function["world"], "transformer");
    assert_eq!(function["triggers"], serde_json::json!(["marks"]));
    assert!(
        function["invocations"]["ok"].as_u64().unwrap() > 0,
        "{function}"
    );
    assert_eq!(
        function["invocations"]["trap"], 0,
        "smoke tests are not counted"
    );

    // Still flowing: rows keep coming after the refusals, all from v1.
    rows_after(&host, rows_written(&host)).await;
    stop.store(true, Ordering::Relaxed);
    let produced = producing.await.unwrap();
    let data = dir.path().join("data");
    assert_every_offset_once(&data, produced).await;
    for (digest, marks) in commits_and_marks(&data.join("rows")).await {
        assert_eq!(digest, d1);
        assert!(marks.iter().all(|m| m == "v1"));
    }
    let metrics = host.metrics.encode();
    for (result, count) in [
        ("invalid", 1.0),
        ("wrong_world", 1.0),
        ("smoke_failed", 1.0),
        ("no_previous", 1.0),
    ] {
        let label = format!(r#"weir_swaps_total{{function="mark",result="{result}"}}"#);
        assert_eq!(
            crate::support::sample(&metrics, &label),
            Some(count),
            "{label}"
        );
    }
    assert_eq!(
        crate::support::sample(&metrics, r#"weir_swaps_total{function="mark",result="ok"}"#),
        Some(0.0),
        "created at zero, never incremented"
    );
    shutdown.cancel();
    host.wait().await.unwrap();
}

#[tokio::test]
async fn rollback_restores_the_previous_version_and_deploys_can_be_disabled() {
    let topic = "swap-rollback";
    let (_cluster, brokers) = crate::support::cluster(topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), topic, &guest("mark_a"));
    let (host, shutdown) = start(&manifest, &brokers, with_token(), None).await;
    let (d1, d2) = (
        weir::runtime::digest(&std::fs::read(guest("mark_a")).unwrap()),
        weir::runtime::digest(&std::fs::read(guest("mark_b")).unwrap()),
    );
    // Before any batch: the smoke test cannot run and says why.
    let (got, swap) = upload(
        &host,
        "mark",
        std::fs::read(guest("mark_b")).unwrap(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(got, 200, "{swap}");
    assert_eq!(swap["smoke_test"]["status"], "skipped");
    assert_eq!(swap["smoke_test"]["reason"], "no batch processed yet");
    // The same bytes again change nothing.
    let (_, same) = upload(
        &host,
        "mark",
        std::fs::read(guest("mark_b")).unwrap(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(same["result"], "unchanged");
    let rollback = || {
        reqwest::Client::new()
            .post(format!("http://{}/functions/mark/rollback", host.addr))
            .bearer_auth(TOKEN)
    };
    let (got, back) = answer(rollback()).await;
    assert_eq!(got, 200, "{back}");
    assert_eq!(
        (back["old"].as_str(), back["new"].as_str()),
        (Some(d2.as_str()), Some(d1.as_str()))
    );
    let current = host.functions.get("mark").unwrap().current();
    assert_eq!(current.component.digest, d1);
    // A second rollback undoes the first.
    let (_, again) = answer(rollback()).await;
    assert_eq!(again["new"], d2.as_str());
    shutdown.cancel();
    host.wait().await.unwrap();

    // A host without a token serves the list but no deploys.
    let (host, shutdown) = start(&manifest, &brokers, AdminConfig::default(), None).await;
    let (got, body) = upload(
        &host,
        "mark",
        std::fs::read(guest("mark_b")).unwrap(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(got, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("deploys are disabled")
    );
    let (got, list) =
        answer(reqwest::Client::new().get(format!("http://{}/functions", host.addr))).await;
    assert_eq!(got, 200);
    assert_eq!(list[0]["id"], "mark");
    shutdown.cancel();
    host.wait().await.unwrap();
}

#[tokio::test]
async fn watch_deploys_a_rebuilt_component_within_seconds() {
    let topic = "swap-watch";
    let (_cluster, brokers) = crate::support::cluster(topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("mark.wasm");
    std::fs::copy(guest("mark_a"), &source).unwrap();
    let manifest = manifest(dir.path(), topic, &source);
    let (host, shutdown) = start(
        &manifest,
        &brokers,
        AdminConfig::default(),
        Some(Duration::from_millis(200)),
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = stream(&brokers, topic, Arc::clone(&stop));
    rows_after(&host, 0).await;
    let ok = |host: &Host| host.metrics.swaps.with_label_values(&["mark", "ok"]).get();

    // "Rebuild": the new file is written beside it and renamed over it.
    let replace = |from: &Path| {
        let next = dir.path().join("mark.wasm.new");
        std::fs::copy(from, &next).unwrap();
        std::fs::rename(&next, &source).unwrap();
    };
    for (i, (from, mark)) in [(guest("mark_b"), "v2"), (guest("mark_a"), "v1")]
        .iter()
        .enumerate()
    {
        let started = tokio::time::Instant::now();
        replace(from);
        tokio::time::timeout(Duration::from_secs(10), async {
            while ok(&host) < i as u64 + 1 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("--watch did not deploy {mark} within 10 s"));
        eprintln!("--watch deployed {mark} after {:?}", started.elapsed());
        rows_after(&host, rows_written(&host)).await;
        if i == 0 {
            // A broken build is refused; the running version stays.
            std::fs::write(dir.path().join("broken.wasm"), b"not a component").unwrap();
            replace(&dir.path().join("broken.wasm"));
            tokio::time::timeout(Duration::from_secs(10), async {
                while host
                    .metrics
                    .swaps
                    .with_label_values(&["mark", "invalid"])
                    .get()
                    < 1
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
            .expect("the broken build was not looked at");
            let current = host.functions.get("mark").unwrap().current();
            assert_eq!(
                current.component.digest,
                weir::runtime::digest(&std::fs::read(guest("mark_b")).unwrap())
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let produced = producing.await.unwrap();
    let data = dir.path().join("data");
    assert_every_offset_once(&data, produced).await;
    let commits = commits_and_marks(&data.join("rows")).await;
    let mut marks: Vec<&str> = Vec::new();
    for (_, m) in &commits {
        if let Some(first) = m.first()
            && marks.last() != Some(&first.as_str())
        {
            marks.push(first);
        }
    }
    assert_eq!(marks, ["v1", "v2", "v1"]);
    assert_eq!(ok(&host), 2);
    shutdown.cancel();
    host.wait().await.unwrap();
}

/// `weir up` as a process, then `weir deploy`, `weir rollback` and
/// `weir lineage` against it, with the token the host made on loopback.
#[tokio::test]
async fn deploy_rollback_and_lineage_from_the_command_line() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    let topic = "swap-cli";
    let (_cluster, brokers) = crate::support::cluster(topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), topic, &guest("mark_a"));
    let mut host = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["up", "--listen", "127.0.0.1:0", "--brokers", &brokers, "-f"])
        .arg(&manifest)
        .env("RUST_LOG", "info")
        .env_remove("WEIR_ADMIN_TOKEN")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(host.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("host exited").unwrap();
        if line.contains("serving /metrics") {
            let at = line.find("addr=").unwrap() + 5;
            break line[at..].split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining the log so the host never blocks on a full pipe.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    let token = std::fs::read_to_string(dir.path().join("data/admin.token")).unwrap();
    assert!(token.len() >= 32, "a long random token: {token}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("data/admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "token readable by others: {mode:o}");
    }
    let weir = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .args(["--admin", &format!("http://{addr}"), "-f"])
            .arg(&manifest)
            .env_remove("WEIR_ADMIN_TOKEN")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };
    let produce = |n: usize| {
        let brokers = brokers.clone();
        async move {
            let messages: Vec<(String, Option<Vec<u8>>, bool)> = (0..n)
                .map(|i| (format!("k{i}"), Some(b"m".to_vec()), false))
                .collect();
            crate::delta::produce(&brokers, topic, &messages).await;
        }
    };
    let data = dir.path().join("data");
    let wait_rows = |n: usize| {
        let data = data.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(60), async {
                while offsets(&data.join("rows"), "partition", "offset")
                    .await
                    .len()
                    < n
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await
            .expect("rows did not arrive");
        }
    };
    produce(50).await;
    wait_rows(50).await;
    let v2 = guest("mark_b");
    let (d1, d2) = (
        weir::runtime::digest(&std::fs::read(guest("mark_a")).unwrap()),
        weir::runtime::digest(&std::fs::read(&v2).unwrap()),
    );
    let (ok, out) = weir(&["deploy", "mark", v2.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("mark: {d1} → {d2} swapped (smoke test passed on ")),
        "{out}"
    );
    assert!(out.contains(" rows, 0 rejected; paused "), "{out}");
    produce(50).await;
    wait_rows(100).await;
    let (ok, out) = weir(&["rollback", "mark"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("mark: {d2} → {d1} rolled_back")),
        "{out}"
    );
    let (ok, out) = weir(&[
        "deploy",
        "mark",
        v2.to_str().unwrap(),
        "--admin-token",
        "wrong",
    ]);
    assert!(!ok);
    assert!(
        out.contains("401") && out.contains("wrong bearer token"),
        "{out}"
    );
    produce(50).await;
    wait_rows(150).await;

    let lineage = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["lineage", "rows", "--json", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(lineage.status.success());
    let commits: Vec<serde_json::Value> = String::from_utf8(lineage.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut runs: Vec<&str> = Vec::new();
    for c in commits.iter().filter(|c| c["rows"].as_u64() > Some(0)) {
        let digest = c["digest"].as_str().unwrap();
        if runs.last() != Some(&digest) {
            runs.push(digest);
        }
    }
    assert_eq!(runs, [d1.as_str(), d2.as_str(), d1.as_str()]);
    let rows: u64 = commits.iter().map(|c| c["rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, 150);
    let table = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["lineage", "rows", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("version"), "{table}");
    assert!(
        table.contains(&d2[..23]) && table.contains("mark"),
        "{table}"
    );
    let shown = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["table", "rows", "-n", "2", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("rows        150 in "), "{shown}");
    assert!(!shown.contains("partitions"), "unpartitioned: {shown}");
    assert!(
        shown.contains("  mark                         string       not null"),
        "{shown}"
    );
    let newest: Vec<&str> = shown
        .split("newest rows\n")
        .nth(1)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(newest.len(), 2, "{shown}");
    assert!(
        newest.iter().all(|r| r.contains(r#""mark":"v1""#)),
        "the newest rows are v1's again: {shown}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(host.wait().unwrap().success());
}
