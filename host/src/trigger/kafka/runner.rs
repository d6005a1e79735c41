//! The Kafka trigger's run loop: collect a batch, invoke the transform
//! (retrying once), route rows and dead letters per table, commit each
//! table with its `txn` actions, then commit offsets (DESIGN.md §5).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::KafkaTrigger;
use super::consumer::{self, Assignment, Context, Ownership};
use super::progress::{PartState, Partition, Progress, start_offset};
use super::transform::{Transform, TransformSource};
use crate::failpoint;
use crate::metrics::Metrics;
use crate::runtime::{KafkaMessage, Outcome};
use crate::sink::delta::{
    self, CommitInfo, DeadLetter, DeadLetterKind, DecodedRows, TableWriter, TxnUpdate,
};

/// How long `recv` waits when no batch is open, so rebalances and resyncs
/// are looked at regularly.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// Longest back-off between attempts to re-read a partition's tables.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often every partition's lag is probed (`weir_kafka_topic_lag`).
const LAG_PROBE_EVERY: Duration = Duration::from_secs(10);
/// How long a metadata, watermark or offset request may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a runner needs besides its component.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The validated trigger.
    pub trigger: KafkaTrigger,
    /// The application name (part of every `txn` app id).
    pub app: String,
    /// Bootstrap servers.
    pub brokers: String,
    /// This host's id, recorded in every commit.
    pub host_id: String,
    /// Group membership, or every partition directly (embedded broker).
    pub ownership: Ownership,
}

/// One Kafka trigger, running.
pub struct KafkaRunner {
    trigger: KafkaTrigger,
    app: String,
    source: TransformSource,
    /// Output tables in name order, then the dead-letter table.
    tables: Vec<TableWriter>,
    consumer: Arc<StreamConsumer<Context>>,
    events: tokio::sync::mpsc::UnboundedReceiver<Assignment>,
    progress: Progress,
    info: CommitInfo,
    metrics: Arc<Metrics>,
    /// How long processing a batch takes.
    flush_time: FlushTime,
}

/// How long processing (invoke + commits) a batch takes, per record:
/// moving averages of the time per record and of its deviation, as TCP
/// estimates round trips. A batch of `n` records reserves `n` times the
/// mean plus twice the deviation, so one slower than average still lands
/// inside the latency budget, and a batch twice as large reserves twice
/// the time (a flat estimate taken from small batches let the first large
/// one overshoot the budget). Small batches carry the fixed cost of a
/// commit over few records, so the estimate errs on the safe side there.
#[derive(Debug, Default, Clone, Copy)]
struct FlushTime {
    /// Seconds per record.
    mean: f64,
    /// Seconds per record.
    deviation: f64,
}

impl FlushTime {
    /// Takes in one batch's time; weight 1/4 for the mean and the
    /// deviation: follows a change in a few batches without jumping on one.
    fn observe(&mut self, took: Duration, records: usize) {
        if records == 0 {
            return;
        }
        let per_record = took.as_secs_f64() / records as f64;
        if self.mean == 0.0 {
            self.mean = per_record;
            self.deviation = per_record / 2.0;
            return;
        }
        let off = (self.mean - per_record).abs();
        self.deviation = (self.deviation * 3.0 + off) / 4.0;
        self.mean = (self.mean * 3.0 + per_record) / 4.0;
    }

    /// The time to keep for processing a batch of `records`.
    fn reserve(self, records: usize) -> Duration {
        Duration::try_from_secs_f64((self.mean + self.deviation * 2.0) * records as f64)
            .unwrap_or(Duration::MAX)
    }
}

/// When a batch must close. `max_wait` is the budget from a message
/// entering Kafka (its timestamp, if plausible) to its rows being visible,
/// so the time the batch's first message already spent in Kafka and the
/// expected processing time of the batch as it stands
/// ([`FlushTime::reserve`]) come out of it. At least a tenth of `max_wait`
/// is left for collecting, so a slow sink makes batches smaller, not empty.
#[derive(Debug, Clone, Copy)]
struct Window {
    opened: Instant,
    /// When the first message's rows should be visible.
    visible_by: Instant,
    min_collect: Duration,
}

