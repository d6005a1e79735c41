//! The Kafka trigger's run loop: follow rebalances, collect a batch within
//! its latency window, invoke the transform on parts of it at once (whole
//! partitions each, one instance per core, each retried once), hand the
//! outputs to the [`Committer`] (DESIGN.md §5), then commit offsets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::FutureExt as _;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::KafkaTrigger;
use super::commit::{Committer, Part};
use super::consumer::{self, Assignment, BROKER_TIMEOUT, Context, Ownership, PartitionLag};
use super::progress::{Partition, Progress};
use super::transform::{Checkout, Transform, TransformSource};
use crate::failpoint;
use crate::metrics::Metrics;
use crate::runtime::{BatchOutput, KafkaMessage};
use crate::sink::delta::CommitInfo;

/// How long `recv` waits when no batch is open, so rebalances and resyncs
/// are looked at regularly.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How often every partition's lag is probed (`weir_kafka_topic_lag`).
const LAG_PROBE_EVERY: Duration = Duration::from_secs(10);

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
    /// Most instances of the transform that run parts of one batch at
    /// once, each taking whole partitions ([`default_parallelism`]).
    pub parallelism: usize,
}

/// One instance per core this process may run on.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// One Kafka trigger, running.
pub struct KafkaRunner {
    trigger: KafkaTrigger,
    parallelism: usize,
    source: TransformSource,
    /// The tables and every owned partition's progress through them.
    committer: Committer,
    consumer: Arc<StreamConsumer<Context>>,
    events: tokio::sync::mpsc::UnboundedReceiver<Assignment>,
    metrics: Arc<Metrics>,
    /// How long processing a batch takes.
    flush_time: FlushTime,
    /// In a consumer group: how long to wait, owning no partition while
    /// messages wait and nobody consumes them, before rejoining.
    rejoin_after: Option<Duration>,
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
            .field("committer", &self.committer)
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
        let info = CommitInfo {
            function: function.clone(),
            // Set from the version checked out for each batch.
            component_digest: String::new(),
            trigger: trigger.id.clone(),
            host_id: config.host_id,
        };
        let committer = Committer::open(&trigger, &config.app, info, Arc::clone(&metrics)).await?;
        let (consumer, events) = consumer::create(
            &config.brokers,
            &trigger.group,
            &function,
            trigger.session_timeout,
            Arc::clone(&metrics),
        )
        .with_context(|| format!("trigger `{}`: creating the consumer", trigger.id))?;
        metrics.init_consumer(&trigger.id, &function, &trigger.topics);
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
        let rejoin_after =
            matches!(config.ownership, Ownership::Group).then(|| trigger.session_timeout * 2);
        Ok(Self {
            trigger,
            parallelism: config.parallelism.max(1),
            source,
            committer,
            consumer,
            events,
            metrics,
            flush_time: FlushTime::default(),
            rejoin_after,
        })
    }

    /// Consumes until `shutdown`; the batch being collected then is still
    /// processed and committed.
    #[tracing::instrument(name = "kafka", skip_all, fields(trigger = %self.trigger.id, function = %self.committer.function()))]
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(topics = ?self.trigger.topics, group = %self.trigger.group, "kafka trigger started");
        let probe = tokio::spawn(probe_lag(
            Arc::clone(&self.consumer),
            self.trigger.topics.clone(),
            self.trigger.id.clone(),
            self.committer.function().to_owned(),
            Arc::clone(&self.metrics),
            self.rejoin_after,
            shutdown.clone(),
        ));
        // Messages taken while the last batch committed, too few for a batch
        // of their own: the start of the next one.
        let mut carried = Batch::default();
        loop {
            let batch = self.collect(std::mem::take(&mut carried), &shutdown).await;
            if !batch.messages.is_empty() {
                carried = self.process(batch.messages, &shutdown).await;
            }
            if shutdown.is_cancelled() && carried.messages.is_empty() {
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

    /// Collects messages after `batch` until a limit is reached, the
    /// batch's window closes (see [`Window`]), or shutdown.
    async fn collect(&mut self, mut batch: Batch, shutdown: &CancellationToken) -> Batch {
        let mut window = batch
            .messages
            .first()
            .map(|m| Window::open(self.trigger.max_wait, m.timestamp_ms));
        loop {
            self.resync_due().await;
            let now = Instant::now();
            // The batch as it stands decides how early it must close.
            let close_at =
                window.map(|w| w.close_at(self.flush_time.reserve(batch.messages.len())));
            if close_at.is_some_and(|d| d <= now) {
                break;
            }
            let mut wait = close_at.map_or(IDLE_POLL, |d| d - now);
            if let Some(due) = self.committer.progress().next_due() {
                wait = wait.min(due.saturating_duration_since(now));
            }
            // A message already fetched is taken without arming a timer:
            // under a backlog that is every message, and the timer and the
            // select cost more than taking it (measured in the transform bench).
            let consumer = Arc::clone(&self.consumer);
            let ready = consumer.recv().now_or_never();
            let received = match ready {
                Some(r) => Ok(r),
                None => {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        r = tokio::time::timeout(wait, consumer.recv()) => r,
                    }
                }
            };
            // A timeout (`Err`) still applies the events that came meanwhile.
            if self.take(received.ok(), &mut batch).await {
                break;
            }
            if window.is_none()
                && let Some(first) = batch.messages.first()
            {
                window = Some(Window::open(self.trigger.max_wait, first.timestamp_ms));
            }
        }
        batch
    }

    /// Takes what the consumer returned, if anything, into `batch`, after
    /// applying the rebalance events that came with it (their callbacks run
    /// inside `recv`); returns whether the batch is full.
    async fn take(
        &mut self,
        received: Option<rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>>,
        batch: &mut Batch,
    ) -> bool {
        // Partitions revoked or positioned now: what was taken of them
        // before is dropped, the message in hand too. A positioned
        // partition was sought to where its tables end, so its messages
        // from there on come again.
        let moved = self.handle_events().await;
        if !moved.is_empty() {
            batch.drop_partitions(&moved);
        }
        let message = match received {
            None => return false,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "kafka consumer error");
                return false;
            }
            Some(Ok(m)) => m,
        };
        if self
            .committer
            .progress()
            .wants(message.topic(), message.partition(), message.offset())
            && (moved.is_empty()
                || !moved.contains(&Partition::new(message.topic(), message.partition())))
        {
            let message = detach(&message);
            batch.bytes += payload_bytes(&message);
            batch.messages.push(message);
        }
        batch.messages.len() >= self.trigger.max_records || batch.bytes >= self.trigger.max_bytes
    }

    /// The messages already fetched, taken without waiting, up to a full
    /// batch; returns them and whether they make one.
    async fn take_ready(&mut self) -> (Batch, bool) {
        let mut batch = Batch::default();
        loop {
            let consumer = Arc::clone(&self.consumer);
            let Some(received) = consumer.recv().now_or_never() else {
                return (batch, false);
            };
            if self.take(Some(received), &mut batch).await {
                return (batch, true);
            }
        }
    }

    /// Applies rebalance events; returns the partitions revoked or
    /// positioned anew.
    async fn handle_events(&mut self) -> BTreeSet<Partition> {
        let mut moved = BTreeSet::new();
        while let Ok(event) = self.events.try_recv() {
            match event {
                Assignment::Assigned(parts) => {
                    for part in parts {
                        self.committer
                            .position(part.clone(), 0, &self.consumer)
                            .await;
                        moved.insert(part);
                    }
                }
                Assignment::Revoked(parts) => {
                    for part in parts {
                        self.committer.revoke(&part);
                        moved.insert(part);
                    }
                }
            }
            self.metrics
                .kafka_assigned_partitions
                .with_label_values(&[self.committer.function()])
                .set(i64::try_from(self.committer.progress().len()).unwrap_or(i64::MAX));
        }
        moved
    }

    async fn resync_due(&mut self) {
        for (part, attempts) in self.committer.progress().due(Instant::now()) {
            self.committer
                .position(part, attempts, &self.consumer)
                .await;
        }
    }

    /// Invokes, routes and commits `batch`, and every full batch already
    /// fetched after it: the next one is transformed while this one
    /// commits, so under a backlog the commits and the transforms share the
    /// cores. Each batch's commits happen with the version of the transform
    /// checked out for it (a swap waits for them); its plan is made only
    /// after the batch before it committed, so it sees every partition sent
    /// back meanwhile. Returns the messages taken after the last batch, too
    /// few for one of their own.
    async fn process(&mut self, batch: Vec<KafkaMessage>, shutdown: &CancellationToken) -> Batch {
        let mut span = batch_span(&batch);
        let mut started = Instant::now();
        let (mut checkout, (mut batch, mut parts, dead)) =
            check_out_and_run(&self.source, batch, self.parallelism, &self.metrics)
                .instrument(span.clone())
                .await;
        self.send_back(&dead);
        loop {
            self.committer.produced_by(checkout.transform.digest());
            let plan = self.committer.plan(&batch, parts);
            let partitions: Vec<String> = plan.partitions().map(ToString::to_string).collect();
            span.record("partitions", partitions.join(",").as_str());
            failpoint::hit("batch-before-write");
            let (next, full) = if shutdown.is_cancelled() {
                (Batch::default(), false)
            } else {
                self.take_ready().await
            };
            if !full {
                let offsets = self
                    .committer
                    .commit(plan, &self.consumer)
                    .instrument(span)
                    .await;
                drop(checkout);
                self.finish(batch, &offsets, started);
                // A partition this commit sent back is read again from the
                // Delta log; what was taken of it before must not wait in
                // the next batch beside the same offsets read again.
                let mut next = next;
                next.retain_ready(self.committer.progress());
                return next;
            }
            self.metrics
                .batches_overlapped
                .with_label_values(&[self.committer.function()])
                .inc();
            let next_span = batch_span(&next.messages);
            let next_started = Instant::now();
            let (committer, consumer) = (&mut self.committer, &self.consumer);
            let committing = async move {
                let offsets = committer.commit(plan, consumer).await;
                // Done with this version: a swap waiting for it may go on.
                drop(checkout);
                offsets
            }
            .instrument(span);
            let transforming =
                check_out_and_run(&self.source, next.messages, self.parallelism, &self.metrics)
                    .instrument(next_span.clone());
            let (offsets, (next_checkout, (next_batch, next_parts, dead))) =
                tokio::join!(committing, transforming);
            self.finish(batch, &offsets, started);
            self.send_back(&dead);
            (span, started, checkout) = (next_span, next_started, next_checkout);
            (batch, parts) = (next_batch, next_parts);
        }
    }

    /// After a batch's commits: the offsets for lag, the time it took, and
    /// the batch kept for the next deploy's smoke test.
    fn finish(&mut self, batch: Vec<KafkaMessage>, offsets: &[(Partition, i64)], started: Instant) {
        failpoint::hit("delta-before-offset-commit");
        self.commit_offsets(offsets);
        self.flush_time.observe(started.elapsed(), batch.len());
        self.source.processed(batch);
    }

    /// Sends the partitions of parts whose task died back to the Delta log.
    fn send_back(&mut self, partitions: &[Partition]) {
        for part in partitions {
            self.committer.send_back(part, &self.consumer);
        }
    }

    /// Commits consumer offsets (async; used only for lag, DESIGN.md §5.4).
    fn commit_offsets(&self, offsets: &[(Partition, i64)]) {
        let mut list = TopicPartitionList::new();
        for (part, next) in offsets {
            let _ = list.add_partition_offset(&part.topic, part.partition, Offset::Offset(*next));
        }
        if list.count() > 0
            && let Err(e) = self.consumer.commit(&list, CommitMode::Async)
        {
            tracing::debug!(error = %e, "offset commit failed (lag metrics only)");
        }
    }
}

