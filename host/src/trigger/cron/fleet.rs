//! Cron triggers across a fleet of hosts: one owner per trigger, chosen by
//! Kafka, and the feed ledger kept beside it so it moves with the trigger.
//!
//! A control topic (`weir.<application>.cron`) has one partition per cron
//! trigger. Every host joins one consumer group over it, and the host the
//! group assigns a partition runs that trigger; when the owner stops or
//! dies, the group hands the partition to another host after its session
//! timeout. The owner writes the trigger's ledger into the same partition:
//! `publishing` before it publishes a new feed version, `published` after,
//! `ticked` for a tick with nothing new. A host that gains a trigger reads
//! the partition's last record before its first tick, so it never
//! publishes a version another host published or began to publish. A
//! version cut short (its owner died between `publishing` and `published`)
//! is recorded as `incomplete` and counted, never published again: a
//! feed version reaches its topic at most once (docs/decisions.md).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::Message as _;
use rdkafka::Offset;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::sink::kafka::ProducerSlot;

/// How long a metadata, watermark or produce request may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// How far back from a partition's end a host looks for its trigger's
/// last record (records of a trigger that used the partition before the
/// manifest's triggers changed may follow it).
const LOOK_BACK: i64 = 64;

/// What a ledger record says about a trigger's feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerState {
    /// A tick that published nothing new.
    Ticked,
    /// About to publish the version `feed_timestamp`.
    Publishing,
    /// Published the version `feed_timestamp` whole.
    Published,
    /// The version `feed_timestamp` was cut short and is not published again.
    Incomplete,
}

/// One record of a trigger's ledger, keyed by the trigger id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    /// The trigger id.
    pub trigger: String,
    /// The host that wrote it.
    pub host: String,
    /// The scheduled tick, POSIX seconds.
    pub tick: i64,
    /// What happened.
    pub state: LedgerState,
    /// The newest feed version published or given up (header timestamp).
    pub feed_timestamp: Option<u64>,
}

/// How this host comes to own cron triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetMode {
    /// Join the fleet's consumer group: one host runs each trigger.
    Group,
    /// Own every trigger without a group (a broker only this host uses).
    All,
}

/// Owned partitions, each with the generation it was (re)gained in.
type Owned = BTreeMap<i32, u64>;

/// This host's place in the fleet: which triggers it runs, and their ledgers.
pub struct Fleet {
    topic: String,
    host: String,
    partitions: BTreeMap<String, i32>,
    owned: watch::Receiver<Owned>,
    brokers: String,
    /// Replaced whole by [`Fleet::renew_producer`].
    producer: ProducerSlot,
    reader: Arc<Mutex<BaseConsumer>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("topic", &self.topic)
            .field("owned", &*self.owned.borrow())
            .finish_non_exhaustive()
    }
}

/// The control topic of application `app`.
pub fn control_topic(app: &str) -> String {
    let name: String = app
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("weir.{name}.cron")
}

/// Forwards the group's decisions to the owned set and `weir_cron_owned`.
struct Context {
    owned: watch::Sender<Owned>,
    generation: std::sync::atomic::AtomicU64,
    /// Trigger id by partition.
    triggers: BTreeMap<i32, String>,
    metrics: Arc<Metrics>,
}

impl Context {
    fn set(&self, partitions: &[i32], generation: Option<u64>) {
        self.owned.send_modify(|owned| {
            for p in partitions {
                match generation {
                    Some(g) => owned.insert(*p, g),
                    None => owned.remove(p),
                };
            }
        });
        for p in partitions {
            if let Some(trigger) = self.triggers.get(p) {
                self.metrics
                    .cron_owned
                    .with_label_values(&[trigger])
                    .set(i64::from(generation.is_some()));
            }
        }
    }
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                // Nothing to read through the group: the ledger is read
                // directly, so the partitions stay paused.
                if let Err(e) = consumer.pause(list) {
                    tracing::warn!(error = %e, "cannot pause the control topic's partitions");
                }
                let generation = self
                    .generation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let gained: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?gained, "cron triggers assigned to this host");
                self.set(&gained, Some(generation));
            }
            Rebalance::Revoke(list) => {
                let lost: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?lost, "cron triggers taken from this host");
                self.set(&lost, None);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "cron fleet rebalance error"),
        }
    }
}

