//! compose.yaml run for real (issue 21): Debian's Docker engine, images
//! built here (no registry can be reached), and the repo's compose.yaml
//! with `host/tests/compose/override.yaml` on top, which swaps only what
//! cannot be had here and says why. The weir image is the Dockerfile's
//! runtime stage, verbatim, over the binary and components this test run
//! built (its build stage needs the `rust:` image; the stage itself is
//! checked by `compose.rs`).
//!
//! Without a running engine the test starts `dockerd` itself (as root) and
//! stops it at the end, putting back the iptables rules it found; either
//! way it leaves no container, network or volume behind, and checks that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weir::sink::delta::StorageOptions;

use crate::delta::python_reader_agrees_at;
use crate::docs::{Contents, TABLES, continued_exactly_once, exactly_once, stage_project};

/// The repository root (compose.yaml's project directory).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `program args`, returns its stdout; panics with its output if it fails.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// True when `docker info` answers.
fn engine_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `ready` every second until it returns `Some` or `limit` passes.
fn wait_for<T>(what: &str, limit: Duration, ready: impl FnMut() -> Option<T>) -> T {
    wait_or_explain(what, limit, ready, String::new)
}

/// [`wait_for`], with what `explain` says in the failure.
fn wait_or_explain<T>(
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> Option<T>,
    explain: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}\n{}",
            explain()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The iptables rules that change anything: every rule and chain, every
/// policy but ACCEPT, each with its table (counters and comments left out,
/// so a table that exists but is empty equals one never loaded).
fn iptables() -> String {
    let mut table = "";
    let mut kept = Vec::new();
    let saved = run("iptables-save", &[]);
    for line in saved.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = name;
        } else if let Some(chain) = line.strip_prefix(':') {
            let mut words = chain.split_whitespace();
            let (name, policy) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            if policy != "ACCEPT" {
                kept.push(format!("{table} :{name} {policy}"));
            }
        } else if line.starts_with("-A") {
            kept.push(format!("{table} {line}"));
        }
    }
    kept.join("\n")
}

/// The Docker engine: the one running, or a `dockerd` this test started.
struct Engine {
    started: Option<Started>,
}

struct Started {
    daemon: Child,
    /// `iptables-save` before dockerd added its chains.
    rules: String,
    rules_text: String,
    _log: tempfile::NamedTempFile,
}

impl Engine {
    fn start() -> Self {
        if engine_answers() {
            return Self { started: None };
        }
        let rules_text = run("iptables-save", &[]);
        let rules = iptables();
        let log = tempfile::NamedTempFile::new().unwrap();
        let daemon = Command::new("dockerd")
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("no Docker engine answers and dockerd cannot start (scripts/test installs docker.io; run as root)");
        let engine = Self {
            started: Some(Started {
                daemon,
                rules,
                rules_text,
                _log: log,
            }),
        };
        wait_for("dockerd answering", Duration::from_secs(60), || {
            engine_answers().then_some(())
        });
        engine
    }

    /// Stops a dockerd this test started and puts the iptables rules back
    /// as they were; returns the rules before and after, which must match.
    fn stop(&mut self) -> Option<(String, String)> {
        let mut started = self.started.take()?;
        let _ = Command::new("kill")
            .arg(started.daemon.id().to_string())
            .status();
        let _ = started.daemon.wait();
        // dockerd leaves its bridge, its chains and FORWARD's policy.
        let _ = Command::new("ip")
            .args(["link", "delete", "docker0"])
            .stderr(Stdio::null())
            .status();
        let mut restore = started.rules_text.clone();
        for table in ["filter", "nat"] {
            if !restore.contains(&format!("*{table}\n")) {
                // A table dockerd created: back to empty, every policy ACCEPT.
                let chains = match table {
                    "nat" => {
                        ":PREROUTING ACCEPT\n:INPUT ACCEPT\n:OUTPUT ACCEPT\n:POSTROUTING ACCEPT\n"
                    }
                    _ => ":INPUT ACCEPT\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\n",
                };
                restore.push_str(&format!("*{table}\n{chains}COMMIT\n"));
            }
        }
        let mut child = Command::new("iptables-restore")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), restore.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "iptables-restore failed");
        Some((started.rules.clone(), iptables()))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `debian:bookworm-slim`, made with debootstrap and `docker import` when
