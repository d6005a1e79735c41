//! kill -9 tests: the host runs as a process against the embedded broker
//! (tansu, sqlite) in a process of its own, and is killed again and again —
//! at each crash point of the commit protocol and at random moments —
//! while messages keep arriving. At the end every offset is in the tables
//! exactly once, and the parquet files the crashes left are reported.
//! The two-host failover test uses librdkafka's mock cluster instead (see
//! the test).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::delta::{messages, offsets, produce};
use crate::support::{free_port, sample};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// A child process killed (SIGKILL) when dropped.
pub(crate) struct Process {
    pub(crate) child: Child,
    pub(crate) _stdout: Option<ChildStdout>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How `process` ended, if it ended within `limit`.
pub(crate) async fn exited_within(
    process: &mut Process,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `weir dev-broker` on a free port; returns it and its bootstrap address.
/// Its log (with the group coordinator's decisions) goes to `dir`.log.
pub(crate) fn broker(dir: &Path) -> (Process, String) {
    broker_on(dir, 0)
}

/// [`broker`] on `port` (0: a free one); a broker started again on the
/// same port and `dir` serves what the last one stored. Its log is
/// appended to.
pub(crate) fn broker_on(dir: &Path, port: u16) -> (Process, String) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.with_extension("log"))
        .unwrap();
    let mut child = Command::new(WEIR)
        .args(["dev-broker", "--port", &port.to_string(), "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn,tansu_broker::coordinator=info")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let process = Process {
        child,
        _stdout: Some(stdout.into_inner()),
    };
    (process, line.trim().to_owned())
}

pub(crate) async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    for r in results {
        r.unwrap();
    }
}

/// `weir up` on the manifest, with crash point `failpoint` armed.
/// Its log goes to `log`.
fn host(manifest: &Path, brokers: &str, port: u16, failpoint: Option<&str>, log: &Path) -> Process {
    let mut command = host_command(manifest, brokers, port, failpoint, log);
    Process {
        child: command.spawn().unwrap(),
        _stdout: None,
    }
}

/// The command of [`host`], to add to before it starts.
pub(crate) fn host_command(
    manifest: &Path,
    brokers: &str,
    port: u16,
    failpoint: Option<&str>,
    log: &Path,
) -> Command {
    let mut command = Command::new(WEIR);
    command
        .args(["up", "--file"])
        .arg(manifest)
        .args([
            "--brokers",
            brokers,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        // Two transform instances per batch on any machine: crashes land in
        // the middle of concurrent parts as well as of commits.
        .args(["--parallelism", "2"])
        .env("RUST_LOG", "warn,weir=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    if let Some(point) = failpoint {
        command.env("WEIR_FAILPOINT", point);
    }
    command
}

/// When fewer than `expected` offsets landed, prints what did land (per
/// partition, duplicates included) and the end of every log under `dir`,
/// so a failing run shows what the hosts and the broker were doing.
pub(crate) fn show_logs_if_short(
    dir: &Path,
    expected: usize,
    rows: &BTreeMap<(i32, i64), usize>,
    letters: &BTreeMap<(i32, i64), usize>,
) {
    if rows.len() + letters.len() >= expected {
        return;
    }
    let mut partitions: BTreeMap<i32, (usize, i64, usize)> = BTreeMap::new();
    for ((p, o), n) in rows.iter().chain(letters) {
        let (count, last, duplicated) = partitions.entry(*p).or_insert((0, -1, 0));
        *count += 1;
        *last = (*last).max(*o);
        *duplicated += n - 1;
    }
    eprintln!(
        "=== {} of {expected} offsets landed ({} as rows, {} as dead letters)",
        rows.len() + letters.len(),
        rows.len(),
        letters.len()
    );
    for (p, (count, last, duplicated)) in &partitions {
        eprintln!("    partition {p}: {count} offsets, last {last}, {duplicated} duplicated");
    }
    show_logs(dir);
}

/// Every log under `dir` (the hosts' and the broker's), by name.
pub(crate) fn log_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// Prints the end of every log under `dir`.
pub(crate) fn show_logs(dir: &Path) {
    for path in log_files(dir) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("--- {} (last 80 of {} lines)", path.display(), lines.len());
        for line in &lines[lines.len().saturating_sub(80)..] {
            eprintln!("{line}");
        }
    }
}

/// Produces `messages` in chunks of `chunk`, pausing `pause` after each,
/// in the background: a stream that keeps arriving while hosts come and go.
pub(crate) fn stream(
    brokers: &str,
    topic: &'static str,
    messages: &[(String, Option<Vec<u8>>, bool)],
    chunk: usize,
    pause: Duration,
) -> tokio::task::JoinHandle<()> {
    let brokers = brokers.to_owned();
    let messages = messages.to_vec();
    tokio::spawn(async move {
        for part in messages.chunks(chunk) {
            produce(&brokers, topic, part).await;
            tokio::time::sleep(pause).await;
        }
    })
}

/// A small deterministic generator, seeded from the clock (and printed, so
/// a failing run can be replayed).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (x ^ (x >> 31)) % below
    }
}

