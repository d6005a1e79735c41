//! The `weir` binary: `check`, `build`, `up --once`, shutdown on SIGTERM, `--help`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::manifest;

fn weir(args: &[&str], manifest: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .arg("-f")
        .arg(manifest)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn cron_app(guest: &str) -> String {
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "cli-test"
[[trigger.cron]]
id = "poll"
component = "fetch"
cron_expression = "*/5 * * * * *"
[component.fetch]
source = "{{guest:{guest}}}"
"#
    )
}

#[test]
fn check_names_the_missing_export_of_a_wrong_world_component() {
    let (_dir, path) = manifest(&cron_app("batch"));
    let output = weir(&["check"], &path);
    let out = text(&output);
    assert!(!output.status.success(), "{out}");
    assert!(
        out.contains(
            "component `fetch` does not fit the `fetcher` world: missing export `handle-cron-event`"
        ),
        "{out}"
    );
    assert!(out.contains("handle-batch"), "{out}");
}

#[test]
fn check_accepts_fitting_components_and_reports_missing_sources() {
    let (_dir, path) = manifest(&cron_app("ok"));
    let output = weir(&["check"], &path);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("ok: trigger `poll`: component `fetch` (sha256:"),
        "{out}"
    );

    let (_dir, path) = manifest(&cron_app("ok").replace("{guest:ok}", "missing.wasm"));
    let output = weir(&["check"], &path);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("missing.wasm` does not exist; run `weir build` first"),
        "{}",
        text(&output)
    );
}

#[test]
fn build_runs_each_components_command_in_its_workdir() {
    let app = r#"
spin_manifest_version = 2
[application]
name = "build-test"
[component.one]
source = "one.wasm"
[component.one.build]
command = "pwd > built-one"
workdir = "w1"
[component.two]
source = "two.wasm"
[component.two.build]
command = ["echo a > built-two", "echo b >> built-two"]
[component.broken]
source = "broken.wasm"
[component.broken.build]
command = "exit 3"
"#;
    let (dir, path) = manifest(app);
    std::fs::create_dir(dir.path().join("w1")).unwrap();
    let output = weir(
        &["build", "--component", "one", "--component", "two"],
        &path,
    );
    assert!(output.status.success(), "{}", text(&output));
    let pwd = std::fs::read_to_string(dir.path().join("w1/built-one")).unwrap();
    assert!(pwd.trim_end().ends_with("w1"), "{pwd}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("built-two")).unwrap(),
        "a\nb\n"
    );

    let output = weir(&["build"], &path);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("build of `broken` failed: `exit 3` exited with exit status: 3"),
        "{}",
        text(&output)
    );

    let output = weir(&["build", "--component", "nope"], &path);
    assert!(
        text(&output).contains("unknown component `nope`"),
        "{}",
        text(&output)
    );
}

#[test]
fn up_once_runs_every_cron_trigger_and_reports_failures() {
    let (_dir, path) = manifest(&cron_app("ok"));
    let output = weir(&["up", "--once", "--listen", "127.0.0.1:0"], &path);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("tick "),
        "guest output is logged: {}",
        text(&output)
    );

    let (_dir, path) = manifest(&cron_app("trap"));
    let output = weir(&["up", "--once", "--listen", "127.0.0.1:0"], &path);
    assert!(!output.status.success());
    let out = text(&output);
    assert!(
        out.contains("cron invocation failed") && out.contains("fetch"),
        "{out}"
    );
}

#[test]
fn up_refuses_deploys_on_a_public_address_without_a_token() {
    let (_dir, path) = manifest(&cron_app("ok"));
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["up", "--once", "--listen", "0.0.0.0:0", "-f"])
        .arg(&path)
        .env_remove("WEIR_ADMIN_TOKEN")
        .env_remove("WEIR_ADMIN_TOKEN_FILE")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let out = text(&output);
    assert!(
        out.contains("refusing to accept deploys on 0.0.0.0:0 without a token"),
        "{out}"
    );
    // With deploys off no token is made (checked on loopback: tests bind nothing else).
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "up",
            "--once",
            "--no-deploy",
            "--listen",
            "127.0.0.1:0",
            "-f",
        ])
        .arg(&path)
        .env_remove("WEIR_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(!path.parent().unwrap().join("data/admin.token").exists());
}

