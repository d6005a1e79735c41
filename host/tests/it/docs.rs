//! The quick starts in README.md and docs/, run as written so they cannot
//! rot. A block fenced as `sh doctest=<name>` runs in bash (`-eu -o
//! pipefail`) inside a fresh project: the shipped `spin.toml`, the table
//! schemas and the four built components, with `cargo run --release --`
//! and `weir` running the binary under test.
//!
//! What the harness changes, and only through the environment or the
//! project copy: `weir up` is bounded by `WEIR_RUN_FOR` and serves on
//! `WEIR_LISTEN=127.0.0.1:0`, and the dev feed's port 8717 is moved to a
//! free one in the project's `spin.toml` (`--dev-feed` follows the
//! manifest), so the test runs beside others.
//!
//! The README's run command runs twice here: rows land in all three
//! tables, `/metrics` is served, both runs exit cleanly, and the second
//! continues where the first stopped without writing any message twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use deltalake::arrow::array::{Int32Array, Int64Array, StringArray};
use deltalake::arrow::row::{RowConverter, SortField};
use tokio::io::{AsyncBufReadExt, BufReader};
use weir::sink::delta::read;

use crate::delta::column;
use crate::support::{free_port, function, sample};

/// A `sh doctest=<name>` block.
#[derive(Debug)]
struct Block {
    /// `file:line` of its opening fence.
    place: String,
    name: String,
    script: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every doctest block of README.md and docs/*.md.
fn blocks() -> Vec<Block> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut blocks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut open: Option<Block> = None;
        for (i, line) in text.lines().enumerate() {
            if let Some(block) = &mut open {
                if line.trim_start() == "```" {
                    blocks.push(open.take().unwrap());
                } else {
                    block.script.push_str(line);
                    block.script.push('\n');
                }
            } else if let Some(name) = line.trim_start().strip_prefix("```sh doctest=") {
                open = Some(Block {
                    place: format!("{}:{}", file.strip_prefix(repo()).unwrap().display(), i + 1),
                    name: name.trim().to_owned(),
                    script: String::new(),
                });
            }
        }
        assert!(
            open.is_none(),
            "unclosed doctest block in {}",
            file.display()
        );
    }
    blocks
}

/// The one block called `name`.
fn block(name: &str) -> Block {
    let mut found: Vec<Block> = blocks().into_iter().filter(|b| b.name == name).collect();
    assert_eq!(found.len(), 1, "doctest blocks named `{name}`: {found:?}");
    found.pop().unwrap()
}

/// Puts what a built checkout has beside `spin.toml` into `root`: the
/// components where `weir build` writes them and the table schemas.
pub(crate) fn stage_project(root: &Path) {
    let built = root.join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&built).unwrap();
    if !root.join("spin.toml").exists() {
        std::fs::copy(repo().join("spin.toml"), root.join("spin.toml")).unwrap();
    }
    for package in [
        "gtfs-fetch",
        "vehicle-transform",
        "trip-update-transform",
        "alert-transform",
    ] {
        let wasm = function(package);
        std::fs::copy(&wasm, built.join(wasm.file_name().unwrap())).unwrap();
        let tables = format!("functions/{package}/tables");
        if repo().join(&tables).is_dir() {
            std::fs::create_dir_all(root.join(&tables)).unwrap();
            for schema in std::fs::read_dir(repo().join(&tables)).unwrap() {
                let schema = schema.unwrap().path();
                let to = root.join(&tables).join(schema.file_name().unwrap());
                std::fs::copy(&schema, to).unwrap();
            }
        }
    }
}

/// A fresh copy of the project a reader has after cloning and building.
pub(crate) struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let port = free_port();
        let manifest = std::fs::read_to_string(repo().join("spin.toml"))
            .unwrap()
            .replace("127.0.0.1:8717", &format!("127.0.0.1:{port}"));
        std::fs::write(root.join("spin.toml"), manifest).unwrap();
        std::fs::copy(repo().join("compose.yaml"), root.join("compose.yaml")).unwrap();
        stage_project(root);
        // The README's run command as a checkout has it; with everything
        // installed already, it goes straight to `cargo run`.
        for file in [
            "scripts/run",
            ".ci/install-build-deps",
            "rust-toolchain.toml",
        ] {
            std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
            std::fs::copy(repo().join(file), root.join(file)).unwrap();
        }
        // `weir` and `cargo run … --` are the binary under test.
        let bin = root.join(".doctest-bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_weir"), bin.join("weir")).unwrap();
        let cargo = "#!/bin/sh\n\
            if [ \"$1\" = run ]; then\n\
              while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n\
              shift; exec weir \"$@\"\n\
            fi\n\
            echo \"doc test: no stand-in for: cargo $*\" >&2; exit 127\n";
        std::fs::write(bin.join("cargo"), cargo).unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(bin.join("cargo"))
            .status()
            .unwrap();
        Self { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `block` as a bash command in the project.
    fn command(&self, block: &Block) -> tokio::process::Command {
        let path = format!(
            "{}:{}",
            self.path().join(".doctest-bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = tokio::process::Command::new("bash");
        command
            .args(["-eu", "-o", "pipefail", "-c", &block.script])
            .current_dir(self.path())
            .env("PATH", path)
            .env("WEIR_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env_remove("WEIR_KAFKA_BROKERS")
            .env_remove("WEIR_DATA_DIR")
            .env_remove("WEIR_MANIFEST")
            .env_remove("CARGO_TARGET_DIR")
            .kill_on_drop(true);
        command
    }

    /// Runs `block` to its end; its output, which must be a success.
    async fn run(&self, block: &Block) -> String {
        let output = self.command(block).output().await.unwrap();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "{} ({}) failed: {}\n{out}",
            block.name,
            block.place,
            output.status
        );
        out
    }

    /// Runs a block that starts `weir up`, bounded by `run_for`; scrapes
    /// `/metrics` until the fetcher has run. The output and the last scrape.
    async fn run_host(&self, block: &Block, run_for: &str) -> (String, String) {
        let mut child = self
            .command(block)
            .env("WEIR_RUN_FOR", run_for)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = tokio::spawn(read_all(child.stdout.take().unwrap()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = String::new();
        let mut addr = None;
        while let Some(line) = stderr.next_line().await.unwrap() {
            log.push_str(&line);
            log.push('\n');
            if line.contains("serving /metrics") {
                addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .map(str::to_owned);
                break;
            }
        }
        let addr = addr.unwrap_or_else(|| panic!("weir up did not serve /metrics:\n{log}"));
        let rest = tokio::spawn(async move {
            let mut log = String::new();
            while let Some(line) = stderr.next_line().await.unwrap() {
                log.push_str(&line);
                log.push('\n');
            }
            log
        });
        let fetched = r#"weir_invocations_total{function="gtfs-fetch",outcome="ok"}"#;
        let mut metrics = String::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            match reqwest::get(format!("http://{addr}/metrics")).await {
                Ok(answer) => metrics = answer.text().await.unwrap(),
                Err(_) => break, // stopped already
            }
            if sample(&metrics, fetched).is_some_and(|n| n > 0.0) {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let status = tokio::time::timeout(Duration::from_secs(300), child.wait())
            .await
            .expect("weir up outlived --for by minutes")
            .unwrap();
        log.push_str(&rest.await.unwrap());
        log.push_str(&stdout.await.unwrap());
        assert!(
            status.success(),
            "{} ({}) exited with {status}:\n{log}",
            block.name,
            block.place
        );
        (log, metrics)
    }
}

async fn read_all(mut from: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut from, &mut text)
        .await
        .unwrap();
    text
}

/// What a table holds: rows per (partition, offset), and how many rows
/// are exact copies of another.
#[derive(Debug, Default)]
pub(crate) struct Contents {
    pub(crate) per_offset: BTreeMap<(i32, i64), usize>,
    copies: usize,
}

async fn contents(uri: &Path) -> Contents {
    let mut contents = Contents::default();
    let Ok(table) = read::open(&uri.display().to_string()).await else {
        return contents;
    };
    let batches = read::scan(&table).await.unwrap();
    let Some(first) = batches.first() else {
        return contents;
    };
    let fields = first
        .schema()
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields).unwrap();
    let mut seen = std::collections::HashSet::new();
    for batch in &batches {
        let partitions: &Int32Array = column(batch, "kafka_partition");
        let offsets: &Int64Array = column(batch, "kafka_offset");
        for i in 0..batch.num_rows() {
            *contents
                .per_offset
                .entry((partitions.value(i), offsets.value(i)))
                .or_default() += 1;
        }
        let rows = converter.convert_columns(batch.columns()).unwrap();
        for row in &rows {
            if !seen.insert(row.owned()) {
                contents.copies += 1;
            }
        }
    }
    contents
}

/// Dead letters of `topic` by (partition, offset).
pub(crate) async fn dead_letters(uri: &Path, topic: &str) -> BTreeMap<(i32, i64), usize> {
    let mut seen = BTreeMap::new();
    let Ok(table) = read::open(&uri.display().to_string()).await else {
        return seen;
    };
    for batch in read::scan(&table).await.unwrap() {
        let topics: &StringArray = column(&batch, "topic");
        let partitions: &Int32Array = column(&batch, "partition");
        let offsets: &Int64Array = column(&batch, "offset");
        for i in 0..batch.num_rows() {
            if topics.value(i) == topic {
                *seen
                    .entry((partitions.value(i), offsets.value(i)))
                    .or_default() += 1;
            }
        }
    }
    seen
}

/// Whether `second` continues `first`: every (partition, offset) already
/// written holds the same rows (panics otherwise), and vehicle positions
/// grew.
pub(crate) fn continued_exactly_once(
    first: &BTreeMap<&'static str, Contents>,
    second: &BTreeMap<&'static str, Contents>,
) -> bool {
    for (table, rows) in first {
        for (key, n) in &rows.per_offset {
            assert_eq!(
                second[table].per_offset.get(key),
                Some(n),
                "{table} {key:?} changed in the second run"
            );
        }
    }
    second["vehicle_positions"].per_offset.len() > first["vehicle_positions"].per_offset.len()
}

/// The three tables and their topics.
pub(crate) const TABLES: [(&str, &str); 3] = [
    ("vehicle_positions", "vehicle_topic"),
    ("trip_updates", "trip_update_topic"),
    ("alerts", "alert_topic"),
];

/// Each table's contents, after checking that every message of its topic
/// so far is either rows or one dead letter, never both, never twice, and
/// that no row is written twice.
pub(crate) async fn exactly_once(data: &Path) -> BTreeMap<&'static str, Contents> {
    let mut all = BTreeMap::new();
    for (table, topic) in TABLES {
        let rows = contents(&data.join(table)).await;
        assert_eq!(rows.copies, 0, "{table}: rows written twice");
        let letters = dead_letters(&data.join("dead_letters"), topic).await;
        assert!(
            letters.values().all(|&n| n == 1),
            "{topic}: dead-lettered twice: {letters:?}"
        );
        let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for &(p, o) in rows.per_offset.keys() {
            assert!(
                !letters.contains_key(&(p, o)),
                "{topic} {p}/{o} both in {table} and dead-lettered"
            );
            per_partition.entry(p).or_default().push(o);
        }
        for &(p, o) in letters.keys() {
            per_partition.entry(p).or_default().push(o);
        }
        for (p, mut offsets) in per_partition {
            offsets.sort_unstable();
            let dense: Vec<i64> = (0..i64::try_from(offsets.len()).unwrap()).collect();
            assert_eq!(offsets, dense, "{topic} partition {p}: gaps");
        }
        all.insert(table, rows);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_run_command_twice_fills_every_table_and_continues_exactly_once() {
    let project = Project::new();
    let run = block("run");
    let data = project.path().join("data/delta");

    // Long enough for every cron trigger: alerts are fetched once a minute.
    let (log, metrics) = project.run_host(&run, "75s").await;
    assert!(log.contains("--for: shutting down"), "{log}");
    // A clean run logs no errors, and delta-rs' and tansu's chatter stays
    // out of it.
    let noise: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains(" ERROR ")
                || l.contains("deltalake")
                || l.contains("kernel")
                || l.contains(" tansu_")
        })
        .collect();
    assert!(noise.is_empty(), "{noise:#?}");
    for function in [
        "gtfs-fetch",
        "vehicle-transform",
        "trip-update-transform",
        "alert-transform",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(" status ") && l.contains(&format!("function={function}"))),
            "no status line for {function}:\n{log}"
        );
    }
    assert!(
        sample(
            &metrics,
            r#"weir_invocations_total{function="gtfs-fetch",outcome="ok"}"#
        )
        .is_some_and(|n| n > 0.0),
        "{metrics}"
    );
    let first = exactly_once(&data).await;
    for (table, rows) in &first {
        assert!(!rows.per_offset.is_empty(), "no rows in {table}:\n{log}");
    }

    // Look at the data as the README shows.
    let out = project.run(&block("look")).await;
    assert!(out.contains("table       vehicle_positions ("), "{out}");
    assert!(out.contains("  kafka_offset"), "{out}");
    assert!(out.contains("newest rows\n{"), "{out}");

    // Again: continues where it stopped; nothing already written is
    // written again, and new feed snapshots add rows.
    let (log, _) = project.run_host(&run, "40s").await;
    let second = exactly_once(&data).await;
    assert!(
        continued_exactly_once(&first, &second),
        "the second run added nothing:\n{log}"
    );
}

#[tokio::test]
async fn compose_quick_start_creates_the_secrets_compose_reads() {
    let project = Project::new();
    let mut quick_start = block("compose");
    // The `docker` lines build the image from the `rust:` base and pull
    // registry images, neither of which can be had here: the live compose
    // test (`compose_live.rs`) runs the same compose.yaml with its images
    // built locally. This test runs the rest, as written.
    let (skipped, kept): (Vec<&str>, Vec<&str>) = quick_start
        .script
        .lines()
        .partition(|l| l.trim_start().starts_with("docker "));
    assert_eq!(skipped, ["docker compose up -d --build"], "{quick_start:?}");
    quick_start.script = kept.join("\n");
    let mut command = project.command(&quick_start);
    command.env(
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T0/B0/doctest",
    );
    let output = command.output().await.unwrap();
    assert!(output.status.success(), "{output:?}");

    let compose: String = std::fs::read_to_string(project.path().join("compose.yaml")).unwrap();
    let files: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("file: ./secrets/"))
        .collect();
    assert!(!files.is_empty(), "compose.yaml names no secret files");
    for file in files {
        let text = std::fs::read_to_string(project.path().join("secrets").join(file))
            .unwrap_or_else(|e| panic!("the quick start did not create secrets/{file}: {e}"));
        assert!(!text.trim().is_empty(), "secrets/{file} is empty");
    }
}

#[test]
fn every_doctest_block_is_run_by_a_test() {
    let names: Vec<String> = blocks().into_iter().map(|b| b.name).collect();
    let run_here = ["run", "look", "compose"];
    for name in &names {
        assert!(
            run_here.contains(&name.as_str()),
            "doctest block `{name}` is run by no test"
        );
    }
    for name in run_here {
        assert!(names.iter().any(|n| n == name), "no doctest block `{name}`");
    }
}

/// The guide's example is the crate example the test suite builds and
/// tests (`functions/weir-guest/examples/route_speed.rs`), word for word.
#[test]
fn the_guide_to_writing_a_function_shows_the_example_as_it_builds() {
    let guide = std::fs::read_to_string(repo().join("docs/writing-a-function.md")).unwrap();
    let example =
        std::fs::read_to_string(repo().join("functions/weir-guest/examples/route_speed.rs"))
            .unwrap();
    let opening = "`functions/route-speed/src/lib.rs`:\n\n```rust\n";
    let start = guide.find(opening).expect("the guide shows lib.rs") + opening.len();
    let end = start + guide[start..].find("```\n").expect("a closed block");
    assert_eq!(&guide[start..end], example);
}
