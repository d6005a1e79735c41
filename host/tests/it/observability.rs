//! observability/ against the real binaries: `promtool` and `amtool` check
//! the shipped files and run the rule unit tests; then weir (fetch →
//! Kafka → transform → Delta, in-process) is scraped by a real Prometheus
//! evaluating the shipped rules, alerts go through a real Alertmanager with
//! the shipped routing and Slack template to a fake Slack webhook, and every
//! PromQL expression of the rules and dashboards runs against that live
//! Prometheus.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use weir::admin::AdminConfig;
use weir::run::KafkaMode;
use weir::versions::{Origin, SwapOptions};
use weir::{Host, HostConfig, Manifest, RuntimeConfig};

use crate::support::{free_port, function};

fn observability() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../observability")
}

/// Runs a tool of the Prometheus packages; its combined output.
fn tool(program: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .current_dir(observability())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{program}` ({e}); install the Debian packages prometheus and prometheus-alertmanager")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn shipped_configs_pass_promtool_and_amtool() {
    for args in [
        &["check", "config", "prometheus.yml"][..],
        &["check", "rules", "alert.rules.yml"],
        &["test", "rules", "tests/alert.rules.test.yml"],
    ] {
        let (ok, out) = tool("promtool", args);
        assert!(ok, "promtool {args:?}:\n{out}");
    }
    let (ok, out) = tool("amtool", &["check-config", "alertmanager.yml"]);
    assert!(ok, "{out}");
    assert!(out.contains("2 receivers"), "{out}");
}

/// What the test feed server serves.
const FRESH: u8 = 0;
const STALE: u8 = 1;
const FAILING: u8 = 2;

/// What the test feed server serves, and the header timestamp a stale
/// feed keeps.
#[derive(Debug, Default)]
struct Feed {
    mode: AtomicU8,
    frozen: AtomicU64,
}

impl Feed {
    fn set(&self, mode: u8) {
        self.frozen.store(now() - 30, Ordering::Relaxed);
        self.mode.store(mode, Ordering::Relaxed);
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Serves `/vehicle_positions.pb`: a 20-vehicle feed stamped now, one that
/// stopped advancing (its header frozen 30 s before the switch), or HTTP 500.
async fn feed_server(mode: Arc<Feed>) -> SocketAddr {
    async fn feed(State(feed): State<Arc<Feed>>) -> axum::response::Response {
        let at = match feed.mode.load(Ordering::Relaxed) {
            FAILING => {
                return (StatusCode::INTERNAL_SERVER_ERROR, "feed backend down").into_response();
            }
            STALE => feed.frozen.load(Ordering::Relaxed),
            _ => now(),
        };
        gtfs_rt::encode(&gtfs_rt::sample::Sample::new(20, 1).vehicle_positions(at)).into_response()
    }
    let app = Router::new()
        .route("/vehicle_positions.pb", get(feed))
        .with_state(mode);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A fake Slack incoming webhook: keeps every message body.
async fn slack() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(seen): State<Arc<Mutex<Vec<String>>>>, body: String| async move {
                    seen.lock().unwrap().push(body);
                    "ok"
                },
            ),
        )
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// The whole pipeline: gtfs-fetch every second from the test feed, into
/// Kafka, vehicle-transform into Delta.
fn manifest(dir: &Path, feed: SocketAddr) -> PathBuf {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../functions/vehicle-transform/tables/vehicle_positions.json");
    let text = format!(
        r#"
spin_manifest_version = 2
[application]
name = "observability-test"
[[trigger.cron]]
id = "vehicle-positions"
component = "gtfs-fetch"
cron_expression = "* * * * * *"
outputs = ["obs_vehicles"]
variables = {{ feed_url = "http://{feed}/vehicle_positions.pb", topic = "obs_vehicles" }}
[[trigger.kafka]]
component = "vehicle-transform"
topics = ["obs_vehicles"]
batch = {{ max_records = 500, max_ms = 300 }}
tables = {{ vehicle_positions = {{ uri = "data/vehicle_positions", partition_by = ["date"], schema = "{schema}" }} }}
dead_letter = {{ uri = "data/dead_letters", partition_by = ["date"] }}
[component.gtfs-fetch]
source = "{fetch}"
allowed_outbound_hosts = ["http://{feed}"]
[component.vehicle-transform]
source = "{transform}"
"#,
        schema = schema.display(),
        fetch = function("gtfs-fetch").display(),
        transform = function("vehicle-transform").display(),
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Child processes killed when the test ends, however it ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(program: &str, args: &[String], log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{program}`: {e}"))
}