#[test]
fn up_for_stops_by_itself_and_logs_what_it_did() {
    let (_dir, path) = manifest(&cron_app("ok"));
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["up", "--for", "3s", "--listen", "127.0.0.1:0", "-f"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(started.elapsed() < Duration::from_secs(30), "{out}");
    assert!(out.contains("--for: shutting down"), "{out}");
    // Off a terminal the status is a log line per function, at the end too.
    let status = out
        .lines()
        .find(|l| l.contains(" status ") || l.ends_with(" status"))
        .unwrap_or_else(|| panic!("no status line: {out}"));
    assert!(
        status.contains("function=fetch") && status.contains("failed=0"),
        "{status}"
    );
}

#[test]
fn up_shuts_down_cleanly_on_sigterm() {
    let (_dir, path) = manifest(&cron_app("ok"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["up", "--listen", "127.0.0.1:0", "-f"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = Instant::now();
    while let Some(Ok(line)) = lines.next() {
        if line.contains("serving /metrics") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "host did not start"
        );
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "host did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["up", "--help"],
        &["build", "--help"],
        &["check", "--help"],
        &["dev-feed", "--help"],
        &["feed", "decode", "--help"],
        &["deploy", "--help"],
        &["rollback", "--help"],
        &["lineage", "--help"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success());
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage: weir"));
    }
}

/// A manifest whose only trigger runs the built gtfs-fetch (never, by its
/// schedule): what `weir feed decode` needs.
fn decode_manifest() -> (tempfile::TempDir, std::path::PathBuf) {
    let app = format!(
        r#"
spin_manifest_version = 2
[application]
name = "decode-test"
[[trigger.cron]]
component = "gtfs-fetch"
cron_expression = "0 0 0 1 1 * 2099"
[component.gtfs-fetch]
source = "{}"
"#,
        crate::support::function("gtfs-fetch").display()
    );
    manifest(&app)
}

#[test]
fn feed_decode_transcodes_with_encoding_and_replaces_without() {
    let (dir, path) = decode_manifest();
    let (bytes, [label, trip]) = crate::fetch_bad_input::shift_jis_feed();
    let feed = dir.path().join("sjis.pb");
    std::fs::write(&feed, bytes).unwrap();
    let feed = feed.display().to_string();
    let vehicles = |output: &std::process::Output| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["vehicle"].clone())
            .collect()
    };

    let output = weir(&["feed", "decode", "--encoding", "shift_jis", &feed], &path);
    assert!(output.status.success(), "{}", text(&output));
    let sent = vehicles(&output);
    assert_eq!(sent[0]["vehicle"]["label"], label);
    assert_eq!(sent[0]["trip"]["trip_id"], trip);
    assert!(
        text(&output).contains("transcoded to UTF-8"),
        "{}",
        text(&output)
    );

    let output = weir(&["feed", "decode", &feed], &path);
    assert!(output.status.success(), "{}", text(&output));
    let sent = vehicles(&output);
    assert_eq!(sent.len(), 2);
    assert!(
        sent[0]["vehicle"]["label"]
            .as_str()
            .unwrap()
            .contains('\u{FFFD}')
    );
    assert_eq!(sent[1]["trip"]["trip_id"], "T\u{FFFD}");
    assert!(
        text(&output).contains("3 string field(s) were not valid text"),
        "{}",
        text(&output)
    );

    let output = weir(&["feed", "decode", "--encoding", "klingon", &feed], &path);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("`klingon` is not a known text encoding"),
        "{}",
        text(&output)
    );
}

