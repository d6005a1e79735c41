//! The Kafka producer for fetch functions: idempotent (acks=all, bounded
//! in-flight), compressed, and all-or-error per invocation: a tick's
//! messages are sent together and the tick fails if any is not acknowledged.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _, PurgeConfig};
use rdkafka::types::RDKafkaErrorCode;

use super::Publish;
use crate::imports::producer::OutMessage;
use crate::metrics::Metrics;

/// Why the producer failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSinkError {
    /// The client could not be created (bad configuration).
    #[error("cannot create a Kafka client for `{brokers}`")]
    Client {
        /// The bootstrap servers.
        brokers: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// A topic could not be created.
    #[error("cannot create Kafka topic `{topic}`")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// Some messages of one invocation were not acknowledged.
    #[error("{failed} of {total} messages were not acknowledged by Kafka (first: topic `{topic}`)")]
    Produce {
        /// Messages not acknowledged.
        failed: usize,
        /// Messages in the invocation.
        total: usize,
        /// Topic of the first failure.
        topic: String,
        /// The first failure.
        #[source]
        source: KafkaError,
    },
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    /// Bootstrap servers, `host:port[,…]`.
    pub brokers: String,
    /// How long one message may wait for its acknowledgement.
    pub delivery_timeout: Duration,
    /// Partitions of topics this sink creates.
    pub partitions: i32,
}

impl KafkaSinkConfig {
    /// Defaults for `brokers`: 30 s delivery timeout, topics of 3 partitions.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            delivery_timeout: Duration::from_secs(30),
            partitions: 3,
        }
    }
}

/// An idempotent producer shared by every cron trigger.
#[derive(Clone)]
pub struct KafkaSink {
    /// Replaced whole by [`KafkaSink::renew`]; a publish uses the one it
    /// started with.
    producer: Arc<ProducerSlot>,
    config: KafkaSinkConfig,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("brokers", &self.config.brokers)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// Creates the producer (no connection is made until the first send).
    pub fn new(config: KafkaSinkConfig, metrics: Arc<Metrics>) -> Result<Self, KafkaSinkError> {
        let producer = Arc::new(ProducerSlot::new(producer(&config)?));
        Ok(Self {
            producer,
            config,
            metrics,
        })
    }

    /// Replaces the producer with a new one, with a producer id of its own,
    /// and drops what the old one still queued or had in flight (those
    /// publishes fail). For a broker that lost the old producer's state —
    /// tansu restarted after its storage failed panics on every batch of a
    /// producer it no longer knows — or a producer that hit a fatal error.
    pub fn renew(&self) -> Result<(), KafkaSinkError> {
        self.producer.replace(producer(&self.config)?);
        tracing::info!(brokers = %self.config.brokers, "Kafka producer renewed");
        Ok(())
    }

    fn producer(&self) -> Arc<FutureProducer> {
        self.producer.current()
    }

    /// Creates `topics` if they do not exist (brokers such as tansu do not
    /// auto-create them).
    pub async fn ensure_topics(&self, topics: &[String]) -> Result<(), KafkaSinkError> {
        // Each name once: a CreateTopics request naming a topic twice is
        // refused as a whole by brokers (tansu: "bad message").
        let mut missing: Vec<String> = topics
            .iter()
            .filter(|t| !self.topic_exists(t))
            .cloned()
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let topics = &missing;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.config.brokers)
            .create()
            .map_err(|source| KafkaSinkError::Client {
                brokers: self.config.brokers.clone(),
                source,
            })?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| NewTopic::new(t, self.config.partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics(&new, &options)
            .await
            .map_err(|source| KafkaSinkError::CreateTopic {
                topic: topics.join(","),
                source,
            })?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(KafkaSinkError::CreateTopic {
                        topic,
                        source: KafkaError::AdminOp(code),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the brokers know `topic` (with at least one partition).
    fn topic_exists(&self, topic: &str) -> bool {
        self.producer()
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .is_ok_and(|m| {
                m.topics()
                    .iter()
                    .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            })
    }
}

/// A producer that can be replaced whole while publishes hold the one
/// they started with (the sink's and the cron ledger's).
pub(crate) struct ProducerSlot(RwLock<Arc<FutureProducer>>);

impl ProducerSlot {
    pub(crate) fn new(producer: FutureProducer) -> Self {
        Self(RwLock::new(Arc::new(producer)))
    }

    /// The producer in use now.
    pub(crate) fn current(&self) -> Arc<FutureProducer> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `fresh` in, and purges what the old one still queued or had in
    /// flight (those sends fail).
    pub(crate) fn replace(&self, fresh: FutureProducer) {
        let old = std::mem::replace(
            &mut *self.0.write().unwrap_or_else(PoisonError::into_inner),
            Arc::new(fresh),
        );
        old.purge(PurgeConfig::default().queue().inflight());
    }
}

/// The sink's idempotent producer for `config`.
fn producer(config: &KafkaSinkConfig) -> Result<FutureProducer, KafkaSinkError> {
    ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            config.delivery_timeout.as_millis().to_string(),
        )
        .create()
        .map_err(|source| KafkaSinkError::Client {
            brokers: config.brokers.clone(),
            source,
        })
}

impl Publish for KafkaSink {
    async fn publish(&self, function: &str, messages: Vec<OutMessage>) -> anyhow::Result<()> {
        let total = messages.len();
        let producer = self.producer();
        let sends = messages.iter().map(|m| {
            let mut record = FutureRecord::to(&m.topic).payload(&m.value);
            if let Some(key) = &m.key {
                record = record.key(key);
            }
            producer.send(record, self.config.delivery_timeout)
        });
        let results = join_all(sends).await;
        let mut first_error = None;
        let mut failed = 0;
        for (message, result) in messages.iter().zip(results) {
            let labels = [function, message.topic.as_str()];
            match result {
                Ok(_) => self.metrics.kafka_produced.with_label_values(&labels).inc(),
                Err((e, _)) => {
                    self.metrics
                        .kafka_produce_errors
                        .with_label_values(&labels)
                        .inc();
                    failed += 1;
                    first_error.get_or_insert((message.topic.clone(), e));
                }
            }
        }
        if first_error.is_some()
            && let Some((code, reason)) = producer.client().fatal_error()
        {
            // An idempotent producer's fatal error ends it for good.
            tracing::error!(
                ?code,
                reason,
                "the Kafka producer hit a fatal error; renewing it"
            );
            if let Err(e) = self.renew() {
                tracing::error!(error = %e, "cannot renew the Kafka producer");
            }
        }
        match first_error {
            None => Ok(()),
            Some((topic, source)) => Err(KafkaSinkError::Produce {
                failed,
                total,
                topic,
                source,
            }
            .into()),
        }
    }
}