impl Fleet {
    /// Prepares the control topic for `triggers` (ids) and joins the
    /// fleet; the membership lives until `shutdown`.
    /// `triggers` are (id, time between two ticks).
    pub async fn start(
        brokers: &str,
        app: &str,
        triggers: &[(String, Duration)],
        host: &str,
        mode: FleetMode,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let topic = control_topic(app);
        let mut sorted = triggers.to_vec();
        sorted.sort();
        let partitions: BTreeMap<String, i32> =
            sorted.iter().map(|(id, _)| id.clone()).zip(0..).collect();
        // A trigger nobody has recorded a tick of for this long is stranded.
        let stalls: BTreeMap<i32, Duration> = sorted
            .iter()
            .zip(0..)
            .map(|((_, period), p)| (p, 2 * SESSION_TIMEOUT + 2 * *period))
            .collect();
        let count = i32::try_from(partitions.len()).unwrap_or(i32::MAX).max(1);
        ensure_topic(brokers, &topic, count).await?;
        let producer = ledger_producer(brokers)?;
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("{topic}.reader"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()?;
        let (sender, owned) = watch::channel(Owned::new());
        for id in partitions.keys() {
            metrics.cron_owned.with_label_values(&[id]).set(0);
            metrics.cron_fenced.with_label_values(&[id]);
        }
        let context = Context {
            owned: sender,
            generation: std::sync::atomic::AtomicU64::new(1),
            triggers: partitions.iter().map(|(id, p)| (*p, id.clone())).collect(),
            metrics: Arc::clone(&metrics),
        };
        let consumer: StreamConsumer<Context> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", &topic)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "latest")
            .set(
                "session.timeout.ms",
                SESSION_TIMEOUT.as_millis().to_string(),
            )
            .create_with_context(context)?;
        match mode {
            FleetMode::Group => consumer.subscribe(&[topic.as_str()])?,
            FleetMode::All => {
                let mut list = TopicPartitionList::new();
                for p in 0..count {
                    list.add_partition(&topic, p);
                }
                consumer.assign(&list)?;
                consumer.pause(&list)?;
                let all: Vec<i32> = (0..count).collect();
                consumer.context().set(&all, Some(0));
            }
        }
        let reader = Arc::new(Mutex::new(reader));
        let member = Member {
            consumer,
            topic: topic.clone(),
            reader: Arc::clone(&reader),
            owned: owned.clone(),
            stalls: if mode == FleetMode::Group {
                stalls
            } else {
                BTreeMap::new()
            },
            metrics,
        };
        tokio::spawn(member.run(shutdown));
        Ok(Arc::new(Self {
            topic,
            host: host.to_owned(),
            partitions,
            owned,
            brokers: brokers.to_owned(),
            producer: ProducerSlot::new(producer),
            reader,
        }))
    }

    /// The generation in which this host gained `trigger`, if it owns it now.
    pub fn owns(&self, trigger: &str) -> Option<u64> {
        self.partitions
            .get(trigger)
            .and_then(|p| self.owned.borrow().get(p).copied())
    }

    /// Where `trigger`'s ledger stands, if it has records (see [`newest`]),
    /// and where the ledger ends: the offset after the last record read.
    pub async fn read_ledger(&self, trigger: &str) -> anyhow::Result<(Option<LedgerRecord>, i64)> {
        let partition = self.partition(trigger)?;
        let trigger = trigger.to_owned();
        self.read(partition, move |reader, topic| {
            let (low, high) = reader.fetch_watermarks(topic, partition, BROKER_TIMEOUT)?;
            let records =
                read_records(reader, topic, partition, (high - LOOK_BACK).max(low), high)?;
            Ok((newest(records, &trigger), high))
        })
        .await
    }

    /// Appends `record` to its trigger's ledger and waits for the brokers;
    /// answers where the ledger now ends (the offset after `record`).
    pub async fn record(&self, mut record: LedgerRecord) -> anyhow::Result<i64> {
        let partition = self.partition(&record.trigger)?;
        record.host.clone_from(&self.host);
        let value = serde_json::to_vec(&record)?;
        let producer = self.producer.current();
        let delivery = producer
            .send(
                FutureRecord::to(&self.topic)
                    .partition(partition)
                    .key(&record.trigger)
                    .payload(&value),
                BROKER_TIMEOUT,
            )
            .await
            .map_err(|(e, _)| e)?;
        Ok(delivery.offset + 1)
    }

    /// Appends `record` (a `publishing`) and checks that no record of its
    /// trigger lies between `known` (where this host's reading of the
    /// ledger ended) and it. Two hosts that both believe they run the
    /// trigger (one not yet told it lost it, or a broker's coordinator
    /// assigning it twice) append in some order, and the partition's order
    /// decides: only the first after the state both read wins. Answers
    /// where the ledger now ends if this host won, `None` if another host
    /// wrote first: then this host must not publish.
    pub async fn claim(&self, record: LedgerRecord, known: i64) -> anyhow::Result<Option<i64>> {
        let partition = self.partition(&record.trigger)?;
        let trigger = record.trigger.clone();
        let end = self.record(record).await?;
        let mine = end - 1;
        let others = self
            .read(partition, move |reader, topic| {
                let records = read_records(reader, topic, partition, known, mine)?;
                Ok(records.into_iter().filter(|r| r.trigger == trigger).count())
            })
            .await?;
        Ok((others == 0).then_some(end))
    }

    /// Runs `read` with the shared reader, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        partition: i32,
        read: impl FnOnce(&BaseConsumer, &str) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        read_ledger_partition(&self.reader, &self.topic, partition, read).await
    }