#[test]
fn feed_decode_prints_what_the_fetch_component_would_send() {
    let (_dir, path) = decode_manifest();
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/gtfs-rt");
    assert!(
        shared.is_dir(),
        "{} is missing (shared/ must sit beside the checkout)",
        shared.display()
    );
    let cases = [
        (
            "caltrain-2023-vehicle-positions.pb",
            "messages: 14\nvehicle: 14\nheader timestamp: 1699405559\n",
        ),
        (
            "ztm-poznan-2026-vehicle_positions.pb",
            "messages: 544\nvehicle: 544\nheader timestamp: 1769612639\n",
        ),
        (
            "bart-2019-trip-updates.pb",
            "messages: 91\ntrip_update: 91\nheader timestamp: 1565199921\n",
        ),
        (
            "bart-2019-alerts.pb",
            "messages: 1\nalert: 1\nheader timestamp: 1565199942\n",
        ),
        (
            "nyct-subway-2021-a_division.pb",
            "messages: 460\nalert: 1\ntrip_update: 285\nvehicle: 174\nheader timestamp: 1637960185\n",
        ),
        (
            "empty-alerts.pb",
            "messages: 0\nheader timestamp: none (no entities)\n",
        ),
    ];
    for (file, expected) in cases {
        let output = weir(
            &[
                "feed",
                "decode",
                "--summary",
                &shared.join(file).display().to_string(),
            ],
            &path,
        );
        assert!(output.status.success(), "{file}: {}", text(&output));
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected, "{file}");
    }
    let output = weir(
        &[
            "feed",
            "decode",
            &shared.join("bart-2019-alerts.pb").display().to_string(),
        ],
        &path,
    );
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(line["alert"]["cause"], "MEDICAL_EMERGENCY");

    let output = weir(
        &[
            "feed",
            "decode",
            &shared.join("invalid-not-protobuf.pb").display().to_string(),
        ],
        &path,
    );
    assert!(!output.status.success());
    assert!(
        text(&output).contains("not a GTFS-Realtime FeedMessage (17 bytes)"),
        "{}",
        text(&output)
    );
}

#[test]
fn up_once_with_dev_feed_and_embedded_broker_publishes_every_entity() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = format!(
        r#"
spin_manifest_version = 2
[application]
name = "local-test"
[[trigger.cron]]
id = "vehicles"
component = "gtfs-fetch"
cron_expression = "0 0 0 1 1 * 2099"
outputs = ["vehicle_topic"]
variables = {{ feed_url = "http://127.0.0.1:{port}/vehicle_positions.pb", topic = "vehicle_topic" }}
[component.gtfs-fetch]
source = "{}"
allowed_outbound_hosts = ["http://127.0.0.1:{port}"]
"#,
        crate::support::function("gtfs-fetch").display()
    );
    let (dir, path) = manifest(&app);
    let feed = format!("127.0.0.1:{port}");
    let data = dir.path().join("data");
    let args = [
        "up",
        "--once",
        "--listen",
        "127.0.0.1:0",
        "--dev-feed",
        &feed,
        "--data-dir",
    ];
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .arg(&data)
        .arg("-f")
        .arg(&path)
        .env("RUST_LOG", "info")
        .env_remove("WEIR_KAFKA_BROKERS")
        .output()
        .unwrap();
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("embedded Kafka broker (tansu, sqlite) started"),
        "{out}"
    );
    assert!(out.contains("500 entities sent to vehicle_topic"), "{out}");
    assert!(data.join("broker/broker.db").is_file());
    assert!(
        data.join("feeds.json").is_file(),
        "the published feed timestamp is recorded"
    );
}

