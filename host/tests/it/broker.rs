//! The embedded broker of local mode (tansu, sqlite): topics created through
//! the admin API, messages produced and consumed with rdkafka, and all of it
//! still there after the broker restarts on the same log.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use weir::Metrics;
use weir::broker::EmbeddedBroker;
use weir::imports::producer::OutMessage;
use weir::sink::Publish as _;
use weir::sink::kafka::{KafkaSink, KafkaSinkConfig};

async fn read_all(brokers: &str, group: &str, expected: usize) -> Vec<String> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&["durable"]).unwrap();
    let mut values = Vec::new();
    let read = async {
        while values.len() < expected {
            let m = consumer.recv().await.unwrap();
            values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap_or_else(|_| panic!("read {} of {expected}", values.len()));
    values
}

/// Starts `weir dev-broker` on a free port over `dir`; returns the child and its address.
fn dev_broker(dir: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["dev-broker", "--port", "0", "--data-dir"])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.trim().starts_with("127.0.0.1:"),
        "dev-broker printed {line:?}"
    );
    (child, line.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_survive_kill_9_of_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let messages: Vec<OutMessage> = (0..100)
        .map(|i| OutMessage {
            topic: "durable".into(),
            key: Some(format!("k{i}").into_bytes()),
            value: format!("v{i}").into_bytes(),
        })
        .collect();
    let (mut first, brokers) = dev_broker(dir.path());
    let sink = KafkaSink::new(KafkaSinkConfig::new(&brokers), Arc::new(Metrics::new())).unwrap();
    // Named twice (a topic one trigger writes and another reads): created once.
    sink.ensure_topics(&["durable".to_owned(), "durable".to_owned()])
        .await
        .unwrap();
    sink.publish("test", messages).await.unwrap();
    let mut values = read_all(&brokers, "first", 100).await;
    values.sort();
    values.dedup();
    assert_eq!(values.len(), 100);
    first.kill().unwrap();
    first.wait().unwrap();

    let (mut second, brokers) = dev_broker(dir.path());
    let mut values = read_all(&brokers, "second", 100).await;
    second.kill().unwrap();
    second.wait().unwrap();
    values.sort();
    values.dedup();
    assert_eq!(
        values.len(),
        100,
        "every message is still in the log after kill -9"
    );
}

/// A stopped embedded broker lets go of its log: a second one started in the
/// same process on the same directory serves every message the first stored.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_embedded_broker_hands_its_log_to_the_next_in_the_same_process() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedBroker::start(dir.path(), 0).await.unwrap();
    let sink = KafkaSink::new(
        KafkaSinkConfig::new(&first.bootstrap),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    sink.ensure_topics(&["durable".to_owned()]).await.unwrap();
    let messages = (0..20)
        .map(|i| OutMessage {
            topic: "durable".into(),
            key: None,
            value: format!("v{i}").into_bytes(),
        })
        .collect();
    sink.publish("test", messages).await.unwrap();
    drop(sink);
    drop(first);

    let second = EmbeddedBroker::start(dir.path(), 0).await.unwrap();
    let mut values = read_all(&second.bootstrap, "after-stop", 20).await;
    values.sort();
    values.dedup();
    assert_eq!(values.len(), 20);
}