    /// Replaces the ledger's producer with a new one (a producer id of its
    /// own) and drops what the old one still queued: see
    /// [`crate::sink::kafka::KafkaSink::renew`].
    pub fn renew_producer(&self) -> anyhow::Result<()> {
        self.producer.replace(ledger_producer(&self.brokers)?);
        Ok(())
    }

    fn partition(&self, trigger: &str) -> anyhow::Result<i32> {
        self.partitions
            .get(trigger)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("`{trigger}` is not a cron trigger of this fleet"))
    }
}

/// The idempotent producer that appends to the ledger.
fn ledger_producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", BROKER_TIMEOUT.as_millis().to_string())
        .create()?)
}

/// How long the group waits for a silent host before moving its triggers.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a host looks for triggers nobody runs.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// This host's membership of the fleet's group.
struct Member {
    consumer: StreamConsumer<Context>,
    topic: String,
    reader: Arc<Mutex<BaseConsumer>>,
    owned: watch::Receiver<Owned>,
    /// Per partition, how long without a new record means nobody runs it.
    stalls: BTreeMap<i32, Duration>,
    metrics: Arc<Metrics>,
}

impl Member {
    /// Polls the consumer (which keeps the membership alive and runs the
    /// rebalances) until `shutdown`, then leaves the group so another host
    /// takes over at once. Meanwhile it watches the triggers this host
    /// does not run: every owner records each tick, so a partition that
    /// stays silent for twice the session timeout plus two periods has no
    /// live owner. tansu 0.6 can leave it assigned to a dead member
    /// (docs/decisions.md); this host then leaves the group and joins it
    /// again, which makes the group assign afresh.
    async fn run(self, shutdown: CancellationToken) {
        let mut probe = tokio::time::interval(PROBE_EVERY);
        let mut heard: BTreeMap<i32, (i64, tokio::time::Instant)> = BTreeMap::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                message = self.consumer.recv() => {
                    if let Err(e) = message {
                        tracing::debug!(error = %e, "cron fleet consumer");
                    }
                }
                _ = probe.tick(), if !self.stalls.is_empty() => {
                    if self.stranded(&mut heard).await {
                        self.rejoin();
                        heard.clear();
                    }
                }
            }
        }
        self.consumer.unsubscribe();
    }

    /// Whether a trigger this host does not run has been silent too long.
    async fn stranded(&self, heard: &mut BTreeMap<i32, (i64, tokio::time::Instant)>) -> bool {
        let now = tokio::time::Instant::now();
        let owned: Vec<i32> = self.owned.borrow().keys().copied().collect();
        for (&partition, &stall) in &self.stalls {
            if owned.contains(&partition) {
                heard.remove(&partition);
                continue;
            }
            let high = read_ledger_partition(
                &self.reader,
                &self.topic,
                partition,
                move |reader, topic| {
                    Ok(reader.fetch_watermarks(topic, partition, BROKER_TIMEOUT)?)
                },
            )
            .await;
            let Ok((_, high)) = high else {
                // The broker is away: nothing to judge the group by.
                continue;
            };
            let (last, since) = heard.entry(partition).or_insert((high, now));
            if *last != high {
                (*last, *since) = (high, now);
            } else if now - *since > stall {
                tracing::warn!(
                    partition,
                    silent_s = (now - *since).as_secs(),
                    "no host has run this cron trigger for too long; leaving the fleet's group and joining it again"
                );
                return true;
            }
        }
        false
    }

    fn rejoin(&self) {
        self.metrics.cron_rejoins.inc();
        self.consumer.unsubscribe();
        if let Err(e) = self.consumer.subscribe(&[self.topic.as_str()]) {
            tracing::error!(error = %e, "cannot join the fleet's group again");
        }
    }
}