/// the engine has none (no registry here).
fn base_image() {
    let has = Command::new("docker")
        .args(["image", "inspect", "debian:bookworm-slim"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if has {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mirror = std::env::var("WEIR_TEST_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".to_owned());
    let rootfs = root.path().join("rootfs");
    run(
        "debootstrap",
        &[
            "--variant=minbase",
            "bookworm",
            rootfs.to_str().unwrap(),
            &mirror,
        ],
    );
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let imported = Command::new("docker")
        .args(["import", "-", "debian:bookworm-slim"])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(
        tar.wait().unwrap().success(),
        "tar of the bootstrapped root"
    );
    assert!(
        imported.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&imported.stderr)
    );
}

const IMAGE: &str = "weir-test/weir:latest";
const OBSERVABILITY_IMAGE: &str = "weir-test/observability:latest";

/// The weir image: the Dockerfile's runtime stage as written, its
/// `COPY --from=build /src/…` reading the same paths from a context of
/// this run's binary, manifest, components and table schemas.
fn weir_image() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let stage = &dockerfile[dockerfile.find("\nFROM debian:bookworm-slim").unwrap()..];
    let runtime: String = stage
        .lines()
        .map(|line| match line.strip_prefix("COPY --from=build ") {
            Some(paths) => format!("COPY {}\n", paths.replace("/src/", "")),
            None => format!("{line}\n"),
        })
        .collect();
    assert!(
        !runtime.contains("--from="),
        "a COPY the test cannot serve:\n{runtime}"
    );
    assert!(runtime.contains("USER weir"), "{runtime}");
    let context = tempfile::tempdir().unwrap();
    stage_project(context.path());
    std::fs::write(context.path().join("Dockerfile"), runtime).unwrap();
    let release = context.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_weir"), release.join("weir")).unwrap();
    docker_build(IMAGE, context.path(), None);
}

/// `docker build` of `context` as `tag` (with `dockerfile`, else the
/// context's own), on the host's network: the runtime stage's apt-get
/// reaches Debian's mirror without the engine's NAT.
fn docker_build(tag: &str, context: &Path, dockerfile: Option<&Path>) {
    let mut args = vec!["build", "--quiet", "--network", "host", "--tag", tag];
    if let Some(file) = dockerfile {
        args.extend(["--file", file.to_str().unwrap()]);
    }
    args.push(context.to_str().unwrap());
    run("docker", &args);
}

/// Prometheus, Alertmanager and Python from Debian's packages.
fn observability_image() {
    let dir = repo().join("host/tests/compose");
    let dockerfile = dir.join("observability.Dockerfile");
    docker_build(OBSERVABILITY_IMAGE, &dir, Some(&dockerfile));
}

/// The services the test runs (compose.yaml's, but Grafana and the two
/// exporters, plus the override's feed and Slack).
const SERVICES: [&str; 6] = [
    "kafka",
    "weir",
    "feed",
    "prometheus",
    "alertmanager",
    "fake-slack",
];

/// One compose project of compose.yaml + the override; `down -v` on drop.
struct Stack {
    project: String,
    secrets: tempfile::TempDir,
}

impl Stack {
    fn new() -> Self {
        let project = format!("weirlive{}", uuid::Uuid::new_v4().simple());
        let secrets = tempfile::tempdir().unwrap();
        std::fs::write(
            secrets.path().join("slack_webhook_url"),
            "http://fake-slack:8080/services/T000/B000/not-a-secret",
        )
        .unwrap();
        std::fs::write(
            secrets.path().join("weir_admin_token"),
            uuid::Uuid::new_v4().simple().to_string(),
        )
        .unwrap();
        Self { project, secrets }
    }

    /// `docker-compose` over compose.yaml and the override, for this project.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("docker-compose");
        command
            .current_dir(repo())
            .args(["--project-name", &self.project])
            .args(["--file", "compose.yaml"])
            .args(["--file", "host/tests/compose/override.yaml"])
            .args(args)
            .env("WEIR_TEST_IMAGE", IMAGE)
            .env("WEIR_TEST_OBSERVABILITY_IMAGE", OBSERVABILITY_IMAGE)
            .env("WEIR_TEST_SECRETS", self.secrets.path())
            .env(
                "VEHICLE_FEED_URL",
                "http://127.0.0.1:8717/vehicle_positions.pb",
            );
        command
    }

    fn compose(&self, args: &[&str]) -> String {
        let output = self.command(args).output().unwrap();
        assert!(
            output.status.success(),
            "docker-compose {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn up(&self) {
        let mut args = vec!["up", "--detach", "--no-build"];
        args.extend(SERVICES);
        self.compose(&args);
    }

    fn container(&self, service: &str) -> String {
        self.compose(&["ps", "--quiet", service]).trim().to_owned()
    }

    fn wait_healthy(&self) {
        wait_for("weir healthy", Duration::from_secs(180), || {
            let id = self.container("weir");
            let status = Command::new("docker")
                .args(["inspect", "--format", "{{.State.Health.Status}}", &id])
                .output()
                .ok()?;
            (String::from_utf8_lossy(&status.stdout).trim() == "healthy").then_some(())
        });
    }

    /// The weir volume's Delta tables, on this machine's side.
    fn delta_dir(&self) -> PathBuf {
        let mountpoint = run(
            "docker",
            &[
                "volume",
                "inspect",
                "--format",
                "{{.Mountpoint}}",
                &format!("{}_weir-data", self.project),
            ],
        );
        PathBuf::from(mountpoint.trim()).join("delta")
    }

    /// What the project still has: containers, networks, volumes.
    fn leftovers(&self) -> String {
        let label = format!("label=com.docker.compose.project={}", self.project);
        ["container", "network", "volume"]
            .iter()
            .map(|kind| {
                let mut args = vec![*kind, "ls", "--quiet", "--filter", &label];
                if *kind == "container" {
                    args.insert(2, "--all");
                }
                run("docker", &args)
            })
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self
            .command(&["down", "--volumes", "--remove-orphans", "--timeout", "5"])
            .output();
    }
}

fn get_json(url: &str) -> Option<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::get(url).await.ok()?;
        let text = response.text().await.ok()?;
        serde_json::from_str(&text).ok()
    })
}