/// Checks the current version of the transform out and runs `batch` on
/// it ([`run_parts`]); the checkout is held until the batch is committed.
async fn check_out_and_run(
    source: &TransformSource,
    batch: Vec<KafkaMessage>,
    parallelism: usize,
    metrics: &Metrics,
) -> (Checkout, (Vec<KafkaMessage>, Vec<Part>, Vec<Partition>)) {
    let checkout = source.checkout().await;
    let ran = run_parts(source, &checkout.transform, batch, parallelism, metrics).await;
    (checkout, ran)
}

/// Runs `batch`: cut into parts of whole partitions, each on its own
/// instance of the transform in a task of its own, at most `parallelism`
/// at once on the runtime's threads. Returns the batch in part order, each part's output,
/// and the partitions of any part whose task died (a bug, not a guest
/// failure: those are outputs); such a part leaves the batch, and its
/// partitions go back to the Delta log, so their messages are read again.
async fn run_parts(
    source: &TransformSource,
    transform: &Arc<dyn Transform>,
    batch: Vec<KafkaMessage>,
    parallelism: usize,
    metrics: &Metrics,
) -> (Vec<KafkaMessage>, Vec<Part>, Vec<Partition>) {
    let labels = [source.id()];
    #[expect(clippy::cast_precision_loss, reason = "a histogram sample")]
    metrics
        .batch_records
        .with_label_values(&labels)
        .observe(batch.len() as f64);
    let parts = split(batch, parallelism);
    #[expect(clippy::cast_precision_loss, reason = "a histogram sample")]
    metrics
        .batch_parts
        .with_label_values(&labels)
        .observe(parts.len() as f64);
    // Even one part runs as a task of its own: the commit of the batch
    // before it may be running on this one.
    let running: Vec<_> = parts
        .into_iter()
        .map(|part| {
            let partitions: BTreeSet<Partition> = part
                .iter()
                .map(|m| Partition::new(m.topic.as_str(), m.partition))
                .collect();
            let (source, transform) = (source.clone(), Arc::clone(transform));
            let task = tokio::spawn(
                async move {
                    let output = invoke_twice(&source, transform.as_ref(), &part).await;
                    (part, output)
                }
                .in_current_span(),
            );
            (partitions, task)
        })
        .collect();
    let mut batch = Vec::new();
    let mut outputs = Vec::new();
    let mut dead = Vec::new();
    for (partitions, task) in running {
        match task.await {
            Ok((part, output)) => {
                let start = batch.len();
                batch.extend(part);
                outputs.push(Part {
                    messages: start..batch.len(),
                    output,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "a transform task died; its partitions will be re-read from the Delta log");
                dead.extend(partitions);
            }
        }
    }
    (batch, outputs, dead)
}

/// Calls the transform; a failed call is retried once, a second failure
/// fails the messages (they become dead letters).
async fn invoke_twice(
    source: &TransformSource,
    transform: &dyn Transform,
    batch: &[KafkaMessage],
) -> Result<BatchOutput, String> {
    let mut last = String::new();
    for attempt in 1..=2 {
        match transform.handle(batch).await {
            Ok(output) => return Ok(output),
            Err(e) => {
                tracing::warn!(attempt, error = %e, "batch invocation failed");
                source.failed(&e);
                last = e;
            }
        }
    }
    Err(format!("invocation failed twice: {last}"))
}

/// Messages collected for a batch, and their key and value bytes.
#[derive(Debug, Default)]
struct Batch {
    messages: Vec<KafkaMessage>,
    bytes: usize,
}

impl Batch {
    /// Keeps only the messages of partitions that are ready in `progress`.
    fn retain_ready(&mut self, progress: &Progress) {
        self.retain(|m| progress.versions(&m.topic, m.partition).is_some());
    }

    /// Drops the messages of `partitions`.
    fn drop_partitions(&mut self, partitions: &BTreeSet<Partition>) {
        self.retain(|m| !partitions.contains(&Partition::new(m.topic.as_str(), m.partition)));
    }

    /// Keeps the messages `keep` says to, and counts their bytes again.
    fn retain(&mut self, keep: impl FnMut(&KafkaMessage) -> bool) {
        self.messages.retain(keep);
        self.bytes = self.messages.iter().map(payload_bytes).sum();
    }
}

/// A message's key and value bytes, as `max_bytes` counts them.
fn payload_bytes(m: &KafkaMessage) -> usize {
    m.key.as_ref().map_or(0, Vec::len) + m.value.as_ref().map_or(0, Vec::len)
}

/// The span of one batch; its partitions are recorded once planned.
fn batch_span(batch: &[KafkaMessage]) -> tracing::Span {
    tracing::info_span!(
        "batch",
        records = batch.len(),
        partitions = tracing::field::Empty
    )
}

/// Cuts `batch` into at most `parts` parts of whole partitions, balanced by
/// message count (largest partition first, each to the smallest part).
fn split(batch: Vec<KafkaMessage>, parts: usize) -> Vec<Vec<KafkaMessage>> {
    if parts <= 1 {
        return vec![batch];
    }
    // Each message's partition as a number, without an owned key per message.
    let mut numbers: BTreeMap<(&str, i32), usize> = BTreeMap::new();
    let of: Vec<usize> = batch
        .iter()
        .map(|m| {
            let next = numbers.len();
            *numbers
                .entry((m.topic.as_str(), m.partition))
                .or_insert(next)
        })
        .collect();
    let count = numbers.len();
    let mut partitions: Vec<Vec<KafkaMessage>> = vec![Vec::new(); count];
    for (m, n) in batch.into_iter().zip(of) {
        partitions[n].push(m);
    }
    partitions.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut out: Vec<Vec<KafkaMessage>> = vec![Vec::new(); parts.min(count.max(1))];
    for partition in partitions {
        if let Some(smallest) = out.iter_mut().min_by_key(|p| p.len()) {
            smallest.extend(partition);
        }
    }
    out
}

/// A consumer group that strands partitions on a dead member: tansu 0.6
/// can keep a dead member's assignment after its session expired and never
/// rebalance again (docs/decisions.md), so messages wait on partitions
/// nobody consumes. Fed one lag probe at a time; says to rejoin once a
/// partition this host does not own has had messages waiting and its
/// group position unmoved for `after`, while every partition the host owns
/// is caught up or moving. A host stuck itself (a full disk, a store that
/// does not answer) would only add a rebalance to a stuck group, so its own
/// partitions standing still since the last probe keep it where it is.
#[derive(Debug, Default)]
struct Stall {
    /// Every partition with messages waiting at the last probe: the group's
    /// position then and since when it has stood there.
    waiting: BTreeMap<(String, i32), (i64, Instant)>,
}

impl Stall {
    /// Takes one probe; returns the partitions stranded for `after`, if
    /// the host should rejoin for them (none: stay).
    fn observe(
        &mut self,
        now: Instant,
        partitions: &[PartitionLag],
        after: Duration,
    ) -> Vec<(String, i32)> {
        let last = std::mem::take(&mut self.waiting);
        let (mut stranded, mut stuck_here) = (Vec::new(), false);
        for p in partitions.iter().filter(|p| p.lag > 0) {
            let key = (p.topic.clone(), p.partition);
            let since = match last.get(&key) {
                Some(&(position, since)) if position == p.position => since,
                _ => now,
            };
            if p.owned {
                stuck_here |= since < now;
            } else if now.duration_since(since) >= after {
                stranded.push(key.clone());
            }
            self.waiting.insert(key, (p.position, since));
        }
        if stranded.is_empty() || stuck_here {
            return Vec::new();
        }
        self.waiting.clear();
        stranded
    }
}

/// Sets `weir_kafka_topic_lag` for every topic every [`LAG_PROBE_EVERY`]
/// until `shutdown`: the lag of partitions this host does not own too, so
/// a trigger left without partitions while messages wait is visible. With
/// `rejoin_after` (in a consumer group), a host that sees messages wait on
/// a partition nobody consumes for that long leaves the group and joins it
/// again (see [`Stall`]). Whether the brokers
/// answered is `weir_kafka_reachable{trigger}`.
async fn probe_lag(
    consumer: Arc<StreamConsumer<Context>>,
    topics: Vec<String>,
    trigger: String,
    function: String,
    metrics: Arc<Metrics>,
    rejoin_after: Option<Duration>,
    shutdown: CancellationToken,
) {
    let mut stall = Stall::default();
    loop {
        let (c, t) = (Arc::clone(&consumer), topics.clone());
        match tokio::task::spawn_blocking(move || consumer::partition_lag(&c, &t, BROKER_TIMEOUT))
            .await
        {
            Ok(Ok(partitions)) => {
                if metrics.set_kafka_reachable(&trigger, true) {
                    tracing::info!(function, "the Kafka brokers answer again");
                }
                for topic in &topics {
                    let lag = partitions
                        .iter()
                        .filter(|p| &p.topic == topic)
                        .map(|p| p.lag);
                    metrics
                        .kafka_topic_lag
                        .with_label_values(&[&function, topic])
                        .set(lag.sum());
                }
                let stranded = rejoin_after
                    .map(|after| (after, stall.observe(Instant::now(), &partitions, after)));
                if let Some((after, stranded)) = stranded
                    && !stranded.is_empty()
                {
                    let stranded: Vec<String> = stranded
                        .iter()
                        .map(|(topic, partition)| format!("{topic}[{partition}]"))
                        .collect();
                    tracing::warn!(function, ?stranded, after = ?after, "messages wait on partitions nobody consumes: leaving the consumer group and joining it again");
                    metrics.kafka_rejoins.with_label_values(&[&function]).inc();
                    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
                    consumer.unsubscribe();
                    if let Err(e) = consumer.subscribe(&topics) {
                        tracing::error!(function, error = %e, "cannot subscribe again");
                    }
                }
            }
            Ok(Err(e)) => {
                if metrics.set_kafka_reachable(&trigger, false) {
                    tracing::warn!(function, error = %e, "the Kafka brokers do not answer");
                }
            }
            Err(e) => tracing::warn!(function, error = %e, "the lag probe panicked"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(LAG_PROBE_EVERY) => {}
        }
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Batch, FlushTime, PartitionLag, Stall, Window, split};
    use crate::runtime::KafkaMessage;

    #[test]
    fn a_batch_splits_into_whole_partitions_balanced_by_messages() {
        let message = |partition: i32, offset: i64| KafkaMessage {
            topic: "t".to_owned(),
            partition,
            offset,
            timestamp_ms: None,
            key: None,
            value: None,
            headers: Vec::new(),
        };
        // Partition 0: 5 messages, 1: 3, 2: 2, 3: 1.
        let batch: Vec<KafkaMessage> = [(0, 5), (1, 3), (2, 2), (3, 1)]
            .into_iter()
            .flat_map(|(p, n)| (0..n).map(move |o| message(p, o)))
            .collect();
        let parts = split(batch.clone(), 2);
        let partitions = |part: &[KafkaMessage]| {
            let mut p: Vec<i32> = part.iter().map(|m| m.partition).collect();
            p.dedup();
            p
        };
        // 5 → first, 3 → second, 2 → second (3 < 5), 1 → first (a tie).
        assert_eq!(parts.len(), 2);
        assert_eq!(partitions(&parts[0]), [0, 3]);
        assert_eq!(partitions(&parts[1]), [1, 2]);
        assert_eq!((parts[0].len(), parts[1].len()), (6, 5));
        // Offsets stay in order within a partition.
        assert!(
            parts[1]
                .windows(2)
                .all(|w| w[0].partition != w[1].partition || w[0].offset < w[1].offset)
        );
        // Never more parts than partitions, never fewer than one.
        assert_eq!(split(batch.clone(), 16).len(), 4);
        assert_eq!(split(batch.clone(), 0).len(), 1);
        assert_eq!(split(batch, 1)[0].len(), 11);
        assert_eq!(split(Vec::new(), 4).len(), 1);
    }

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

    /// Partition `n` of topic `t` at `position` with `lag` waiting.
    fn lag(n: i32, position: i64, lag: i64, owned: bool) -> PartitionLag {
        PartitionLag {
            topic: "t".to_owned(),
            partition: n,
            position,
            lag,
            owned,
        }
    }

    fn stranded(n: i32) -> (String, i32) {
        ("t".to_owned(), n)
    }

    /// A [`Stall`] waiting 20 s, fed probes at seconds after a start.
    struct Probes {
        stall: Stall,
        t0: std::time::Instant,
    }

    impl Probes {
        fn new() -> Self {
            Self {
                stall: Stall::default(),
                t0: std::time::Instant::now(),
            }
        }

        /// The partitions a probe at `s` seconds says to rejoin for.
        fn at(&mut self, s: u64, probe: &[PartitionLag]) -> Vec<(String, i32)> {
            let at = self.t0 + Duration::from_secs(s);
            self.stall.observe(at, probe, Duration::from_secs(20))
        }
    }

    #[test]
    fn an_idle_host_rejoins_only_when_waiting_messages_never_go_down() {
        let mut stall = Probes::new();
        // Owning the partitions, or nothing waiting: never.
        assert!(stall.at(0, &[lag(0, 0, 500, true)]).is_empty());
        assert!(stall.at(30, &[lag(0, 500, 0, false)]).is_empty());
        // Idle with 500 waiting, then more arriving and none consumed.
        assert!(stall.at(40, &[lag(0, 500, 500, false)]).is_empty());
        assert!(stall.at(50, &[lag(0, 500, 600, false)]).is_empty());
        assert_eq!(stall.at(60, &[lag(0, 500, 600, false)]), [stranded(0)]);
        // After a rejoin the clock starts again.
        assert!(stall.at(70, &[lag(0, 500, 600, false)]).is_empty());
        // Someone else consumes (the position moves): the clock restarts.
        assert!(stall.at(85, &[lag(0, 550, 50, false)]).is_empty());
        assert!(stall.at(95, &[lag(0, 550, 60, false)]).is_empty());
        assert!(stall.at(100, &[lag(0, 550, 60, false)]).is_empty());
        assert_eq!(stall.at(105, &[lag(0, 550, 70, false)]), [stranded(0)]);
    }

    #[test]
    fn a_rejoin_names_only_the_partitions_stranded_for_the_whole_wait() {
        let mut stall = Probes::new();
        assert!(
            stall
                .at(0, &[lag(0, 10, 5, false), lag(1, 20, 0, false)])
                .is_empty()
        );
        // Partition 1 has waited 10 s when partition 0 has waited 20.
        assert!(
            stall
                .at(10, &[lag(0, 10, 5, false), lag(1, 20, 3, false)])
                .is_empty()
        );
        assert_eq!(
            stall.at(20, &[lag(0, 10, 5, false), lag(1, 20, 3, false)]),
            [stranded(0)]
        );
    }

    #[test]
    fn a_host_rejoins_for_a_partition_stranded_beside_its_own_unless_stuck_itself() {
        // Its own partition caught up, the other one stranded.
        let mut stall = Probes::new();
        for s in [0, 10] {
            assert!(
                stall
                    .at(s, &[lag(0, 90, 0, true), lag(1, 40, 200, false)])
                    .is_empty()
            );
        }
        assert_eq!(
            stall.at(20, &[lag(0, 95, 0, true), lag(1, 40, 210, false)]),
            [stranded(1)]
        );
        // Its own partition busy and moving: the same.
        let mut stall = Probes::new();
        for (s, position) in [(0, 100), (10, 200)] {
            let probe = [lag(0, position, 50, true), lag(1, 40, 200, false)];
            assert!(stall.at(s, &probe).is_empty());
        }
        assert_eq!(
            stall.at(20, &[lag(0, 300, 50, true), lag(1, 40, 200, false)]),
            [stranded(1)]
        );
        // Its own partition standing still with messages waiting: the host
        // is stuck itself (a full disk, say), and a rebalance would not help.
        let mut stall = Probes::new();
        for s in [0, 10, 20, 30, 60] {
            let probe = [lag(0, 100, 50, true), lag(1, 40, 200, false)];
            assert!(stall.at(s, &probe).is_empty());
        }
        // Caught up again, it rejoins at once for the partition stranded all along.
        assert_eq!(
            stall.at(70, &[lag(0, 150, 0, true), lag(1, 40, 200, false)]),
            [stranded(1)]
        );
    }

    #[test]
    fn taken_messages_of_a_partition_sent_back_do_not_wait_for_the_next_batch() {
        use crate::trigger::kafka::progress::{PartState, Partition, Progress, Versions};
        let mut progress = Progress::default();
        let ready = Versions {
            outputs: vec![Some(9)],
            dead_letters: Some(9),
        };
        progress.set(Partition::new("t", 0), PartState::Ready(ready));
        progress.set(
            Partition::new("t", 1),
            PartState::Resync {
                at: std::time::Instant::now(),
                attempts: 1,
            },
        );
        let message = |partition: i32| KafkaMessage {
            topic: "t".to_owned(),
            partition,
            offset: 10,
            timestamp_ms: None,
            key: Some(b"k".to_vec()),
            value: Some(b"value".to_vec()),
            headers: Vec::new(),
        };
        let mut batch = Batch {
            messages: vec![message(0), message(1), message(2)],
            bytes: 18,
        };
        batch.retain_ready(&progress);
        let kept: Vec<i32> = batch.messages.iter().map(|m| m.partition).collect();
        assert_eq!(kept, [0]);
        assert_eq!(batch.bytes, 6);
    }
}