/// Runs `read` on partition `partition` of the control topic with the
/// shared `reader`, off the async threads.
async fn read_ledger_partition<T: Send + 'static>(
    reader: &Arc<Mutex<BaseConsumer>>,
    topic: &str,
    partition: i32,
    read: impl FnOnce(&BaseConsumer, &str) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let (reader, topic) = (Arc::clone(reader), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let reader = reader.lock().unwrap_or_else(PoisonError::into_inner);
        read(&reader, &topic).map_err(|e| {
            e.context(format!(
                "reading the cron ledger ({topic} partition {partition})"
            ))
        })
    })
    .await?
}

/// Creates the control topic with `partitions` partitions, or adds the
/// partitions an existing one lacks.
async fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: Arc<AdminClient<DefaultClientContext>> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()?,
    );
    let has = {
        let (admin, topic) = (Arc::clone(&admin), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            admin
                .inner()
                .fetch_metadata(Some(&topic), BROKER_TIMEOUT)
                .ok()
                .and_then(|m| {
                    m.topics()
                        .first()
                        .filter(|t| t.error().is_none())
                        .map(|t| t.partitions().len())
                })
                .unwrap_or(0)
        })
        .await?
    };
    let wanted = usize::try_from(partitions)?;
    let options = AdminOptions::new().operation_timeout(Some(BROKER_TIMEOUT));
    if has == 0 {
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact");
        for result in admin.create_topics(&[new], &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, e)) => anyhow::bail!("cannot create the control topic `{topic}`: {e}"),
            }
        }
    } else if has < wanted {
        let grow = NewPartitions::new(topic, wanted);
        for result in admin.create_partitions(&[grow], &options).await? {
            result.map_err(|(_, e)| {
                anyhow::anyhow!("cannot grow `{topic}` from {has} to {wanted} partitions: {e}")
            })?;
        }
    }
    Ok(())
}

/// Where `trigger`'s ledger stands: its record of the newest feed version,
/// one that settled it (`published`, `incomplete`, or a later `ticked`)
/// before one that only began it (`publishing`); the last of equals.
/// Not simply the last record: a host that no longer runs the trigger
/// (and has not been told yet) may append a `ticked` naming an older
/// version after another host's `publishing`, and the version begun must
/// still count as begun.
fn newest(records: Vec<LedgerRecord>, trigger: &str) -> Option<LedgerRecord> {
    records
        .into_iter()
        .filter(|r| r.trigger == trigger)
        .max_by_key(|r| (r.feed_timestamp, r.state != LedgerState::Publishing))
}