/// Every table's contents once each has rows, exactly once so far.
fn wait_for_rows(
    rt: &tokio::runtime::Runtime,
    delta: &Path,
    more_than: &BTreeMap<&str, Contents>,
) -> BTreeMap<&'static str, Contents> {
    wait_for("rows in all three tables", Duration::from_secs(240), || {
        if TABLES
            .iter()
            .any(|(table, _)| !delta.join(table).join("_delta_log").is_dir())
        {
            return None;
        }
        let seen = rt.block_on(exactly_once(delta));
        let grew = seen.iter().all(|(table, rows)| {
            rows.per_offset.len() > more_than.get(table).map_or(0, |c| c.per_offset.len())
        });
        grew.then_some(seen)
    })
}

/// The scrape targets' health by job, once every target was scraped.
fn targets() -> BTreeMap<String, String> {
    wait_for("every target scraped", Duration::from_secs(90), || {
        let answer = get_json("http://127.0.0.1:9090/api/v1/targets")?;
        let active = answer["data"]["activeTargets"].as_array()?;
        let health: BTreeMap<String, String> = active
            .iter()
            .map(|t| {
                (
                    t["labels"]["job"].as_str().unwrap_or_default().to_owned(),
                    t["health"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let settled = health.len() == 4
            && health.values().all(|h| h != "unknown")
            && health.get("weir").is_some_and(|h| h == "up");
        settled.then_some(health)
    })
}

/// The alert rules Prometheus loaded, each evaluated without error.
fn rules_evaluated() -> usize {
    let shipped = std::fs::read_to_string(repo().join("observability/alert.rules.yml")).unwrap();
    let expected = shipped.matches("- alert: ").count();
    wait_for("every rule evaluated", Duration::from_secs(60), || {
        let answer = get_json("http://127.0.0.1:9090/api/v1/rules")?;
        let rules: Vec<serde_json::Value> = answer["data"]["groups"]
            .as_array()?
            .iter()
            .filter_map(|g| g["rules"].as_array())
            .flatten()
            .cloned()
            .collect();
        let evaluated = rules.len() == expected
            && rules.iter().all(|r| {
                r["health"] == "ok"
                    && !r["lastEvaluation"]
                        .as_str()
                        .unwrap_or("0001")
                        .starts_with("0001")
            });
        evaluated.then_some(rules.len())
    })
}

/// What the fake Slack received, one JSON value per message.
fn slack_messages(stack: &Stack) -> Vec<serde_json::Value> {
    let id = stack.container("fake-slack");
    run("docker", &["logs", &id])
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A data dir bind-mounted from this machine and owned by another uid, as
/// `/mnt/c` is under WSL2: refused with what to do while the image's user
/// cannot write it, used once it can.
fn bind_mount_owned_by_another_uid() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    run("chown", &["12345:12345", data.to_str().unwrap()]);
    run("chmod", &["755", data.to_str().unwrap()]);
    let mount = format!("{}:/app/data", data.display());
    let weir_up = |limit: &str| {
        Command::new("docker")
            .args(["run", "--rm", "--volume", &mount])
            .args(["--env", "WEIR_LISTEN=127.0.0.1:9464", IMAGE])
            .args(["up", "--no-build", "--for", limit])
            .output()
            .unwrap()
    };
    let refused = weir_up("5s");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("the data directory `/app/data` (owned by uid 12345, mode 755) is not writable by this process (uid 10001)"),
        "{stderr}"
    );
    assert!(stderr.contains("docs/windows-wsl2.md"), "{stderr}");

    // drvfs shows Windows folders as everyone-writable: that works.
    run("chmod", &["777", data.to_str().unwrap()]);
    let ran = weir_up("8s");
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let broker = data.join("broker/broker.db");
    assert!(
        broker.is_file(),
        "the embedded broker's log on the bind mount"
    );
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&broker).unwrap()),
        10001,
        "written by the image's user"
    );
}