/// `GET` a Prometheus API path; the `data` of a successful answer.
async fn api(
    prometheus: SocketAddr,
    path: &str,
    query: &[(&str, &str)],
) -> Result<serde_json::Value, String> {
    let response = reqwest::Client::new()
        .get(format!("http://{prometheus}{path}"))
        .query(query)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    if body["status"] == "success" {
        Ok(body["data"].clone())
    } else {
        Err(body.to_string())
    }
}

/// Waits until a Slack message with every one of `needles` arrives.
async fn wait_for_message(seen: &Mutex<Vec<String>>, needles: &[&str], within: Duration) -> String {
    let found = tokio::time::timeout(within, async {
        loop {
            let hit = seen
                .lock()
                .unwrap()
                .iter()
                .find(|m| needles.iter().all(|n| m.contains(n)))
                .cloned();
            if let Some(message) = hit {
                return message;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "no Slack message with {needles:?} within {within:?}; got:\n{}",
            seen.lock().unwrap().join("\n")
        )
    })
}

/// Every PromQL expression in the dashboards, with template variables
/// set to match everything: (dashboard, panel title, expression).
fn dashboard_queries() -> Vec<(String, String, String)> {
    let mut queries = Vec::new();
    let dir = observability().join("grafana/dashboards");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = dashboard["uid"].as_str().unwrap().to_owned();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let expr = ["$function", "$table", "$instance"]
                    .iter()
                    .fold(expr.to_owned(), |e, v| e.replace(v, ".*"));
                queries.push((
                    name.clone(),
                    panel["title"].as_str().unwrap().to_owned(),
                    expr,
                ));
            }
        }
        for annotation in dashboard["annotations"]["list"].as_array().unwrap() {
            if let Some(expr) = annotation["expr"].as_str() {
                queries.push((name.clone(), "annotation".to_owned(), expr.to_owned()));
            }
        }
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            // `label_values(metric, label)` asks for `metric`'s series.
            let query = variable["query"]["query"].as_str().unwrap();
            let metric = query
                .trim_start_matches("label_values(")
                .split(',')
                .next()
                .unwrap();
            queries.push((
                name.clone(),
                format!("variable {}", variable["name"]),
                metric.to_owned(),
            ));
        }
    }
    queries
}

/// Metric names an expression reads (identifiers followed by a selector,
/// range or the end of a term), without PromQL functions and keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.char_indices().peekable();
    let mut in_braces = 0;
    let mut in_quotes = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => in_quotes = !in_quotes,
            '{' if !in_quotes => in_braces += 1,
            '}' if !in_quotes => in_braces -= 1,
            c if !in_quotes && in_braces == 0 && (c.is_ascii_alphabetic() || c == '_') => {
                let mut end = i + c.len_utf8();
                while let Some((j, d)) = chars.peek().copied() {
                    if d.is_ascii_alphanumeric() || d == '_' || d == ':' {
                        end = j + 1;
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &expr[i..end];
                let rest = expr[end..].trim_start();
                let is_call = rest.starts_with('(');
                let keyword = matches!(
                    word,
                    "by" | "without"
                        | "on"
                        | "ignoring"
                        | "group_left"
                        | "group_right"
                        | "and"
                        | "or"
                        | "unless"
                        | "bool"
                        | "offset"
                        | "le"
                );
                if !is_call && !keyword && word.contains('_') || word == "up" {
                    names.insert(word.to_owned());
                }
            }
            _ => {}
        }
    }
    names
}