/// The ledger records at offsets `from..to` of `partition`; records that
/// are not weir's JSON are logged and skipped.
fn read_records(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
) -> anyhow::Result<Vec<LedgerRecord>> {
    let mut records = Vec::new();
    if to <= from {
        return Ok(records);
    }
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(from))?;
    reader.assign(&list)?;
    let deadline = std::time::Instant::now() + BROKER_TIMEOUT;
    while std::time::Instant::now() < deadline {
        let Some(message) = reader.poll(Duration::from_millis(200)) else {
            continue;
        };
        match message {
            Ok(m) if m.partition() == partition => {
                match m
                    .payload()
                    .and_then(|v| serde_json::from_slice::<LedgerRecord>(v).ok())
                {
                    Some(record) => records.push(record),
                    None => tracing::warn!(
                        topic,
                        partition,
                        offset = m.offset(),
                        "a record of the cron ledger is not weir's JSON; skipped"
                    ),
                }
                if m.offset() + 1 >= to {
                    return Ok(records);
                }
            }
            Ok(_) => {}
            Err(rdkafka::error::KafkaError::PartitionEOF(p)) if p == partition => {
                return Ok(records);
            }
            Err(rdkafka::error::KafkaError::PartitionEOF(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("timed out after {} s", BROKER_TIMEOUT.as_secs())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::{Fleet, FleetMode, LedgerRecord, LedgerState, control_topic};
    use crate::metrics::Metrics;

    fn record(trigger: &str, state: LedgerState, feed_timestamp: u64) -> LedgerRecord {
        LedgerRecord {
            trigger: trigger.to_owned(),
            host: String::new(),
            tick: 1,
            state,
            feed_timestamp: Some(feed_timestamp),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_trigger_reads_back_its_own_last_record() {
        let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
        // librdkafka's mock cluster answers no CreateTopics: the topic is
        // there already, as a host after the first finds it.
        cluster
            .create_topic(&control_topic("my app"), 2, 1)
            .unwrap();
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let triggers = [
            ("b".to_owned(), Duration::from_secs(1)),
            ("a".to_owned(), Duration::from_secs(1)),
        ];
        let fleet = Fleet::start(
            &cluster.bootstrap_servers(),
            "my app",
            &triggers,
            "host-1",
            FleetMode::All,
            Arc::clone(&metrics),
            shutdown.clone(),
        )
        .await
        .unwrap();
        assert_eq!(control_topic("my app/x"), "weir.my_app_x.cron");
        assert_eq!((fleet.owns("a"), fleet.owns("b")), (Some(0), Some(0)));
        assert_eq!(fleet.owns("c"), None);
        assert_eq!(fleet.read_ledger("a").await.unwrap(), (None, 0));
        for state in [LedgerState::Publishing, LedgerState::Published] {
            fleet.record(record("a", state, 10)).await.unwrap();
        }
        fleet
            .record(record("b", LedgerState::Publishing, 7))
            .await
            .unwrap();
        fleet
            .record(record("a", LedgerState::Ticked, 10))
            .await
            .unwrap();
        let (a, end) = fleet.read_ledger("a").await.unwrap();
        let a = a.unwrap();
        assert_eq!(end, 3, "three records of `a` in its partition");
        assert_eq!((a.state, a.feed_timestamp), (LedgerState::Ticked, Some(10)));
        assert_eq!(a.host, "host-1", "every record names its host");
        let b = fleet.read_ledger("b").await.unwrap().0.unwrap();
        assert_eq!(
            (b.state, b.feed_timestamp),
            (LedgerState::Publishing, Some(7))
        );
        assert!(
            fleet
                .record(record("c", LedgerState::Ticked, 1))
                .await
                .is_err()
        );
        let text = metrics.encode();
        assert!(text.contains("weir_cron_owned{trigger=\"a\"} 1"), "{text}");
        shutdown.cancel();
    }

    /// Two hosts that both believe they run trigger `a` (one not yet told
    /// it lost it): both read the ledger, both fetch the same new version,
    /// and only the first to claim it publishes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_two_hosts_running_one_trigger_only_the_first_to_claim_publishes() {
        let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
        cluster.create_topic(&control_topic("app"), 1, 1).unwrap();
        let shutdown = CancellationToken::new();
        let triggers = [("a".to_owned(), Duration::from_secs(1))];
        let mut hosts = Vec::new();
        for host in ["host-1", "host-2"] {
            let fleet = Fleet::start(
                &cluster.bootstrap_servers(),
                "app",
                &triggers,
                host,
                FleetMode::All,
                Arc::new(Metrics::new()),
                shutdown.clone(),
            )
            .await
            .unwrap();
            hosts.push(fleet);
        }
        let (one, two) = (&hosts[0], &hosts[1]);
        let published = one
            .record(record("a", LedgerState::Published, 10))
            .await
            .unwrap();
        let (_, known_one) = one.read_ledger("a").await.unwrap();
        let (_, known_two) = two.read_ledger("a").await.unwrap();
        assert_eq!((known_one, known_two), (published, published));

        let claimed = one
            .claim(record("a", LedgerState::Publishing, 11), known_one)
            .await
            .unwrap();
        assert_eq!(claimed, Some(published + 1), "the first claim wins");
        let second = two
            .claim(record("a", LedgerState::Publishing, 11), known_two)
            .await
            .unwrap();
        assert_eq!(second, None, "the second host must not publish");
        // The winner claims its next version from where its claim ended:
        // the loser's record lies in between, so it is told too.
        assert_eq!(
            one.claim(record("a", LedgerState::Publishing, 12), published + 1)
                .await
                .unwrap(),
            None
        );
        // Reading again, each sees the newest version begun.
        let (now, end) = two.read_ledger("a").await.unwrap();
        let now = now.unwrap();
        assert_eq!(
            (now.state, now.feed_timestamp, end),
            (LedgerState::Publishing, Some(12), published + 3)
        );
        assert_eq!(
            one.claim(record("a", LedgerState::Publishing, 13), end)
                .await
                .unwrap(),
            Some(end + 1)
        );
        // A host not yet told it lost the trigger appends a `ticked` naming
        // an older version after the owner's `publishing`; the version
        // begun still counts as begun.
        two.record(record("a", LedgerState::Ticked, 11))
            .await
            .unwrap();
        let (now, _) = one.read_ledger("a").await.unwrap();
        let now = now.unwrap();
        assert_eq!(
            (now.state, now.feed_timestamp, now.host.as_str()),
            (LedgerState::Publishing, Some(13), "host-1")
        );
        shutdown.cancel();
    }
}
