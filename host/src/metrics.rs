//! Every metric weir exports, defined once. Names and labels are a contract
//! with `observability/` (dashboards and alert rules); change them together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Invocation durations from 100 µs to ~100 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 100.0,
];

/// `outcome` values of `weir_invocations_total`.
pub const OUTCOMES: [&str; 5] = ["ok", "error", "timeout", "memory", "trap"];
/// `kind` values of `weir_traps_total`.
pub const TRAP_KINDS: [&str; 3] = ["timeout", "memory", "trap"];
/// `result` values of `weir_swaps_total`.
pub const SWAP_RESULTS: [&str; 7] = [
    "ok",
    "rollback",
    "unchanged",
    "invalid",
    "wrong_world",
    "smoke_failed",
    "no_previous",
];
/// `kind` values of `weir_outbound_http_errors_total`.
pub const HTTP_ERROR_KINDS: [&str; 9] = [
    "denied",
    "dns",
    "connect",
    "timeout",
    "tls",
    "too_large",
    "too_many",
    "bad_request",
    "other",
];
/// `kind` values of `weir_delta_commit_errors_total`.
pub const COMMIT_ERROR_KINDS: [&str; 2] = ["fenced", "error"];
/// `kind` values of `weir_delta_compaction_errors_total`.
pub const COMPACTION_ERROR_KINDS: [&str; 2] = ["conflict", "error"];
/// `reason` values of `weir_dead_letters_total`.
pub const DEAD_LETTER_REASONS: [&str; 4] = [
    "rejected",
    "invalid_row",
    "unknown_table",
    "invocation_failed",
];