impl Window {
    fn open(budget: Duration, first_timestamp_ms: Option<i64>) -> Self {
        let now_ms = chrono::Utc::now().timestamp_millis();
        // A timestamp from the future or older than the budget (clock skew,
        // a backlog) says nothing about this batch's latency.
        let waited = first_timestamp_ms
            .map(|ts| now_ms - ts)
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Duration::from_millis)
            .filter(|w| *w < budget)
            .unwrap_or_default();
        let opened = Instant::now();
        Self {
            opened,
            visible_by: opened + (budget - waited),
            min_collect: budget / 10,
        }
    }

    /// When to stop collecting, given the time processing will take.
    fn close_at(self, reserve: Duration) -> Instant {
        self.visible_by
            .checked_sub(reserve)
            .unwrap_or(self.opened)
            .max(self.opened + self.min_collect)
    }
}

impl std::fmt::Debug for KafkaRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaRunner")
            .field("trigger", &self.trigger.id)
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl KafkaRunner {
    /// Opens (or creates) every table and joins the consumer group.
    pub async fn start(
        config: RunnerConfig,
        source: impl Into<TransformSource>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let source = source.into();
        let trigger = config.trigger;
        let function = source.id().to_owned();
        let mut tables = Vec::new();
        let dead_letters = "dead_letters".to_owned();
        let targets = trigger
            .tables
            .iter()
            .chain(std::iter::once((&dead_letters, &trigger.dead_letter)));
        for (name, target) in targets {
            let table = TableWriter::open(
                name,
                &target.uri,
                &target.schema,
                &target.partition_by,
                trigger.checkpoint_interval,
            )
            .await
            .with_context(|| format!("trigger `{}`: opening table `{name}`", trigger.id))?;
            metrics.init_table(&function, name, *name == dead_letters);
            report_orphans(&table, &function, &metrics).await;
            tables.push(table);
        }
        let (consumer, events) = consumer::create(
            &config.brokers,
            &trigger.group,
            &function,
            trigger.session_timeout,
            Arc::clone(&metrics),
        )
        .with_context(|| format!("trigger `{}`: creating the consumer", trigger.id))?;
        metrics.init_consumer(&function, &trigger.topics);
        let consumer = Arc::new(consumer);
        match config.ownership {
            Ownership::Group => {
                let topics: Vec<&str> = trigger.topics.iter().map(String::as_str).collect();
                consumer.subscribe(&topics).with_context(|| {
                    format!("trigger `{}`: subscribing to {topics:?}", trigger.id)
                })?;
            }
            Ownership::All => {
                let (consumer, topics) = (Arc::clone(&consumer), trigger.topics.clone());
                tokio::task::spawn_blocking(move || {
                    consumer::assign_all(&consumer, &topics, BROKER_TIMEOUT)
                })
                .await?
                .with_context(|| {
                    format!(
                        "trigger `{}`: assigning every partition of {:?}",
                        trigger.id, trigger.topics
                    )
                })?;
            }
        }
        let info = CommitInfo {
            function,
            // Set from the version checked out for each batch.
            component_digest: String::new(),
            trigger: trigger.id.clone(),
            host_id: config.host_id,
        };
        Ok(Self {
            trigger,
            app: config.app,
            source,
            tables,
            consumer,
            events,
            progress: Progress::default(),
            info,
            metrics,
            flush_time: FlushTime::default(),
        })
    }

    /// Consumes until `shutdown`; the batch being collected then is still
    /// processed and committed.
    #[tracing::instrument(name = "kafka", skip_all, fields(trigger = %self.trigger.id, function = %self.info.function))]
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(topics = ?self.trigger.topics, group = %self.trigger.group, "kafka trigger started");
        let probe = tokio::spawn(probe_lag(
            Arc::clone(&self.consumer),
            self.trigger.topics.clone(),
            self.info.function.clone(),
            Arc::clone(&self.metrics),
            shutdown.clone(),
        ));
        loop {
            let batch = self.collect(&shutdown).await;
            if !batch.is_empty() {
                let (started, records) = (Instant::now(), batch.len());
                self.process(batch).await;
                self.flush_time.observe(started.elapsed(), records);
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
        // The probe shares the consumer: it must be done with it while the
        // brokers are still up (an embedded one stops after the triggers).
        if let Err(e) = probe.await {
            tracing::warn!(error = %e, "the lag probe failed");
        }
        tracing::info!("kafka trigger stopped");
        Ok(())
    }

    /// Collects messages until a limit is reached, the batch's window
    /// closes (see [`Window`]), or shutdown.
    async fn collect(&mut self, shutdown: &CancellationToken) -> Vec<KafkaMessage> {
        let mut batch: Vec<KafkaMessage> = Vec::new();
        let mut bytes = 0;
        let mut window: Option<Window> = None;
        loop {
            self.resync_due().await;
            let now = Instant::now();
            // The batch as it stands decides how early it must close.
            let close_at = window.map(|w| w.close_at(self.flush_time.reserve(batch.len())));
            if close_at.is_some_and(|d| d <= now) {
                break;
            }
            let mut wait = close_at.map_or(IDLE_POLL, |d| d - now);
            if let Some(due) = self.progress.next_due() {
                wait = wait.min(due.saturating_duration_since(now));
            }
            let consumer = Arc::clone(&self.consumer);
            let received = tokio::select! {
                () = shutdown.cancelled() => break,
                r = tokio::time::timeout(wait, consumer.recv()) => r,
            };
            // Rebalance callbacks run inside `recv`: apply them before
            // looking at what it returned.
            let revoked = self.handle_events().await;
            if !revoked.is_empty() {
                batch.retain(|m| !revoked.contains(&Partition::new(m.topic.as_str(), m.partition)));
            }
            let message = match received {
                Err(_) => continue,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    continue;
                }
                Ok(Ok(m)) => m,
            };
            if !self
                .progress
                .wants(message.topic(), message.partition(), message.offset())
            {
                continue;
            }
            let message = detach(&message);
            bytes += message.key.as_ref().map_or(0, Vec::len)
                + message.value.as_ref().map_or(0, Vec::len);
            batch.push(message);
            window
                .get_or_insert_with(|| Window::open(self.trigger.max_wait, batch[0].timestamp_ms));
            if batch.len() >= self.trigger.max_records || bytes >= self.trigger.max_bytes {
                break;
            }
        }
        batch
    }

    /// Applies rebalance events; returns the partitions revoked.
    async fn handle_events(&mut self) -> BTreeSet<Partition> {
        let mut revoked = BTreeSet::new();
        while let Ok(event) = self.events.try_recv() {
            match event {
                Assignment::Assigned(parts) => {
                    for part in parts {
                        revoked.remove(&part);
                        self.position(part, 0).await;
                    }
                }
                Assignment::Revoked(parts) => {
                    for part in parts {
                        self.progress.remove(&part);
                        revoked.insert(part);
                    }
                }
            }
            self.metrics
                .kafka_assigned_partitions
                .with_label_values(&[&self.info.function])
                .set(i64::try_from(self.progress.len()).unwrap_or(i64::MAX));
        }
        revoked
    }

    async fn resync_due(&mut self) {
        for (part, attempts) in self.progress.due(Instant::now()) {
            self.position(part, attempts).await;
        }
    }

    /// Reads every table's version for `part`, refuses it if its offsets
    /// went backwards, seeks just after the table furthest behind and lets
    /// its messages flow. On failure, schedules another attempt.
    async fn position(&mut self, part: Partition, attempts: u32) {
        let (topic, partition) = (part.topic.clone(), part.partition);
        match self.read_position(&topic, partition).await {
            Ok(state) => {
                if let PartState::Stopped(reason) = &state {
                    tracing::error!(topic, partition, "{reason}");
                    self.metrics
                        .kafka_partition_stopped
                        .with_label_values(&[&self.info.function, &topic, &partition.to_string()])
                        .set(1);
                } else {
                    self.metrics
                        .kafka_partition_stopped
                        .with_label_values(&[&self.info.function, &topic, &partition.to_string()])
                        .set(0);
                    if let Err(e) = self.consumer.resume(&consumer::one(&topic, partition)) {
                        tracing::warn!(topic, partition, error = %e, "cannot resume partition");
                    }
                }
                self.progress.set(part, state);
            }
            Err(e) => {
                let backoff = (Duration::from_millis(500) * 2u32.saturating_pow(attempts.min(6)))
                    .min(MAX_BACKOFF);
                tracing::warn!(
                    topic,
                    partition,
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis(),
                    "cannot position partition"
                );
                self.progress.set(
                    part,
                    PartState::Resync {
                        at: Instant::now() + backoff,
                        attempts: attempts + 1,
                    },
                );
            }
        }
    }

    async fn read_position(&mut self, topic: &str, partition: i32) -> anyhow::Result<PartState> {
        let app_id = delta::app_id(&self.app, &self.info.function, topic, partition);
        let mut versions = Vec::with_capacity(self.tables.len());
        for table in &mut self.tables {
            let v = table.versions(std::slice::from_ref(&app_id)).await?;
            versions.push(v.into_iter().next().flatten());
        }
        let consumer = Arc::clone(&self.consumer);
        let owned_topic = topic.to_owned();
        let (low, high) = tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&owned_topic, partition, BROKER_TIMEOUT)
        })
        .await?
        .with_context(|| format!("reading the watermarks of `{topic}` [{partition}]"))?;
        for (table, version) in self.tables.iter().zip(&versions) {
            if let Some(v) = version
                && *v >= high
            {
                return Ok(PartState::Stopped(format!(
                    "table `{}` holds offsets of `{topic}` [{partition}] up to {v}, but the partition ends at {high}: \
                     the topic was recreated or the broker lost its log. Refusing it; use a new application name \
                     or reset the table (`txn` app id `{app_id}`)",
                    table.name
                )));
            }
        }
        if let Some(start) = start_offset(&versions) {
            if start < low {
                tracing::warn!(
                    topic,
                    partition,
                    start,
                    low,
                    "messages after the tables' last offsets were deleted by retention: they are lost"
                );
            }
            let consumer = Arc::clone(&self.consumer);
            let owned_topic = topic.to_owned();
            tokio::task::spawn_blocking(move || {
                consumer.seek(
                    &owned_topic,
                    partition,
                    Offset::Offset(start),
                    BROKER_TIMEOUT,
                )
            })
            .await?
            .with_context(|| format!("seeking `{topic}` [{partition}] to {start}"))?;
        }
        tracing::info!(
            topic,
            partition,
            ?versions,
            "partition positioned from the Delta log"
        );
        Ok(PartState::Ready(versions))
    }

    /// Invokes, routes and commits one batch, all with the version of the
    /// transform checked out at its start (a swap waits for the commits).
    #[tracing::instrument(name = "batch", skip_all, fields(records = batch.len(), partitions = tracing::field::Empty))]
    async fn process(&mut self, batch: Vec<KafkaMessage>) {
        #[expect(clippy::cast_precision_loss, reason = "a histogram sample")]
        self.metrics
            .batch_records
            .with_label_values(&[&self.info.function])
            .observe(batch.len() as f64);
        let checkout = self.source.checkout().await;
        if self.info.component_digest != checkout.transform.digest() {
            self.info.component_digest = checkout.transform.digest().to_owned();
        }
        let outcomes = self.invoke(checkout.transform.as_ref(), &batch).await;
        let plan = self.route(&batch, outcomes);
        failpoint::hit("batch-before-write");
        let mut ends: BTreeMap<Partition, i64> = BTreeMap::new();
        for m in &batch {
            let end = ends
                .entry(Partition::new(m.topic.as_str(), m.partition))
                .or_insert(m.offset);
            *end = (*end).max(m.offset);
        }
        let partitions: Vec<String> = ends.keys().map(ToString::to_string).collect();
        tracing::Span::current().record("partitions", partitions.join(",").as_str());
        let mut failed: BTreeSet<Partition> = BTreeSet::new();
        let dead_letter = self.tables.len() - 1;
        let mut plan = plan;
        for t in 0..self.tables.len() {
            if t > 0 {
                failpoint::hit("delta-between-tables");
            }
            let txns = self.txns(t, &ends);
            if txns.is_empty() {
                continue;
            }
            let rows = if t == dead_letter {
                self.dead_letter_batch(&batch, &plan.letters)
            } else {
                // Only rows of partitions this commit advances: a partition
                // whose commit to an earlier table failed is re-read from
                // the log, and its rows must not land here without its txn.
                let committed: BTreeSet<(&str, i32)> = txns
                    .iter()
                    .map(|(p, _)| (p.topic.as_str(), p.partition))
                    .collect();
                std::mem::take(&mut plan.rows[t]).map(|rows| {
                    let outside: BTreeMap<usize, ()> = rows
                        .sources
                        .iter()
                        .filter(|i| {
                            let m = &batch[**i];
                            !committed.contains(&(m.topic.as_str(), m.partition))
                        })
                        .map(|i| (*i, ()))
                        .collect();
                    delta::without(rows, &outside).batch
                })
            };
            self.commit(t, rows, &txns, &mut failed).await;
        }
        failpoint::hit("delta-before-offset-commit");
        self.commit_offsets(&ends, &failed);
        drop(checkout);
        self.source.processed(batch);
    }

    /// Calls the transform; a failed call is retried once, a second
    /// failure dead-letters the batch.
    async fn invoke(
        &self,
        transform: &dyn Transform,
        batch: &[KafkaMessage],
    ) -> Result<Vec<Outcome>, String> {
        let mut last = String::new();
        for attempt in 1..=2 {
            match transform.handle(batch).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "batch invocation failed");
                    self.source.failed(&e);
                    last = e;
                }
            }
        }
        Err(format!("invocation failed twice: {last}"))
    }

    /// Which rows go to which table, and which messages are dead letters.
    fn route(&self, batch: &[KafkaMessage], outcomes: Result<Vec<Outcome>, String>) -> Plan {
        let outputs = self.tables.len() - 1;
        let mut letters: BTreeMap<usize, (DeadLetterKind, String)> = BTreeMap::new();
        let mut texts: Vec<Vec<(usize, &str)>> = vec![Vec::new(); outputs];
        let outcomes = match &outcomes {
            Ok(o) => o,
            Err(reason) => {
                for i in 0..batch.len() {
                    letters.insert(i, (DeadLetterKind::InvocationFailed, reason.clone()));
                }
                return Plan {
                    rows: vec![None; outputs],
                    letters,
                };
            }
        };
        for (i, (message, outcome)) in batch.iter().zip(outcomes).enumerate() {
            match outcome {
                Outcome::Reject(reason) => {
                    letters.insert(i, (DeadLetterKind::Rejected, reason.clone()));
                }
                Outcome::Rows(tables) => {
                    for rows in tables {
                        let Some(t) = self.tables[..outputs]
                            .iter()
                            .position(|w| w.name == rows.table)
                        else {
                            letters.insert(
                                i,
                                (
                                    DeadLetterKind::UnknownTable,
                                    format!(
                                        "rows for table `{}`, which the trigger does not declare",
                                        rows.table
                                    ),
                                ),
                            );
                            continue;
                        };
                        if self.needs(t, message) {
                            texts[t].extend(rows.rows.iter().map(|r| (i, r.as_str())));
                        }
                    }
                }
            }
        }
        let mut decoded: Vec<DecodedRows> = Vec::with_capacity(outputs);
        for (t, rows) in texts.iter().enumerate() {
            let (rows, bad) = delta::decode(self.tables[t].arrow_schema(), rows);
            for (i, reason) in bad {
                letters.entry(i).or_insert((
                    DeadLetterKind::InvalidRow,
                    format!("table `{}`: {reason}", self.tables[t].name),
                ));
            }
            decoded.push(rows);
        }
        Plan {
            rows: decoded
                .into_iter()
                .map(|d| Some(delta::without(d, &letters)))
                .collect(),
            letters,
        }
    }

    /// Whether table `t` still needs rows from `message`.
    fn needs(&self, t: usize, message: &KafkaMessage) -> bool {
        self.progress
            .versions(&message.topic, message.partition)
            .and_then(|v| v.get(t))
            .is_some_and(|v| v.is_none_or(|last| message.offset > last))
    }

    /// Table `t`'s `txn` updates: every ready partition of the batch the
    /// table has not yet seen to its end.
    fn txns(&self, t: usize, ends: &BTreeMap<Partition, i64>) -> Vec<(Partition, TxnUpdate)> {
        ends.iter()
            .filter_map(|(part, end)| {
                let expected = *self
                    .progress
                    .versions(&part.topic, part.partition)?
                    .get(t)?;
                expected.is_none_or(|v| v < *end).then(|| {
                    let update = TxnUpdate {
                        app_id: delta::app_id(
                            &self.app,
                            &self.info.function,
                            &part.topic,
                            part.partition,
                        ),
                        expected,
                        version: *end,
                    };
                    (part.clone(), update)
                })
            })
            .collect()
    }

    fn dead_letter_batch(
        &self,
        batch: &[KafkaMessage],
        letters: &BTreeMap<usize, (DeadLetterKind, String)>,
    ) -> Option<deltalake::arrow::array::RecordBatch> {
        let t = self.tables.len() - 1;
        let rows: Vec<DeadLetter> = letters
            .iter()
            .filter(|(i, _)| self.needs(t, &batch[**i]))
            .map(|(i, (kind, reason))| DeadLetter {
                message: &batch[*i],
                kind: *kind,
                reason,
            })
            .collect();
        for letter in &rows {
            self.metrics
                .dead_letters
                .with_label_values(&[
                    &self.info.function,
                    &self.tables[t].name,
                    letter.kind.as_str(),
                ])
                .inc();
        }
        match DeadLetter::to_batch(
            &rows,
            self.tables[t].arrow_schema(),
            &self.info.function,
            &self.info.component_digest,
            chrono::Utc::now(),
        ) {
            Ok(batch) => Some(batch),
            Err(e) => {
                tracing::error!(error = %e, "cannot build the dead-letter batch");
                None
            }
        }
    }

    /// Commits table `t`; on failure marks its partitions for a resync.
    async fn commit(
        &mut self,
        t: usize,
        rows: Option<deltalake::arrow::array::RecordBatch>,
        txns: &[(Partition, TxnUpdate)],
        failed: &mut BTreeSet<Partition>,
    ) {
        let started = Instant::now();
        let function = self.info.function.clone();
        let name = self.tables[t].name.clone();
        let labels = [function.as_str(), name.as_str()];
        let updates: Vec<TxnUpdate> = txns.iter().map(|(_, u)| u.clone()).collect();
        let result = self.tables[t].commit(rows, &updates, &self.info).await;
        match result {
            Ok(committed) => {
                self.metrics
                    .delta_commit_duration
                    .with_label_values(&labels)
                    .observe(started.elapsed().as_secs_f64());
                self.metrics.delta_commits.with_label_values(&labels).inc();
                self.metrics
                    .delta_rows_written
                    .with_label_values(&labels)
                    .inc_by(committed.rows as u64);
                self.metrics
                    .delta_version
                    .with_label_values(&labels)
                    .set(i64::try_from(committed.version).unwrap_or(i64::MAX));
                for (part, update) in txns {
                    self.progress.advance(part, t, update.version);
                }
            }
            Err(e) => {
                let kind = if e.is_fenced() { "fenced" } else { "error" };
                self.metrics
                    .delta_commit_errors
                    .with_label_values(&[function.as_str(), name.as_str(), kind])
                    .inc();
                tracing::error!(table = %name, error = format!("{:#}", anyhow::Error::new(e)), "commit abandoned; its partitions will be re-read from the Delta log");
                for (part, _) in txns {
                    if let Err(e) = self
                        .consumer
                        .pause(&consumer::one(&part.topic, part.partition))
                    {
                        tracing::warn!(error = %e, "cannot pause partition");
                    }
                    self.progress.set(
                        part.clone(),
                        PartState::Resync {
                            at: Instant::now(),
                            attempts: 0,
                        },
                    );
                    failed.insert(part.clone());
                }
            }
        }
    }

    /// Commits consumer offsets (async; used only for lag, DESIGN.md §5.4).
    fn commit_offsets(&self, ends: &BTreeMap<Partition, i64>, failed: &BTreeSet<Partition>) {
        let mut list = TopicPartitionList::new();
        for (part, end) in ends {
            if !failed.contains(part)
                && self
                    .progress
                    .versions(&part.topic, part.partition)
                    .is_some()
            {
                // A partition that went away mid-batch is not ours to commit.
                let _ =
                    list.add_partition_offset(&part.topic, part.partition, Offset::Offset(end + 1));
            }
        }
        if list.count() > 0
            && let Err(e) = self.consumer.commit(&list, CommitMode::Async)
        {
            tracing::debug!(error = %e, "offset commit failed (lag metrics only)");
        }
    }
}

