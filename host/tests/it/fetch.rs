//! The GTFS-RT fetch function end to end: a local feed server, real cron
//! ticks through `Host`, the real Kafka protocol (librdkafka's mock cluster),
//! messages consumed back and compared with the decoded feed.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gtfs_rt::sample::Sample;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio_util::sync::CancellationToken;
use weir::run::KafkaMode;
use weir::{Host, HostConfig, Manifest, RuntimeConfig};
use weir_devfeed::{self as devfeed, FeedClock};

use crate::support::{function, sample};

const T0: u64 = 1_764_000_000;

fn manifest_text(fetch: &Path, feed_port: u16) -> String {
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "fetch-test"
[[trigger.cron]]
id = "vehicles"
component = "gtfs-fetch"
cron_expression = "0 0 0 1 1 * 2099"
outputs = ["vehicle_topic"]
variables = {{ feed_url = "http://127.0.0.1:{feed_port}/vehicle_positions.pb", topic = "vehicle_topic" }}
[[trigger.cron]]
id = "trip-updates"
component = "gtfs-fetch"
cron_expression = "0 0 0 1 1 * 2099"
outputs = ["trip_update_topic"]
variables = {{ feed_url = "http://127.0.0.1:{feed_port}/trip_updates.pb", topic = "trip_update_topic" }}
[component.gtfs-fetch]
source = "{}"
allowed_outbound_hosts = ["http://127.0.0.1:{feed_port}"]
"#,
        fetch.display()
    )
}

/// Runs every cron trigger once on a fresh host over the same data dir.
async fn tick_once(manifest: &Path, brokers: &str, data: &Path) -> Host {
    let config = HostConfig {
        manifest: Manifest::load(manifest, Vec::new()).unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        runtime: RuntimeConfig::default(),
        once: true,
        data_dir: Some(data.to_path_buf()),
        kafka: KafkaMode::Brokers(brokers.to_owned()),
        admin: weir::admin::AdminConfig::default(),
        watch: None,
        parallelism: weir::trigger::kafka::default_parallelism(),
    };
    Host::start(config, CancellationToken::new()).await.unwrap()
}

fn total_messages(brokers: &str, topic: &str) -> i64 {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    (0..3)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .map_or(0, |(_, high)| high)
        })
        .sum()
}

/// Every (key, value) on `topic`, read from the beginning.
async fn consume_all(brokers: &str, topic: &str, expected: usize) -> BTreeSet<(String, String)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("check-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut seen = BTreeSet::new();
    let read = async {
        while seen.len() < expected {
            let m = consumer.recv().await.unwrap();
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            assert!(seen.insert((key, value)), "duplicate message on {topic}");
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .unwrap_or_else(|_| panic!("only {} of {expected} messages on {topic}", seen.len()));
    seen
}

fn expected(feed: &gtfs_rt::pb::FeedMessage) -> BTreeSet<(String, String)> {
    gtfs_rt::messages(feed)
        .map(|m| (m.key, String::from_utf8(m.value).unwrap()))
        .collect()
}

#[tokio::test]
async fn feed_to_kafka_once_per_feed_version() {
    let cluster = MockCluster::<DefaultProducerContext>::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    // The mock cluster does not implement CreateTopics; a real broker gets them from the host.
    for topic in ["vehicle_topic", "trip_update_topic"] {
        cluster.create_topic(topic, 3, 1).unwrap();
    }
    let network = Sample::new(200, 3);
    let now = Arc::new(AtomicU64::new(T0));
    let (feed_addr, server) = devfeed::serve(
        "127.0.0.1:0".parse().unwrap(),
        network,
        FeedClock::Manual(Arc::clone(&now)),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    tokio::spawn(server);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        manifest_text(&function("gtfs-fetch"), feed_addr.port()),
    )
    .unwrap();
    let data = dir.path().join("data");

    // First tick: every entity once, keyed and encoded as the feed decodes.
    tick_once(&manifest, &brokers, &data).await;
    let vehicles = consume_all(&brokers, "vehicle_topic", 200).await;
    assert_eq!(vehicles, expected(&network.vehicle_positions(T0)));
    assert!(
        vehicles.iter().all(|(key, _)| key.starts_with('V')),
        "vehicles are keyed by vehicle id"
    );
    let trips = consume_all(&brokers, "trip_update_topic", 200).await;
    assert_eq!(trips, expected(&network.trip_updates(T0)));
    let value: serde_json::Value = serde_json::from_str(&vehicles.first().unwrap().1).unwrap();
    assert_eq!(value["entity_type"], "vehicle");
    assert_eq!(value["feed_timestamp"], T0);
    assert_eq!(
        value["vehicle"]["trip"]["start_date"],
        gtfs_rt::sample::yyyymmdd(T0)
    );

    // Same feed again, on a restarted host: nothing new, counted as unchanged.
    let host = tick_once(&manifest, &brokers, &data).await;
    assert_eq!(total_messages(&brokers, "vehicle_topic"), 200);
    assert_eq!(total_messages(&brokers, "trip_update_topic"), 200);
    let text = host.metrics.encode();
    assert_eq!(
        sample(
            &text,
            r#"weir_feed_unchanged_total{feed="vehicles",function="gtfs-fetch"}"#
        ),
        Some(1.0),
        "{text}"
    );

    // The feed advances: one new message per entity.
    now.store(T0 + 30, Ordering::SeqCst);
    let host = tick_once(&manifest, &brokers, &data).await;
    assert_eq!(total_messages(&brokers, "vehicle_topic"), 400);
    assert_eq!(total_messages(&brokers, "trip_update_topic"), 400);
    let text = host.metrics.encode();
    assert_eq!(
        sample(
            &text,
            r#"weir_kafka_produced_total{function="gtfs-fetch",topic="vehicle_topic"}"#
        ),
        Some(200.0),
        "{text}"
    );
    assert!(
        sample(&text, r#"weir_fetch_bytes_total{function="gtfs-fetch"}"#).unwrap() > 10_000.0,
        "{text}"
    );
    // The header timestamp for `time() - …` staleness rules, and the
    // producer's refresh interval (30 s between the two feeds).
    assert_eq!(
        sample(
            &text,
            r#"weir_feed_header_timestamp_seconds{feed="vehicles"}"#
        ),
        Some((T0 + 30) as f64)
    );
    assert_eq!(
        sample(
            &text,
            r#"weir_feed_refresh_interval_seconds{feed="vehicles"}"#
        ),
        Some(30.0)
    );
    assert!(
        sample(&text, r#"weir_feed_age_seconds{feed="vehicles"}"#).unwrap() > 0.0,
        "{text}"
    );
}