#[test]
fn the_compose_stack_runs_alerts_to_slack_and_continues_exactly_once_after_down_and_up() {
    let mut engine = Engine::start();
    base_image();
    weir_image();
    observability_image();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let stack = Stack::new();
    stack.up();
    stack.wait_healthy();
    let weir = stack.container("weir");
    assert_eq!(
        run("docker", &["exec", &weir, "id", "-u"]).trim(),
        "10001",
        "weir runs as the image's non-root user"
    );

    // Rows land in all three tables on the named volume, exactly once.
    let delta = stack.delta_dir();
    let first = wait_for_rows(&rt, &delta, &BTreeMap::new());

    // Prometheus scrapes what it can reach and evaluates the shipped rules.
    let health = targets();
    assert_eq!(health["weir"], "up", "{health:?}");
    assert_eq!(health["prometheus"], "up", "{health:?}");
    // Left out (no Debian package): Grafana, node-exporter, kafka-exporter.
    assert_eq!(health["node"], "down", "{health:?}");
    assert_eq!(health["kafka"], "down", "{health:?}");
    rules_evaluated();

    // The feed server stops: the fetches fail, FetchFailing fires and
    // reaches Slack through the shipped Alertmanager config.
    stack.compose(&["stop", "--timeout", "2", "feed"]);
    let alert = wait_or_explain(
        "FetchFailing in Slack",
        Duration::from_secs(300),
        || {
            slack_messages(&stack).into_iter().find(|m| {
                m["body"]["attachments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|a| {
                        a["title"]
                            .as_str()
                            .is_some_and(|t| t.contains("FetchFailing"))
                    })
            })
        },
        || {
            let logs = |service: &str| {
                let id = stack.container(service);
                let out = Command::new("docker")
                    .args(["logs", "--tail", "20", &id])
                    .output();
                out.map(|o| {
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                })
                .unwrap_or_default()
            };
            format!(
                "Prometheus alerts: {:?}\nalertmanager:\n{}\nfake-slack:\n{}",
                get_json("http://127.0.0.1:9090/api/v1/alerts"),
                logs("alertmanager"),
                logs("fake-slack")
            )
        },
    );
    let body = alert["body"].to_string();
    assert_eq!(alert["body"]["channel"], "#weir-alerts", "{alert}");
    assert!(body.contains("gtfs-fetch"), "{alert}");
    stack.compose(&["start", "feed"]);

    // down (volumes kept) and up again: continues exactly once.
    stack.compose(&["down", "--timeout", "10"]);
    stack.up();
    stack.wait_healthy();
    let second = wait_for_rows(&rt, &delta, &first);
    continued_exactly_once(&first, &second);

    // A stopped stack's tables, read by the Python reader too.
    stack.compose(&["stop", "--timeout", "10"]);
    for (table, _) in TABLES {
        let uri = delta.join(table).display().to_string();
        rt.block_on(python_reader_agrees_at(
            &uri,
            &StorageOptions::default(),
            &[],
            "kafka_partition",
            "kafka_offset",
        ));
    }

    bind_mount_owned_by_another_uid();

    // Nothing left behind.
    stack.compose(&["down", "--volumes", "--remove-orphans", "--timeout", "5"]);
    assert_eq!(
        stack.leftovers(),
        "",
        "containers, networks or volumes left"
    );
    drop(stack);
    if let Some((before, after)) = engine.stop() {
        assert_eq!(before, after, "iptables rules changed");
    }
}