#[tokio::test]
async fn alerts_reach_slack_and_every_dashboard_query_runs_against_live_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let mode = Arc::new(Feed::default());
    mode.set(FAILING);
    let feed = feed_server(Arc::clone(&mode)).await;
    let (hook, slack_messages) = slack().await;

    let (cluster, brokers) = crate::support::cluster("obs_vehicles", 2);
    // The fleet's control topic, one partition for the one cron trigger:
    // librdkafka's mock cluster creates no topics on request.
    let control = weir::trigger::cron::fleet::control_topic("observability-test");
    cluster.create_topic(&control, 1, 1).unwrap();
    let shutdown = CancellationToken::new();
    let host = Host::start(
        HostConfig {
            manifest: Manifest::load(&manifest(dir.path(), feed), Vec::new()).unwrap(),
            listen: "127.0.0.1:0".parse().unwrap(),
            runtime: RuntimeConfig::default(),
            once: false,
            data_dir: Some(dir.path().join("data")),
            kafka: KafkaMode::Brokers(brokers),
            admin: AdminConfig::default(),
            watch: None,
            parallelism: weir::trigger::kafka::default_parallelism(),
        },
        shutdown.clone(),
    )
    .await
    .unwrap();

    // Alertmanager: the shipped file, with the secret and template paths of
    // this test and short grouping waits (so the test takes minutes, not hours).
    let shipped = std::fs::read_to_string(observability().join("alertmanager.yml")).unwrap();
    let secret = dir.path().join("slack_webhook_url");
    std::fs::write(&secret, format!("http://{hook}/hook")).unwrap();
    let mut am_config = shipped.clone();
    for (from, to) in [
        (
            "/run/secrets/slack_webhook_url",
            secret.display().to_string(),
        ),
        (
            "/etc/alertmanager/templates/*.tmpl",
            observability()
                .join("templates/*.tmpl")
                .display()
                .to_string(),
        ),
        ("group_wait: 10s", "group_wait: 1s".to_owned()),
        ("group_interval: 1m", "group_interval: 2s".to_owned()),
    ] {
        assert!(
            am_config.contains(from),
            "alertmanager.yml no longer has `{from}`"
        );
        am_config = am_config.replace(from, &to);
    }
    std::fs::write(dir.path().join("alertmanager.yml"), am_config).unwrap();
    let (am_port, prom_port, node_port) = (free_port(), free_port(), free_port());
    let mut children = Children(Vec::new());
    children.0.push(spawn(
        "prometheus-alertmanager",
        &[
            format!(
                "--config.file={}",
                dir.path().join("alertmanager.yml").display()
            ),
            format!("--storage.path={}", dir.path().join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".to_owned(),
        ],
        &dir.path().join("alertmanager.log"),
    ));
    children.0.push(spawn(
        "prometheus-node-exporter",
        &[format!("--web.listen-address=127.0.0.1:{node_port}")],
        &dir.path().join("node-exporter.log"),
    ));
    // Prometheus: the shipped rules as they are; scrape targets of this test.
    let prom_config = format!(
        r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
scrape_configs:
  - job_name: weir
    static_configs:
      - targets: ["{weir}"]
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:{node_port}"]
"#,
        rules = observability().join("alert.rules.yml").display(),
        weir = host.addr,
    );
    std::fs::write(dir.path().join("prometheus.yml"), prom_config).unwrap();
    children.0.push(spawn(
        "prometheus",
        &[
            format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &dir.path().join("prometheus.log"),
    ));
    let prometheus: SocketAddr = format!("127.0.0.1:{prom_port}").parse().unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(data) = api(
                prometheus,
                "/api/v1/query",
                &[("query", r#"up{job="weir"} == 1"#)],
            )
            .await
                && data["result"].as_array().is_some_and(|r| !r.is_empty())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .expect("Prometheus never scraped weir");

    // The feed answers 500: every fetch fails → FetchFailing, named by function.
    let firing = wait_for_message(
        &slack_messages,
        &["FIRING", "FetchFailing", "gtfs-fetch"],
        Duration::from_secs(120),
    )
    .await;
    assert!(
        firing.contains("#weir-alerts"),
        "a warning goes to the warnings channel: {firing}"
    );
    assert!(
        firing.contains("docs/operations.md#fetchfailing"),
        "{firing}"
    );

    // The feed comes back but stops advancing → FeedStale once its header
    // is 65 s old, named by feed.
    mode.set(STALE);
    let stale = wait_for_message(
        &slack_messages,
        &["FIRING", "FeedStale", "vehicle-positions"],
        Duration::from_secs(120),
    )
    .await;
    assert!(stale.contains("W008"), "{stale}");

    // Deploy a new transform version, so the swap series carry data too.
    let transform = host.functions.get("vehicle-transform").unwrap();
    let mut bytes = std::fs::read(function("vehicle-transform")).unwrap();
    bytes.extend_from_slice(&[0, 4, 3, b'o', b'b', b's']);
    transform
        .deploy(bytes, Origin::Upload, SwapOptions::default())
        .await
        .unwrap();

    // A fresh feed again: both alerts resolve, and Slack hears it.
    mode.set(FRESH);
    wait_for_message(
        &slack_messages,
        &["RESOLVED", "FeedStale", "vehicle-positions"],
        Duration::from_secs(90),
    )
    .await;
    wait_for_message(
        &slack_messages,
        &["RESOLVED", "FetchFailing", "gtfs-fetch"],
        Duration::from_secs(180),
    )
    .await;

    // Rows reached Delta (the dashboards below need them).
    tokio::time::timeout(Duration::from_secs(60), async {
        while host
            .metrics
            .delta_rows_written
            .with_label_values(&["vehicle-transform", "vehicle_positions"])
            .get()
            == 0
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("no rows reached Delta");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Every rule of the file is loaded, and healthy.
    let rules = api(prometheus, "/api/v1/rules", &[]).await.unwrap();
    let mut loaded = 0;
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            loaded += 1;
            assert_eq!(rule["health"], "ok", "{rule}");
        }
    }
    let rule_text = std::fs::read_to_string(observability().join("alert.rules.yml")).unwrap();
    assert_eq!(loaded, rule_text.matches("- alert:").count());

    // Every expression runs; every metric it names exists; every dashboard
    // panel query returns data. kafka_* come from kafka-exporter, which has
    // no Debian package: those two panels are checked for syntax only.
    let names: BTreeSet<String> = api(prometheus, "/api/v1/label/__name__/values", &[])
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    let rule_file = std::fs::read_to_string(observability().join("alert.rules.yml")).unwrap();
    let mut rule_exprs = Vec::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            rule_exprs.push((
                rule["name"].as_str().unwrap().to_owned(),
                rule["query"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert!(
        rule_exprs
            .iter()
            .all(|(name, _)| rule_file.contains(&format!("alert: {name}")))
    );
    let mut problems = Vec::new();
    for (source, expr, must_return) in rule_exprs
        .iter()
        .map(|(name, e)| (format!("rule {name}"), e.clone(), false))
        .chain(
            dashboard_queries()
                .into_iter()
                .map(|(d, p, e)| (format!("{d} · {p}"), e, p != "annotation")),
        )
    {
        // Data is required of queries over weir's own metrics; the node and
        // Kafka exporters' depend on the machine (e.g. no non-overlay disk).
        let own = metric_names(&expr)
            .iter()
            .all(|n| n.starts_with("weir_") || n == "up");
        let must_return = must_return && own;
        for name in metric_names(&expr) {
            if !name.starts_with("kafka_") && !names.contains(&name) {
                problems.push(format!("{source}: no metric `{name}` in `{expr}`"));
            }
        }
        match api(prometheus, "/api/v1/query", &[("query", &expr)]).await {
            Err(e) => problems.push(format!("{source}: `{expr}` failed: {e}")),
            Ok(data) => {
                let empty = data["result"].as_array().is_some_and(Vec::is_empty);
                if must_return && empty {
                    problems.push(format!("{source}: `{expr}` returned no data"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    shutdown.cancel();
    host.wait().await.unwrap();
    drop(children);
}

#[test]
fn metric_names_are_read_from_expressions() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, table) (rate(weir_delta_commit_duration_seconds_bucket{table=~"a_b"}[5m]))) and on (function) up{job="weir"} == 0"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["up", "weir_delta_commit_duration_seconds_bucket"]
    );
    assert!(
        metric_names("time() - weir_feed_header_timestamp_seconds > 65")
            .contains("weir_feed_header_timestamp_seconds")
    );
}