/// The host's metrics, in a registry of its own (so several hosts can run
/// in one test process without sharing counters).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `weir_invocations_total{function,outcome}`; outcome is `ok`, `error`, `timeout`, `memory` or `trap`.
    pub invocations: IntCounterVec,
    /// `weir_invocation_duration_seconds{function}`, instantiate to return.
    pub invocation_duration: HistogramVec,
    /// `weir_invocation_memory_bytes{function}`: the largest linear memory of one invocation.
    pub invocation_memory: HistogramVec,
    /// `weir_traps_total{function,kind}`; kind is `timeout`, `memory` or `trap`.
    pub traps: IntCounterVec,
    /// `weir_missed_ticks_total{function}`: cron ticks skipped because the previous run was still going.
    pub missed_ticks: IntCounterVec,
    /// `weir_cron_owned{trigger}` = 1 while this host runs the cron trigger
    /// (summed over the fleet, exactly 1).
    pub cron_owned: IntGaugeVec,
    /// `weir_cron_rejoins_total`: times this host left the fleet's group and
    /// joined again because a cron trigger had no live owner.
    pub cron_rejoins: IntCounter,
    /// `weir_embedded_broker_failures_total`: times the embedded broker's
    /// storage failed (each followed by a restart in place).
    pub embedded_broker_failures: IntCounter,
    /// `weir_cron_fenced_total{trigger}`: feed versions this host did not
    /// publish because another host, also believing it ran the trigger,
    /// claimed the trigger's ledger first.
    pub cron_fenced: IntCounterVec,
    /// `weir_feed_versions_incomplete_total{function,feed}`: feed versions
    /// cut short while being published (a crash, a failed publish), never
    /// published again.
    pub feed_versions_incomplete: IntCounterVec,
    /// `weir_feed_publish_failures_total{function,feed}`: fetches whose
    /// messages could not be published (the brokers did not answer the
    /// ledger or did not take the messages); the version is fetched again.
    pub feed_publish_failures: IntCounterVec,
    /// `weir_kafka_reachable{trigger}` = 1 while the trigger's last exchange
    /// with the brokers was answered, 0 while it was not (a Kafka trigger's
    /// lag probe every 10 s; a cron trigger's ledger records and publishes).
    /// `/readyz` is not ready while any is 0.
    pub kafka_reachable: IntGaugeVec,
    /// `weir_memory_allocated_bytes`: bytes live allocations hold (jemalloc).
    pub memory_allocated: IntGauge,
    /// `weir_memory_resident_bytes`: bytes jemalloc keeps resident, in use or not.
    pub memory_resident: IntGauge,
    /// `weir_disk_free_bytes{path}`: free bytes on the filesystem of the
    /// data dir and of every local table (measured every 10 s).
    pub disk_free: IntGaugeVec,
    /// `weir_component_info{function,world,digest}` = 1 for the running version;
    /// `world` (`fetcher`, `transformer`) lets rules tell fetches from transforms.
    pub component_info: IntGaugeVec,
    /// `weir_build_info{version}` = 1.
    pub build_info: IntGaugeVec,
    /// `weir_outbound_http_errors_total{function,kind}`; kind: denied, dns, connect, timeout, tls, too_large, too_many, bad_request, other.
    pub outbound_http_errors: IntCounterVec,
    /// `weir_fetch_bytes_total{function}`: response body bytes received by guests.
    pub fetch_bytes: IntCounterVec,
    /// `weir_feed_age_seconds{feed}`: now − the header timestamp of the feed last fetched.
    pub feed_age: GaugeVec,
    /// `weir_feed_header_timestamp_seconds{feed}`: the header timestamp of the
    /// feed last fetched; `time() - it` keeps growing when fetches stop.
    pub feed_timestamp: GaugeVec,
    /// `weir_feed_refresh_interval_seconds{feed}`: seconds between the last two
    /// distinct header timestamps (the producer's refresh interval).
    pub feed_refresh_interval: GaugeVec,
    /// `weir_feed_unchanged_total{function,feed}`: fetches whose header timestamp had not advanced.
    pub feed_unchanged: IntCounterVec,
    /// `weir_feed_invalid_strings_total{function,feed}`: string fields that were
    /// not valid text in the feed's encoding and were decoded with U+FFFD.
    pub feed_invalid_strings: IntCounterVec,
    /// `weir_kafka_produced_total{function,topic}`: messages acknowledged by the brokers.
    pub kafka_produced: IntCounterVec,
    /// `weir_kafka_produce_errors_total{function,topic}`: messages the brokers did not acknowledge.
    pub kafka_produce_errors: IntCounterVec,
    /// `weir_kafka_consumer_lag{function,topic,partition}`: high watermark − committed offset (from librdkafka's statistics).
    pub kafka_consumer_lag: IntGaugeVec,
    /// `weir_kafka_partition_stopped{function,topic,partition}` = 1 for a partition refused because its offsets went backwards.
    pub kafka_partition_stopped: IntGaugeVec,
    /// `weir_kafka_assigned_partitions{function}`: partitions of its topics this host's trigger owns now.
    pub kafka_assigned_partitions: IntGaugeVec,
    /// `weir_kafka_group_rejoins_total{function}`: times a trigger left its
    /// consumer group and joined again because messages waited on a
    /// partition nobody consumed while its own were caught up or moving.
    pub kafka_rejoins: IntCounterVec,
    /// `weir_kafka_topic_lag{function,topic}`: messages of a topic not yet
    /// committed by the trigger's group, over every partition, whoever owns
    /// it (probed from the brokers, so it is known while the host owns none).
    pub kafka_topic_lag: IntGaugeVec,
    /// `weir_batch_records{function}`: messages per batch handed to a transform.
    pub batch_records: HistogramVec,
    /// `weir_batch_parts{function}`: instances of the transform that ran a
    /// batch at once, one per part of whole partitions.
    pub batch_parts: HistogramVec,
    /// `weir_batches_overlapped_total{function}`: batches transformed while
    /// the batch before them committed (a backlog keeps every core busy).
    pub batches_overlapped: IntCounterVec,
    /// `weir_delta_rows_written_total{function,table}`: rows committed.
    pub delta_rows_written: IntCounterVec,
    /// `weir_delta_commits_total{function,table}`: Delta commits made.
    pub delta_commits: IntCounterVec,
    /// `weir_delta_commit_errors_total{function,table,kind}`; kind is `fenced` or `error`.
    pub delta_commit_errors: IntCounterVec,
    /// `weir_delta_commit_duration_seconds{function,table}`: write parquet + commit.
    pub delta_commit_duration: HistogramVec,
    /// `weir_delta_version{function,table}`: the table version last committed by this host.
    pub delta_version: IntGaugeVec,
    /// `weir_delta_orphan_files{function,table}`: parquet files no version references (left by a crash).
    pub delta_orphan_files: IntGaugeVec,
    /// `weir_delta_files{function,table}`: data files in the table version last read or committed.
    pub delta_files: IntGaugeVec,
    /// `weir_delta_compactions_total{function,table}`: compactions of small files committed.
    pub delta_compactions: IntCounterVec,
    /// `weir_delta_compacted_files_total{function,table}`: small files those compactions replaced.
    pub delta_compacted_files: IntCounterVec,
    /// `weir_delta_compaction_errors_total{function,table,kind}`; kind is `conflict` or `error`.
    pub delta_compaction_errors: IntCounterVec,
    /// `weir_delta_vacuumed_files_total{function,table}`: files deleted past the tombstone retention.
    pub delta_vacuumed_files: IntCounterVec,
    /// `weir_delta_vacuum_errors_total{function,table}`: vacuums that failed.
    pub delta_vacuum_errors: IntCounterVec,
    /// `weir_dead_letters_total{function,table,reason}`: rows written to a dead-letter table.
    pub dead_letters: IntCounterVec,
    /// `weir_swaps_total{function,result}`: deploys and rollbacks; result is
    /// `ok`, `rollback`, `unchanged`, `invalid`, `wrong_world` or `smoke_failed`.
    pub swaps: IntCounterVec,
    /// `weir_swap_pause_seconds{function}`: how long a switch held the
    /// function's invocations back (the stream's stall).
    pub swap_pause: HistogramVec,
    /// `weir_admin_requests_total{code}`: requests of the function API
    /// (`/functions…`) by HTTP status: refused tokens, unknown functions,
    /// wrong content types and oversized uploads show here.
    pub admin_requests: IntCounterVec,
    /// The world and digest `component_info` shows per function.
    digests: Arc<Mutex<HashMap<String, (String, String)>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Self {
            invocations: counter(
                &registry,
                "weir_invocations_total",
                "Function invocations by outcome.",
                &["function", "outcome"],
            ),
            invocation_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "weir_invocation_duration_seconds",
                        "Wall time of one invocation, instantiate to return.",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    &["function"],
                ),
            ),
            invocation_memory: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "weir_invocation_memory_bytes",
                        "Peak linear memory of one invocation (what max_memory caps).",
                    )
                    .buckets(
                        prometheus::exponential_buckets(65_536.0, 4.0, 10).unwrap_or_default(),
                    ),
                    &["function"],
                ),
            ),
            traps: counter(
                &registry,
                "weir_traps_total",
                "Invocations stopped by the sandbox, by kind.",
                &["function", "kind"],
            ),
            missed_ticks: counter(
                &registry,
                "weir_missed_ticks_total",
                "Cron ticks skipped because the previous invocation was still running.",
                &["function"],
            ),
            cron_owned: gauge(
                &registry,
                "weir_cron_owned",
                "1 while this host runs the cron trigger (one host of the fleet does).",
                &["trigger"],
            ),
            cron_rejoins: register(
                &registry,
                IntCounter::new(
                    "weir_cron_rejoins_total",
                    "Times this host rejoined the fleet's group because a cron trigger had no live owner.",
                ),
            ),
            embedded_broker_failures: register(
                &registry,
                IntCounter::new(
                    "weir_embedded_broker_failures_total",
                    "Times the embedded Kafka broker's storage failed; weir restarts it in place each time.",
                ),
            ),
            cron_fenced: counter(
                &registry,
                "weir_cron_fenced_total",
                "Feed versions not published because another host running the same cron trigger claimed its ledger first.",
                &["trigger"],
            ),
            feed_versions_incomplete: counter(
                &registry,
                "weir_feed_versions_incomplete_total",
                "Feed versions cut short while being published, never published again.",
                &["function", "feed"],
            ),
            feed_publish_failures: counter(
                &registry,
                "weir_feed_publish_failures_total",
                "Fetches whose messages could not be published (brokers unreachable or refusing).",
                &["function", "feed"],
            ),
            kafka_reachable: gauge(
                &registry,
                "weir_kafka_reachable",
                "1 while the trigger's last exchange with the Kafka brokers was answered, else 0.",
                &["trigger"],
            ),
            memory_allocated: register(
                &registry,
                IntGauge::new(
                    "weir_memory_allocated_bytes",
                    "Bytes the process's live allocations hold (jemalloc's stats.allocated).",
                ),
            ),
            memory_resident: register(
                &registry,
                IntGauge::new(
                    "weir_memory_resident_bytes",
                    "Bytes the allocator keeps resident, in use or freed and kept (jemalloc's stats.resident).",
                ),
            ),
            disk_free: gauge(
                &registry,
                "weir_disk_free_bytes",
                "Free bytes on the filesystem of the data dir and of every local table.",
                &["path"],
            ),
            component_info: gauge(
                &registry,
                "weir_component_info",
                "The component version running for a function (value 1).",
                &["function", "world", "digest"],
            ),
            build_info: gauge(
                &registry,
                "weir_build_info",
                "weir build information (value 1).",
                &["version"],
            ),
            outbound_http_errors: counter(
                &registry,
                "weir_outbound_http_errors_total",
                "Outbound HTTP requests of guests that failed or were refused, by kind.",
                &["function", "kind"],
            ),
            fetch_bytes: counter(
                &registry,
                "weir_fetch_bytes_total",
                "Response body bytes received by guests.",
                &["function"],
            ),
            feed_age: register(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "weir_feed_age_seconds",
                        "Now minus the header timestamp of the feed last fetched.",
                    ),
                    &["feed"],
                ),
            ),
            feed_timestamp: register(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "weir_feed_header_timestamp_seconds",
                        "Header timestamp (POSIX seconds) of the feed last fetched.",
                    ),
                    &["feed"],
                ),
            ),
            feed_refresh_interval: register(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "weir_feed_refresh_interval_seconds",
                        "Seconds between the header timestamps of the last two distinct feeds fetched.",
                    ),
                    &["feed"],
                ),
            ),
            feed_unchanged: counter(
                &registry,
                "weir_feed_unchanged_total",
                "Fetches whose feed header timestamp had not advanced; nothing was published.",
                &["function", "feed"],
            ),
            feed_invalid_strings: counter(
                &registry,
                "weir_feed_invalid_strings_total",
                "Feed string fields that were not valid text in the feed's encoding; decoded with replacement characters.",
                &["function", "feed"],
            ),
            kafka_produced: counter(
                &registry,
                "weir_kafka_produced_total",
                "Messages acknowledged by the Kafka brokers.",
                &["function", "topic"],
            ),
            kafka_produce_errors: counter(
                &registry,
                "weir_kafka_produce_errors_total",
                "Messages the Kafka brokers did not acknowledge.",
                &["function", "topic"],
            ),
            kafka_consumer_lag: gauge(
                &registry,
                "weir_kafka_consumer_lag",
                "Messages in a partition not yet committed to Delta (high watermark minus committed offset).",
                &["function", "topic", "partition"],
            ),
            kafka_partition_stopped: gauge(
                &registry,
                "weir_kafka_partition_stopped",
                "1 for a partition the host refuses because its offsets went backwards (see the log).",
                &["function", "topic", "partition"],
            ),
            kafka_assigned_partitions: gauge(
                &registry,
                "weir_kafka_assigned_partitions",
                "Partitions of its topics the trigger owns on this host.",
                &["function"],
            ),
            kafka_topic_lag: gauge(
                &registry,
                "weir_kafka_topic_lag",
                "Messages of a topic not yet committed by the trigger's group, all partitions, whichever host owns them.",
                &["function", "topic"],
            ),
            batch_records: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "weir_batch_records",
                        "Messages per batch handed to a transform.",
                    )
                    .buckets(prometheus::exponential_buckets(1.0, 4.0, 10).unwrap_or_default()),
                    &["function"],
                ),
            ),
            batch_parts: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "weir_batch_parts",
                        "Instances of the transform that ran a batch at once.",
                    )
                    .buckets(prometheus::exponential_buckets(1.0, 2.0, 7).unwrap_or_default()),
                    &["function"],
                ),
            ),
            kafka_rejoins: counter(
                &registry,
                "weir_kafka_group_rejoins_total",
                "Times a trigger rejoined its consumer group because messages waited on a partition nobody consumed.",
                &["function"],
            ),
            batches_overlapped: counter(
                &registry,
                "weir_batches_overlapped_total",
                "Batches transformed while the batch before them committed.",
                &["function"],
            ),
            delta_rows_written: counter(
                &registry,
                "weir_delta_rows_written_total",
                "Rows committed to Delta tables.",
                &["function", "table"],
            ),
            delta_commits: counter(
                &registry,
                "weir_delta_commits_total",
                "Delta commits made.",
                &["function", "table"],
            ),
            delta_commit_errors: counter(
                &registry,
                "weir_delta_commit_errors_total",
                "Delta commits abandoned: fenced (another host owns the partition) or error.",
                &["function", "table", "kind"],
            ),
            delta_commit_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "weir_delta_commit_duration_seconds",
                        "Time to write a flush's parquet files and commit them.",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    &["function", "table"],
                ),
            ),
            delta_version: gauge(
                &registry,
                "weir_delta_version",
                "The Delta table version last committed by this host.",
                &["function", "table"],
            ),
            delta_orphan_files: gauge(
                &registry,
                "weir_delta_orphan_files",
                "Parquet files in the table directory that no table version references.",
                &["function", "table"],
            ),
            delta_files: gauge(
                &registry,
                "weir_delta_files",
                "Data files in the Delta table version this host last read or committed.",
                &["function", "table"],
            ),
            delta_compactions: counter(
                &registry,
                "weir_delta_compactions_total",
                "Compactions of a Delta table's small files committed.",
                &["function", "table"],
            ),
            delta_compacted_files: counter(
                &registry,
                "weir_delta_compacted_files_total",
                "Small files replaced by compactions.",
                &["function", "table"],
            ),
            delta_compaction_errors: counter(
                &registry,
                "weir_delta_compaction_errors_total",
                "Compactions abandoned: conflict (the table moved meanwhile; retried later) or error.",
                &["function", "table", "kind"],
            ),
            delta_vacuumed_files: counter(
                &registry,
                "weir_delta_vacuumed_files_total",
                "Files of a Delta table deleted by the host's vacuum: removed longer ago than the table's retention, or never committed and older than it.",
                &["function", "table"],
            ),
            delta_vacuum_errors: counter(
                &registry,
                "weir_delta_vacuum_errors_total",
                "Vacuums of a Delta table that failed (tried again when the next is due).",
                &["function", "table"],
            ),
            dead_letters: counter(
                &registry,
                "weir_dead_letters_total",
                "Messages written to a dead-letter table, by reason.",
                &["function", "table", "reason"],
            ),
            swaps: counter(
                &registry,
                "weir_swaps_total",
                "Component deploys and rollbacks, by result (refused ones leave the old version running).",
                &["function", "result"],
            ),
            swap_pause: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "weir_swap_pause_seconds",
                        "Time a version switch held the function's invocations back.",
                    )
                    .buckets(vec![
                        0.000_01, 0.000_05, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
                    ]),
                    &["function"],
                ),
            ),
            admin_requests: counter(
                &registry,
                "weir_admin_requests_total",
                "Requests of the function API by HTTP status.",
                &["code"],
            ),
            digests: Arc::default(),
            registry: registry.clone(),
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }

    /// Marks `digest` as the running version of `function` (and no other).
    pub fn set_component(&self, function: &str, world: &str, digest: &str) {
        let mut current = self
            .digests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let shown = (world.to_owned(), digest.to_owned());
        if let Some(old) = current.insert(function.to_owned(), shown.clone())
            && old != shown
        {
            let _ = self
                .component_info
                .remove_label_values(&[function, &old.0, &old.1]);
        }
        self.component_info
            .with_label_values(&[function, world, digest])
            .set(1);
    }

    /// Creates a function's series at zero, so dashboards and `increase()`
    /// see them before the first event (a counter born at 1 hides that 1).
    pub fn init_function(&self, function: &str, world: &str) {
        for outcome in OUTCOMES {
            self.invocations.with_label_values(&[function, outcome]);
        }
        for kind in TRAP_KINDS {
            self.traps.with_label_values(&[function, kind]);
        }
        for result in SWAP_RESULTS {
            self.swaps.with_label_values(&[function, result]);
        }
        self.invocation_duration.with_label_values(&[function]);
        self.invocation_memory.with_label_values(&[function]);
        self.swap_pause.with_label_values(&[function]);
        if world == "fetcher" {
            self.missed_ticks.with_label_values(&[function]);
            self.fetch_bytes.with_label_values(&[function]);
            for kind in HTTP_ERROR_KINDS {
                self.outbound_http_errors
                    .with_label_values(&[function, kind]);
            }
        } else {
            self.batch_records.with_label_values(&[function]);
            self.batch_parts.with_label_values(&[function]);
            self.batches_overlapped.with_label_values(&[function]);
        }
    }

    /// The triggers whose brokers did not answer their last exchange.
    pub fn kafka_unreachable(&self) -> Vec<String> {
        use prometheus::core::Collector as _;
        self.kafka_reachable
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .filter(|m| m.get_gauge().get_value() == 0.0)
            .flat_map(|m| m.get_label().iter().map(|l| l.value().to_owned()))
            .collect()
    }

    /// Records whether `trigger`'s last exchange with the brokers was
    /// answered; true when that differs from the one before.
    pub fn set_kafka_reachable(&self, trigger: &str, answered: bool) -> bool {
        let gauge = self.kafka_reachable.with_label_values(&[trigger]);
        let before = gauge.get();
        gauge.set(i64::from(answered));
        before != i64::from(answered)
    }

    /// Creates the zero series of a cron trigger's feed and output topics.
    pub fn init_feed(&self, function: &str, feed: &str, topics: &[String]) {
        self.feed_unchanged.with_label_values(&[function, feed]);
        self.feed_versions_incomplete
            .with_label_values(&[function, feed]);
        self.feed_publish_failures
            .with_label_values(&[function, feed]);
        self.kafka_reachable.with_label_values(&[feed]).set(1);
        self.feed_invalid_strings
            .with_label_values(&[function, feed]);
        for topic in topics {
            self.kafka_produced.with_label_values(&[function, topic]);
            self.kafka_produce_errors
                .with_label_values(&[function, topic]);
        }
    }

    /// Creates the zero series of a Kafka trigger's partitions and topics.
    pub fn init_consumer(&self, trigger: &str, function: &str, topics: &[String]) {
        self.kafka_reachable.with_label_values(&[trigger]).set(1);
        self.kafka_assigned_partitions
            .with_label_values(&[function]);
        self.kafka_rejoins.with_label_values(&[function]);
        for topic in topics {
            self.kafka_topic_lag.with_label_values(&[function, topic]);
        }
    }

    /// Creates the zero series of a table a Kafka trigger writes.
    pub fn init_table(&self, function: &str, table: &str, dead_letters: bool) {
        let labels = [function, table];
        self.delta_rows_written.with_label_values(&labels);
        self.delta_commits.with_label_values(&labels);
        self.delta_commit_duration.with_label_values(&labels);
        for kind in COMMIT_ERROR_KINDS {
            self.delta_commit_errors
                .with_label_values(&[function, table, kind]);
        }
        self.delta_files.with_label_values(&labels);
        self.delta_compactions.with_label_values(&labels);
        self.delta_compacted_files.with_label_values(&labels);
        for kind in COMPACTION_ERROR_KINDS {
            self.delta_compaction_errors
                .with_label_values(&[function, table, kind]);
        }
        self.delta_vacuumed_files.with_label_values(&labels);
        self.delta_vacuum_errors.with_label_values(&labels);
        if dead_letters {
            for reason in DEAD_LETTER_REASONS {
                self.dead_letters
                    .with_label_values(&[function, table, reason]);
            }
        }
    }

    /// Every series now, gathered once, to read several values from.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(self.registry.gather())
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The host's series at one moment (see [`Metrics::snapshot`]).
#[derive(Debug)]
pub struct Snapshot(Vec<prometheus::proto::MetricFamily>);