/// Sets `weir_kafka_topic_lag` for every topic every [`LAG_PROBE_EVERY`]
/// until `shutdown`: the lag of partitions this host does not own too, so
/// a trigger left without partitions while messages wait is visible.
async fn probe_lag(
    consumer: Arc<StreamConsumer<Context>>,
    topics: Vec<String>,
    function: String,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let (c, t) = (Arc::clone(&consumer), topics.clone());
        match tokio::task::spawn_blocking(move || consumer::topic_lag(&c, &t, BROKER_TIMEOUT)).await
        {
            Ok(Ok(lags)) => {
                for (topic, lag) in lags {
                    metrics
                        .kafka_topic_lag
                        .with_label_values(&[&function, &topic])
                        .set(lag);
                }
            }
            Ok(Err(e)) => tracing::debug!(function, error = %e, "cannot probe the topics' lag"),
            Err(e) => tracing::warn!(function, error = %e, "the lag probe panicked"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(LAG_PROBE_EVERY) => {}
        }
    }
}

/// A batch routed: rows per output table (taken as committed) and dead
/// letters by message index.
struct Plan {
    rows: Vec<Option<DecodedRows>>,
    letters: BTreeMap<usize, (DeadLetterKind, String)>,
}

/// Copies a borrowed rdkafka message into a domain message.
fn detach(m: &rdkafka::message::BorrowedMessage<'_>) -> KafkaMessage {
    KafkaMessage {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers: m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

async fn report_orphans(table: &TableWriter, function: &str, metrics: &Metrics) {
    match delta::orphans(table).await {
        Ok(files) => {
            if !files.is_empty() {
                tracing::warn!(table = %table.name, count = files.len(), first = %files[0], "parquet files no table version references (left by a crash); safe to delete");
            }
            metrics
                .delta_orphan_files
                .with_label_values(&[function, &table.name])
                .set(i64::try_from(files.len()).unwrap_or(i64::MAX));
        }
        Err(e) => tracing::warn!(table = %table.name, error = %e, "cannot list the table's files"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{FlushTime, Window};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn flush_time_reserves_more_when_batches_vary() {
        let mut steady = FlushTime::default();
        assert_eq!(steady.reserve(1000), Duration::ZERO, "nothing known yet");
        for _ in 0..40 {
            steady.observe(ms(200), 1000);
        }
        // Settles on the time itself; the first guess's deviation fades.
        assert!(steady.reserve(1000) >= ms(200) && steady.reserve(1000) < ms(201));
        // Twice the records, twice the time.
        assert!(steady.reserve(2000) >= ms(400) && steady.reserve(2000) < ms(402));

        let mut jumpy = FlushTime::default();
        for i in 0..40 {
            jumpy.observe(if i % 2 == 0 { ms(100) } else { ms(300) }, 1000);
        }
        // Same mean, but room for the slow ones (and more).
        assert!(jumpy.reserve(1000) > ms(300), "{:?}", jumpy.reserve(1000));

        // One slow batch moves the mean by a quarter, not all the way.
        steady.observe(ms(1000), 1000);
        assert!(steady.mean < 0.000_401, "{steady:?}");
        // An empty batch says nothing.
        let before = steady;
        steady.observe(ms(50), 0);
        assert!((steady.mean - before.mean).abs() < f64::EPSILON);
    }

    #[test]
    fn a_window_closes_earlier_for_larger_batches_but_not_at_once() {
        let budget = ms(1000);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let window = Window::open(budget, Some(now_ms - 300));
        let opened = window.opened;
        // ~300 ms already spent in Kafka (a few ms of slack for the clock).
        let close = window.close_at(Duration::ZERO) - opened;
        assert!(close > ms(690) && close <= ms(700), "{close:?}");
        let close = window.close_at(ms(200)) - opened;
        assert!(close > ms(490) && close <= ms(500), "{close:?}");
        // Never less than a tenth of the budget for collecting.
        assert_eq!(window.close_at(ms(5000)) - opened, ms(100));
        // Timestamps from the future or older than the budget are ignored.
        for ts in [now_ms + 60_000, now_ms - 60_000] {
            let window = Window::open(budget, Some(ts));
            assert_eq!(window.close_at(Duration::ZERO) - window.opened, budget);
        }
    }
}
