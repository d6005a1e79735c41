//! The consumer side of the Kafka trigger: a group member whose rebalance
//! callbacks hand newly assigned partitions to the run loop, which drops
//! their messages until it has read the Delta log and seeked each to where
//! its tables end (DESIGN.md §5.2); or, on a broker only this host uses, the
//! owner of every partition by direct assignment. Also probes each topic's
//! lag, owned or not.
//!
//! A new assignment is never paused: librdkafka starts a partition's
//! fetcher once the group's committed offset is back from the broker, and
//! a pause or resume of the same partition at that moment can make it
//! discard the start, leaving the partition assigned and never fetched
//! (docs/decisions.md, "Assignment never pauses").

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::Offset;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use tokio::sync::mpsc;

use anyhow::Context as _;

use super::commit::PartitionLog;
use super::progress::Partition;
use crate::metrics::Metrics;

/// How long a metadata, watermark, seek or offset request may take.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// The pause between seeks of a partition whose fetcher has not started.
const SEEK_RETRY: Duration = Duration::from_millis(10);

/// How a trigger comes to own partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ownership {
    /// Join the trigger's consumer group: the brokers spread the partitions
    /// over the hosts and move them when one comes or goes (a real cluster).
    #[default]
    Group,
    /// Take every partition of the topics directly, without joining a group:
    /// for a broker no other host consumes from, the embedded one of local
    /// mode. tansu 0.6's group coordinator keeps a crashed member's
    /// assignment until its session times out, so a restarted host would own
    /// nothing meanwhile (docs/decisions.md). Offsets are still committed
    /// under the group's name, for lag.
    All,
}

/// A change of the partitions this member owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// Newly assigned (their messages dropped until the run loop has
    /// positioned them).
    Assigned(Vec<Partition>),
    /// Taken away.
    Revoked(Vec<Partition>),
}

/// The rdkafka context: forwards rebalances, exports consumer lag.
pub struct Context {
    function: String,
    events: mpsc::UnboundedSender<Assignment>,
    metrics: Arc<Metrics>,
}

impl ClientContext for Context {
    /// librdkafka's own per-partition lag (high watermark − committed
    /// offset): since offsets are committed only after the Delta commits,
    /// it is the lag of the tables.
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .kafka_consumer_lag
                        .with_label_values(&[&self.function, topic, &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (event, list) = match rebalance {
            Rebalance::Assign(list) => (Assignment::Assigned(partitions(list)), list),
            Rebalance::Revoke(list) => (Assignment::Revoked(partitions(list)), list),
            Rebalance::Error(e) => {
                tracing::warn!(function = %self.function, error = %e, "rebalance error");
                return;
            }
        };
        tracing::info!(function = %self.function, partitions = list.count(), ?event, "rebalance");
        // The receiver lives as long as the run loop; after it is gone
        // nobody needs the event.
        let _ = self.events.send(event);
    }
}

impl Context {
    /// Hands a change made outside a rebalance (a direct assignment) to the
    /// run loop, as the rebalance callback does.
    fn announce(&self, event: Assignment) {
        tracing::info!(function = %self.function, ?event, "partitions assigned directly");
        let _ = self.events.send(event);
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<Partition> {
    list.elements()
        .iter()
        .map(|e| Partition::new(e.topic(), e.partition()))
        .collect()
}

/// A consumer in `group` (offsets committed by hand, after Delta) and the
/// receiving end of its rebalance events.
pub fn create(
    brokers: &str,
    group: &str,
    function: &str,
    session_timeout: Duration,
    metrics: Arc<Metrics>,
) -> KafkaResult<(StreamConsumer<Context>, mpsc::UnboundedReceiver<Assignment>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let context = Context {
        function: function.to_owned(),
        events: tx,
        metrics,
    };
    let consumer = client_config(brokers, group, session_timeout).create_with_context(context)?;
    Ok((consumer, rx))
}

/// At most this many bytes of messages are fetched ahead of the batches.
const PREFETCH: usize = 16 << 20;

/// How long a partition's fetches pause once the prefetch queue is full.
const FETCH_QUEUE_BACKOFF: Duration = Duration::from_millis(10);

/// librdkafka's settings for a trigger's consumer. It fetches ahead 16 MiB
/// ([`PREFETCH`]) instead of librdkafka's 64 MiB, and a full queue pauses a
/// partition's fetches for 10 ms instead of a second: with 64 MiB the queue
/// was a quarter of the host's memory, and a smaller queue with the
/// one-second pause starved the host. The smaller queue with the short
/// pause is faster too (docs/decisions.md). A batch larger than the queue
/// still fills: the queue refills as the batch takes from it.
fn client_config(brokers: &str, group: &str, session_timeout: Duration) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set(
            "session.timeout.ms",
            session_timeout.as_millis().to_string(),
        )
        .set("statistics.interval.ms", "5000")
        .set("fetch.wait.max.ms", "100")
        .set("queued.max.messages.kbytes", (PREFETCH >> 10).to_string())
        .set(
            "fetch.queue.backoff.ms",
            FETCH_QUEUE_BACKOFF.as_millis().to_string(),
        );
    config
}

/// The consumer's view of its partitions' logs. Watermarks and seeks
/// are round trips to the brokers: they run on the blocking pool.
impl PartitionLog for Arc<StreamConsumer<Context>> {
    async fn watermarks(&self, part: &Partition) -> anyhow::Result<(i64, i64)> {
        let (consumer, p) = (Arc::clone(self), part.clone());
        tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&p.topic, p.partition, BROKER_TIMEOUT)
        })
        .await?
        .with_context(|| format!("reading the watermarks of {part}"))
    }

    async fn committed(&self, part: &Partition) -> anyhow::Result<Option<i64>> {
        let (consumer, p) = (Arc::clone(self), part.clone());
        let list = tokio::task::spawn_blocking(move || {
            consumer.committed_offsets(one(&p.topic, p.partition), BROKER_TIMEOUT)
        })
        .await?
        .with_context(|| format!("reading the group's committed offset of {part}"))?;
        Ok(list
            .find_partition(&part.topic, part.partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            }))
    }

    /// A partition's fetcher starts only once librdkafka has the group's
    /// committed offset; a seek before that is refused as "Erroneous
    /// state", so it is tried again until [`BROKER_TIMEOUT`].
    async fn seek(&self, part: &Partition, offset: i64) -> anyhow::Result<()> {
        let (consumer, p) = (Arc::clone(self), part.clone());
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + BROKER_TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let mut list = TopicPartitionList::new();
                list.add_partition_offset(&p.topic, p.partition, Offset::Offset(offset))?;
                let answer = consumer.seek_partitions(list, left)?;
                let result = answer
                    .find_partition(&p.topic, p.partition)
                    .map_or(Ok(()), |e| e.error());
                match result {
                    Err(KafkaError::OffsetFetch(RDKafkaErrorCode::State)) if !left.is_zero() => {
                        std::thread::sleep(SEEK_RETRY);
                    }
                    done => return done,
                }
            }
        })
        .await?
        .with_context(|| format!("seeking {part} to {offset}"))
    }

    fn pause(&self, part: &Partition) -> anyhow::Result<()> {
        Ok(Consumer::pause(
            self.as_ref(),
            &one(&part.topic, part.partition),
        )?)
    }

    fn resume(&self, part: &Partition) -> anyhow::Result<()> {
        Ok(Consumer::resume(
            self.as_ref(),
            &one(&part.topic, part.partition),
        )?)
    }
}