impl Snapshot {
    /// The sum of every counter or gauge series of `name` whose labels
    /// include all of `labels` (0 if none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series(name, labels).sum()
    }

    /// The value of the first series of `name` matching `labels`, if any.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series(name, labels).next()
    }

    fn series<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = f64> + 'a {
        self.0
            .iter()
            .filter(move |f| f.name() == name)
            .flat_map(|f| {
                let counter = f.get_field_type() == prometheus::proto::MetricType::COUNTER;
                f.get_metric().iter().map(move |m| (counter, m))
            })
            .filter(move |(_, m)| {
                labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                })
            })
            .map(|(counter, m)| {
                if counter {
                    m.get_counter().get_value()
                } else {
                    m.get_gauge().get_value()
                }
            })
    }
}

/// Registers a metric as it is created, so none can be forgotten or added twice.
fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<C>,
) -> C {
    let metric = metric.unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
    registry
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|e| unreachable!("each metric is registered once: {e}"));
    metric
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels))
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(registry, IntGaugeVec::new(Opts::new(name, help), labels))
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    #[test]
    fn component_info_flips_to_the_new_digest() {
        let m = Metrics::new();
        m.set_component("f", "transformer", "sha256:aa");
        m.set_component("g", "fetcher", "sha256:cc");
        m.set_component("f", "transformer", "sha256:bb");
        let text = m.encode();
        assert!(
            text.contains(
                r#"weir_component_info{digest="sha256:bb",function="f",world="transformer"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"weir_component_info{digest="sha256:cc",function="g",world="fetcher"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains("sha256:aa"), "{text}");
    }
}