/// The paths of the files the table's current version references.
pub(crate) fn referenced(table: &deltalake::DeltaTable) -> BTreeSet<String> {
    table
        .snapshot()
        .unwrap()
        .log_data()
        .into_iter()
        .map(|add| add.object_store_path().to_string())
        .collect()
}

/// Every data file any commit in the log added or removed, read from the
/// commit files themselves: a file the host compacted away is no orphan.
pub(crate) async fn ever_committed(table: &deltalake::DeltaTable) -> BTreeSet<String> {
    use futures::TryStreamExt as _;
    use object_store::ObjectStoreExt as _;
    let store = table.object_store();
    let listed: Vec<_> = store
        .list(Some(&object_store::path::Path::from("_delta_log")))
        .try_collect()
        .await
        .unwrap();
    let mut paths = BTreeSet::new();
    for meta in listed {
        if !meta.location.as_ref().ends_with(".json") {
            continue;
        }
        let bytes = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let action: serde_json::Value = serde_json::from_slice(line).unwrap();
            for kind in ["add", "remove"] {
                if let Some(path) = action[kind]["path"].as_str() {
                    let path = object_store::path::Path::from_url_path(path).unwrap();
                    paths.insert(path.to_string());
                }
            }
        }
    }
    paths
}

/// The parquet files under `table` that no commit of its log added.
async fn unreferenced(table: &Path) -> usize {
    let delta = weir::sink::delta::read::open(&table.display().to_string())
        .await
        .unwrap();
    let referenced = ever_committed(&delta).await;
    let mut count = 0;
    let mut dirs = vec![table.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("_delta_log") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let relative = path.strip_prefix(table).unwrap().display().to_string();
                count += usize::from(!referenced.contains(&relative));
            }
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_every_crash_point_loses_and_duplicates_nothing() {
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(&dir.path().join("broker"));
    let topic = "vehicles-crash";
    create_topic(&brokers, topic, 3).await;
    let data = dir.path().join("data");
    let manifest = dir.path().join("spin.toml");
    std::fs::write(&manifest, crate::delta::manifest_text(topic, &data, 150)).unwrap();

    // The stream: 2,000 messages, 1,400 of them produced in chunks while
    // the host crashes (~56 s, about as long as the crash rounds take).
    let all = messages(2_000, 1_764_000_000);
    // The last 600 wait for the last host: a backlog of full batches
    // spanning every partition, whatever the crashes left.
    let (crashing, backlog) = all.split_at(all.len() - 600);
    let producer = stream(&brokers, topic, crashing, 50, Duration::from_secs(2));

    let points = [
        "batch-before-write",
        "delta-after-write",
        "delta-between-tables",
        "delta-before-offset-commit",
        "random",
    ];
    let mut kills = 0;
    let mut aborted_at = BTreeSet::new();
    let mut orphans_possible = false;
    for round in 0..12 {
        let point = points[round % points.len()];
        let spec = (point != "random").then(|| format!("{point}:{}", 1 + rng.next(3)));
        let log = dir.path().join(format!("host-{round}.log"));
        let mut process = host(&manifest, &brokers, free_port(), spec.as_deref(), &log);
        let started = Instant::now();
        if spec.is_some() {
            // Wait for the crash point to abort the process.
            if let Some(status) = exited_within(&mut process, Duration::from_secs(40)).await {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                assert_eq!(
                    status.signal(),
                    Some(6),
                    "round {round} did not abort at {point}: {status:?}\n{log}"
                );
                aborted_at.insert(point);
                orphans_possible |= point == "delta-after-write";
            }
        } else {
            tokio::time::sleep(Duration::from_millis(2_000 + rng.next(6_000))).await;
        }
        // Aborted at its crash point, or SIGKILLed now (at a random moment,
        // or because the point was not reached in time).
        kills += 1;
        println!(
            "round {round}: {point} {spec:?} after {:?}",
            started.elapsed()
        );
        drop(process); // SIGKILL if still running
    }
    assert!(kills >= 10, "only {kills} kills");
    assert_eq!(
        aborted_at.len(),
        points.len() - 1,
        "every crash point was reached at least once: {aborted_at:?}"
    );
    producer.await.unwrap();
    produce(&brokers, topic, backlog).await;

    // A last host without crash points finishes the stream.
    let port = free_port();
    let mut last = host(
        &manifest,
        &brokers,
        port,
        None,
        &dir.path().join("host-last.log"),
    );
    let (rows, letters) = crate::delta::wait_for_all(
        &data,
        all.len(),
        // A restarted member waits out the dead one's session; under a
        // loaded CI machine tansu's rebalances take tens of seconds.
        Duration::from_secs(180),
    )
    .await;
    show_logs_if_short(dir.path(), all.len(), &rows, &letters);
    let malformed = all.iter().filter(|m| m.2).count();
    crate::delta::assert_exactly_once(&rows, &letters, all.len() - malformed, malformed);

    // Files written by crashed attempts are never referenced; the host
    // reports them when it opens the table.
    let metrics = crate::support::scrape(port).await;
    let reported = sample(
        &metrics,
        r#"weir_delta_orphan_files{function="vehicle-transform",table="vehicle_positions"}"#,
    )
    .unwrap();
    // The backlog spans every partition and makes full batches: the last
    // host ran batches on two instances at once, and transformed batches
    // while the one before them committed.
    let batches = sample(
        &metrics,
        r#"weir_batch_parts_count{function="vehicle-transform"}"#,
    )
    .unwrap();
    let single = sample(
        &metrics,
        r#"weir_batch_parts_bucket{function="vehicle-transform",le="1"}"#,
    )
    .unwrap();
    assert!(single < batches, "no batch ran in two parts:\n{metrics}");
    let overlapped = sample(
        &metrics,
        r#"weir_batches_overlapped_total{function="vehicle-transform"}"#,
    )
    .unwrap();
    assert!(overlapped > 0.0, "no batch overlapped a commit:\n{metrics}");
    sigterm(&last.child);
    let exited = tokio::task::spawn_blocking(move || {
        let status = last.child.wait().unwrap();
        (last, status)
    })
    .await
    .unwrap();
    assert!(exited.1.success(), "clean exit on SIGTERM: {:?}", exited.1);
    let on_disk = unreferenced(&data.join("vehicle_positions")).await;
    assert_eq!(reported as usize, on_disk, "orphans reported vs on disk");
    if orphans_possible {
        println!("{on_disk} orphan parquet file(s) left by crashes, reported");
    }
    let check = offsets(
        &data.join("vehicle_positions"),
        "kafka_partition",
        "kafka_offset",
    )
    .await;
    assert_eq!(check, rows, "reading the table again gives the same rows");
}

/// SIGTERM through the `kill` command (no unsafe `libc` call needed).
fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_in_one_group_one_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    // The broker outlives both hosts here, so it need not persist; it must
    // hand a dead member's partitions to the survivor, which tansu 0.6 does
    // not when the dead member was the group leader (docs/decisions.md).
    let topic = "vehicles-two-hosts";
    let (_cluster, brokers) = crate::support::cluster(topic, 4);
    let data = dir.path().join("data");
    let manifest = dir.path().join("spin.toml");
    std::fs::write(&manifest, crate::delta::manifest_text(topic, &data, 100)).unwrap();

    let all = messages(2_400, 1_764_000_000);
    let producer = stream(&brokers, topic, &all, 100, Duration::from_secs(1));
    let first = host(
        &manifest,
        &brokers,
        free_port(),
        None,
        &dir.path().join("a.log"),
    );
    let _second = host(
        &manifest,
        &brokers,
        free_port(),
        None,
        &dir.path().join("b.log"),
    );
    // Both hosts share the partitions for a while, then one dies.
    tokio::time::sleep(Duration::from_secs(12)).await;
    drop(first);
    producer.await.unwrap();

    let (rows, letters) = crate::delta::wait_for_all(
        &data,
        all.len(),
        // The survivor waits out the dead one's session, then rebalances.
        Duration::from_secs(180),
    )
    .await;
    show_logs_if_short(dir.path(), all.len(), &rows, &letters);
    let malformed = all.iter().filter(|m| m.2).count();
    crate::delta::assert_exactly_once(&rows, &letters, all.len() - malformed, malformed);

    // Both hosts committed (lineage names each host).
    let table =
        weir::sink::delta::read::open(&data.join("vehicle_positions").display().to_string())
            .await
            .unwrap();
    let history: Vec<_> = futures::TryStreamExt::try_collect(table.history(None))
        .await
        .unwrap();
    let hosts: BTreeSet<String> = history
        .iter()
        .filter_map(|c| c.info.get("weir.hostId")?.as_str().map(str::to_owned))
        .collect();
    if hosts.len() != 2 {
        show_logs(dir.path());
    }
    assert_eq!(hosts.len(), 2, "commits by both hosts: {hosts:?}");
}