#[tokio::test]
async fn dev_feed_serves_three_moving_feeds() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "dev-feed",
            "--vehicles",
            "50",
            "--interval",
            "1",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Read every line the server prints (and keep the pipe open): a closed
    // stdout would make its later `println!` fail.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for path in weir_devfeed::PATHS {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), format!("http://127.0.0.1:{port}/{path}"));
    }
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("http://127.0.0.1:{port}/{path}"))
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.bytes().await.unwrap())
        }
    };
    let (status, body) = get("vehicle_positions.pb").await;
    assert_eq!(status, 200);
    let vehicles = gtfs_rt::decode(&body).unwrap();
    assert_eq!(vehicles.entity.len(), 50);
    assert_eq!(
        gtfs_rt::decode(&get("trip_updates.pb").await.1)
            .unwrap()
            .entity
            .len(),
        50
    );
    assert_eq!(
        gtfs_rt::decode(&get("alerts.pb").await.1)
            .unwrap()
            .entity
            .len(),
        1
    );
    assert_eq!(get("nope.pb").await.0, 404);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = gtfs_rt::decode(&get("vehicle_positions.pb").await.1).unwrap();
    assert!(
        later.header.timestamp > vehicles.header.timestamp,
        "the header timestamp advances"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The cron app with its component built into `out/fetch.wasm` by `build`
/// (the keys of `[component.fetch.build]`).
fn built_app(build: &str) -> String {
    let app = cron_app("x").replace(r#"source = "{guest:x}""#, r#"source = "out/fetch.wasm""#);
    format!("{app}[component.fetch.build]\n{build}\n")
}

#[test]
fn up_builds_a_missing_component_first_and_not_again_when_it_is_current() {
    let app = built_app(
        r#"command = "mkdir -p out && cp '{guest:ok}' out/fetch.wasm && echo built >> builds.log"
watch = ["src/*.txt"]"#,
    );
    let (dir, path) = manifest(&app);
    let builds = || std::fs::read_to_string(dir.path().join("builds.log")).unwrap_or_default();

    let output = weir(&["up", "--once", "--listen", "127.0.0.1:0"], &path);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("fetch: `"), "{out}");
    assert!(
        out.contains("out/fetch.wasm` is missing; building it"),
        "{out}"
    );
    assert_eq!(builds(), "built\n");

    // Up to date: no build.
    let output = weir(&["up", "--once", "--listen", "127.0.0.1:0"], &path);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(builds(), "built\n");

    // A watched file newer than the component: built again.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/input.txt"), "changed").unwrap();
    let output = weir(&["up", "--once", "--listen", "127.0.0.1:0"], &path);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("src/input.txt` changed since the last build"),
        "{out}"
    );
    assert_eq!(builds(), "built\nbuilt\n");

    // `--no-build` runs what is there.
    std::fs::write(dir.path().join("src/input.txt"), "changed again").unwrap();
    let output = weir(
        &["up", "--once", "--no-build", "--listen", "127.0.0.1:0"],
        &path,
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(builds(), "built\nbuilt\n");
}

#[test]
fn up_names_a_failed_build_and_does_not_start() {
    let app = built_app(r#"command = "echo 'error[E0425]: cannot find value' >&2; exit 101""#);
    let (_dir, path) = manifest(&app);
    let output = weir(&["up", "--once", "--listen", "127.0.0.1:0"], &path);
    let out = text(&output);
    assert!(!output.status.success(), "{out}");
    assert!(out.contains("error[E0425]"), "{out}");
    assert!(out.contains("build of `fetch` failed"), "{out}");
    assert!(!out.contains("serving /metrics"), "{out}");
}

#[test]
fn up_on_a_terminal_redraws_its_status_table_in_place() {
    // `script` (util-linux) runs weir on a pseudo-terminal, as a user's shell would.
    let (_dir, path) = manifest(&cron_app("ok"));
    let command = format!(
        "'{}' up --for 8s --no-deploy --listen 127.0.0.1:0 -f '{}'",
        env!("CARGO_BIN_EXE_weir"),
        path.display()
    );
    let output = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    let header = out.matches("function ").count();
    assert!(header >= 2, "the table was drawn {header} times: {out:?}");
    // From the second draw on: cursor up over the previous table, clear below.
    assert!(out.contains("\u{1b}[2A\u{1b}[J"), "{out:?}");
    assert!(out.lines().any(|l| l.starts_with("fetch ")), "{out:?}");
}