/// A partition list of one partition.
pub fn one(topic: &str, partition: i32) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    list
}

/// Every partition of `topics`, from the brokers' metadata.
fn all_partitions(
    consumer: &StreamConsumer<Context>,
    topics: &[String],
    timeout: Duration,
) -> KafkaResult<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            if let Some(e) = t.error() {
                return Err(KafkaError::MetadataFetch(e.into()));
            }
            for p in t.partitions() {
                list.add_partition(t.name(), p.id());
            }
        }
    }
    Ok(list)
}

/// Takes every partition of `topics` and announces them to the run loop,
/// which positions each from the Delta log (their messages dropped until
/// then, like a rebalance's). Blocking: metadata is a round trip to the
/// brokers.
pub fn assign_all(
    consumer: &StreamConsumer<Context>,
    topics: &[String],
    timeout: Duration,
) -> KafkaResult<usize> {
    let list = all_partitions(consumer, topics, timeout)?;
    consumer.assign(&list)?;
    consumer
        .context()
        .announce(Assignment::Assigned(partitions(&list)));
    Ok(list.count())
}

/// One partition of a trigger's topics as a lag probe saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Where the group goes on from: its committed offset, or the low
    /// watermark where it committed nothing (or less).
    pub position: i64,
    /// Messages after `position`: high watermark − `position`.
    pub lag: i64,
    /// Whether this consumer owns the partition now.
    pub owned: bool,
}

/// Every partition of `topics`, whoever owns it: how far the consumer's
/// group got and how many messages wait after that. Blocking.
pub fn partition_lag(
    consumer: &StreamConsumer<Context>,
    topics: &[String],
    timeout: Duration,
) -> KafkaResult<Vec<PartitionLag>> {
    let list = all_partitions(consumer, topics, timeout)?;
    let committed = consumer.committed_offsets(list, timeout)?;
    let owned = consumer.assignment()?;
    let mut out = Vec::with_capacity(committed.count());
    for element in committed.elements() {
        let (topic, partition) = (element.topic(), element.partition());
        let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        let position = match element.offset() {
            Offset::Offset(committed) => committed.max(low),
            _ => low,
        };
        out.push(PartitionLag {
            topic: topic.to_owned(),
            partition,
            position,
            lag: (high - position).max(0),
            owned: owned.find_partition(topic, partition).is_some(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::client_config;

    #[test]
    fn the_consumer_fetches_ahead_16_mib_and_pauses_10_ms_when_that_is_full() {
        let config = client_config("127.0.0.1:9", "g", Duration::from_secs(10));
        assert_eq!(config.get("queued.max.messages.kbytes"), Some("16384"));
        assert_eq!(config.get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(config.get("session.timeout.ms"), Some("10000"));
    }
}
