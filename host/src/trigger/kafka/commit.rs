//! The exactly-once protocol of DESIGN.md §5 in one place: where each
//! owned partition resumes (positioning from the Delta log), which rows of
//! a batch go to which table and which messages become dead letters (the
//! [`Plan`]), and the commits that carry rows together with their
//! partitions' `txn` versions. The run loop (`runner.rs`) owns the
//! consumer, rebalances and the batching window; this module sees the
//! broker only through [`PartitionLog`], so its tests need none.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use deltalake::arrow::array::RecordBatch;

use super::progress::{PartState, Partition, Progress, Target, Versions};
use super::{KafkaTrigger, TableTarget};
use crate::failpoint;
use crate::metrics::Metrics;
use crate::runtime::{BatchOutput, KafkaMessage, TableOutput};
use crate::sink::delta::{
    self, CommitInfo, DeadLetter, DeadLetterKind, DecodedRows, TableWriter, TxnUpdate,
};

/// Longest back-off between attempts to re-read a partition's tables.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the protocol needs of the broker's log of a partition.
pub trait PartitionLog {
    /// The partition's low and high watermarks.
    fn watermarks(
        &self,
        part: &Partition,
    ) -> impl Future<Output = anyhow::Result<(i64, i64)>> + Send;
    /// The consumer group's committed offset of the partition, if any.
    fn committed(
        &self,
        part: &Partition,
    ) -> impl Future<Output = anyhow::Result<Option<i64>>> + Send;
    /// Makes `offset` the next message read from the partition.
    fn seek(
        &self,
        part: &Partition,
        offset: i64,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Stops fetching the partition's messages.
    fn pause(&self, part: &Partition) -> anyhow::Result<()>;
    /// Fetches the partition's messages again.
    fn resume(&self, part: &Partition) -> anyhow::Result<()>;
}

/// A trigger's tables and what this host knows of every partition it owns.
pub struct Committer {
    /// The application name (part of every `txn` app id).
    app: String,
    /// Lineage recorded in every commit.
    info: CommitInfo,
    /// The trigger's `tables`, in name order.
    outputs: Vec<TableWriter>,
    dead_letters: TableWriter,
    progress: Progress,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("function", &self.info.function)
            .field("outputs", &self.outputs)
            .field("dead_letters", &self.dead_letters)
            .finish_non_exhaustive()
    }
}

/// Why a message becomes a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The kind of failure.
    pub kind: DeadLetterKind,
    /// What was wrong, for the reader of the dead-letter table.
    pub reason: String,
}

/// A slice of a batch run by one instance of the transform, and what came
/// of it; the output's message indices count from the slice's start.
#[derive(Debug)]
pub struct Part {
    /// Which messages of the batch.
    pub messages: Range<usize>,
    /// The transform's output for them, or why the call failed (twice).
    pub output: Result<BatchOutput, String>,
}

/// A batch routed, not yet committed.
#[derive(Debug)]
pub struct Plan<'a> {
    batch: &'a [KafkaMessage],
    /// Each partition's last offset in the batch.
    ends: BTreeMap<Partition, i64>,
    /// Rows per output table, of messages no table dead-letters.
    rows: Vec<Option<DecodedRows>>,
    /// Dead letters by message index.
    letters: BTreeMap<usize, Letter>,
}

impl Plan<'_> {
    /// The partitions the batch holds messages of.
    pub fn partitions(&self) -> impl Iterator<Item = &Partition> {
        self.ends.keys()
    }
}

impl Committer {
    /// Opens (or creates) every table of `trigger` and reports parquet
    /// files a crash left behind.
    pub async fn open(
        trigger: &KafkaTrigger,
        app: &str,
        info: CommitInfo,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let open = async |name: &str, target: &TableTarget, dead_letters: bool| {
            let table = TableWriter::open(
                name,
                &target.uri,
                &target.storage,
                &target.schema,
                &target.partition_by,
                &trigger.table_settings,
            )
            .await
            .with_context(|| format!("trigger `{}`: opening table `{name}`", trigger.id))?;
            metrics.init_table(&info.function, name, dead_letters);
            report_orphans(&table, &info.function, &metrics).await;
            anyhow::Ok(table)
        };
        let mut outputs = Vec::with_capacity(trigger.tables.len());
        for (name, target) in &trigger.tables {
            outputs.push(open(name, target, false).await?);
        }
        let dead_letters = open(DEAD_LETTERS, &trigger.dead_letter, true).await?;
        Ok(Self {
            app: app.to_owned(),
            info,
            outputs,
            dead_letters,
            progress: Progress::default(),
            metrics,
        })
    }

    /// The function whose rows these tables receive.
    pub fn function(&self) -> &str {
        &self.info.function
    }

    /// Every owned partition's state.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Forgets a partition another host owns now.
    pub fn revoke(&mut self, part: &Partition) {
        self.progress.remove(part);
    }

    /// Pauses `part` and has it re-read from the Delta log: what this
    /// host consumed of it past the tables' versions is read again.
    pub fn send_back(&mut self, part: &Partition, log: &impl PartitionLog) {
        if let Err(e) = log.pause(part) {
            tracing::warn!(partition = %part, error = %e, "cannot pause partition");
        }
        self.progress.set(
            part.clone(),
            PartState::Resync {
                at: Instant::now(),
                attempts: 0,
            },
        );
    }

    /// Records which component produces the rows from now on.
    pub fn produced_by(&mut self, digest: &str) {
        if self.info.component_digest != digest {
            digest.clone_into(&mut self.info.component_digest);
        }
    }

    fn table(&self, target: Target) -> &TableWriter {
        match target {
            Target::Output(t) => &self.outputs[t],
            Target::DeadLetters => &self.dead_letters,
        }
    }

    fn table_mut(&mut self, target: Target) -> &mut TableWriter {
        match target {
            Target::Output(t) => &mut self.outputs[t],
            Target::DeadLetters => &mut self.dead_letters,
        }
    }

    /// Every table, outputs first.
    fn targets(&self) -> impl Iterator<Item = Target> + use<> {
        (0..self.outputs.len())
            .map(Target::Output)
            .chain(std::iter::once(Target::DeadLetters))
    }

    fn app_id(&self, part: &Partition) -> String {
        delta::app_id(&self.app, &self.info.function, &part.topic, part.partition)
    }

    /// Reads every table's version for `part`, refuses it if its offsets
    /// went backwards, seeks just after the table furthest behind (or where
    /// the group got to, if a table has nothing of it) and lets its
    /// messages flow. On failure, schedules another attempt (the
    /// `attempts`-th so far) after a back-off.
    pub async fn position(&mut self, part: Partition, attempts: u32, log: &impl PartitionLog) {
        match self.read_position(&part, log).await {
            Ok(state) => {
                let labels = [
                    self.info.function.as_str(),
                    part.topic.as_str(),
                    &part.partition.to_string(),
                ];
                if let PartState::Stopped(reason) = &state {
                    tracing::error!(partition = %part, "{reason}");
                    self.metrics
                        .kafka_partition_stopped
                        .with_label_values(&labels)
                        .set(1);
                } else {
                    self.metrics
                        .kafka_partition_stopped
                        .with_label_values(&labels)
                        .set(0);
                    if let Err(e) = log.resume(&part) {
                        tracing::warn!(partition = %part, error = %e, "cannot resume partition");
                    }
                }
                self.progress.set(part, state);
            }
            Err(e) => {
                let backoff = (Duration::from_millis(500) * 2u32.saturating_pow(attempts.min(6)))
                    .min(MAX_BACKOFF);
                tracing::warn!(
                    partition = %part,
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

    async fn read_position(
        &mut self,
        part: &Partition,
        log: &impl PartitionLog,
    ) -> anyhow::Result<PartState> {
        let app_id = self.app_id(part);
        let ids = std::slice::from_ref(&app_id);
        let mut versions = Versions {
            outputs: vec![None; self.outputs.len()],
            dead_letters: None,
        };
        for target in self.targets() {
            let read = self.table_mut(target).versions(ids).await?;
            if let Some(slot) = versions.slot(target) {
                *slot = read.into_iter().next().flatten();
            }
        }
        // After the versions: a watermark read first could be overtaken by
        // a commit of the partition's previous owner, and look like a log
        // that went backwards.
        let (low, high) = log.watermarks(part).await?;
        for target in self.targets() {
            if let Some(Some(v)) = versions.get(target)
                && v >= high
            {
                return Ok(PartState::Stopped(format!(
                    "table `{}` holds offsets of {part} up to {v}, but the partition ends at {high}: \
                     the topic was recreated or the broker lost its log. Refusing it; use a new application name \
                     or reset the table (`txn` app id `{app_id}`)",
                    self.table(target).name
                )));
            }
        }
        let start = match versions.start_offset() {
            Some(start) => {
                if start < low {
                    tracing::warn!(
                        partition = %part,
                        start,
                        low,
                        "messages after the tables' last offsets were deleted by retention: they are lost"
                    );
                }
                start
            }
            // Some table holds nothing of the partition: where the group
            // got to, as librdkafka would start (its committed offset, or
            // the earliest message where that is gone or there is none).
            None => match log.committed(part).await? {
                Some(committed) if (low..=high).contains(&committed) => committed,
                _ => low,
            },
        };
        // Always an explicit seek: the partition's messages flow from the
        // moment it is assigned, and those taken before it was ready were
        // dropped (docs/decisions.md, "Assignment never pauses").
        log.seek(part, start).await?;
        tracing::info!(partition = %part, ?versions, start, "partition positioned from the Delta log");
        Ok(PartState::Ready(versions))
    }

    /// Whether `target` still needs rows from `message`.
    fn needs(&self, target: Target, message: &KafkaMessage) -> bool {
        self.progress
            .versions(&message.topic, message.partition)
            .is_some_and(|v| v.needs(target, message.offset))
    }

    /// Which rows go to which table, and which messages are dead letters:
    /// every row of a message goes, or none (a message with one invalid
    /// row is a dead letter for all tables).
    pub fn plan<'a>(&self, batch: &'a [KafkaMessage], parts: Vec<Part>) -> Plan<'a> {
        let mut ends: BTreeMap<Partition, i64> = BTreeMap::new();
        for m in batch {
            let end = ends
                .entry(Partition::new(m.topic.as_str(), m.partition))
                .or_insert(m.offset);
            *end = (*end).max(m.offset);
        }
        let mut letters: BTreeMap<usize, Letter> = BTreeMap::new();
        let mut letter = |i: usize, kind, reason| {
            letters.entry(i).or_insert(Letter { kind, reason });
        };
        let mut output = BatchOutput::default();
        for part in parts {
            // The runtime checks a guest's indices; a native transform is
            // checked here. Either way a bad one fails its part.
            let checked = part
                .output
                .and_then(|o| o.check_sources(part.messages.len()).map(|()| o));
            match checked {
                Ok(o) => output.append(o, part.messages.start),
                Err(reason) => {
                    for i in part.messages {
                        letter(i, DeadLetterKind::InvocationFailed, reason.clone());
                    }
                }
            }
        }
        for (i, reason) in output.rejects {
            letter(i, DeadLetterKind::Rejected, reason);
        }
        let mut parts: Vec<Vec<DecodedRows>> = vec![Vec::new(); self.outputs.len()];
        for rows in output.tables {
            let Some(t) = self.outputs.iter().position(|w| w.name == rows.table()) else {
                let reason = format!(
                    "rows for table `{}`, which the trigger does not declare",
                    rows.table()
                );
                for i in rows.sources() {
                    letter(i, DeadLetterKind::UnknownTable, reason.clone());
                }
                continue;
            };
            let table = &self.outputs[t];
            // A table that already holds a message's rows (it committed
            // further than another table before a crash) skips them.
            let needed = |i: &usize| self.needs(Target::Output(t), &batch[*i]);
            let (decoded, bad) = match rows {
                TableOutput::Json { rows, .. } => {
                    let texts: Vec<(usize, &str)> = rows
                        .iter()
                        .filter(|(i, _)| needed(i))
                        .map(|(i, text)| (*i, text.as_str()))
                        .collect();
                    delta::decode(table.arrow_schema(), &texts)
                }
                TableOutput::Columns {
                    sources, columns, ..
                } => {
                    let skip: BTreeMap<usize, ()> = sources
                        .iter()
                        .map(|s| *s as usize)
                        .filter(|i| !needed(i))
                        .map(|i| (i, ()))
                        .collect();
                    let (decoded, mut bad) =
                        delta::assemble(table.arrow_schema(), &sources, columns);
                    bad.retain(|i, _| !skip.contains_key(i));
                    (delta::without(decoded, &skip), bad)
                }
            };
            for (i, reason) in bad {
                letter(
                    i,
                    DeadLetterKind::InvalidRow,
                    format!("table `{}`: {reason}", table.name),
                );
            }
            parts[t].push(decoded);
        }
        let rows = parts
            .into_iter()
            .zip(&self.outputs)
            .map(|(parts, table)| {
                let rows = delta::concat(table.arrow_schema(), parts)?;
                Some(delta::without(rows, &letters))
            })
            .collect();
        Plan {
            batch,
            ends,
            rows,
            letters,
        }
    }

    /// Table `target`'s `txn` updates: every ready partition of the batch
    /// the table has not yet seen to its end.
    fn txns(&self, target: Target, ends: &BTreeMap<Partition, i64>) -> Vec<(Partition, TxnUpdate)> {
        ends.iter()
            .filter_map(|(part, end)| {
                let expected = self
                    .progress
                    .versions(&part.topic, part.partition)?
                    .get(target)?;
                expected.is_none_or(|v| v < *end).then(|| {
                    let update = TxnUpdate {
                        app_id: self.app_id(part),
                        expected,
                        version: *end,
                    };
                    (part.clone(), update)
                })
            })
            .collect()
    }

    /// Commits the plan, one commit per table that has something new for
    /// it (outputs in name order, then the dead letters), each carrying
    /// its partitions' `txn` versions. A partition whose commit fails is
    /// paused and re-read from the Delta log later; its rows go to no
    /// further table. Returns the partitions every table took, with the
    /// offset the consumer group may commit (DESIGN.md §5.4).
    pub async fn commit(
        &mut self,
        plan: Plan<'_>,
        log: &impl PartitionLog,
    ) -> Vec<(Partition, i64)> {
        let Plan {
            batch,
            ends,
            mut rows,
            letters,
        } = plan;
        for (n, target) in self.targets().enumerate() {
            if n > 0 {
                failpoint::hit("delta-between-tables");
            }
            let txns = self.txns(target, &ends);
            if txns.is_empty() {
                continue;
            }
            let rows = match target {
                Target::DeadLetters => self.dead_letter_rows(batch, &letters),
                // Only rows of partitions this commit advances: a partition
                // whose commit to an earlier table failed is re-read from
                // the log, and its rows must not land here without its txn.
                Target::Output(t) => rows[t].take().map(|rows| only_of(rows, batch, &txns)),
            };
            self.commit_table(target, rows, &txns, log).await;
        }
        ends.into_iter()
            .filter(|(p, _)| self.progress.versions(&p.topic, p.partition).is_some())
            .map(|(p, end)| (p, end + 1))
            .collect()
    }

    fn dead_letter_rows(
        &self,
        batch: &[KafkaMessage],
        letters: &BTreeMap<usize, Letter>,
    ) -> Option<RecordBatch> {
        let rows: Vec<DeadLetter> = letters
            .iter()
            .filter(|(i, _)| self.needs(Target::DeadLetters, &batch[**i]))
            .map(|(i, letter)| DeadLetter {
                message: &batch[*i],
                kind: letter.kind,
                reason: &letter.reason,
            })
            .collect();
        for letter in &rows {
            self.metrics
                .dead_letters
                .with_label_values(&[
                    &self.info.function,
                    &self.dead_letters.name,
                    letter.kind.as_str(),
                ])
                .inc();
        }
        match DeadLetter::to_batch(
            &rows,
            self.dead_letters.arrow_schema(),
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

    /// Commits one table; on failure pauses its partitions and marks them
    /// for a resync.
    async fn commit_table(
        &mut self,
        target: Target,
        rows: Option<RecordBatch>,
        txns: &[(Partition, TxnUpdate)],
        log: &impl PartitionLog,
    ) {
        let started = Instant::now();
        let updates: Vec<TxnUpdate> = txns.iter().map(|(_, u)| u.clone()).collect();
        // Fields, not `table_mut`: the commit borrows the lineage beside it.
        let table = match target {
            Target::Output(t) => &mut self.outputs[t],
            Target::DeadLetters => &mut self.dead_letters,
        };
        let result = table.commit(rows, &updates, &self.info).await;
        let name = self.table(target).name.as_str();
        let labels = [self.info.function.as_str(), name];
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
                    self.progress.advance(part, target, update.version);
                }
                self.compact(target).await;
                self.vacuum(target).await;
            }
            Err(e) => {
                let kind = if e.is_fenced() { "fenced" } else { "error" };
                self.metrics
                    .delta_commit_errors
                    .with_label_values(&[self.info.function.as_str(), name, kind])
                    .inc();
                tracing::error!(table = %name, error = format!("{:#}", anyhow::Error::new(e)), "commit abandoned; its partitions will be re-read from the Delta log");
                for (part, _) in txns {
                    self.send_back(part, log);
                }
            }
        }
    }

    /// Compacts `target`'s small files if enough have accumulated. The
    /// rows are committed either way: a compaction that fails is counted
    /// and logged, and tried again after a later commit.
    async fn compact(&mut self, target: Target) {
        let table = match target {
            Target::Output(t) => &mut self.outputs[t],
            Target::DeadLetters => &mut self.dead_letters,
        };
        let started = Instant::now();
        let result = table.compact(&self.info).await;
        let files = i64::try_from(table.live_files()).unwrap_or(i64::MAX);
        let name = table.name.as_str();
        let labels = [self.info.function.as_str(), name];
        self.metrics
            .delta_files
            .with_label_values(&labels)
            .set(files);
        match result {
            Ok(None) => {}
            Ok(Some(done)) => {
                self.metrics
                    .delta_compactions
                    .with_label_values(&labels)
                    .inc();
                self.metrics
                    .delta_compacted_files
                    .with_label_values(&labels)
                    .inc_by(done.removed as u64);
                tracing::debug!(table = %name, version = done.version, removed = done.removed, added = done.added, files, elapsed_ms = started.elapsed().as_millis(), "compacted small files");
            }
            Err(e) => {
                let kind = if e.is_fenced() { "conflict" } else { "error" };
                self.metrics
                    .delta_compaction_errors
                    .with_label_values(&[self.info.function.as_str(), name, kind])
                    .inc();
                let error = format!("{:#}", anyhow::Error::new(e));
                if kind == "conflict" {
                    tracing::debug!(table = %name, error, "compaction abandoned; tried again later");
                } else {
                    tracing::warn!(table = %name, error, "compaction failed; tried again later");
                }
            }
        }
    }

    /// Deletes `target`'s files that no version within its retention
    /// needs, when a vacuum is due. Like a compaction, it is never the
    /// stream's concern: a failure is counted, logged and tried again
    /// when the next one is due.
    async fn vacuum(&mut self, target: Target) {
        let table = match target {
            Target::Output(t) => &mut self.outputs[t],
            Target::DeadLetters => &mut self.dead_letters,
        };
        let started = Instant::now();
        let result = table.vacuum_if_due(&self.info).await;
        let name = table.name.as_str();
        let labels = [self.info.function.as_str(), name];
        match result {
            Ok(None) => {}
            Ok(Some(deleted)) => {
                self.metrics
                    .delta_vacuumed_files
                    .with_label_values(&labels)
                    .inc_by(deleted as u64);
                tracing::debug!(table = %name, deleted, elapsed_ms = started.elapsed().as_millis(), "vacuumed files past the retention");
            }
            Err(e) => {
                self.metrics
                    .delta_vacuum_errors
                    .with_label_values(&labels)
                    .inc();
                let error = format!("{:#}", anyhow::Error::new(e));
                tracing::warn!(table = %name, error, "vacuum failed; tried again when the next one is due");
            }
        }
    }
}

/// The name of the dead-letter table in metrics and logs.
const DEAD_LETTERS: &str = "dead_letters";

/// Keeps only the rows of messages from partitions the commit advances.
fn only_of(
    rows: DecodedRows,
    batch: &[KafkaMessage],
    txns: &[(Partition, TxnUpdate)],
) -> RecordBatch {
    let committed: BTreeSet<(&str, i32)> = txns
        .iter()
        .map(|(p, _)| (p.topic.as_str(), p.partition))
        .collect();
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
}

async fn report_orphans(table: &TableWriter, function: &str, metrics: &Metrics) {
    match delta::orphans(table).await {
        Ok(files) => {
            if !files.is_empty() {
                tracing::warn!(table = %table.name, count = files.len(), first = %files[0], "parquet files the table neither holds nor removed within its retention (left by a crash, or compacted away long ago); safe to delete");
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
    use std::path::Path;
    use std::sync::Mutex;

    use super::*;
    use crate::runtime::{Column, ColumnValues, Outcome, TableRows};
    use crate::sink::delta::{TableSchema, TableSettings};

    /// A partition log of fixed watermarks that records what was asked of it.
    #[derive(Default)]
    struct Log {
        low: i64,
        high: i64,
        /// The group's committed offset.
        committed: Option<i64>,
        unreachable: bool,
        seeks: Mutex<Vec<(Partition, i64)>>,
        paused: Mutex<BTreeSet<Partition>>,
        resumed: Mutex<BTreeSet<Partition>>,
    }

    impl Log {
        fn ending_at(high: i64) -> Self {
            Self {
                high,
                ..Self::default()
            }
        }
    }

    impl PartitionLog for Log {
        async fn watermarks(&self, _: &Partition) -> anyhow::Result<(i64, i64)> {
            anyhow::ensure!(!self.unreachable, "no broker");
            Ok((self.low, self.high))
        }
        async fn committed(&self, _: &Partition) -> anyhow::Result<Option<i64>> {
            Ok(self.committed)
        }
        async fn seek(&self, part: &Partition, offset: i64) -> anyhow::Result<()> {
            self.seeks.lock().unwrap().push((part.clone(), offset));
            Ok(())
        }
        fn pause(&self, part: &Partition) -> anyhow::Result<()> {
            self.paused.lock().unwrap().insert(part.clone());
            Ok(())
        }
        fn resume(&self, part: &Partition) -> anyhow::Result<()> {
            self.resumed.lock().unwrap().insert(part.clone());
            Ok(())
        }
    }

    fn target(dir: &Path, name: &str, schema: TableSchema) -> TableTarget {
        TableTarget {
            uri: dir.join(name).to_str().expect("utf-8 path").to_owned(),
            partition_by: Vec::new(),
            schema,
            storage: Default::default(),
        }
    }

    /// Tables `a` (id, name) and `b` (id) and the dead letters, under `dir`.
    async fn committer(dir: &Path) -> Committer {
        let settings = TableSettings {
            checkpoint_interval: 100,
            ..TableSettings::default()
        };
        committer_with(dir, settings).await
    }

    /// [`committer`] with its tables' properties `settings`.
    async fn committer_with(dir: &Path, table_settings: TableSettings) -> Committer {
        let columns = |text: &str| {
            TableSchema::parse(&format!(r#"{{"version": 1, "columns": [{text}]}}"#)).unwrap()
        };
        let id = r#"{"name": "id", "type": "long", "nullable": false}"#;
        let trigger = KafkaTrigger {
            id: "trigger".to_owned(),
            component: "transform".to_owned(),
            topics: vec!["in".to_owned()],
            group: "group".to_owned(),
            max_records: 100,
            max_bytes: 1 << 20,
            max_wait: Duration::from_secs(1),
            tables: BTreeMap::from([
                (
                    "a".to_owned(),
                    target(
                        dir,
                        "a",
                        columns(&format!(r#"{id}, {{"name": "name", "type": "string"}}"#)),
                    ),
                ),
                ("b".to_owned(), target(dir, "b", columns(id))),
            ]),
            dead_letter: target(dir, "dead", TableSchema::dead_letters()),
            table_settings,
            session_timeout: Duration::from_secs(10),
        };
        let info = CommitInfo {
            function: "transform".to_owned(),
            component_digest: "sha256:test".to_owned(),
            trigger: "trigger".to_owned(),
            host_id: "test".to_owned(),
        };
        Committer::open(&trigger, "app", info, Arc::new(Metrics::new()))
            .await
            .expect("tables open")
    }

    /// [`committer`] with `partitions` of topic `in` positioned from `log`.
    async fn positioned(dir: &Path, log: &Log, partitions: &[i32]) -> Committer {
        let mut c = committer(dir).await;
        for p in partitions {
            c.position(part(*p), 0, log).await;
        }
        c
    }

    fn message(partition: i32, offset: i64) -> KafkaMessage {
        KafkaMessage {
            topic: "in".to_owned(),
            partition,
            offset,
            timestamp_ms: None,
            key: None,
            value: Some(format!("{partition}/{offset}").into_bytes()),
            headers: Vec::new(),
        }
    }

    fn rows(table: &str, rows: &[&str]) -> TableRows {
        TableRows {
            table: table.to_owned(),
            rows: rows.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    /// Rows for `a` and `b` from every message.
    fn both(batch: &[KafkaMessage]) -> BatchOutput {
        let outcomes = batch
            .iter()
            .map(|m| {
                let row = format!(r#"{{"id": {}}}"#, m.offset);
                Outcome::Rows(vec![rows("a", &[&row]), rows("b", &[&row])])
            })
            .collect();
        BatchOutput::from_outcomes(outcomes)
    }

    /// The whole batch in one part.
    fn whole(batch: &[KafkaMessage], output: Result<BatchOutput, String>) -> Vec<Part> {
        vec![Part {
            messages: 0..batch.len(),
            output,
        }]
    }

    fn part(partition: i32) -> Partition {
        Partition::new("in", partition)
    }

    /// Each table's `txn` version of `partition`, outputs then dead letters.
    async fn table_versions(c: &mut Committer, partition: i32) -> Vec<Option<i64>> {
        let id = c.app_id(&part(partition));
        let mut out = Vec::new();
        for target in c.targets() {
            let v = c
                .table_mut(target)
                .versions(std::slice::from_ref(&id))
                .await;
            out.push(v.unwrap()[0]);
        }
        out
    }

    async fn row_count(c: &Committer, target: Target) -> usize {
        let table = crate::sink::delta::read::open(c.table(target).table().table_url().as_str())
            .await
            .unwrap();
        crate::sink::delta::read::scan(&table)
            .await
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum()
    }

    #[tokio::test]
    async fn every_row_of_a_message_lands_or_none_does() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::ending_at(100);
        let mut c = positioned(dir.path(), &log, &[0, 1]).await;
        assert_eq!(
            *log.seeks.lock().unwrap(),
            [(part(0), 0), (part(1), 0)],
            "empty tables and no committed offset: the earliest message"
        );
        assert_eq!(log.resumed.lock().unwrap().len(), 2);

        let batch = [
            message(0, 0),
            message(0, 1),
            message(0, 2),
            message(1, 0),
            message(1, 1),
        ];
        let outcomes = vec![
            Outcome::Rows(vec![
                rows("a", &[r#"{"id": 1, "name": "x"}"#]),
                rows("b", &[r#"{"id": 1}"#]),
            ]),
            Outcome::Reject("not a vehicle".to_owned()),
            Outcome::Rows(vec![rows("c", &[r#"{"id": 2}"#])]),
            // Its `a` row is fine, its `b` row is not: neither lands.
            Outcome::Rows(vec![
                rows("a", &[r#"{"id": 3}"#]),
                rows("b", &[r#"{"id": "three"}"#]),
            ]),
            Outcome::Rows(vec![rows("a", &[r#"{"id": 4}"#, r#"{"id": 5}"#])]),
        ];
        let plan = c.plan(
            &batch,
            whole(&batch, Ok(BatchOutput::from_outcomes(outcomes))),
        );
        assert_eq!(
            plan.partitions().cloned().collect::<Vec<_>>(),
            [part(0), part(1)]
        );
        let sources = |t: usize| plan.rows[t].as_ref().map(|r| r.sources.clone());
        assert_eq!(sources(0), Some(vec![0, 4, 4]));
        assert_eq!(sources(1), Some(vec![0]));
        let kinds: Vec<(usize, DeadLetterKind)> =
            plan.letters.iter().map(|(i, l)| (*i, l.kind)).collect();
        assert_eq!(
            kinds,
            [
                (1, DeadLetterKind::Rejected),
                (2, DeadLetterKind::UnknownTable),
                (3, DeadLetterKind::InvalidRow)
            ]
        );
        assert!(
            plan.letters[&3].reason.starts_with("table `b`: "),
            "{:?}",
            plan.letters[&3]
        );
        assert!(
            plan.letters[&2].reason.contains("`c`"),
            "{:?}",
            plan.letters[&2]
        );

        let offsets = c.commit(plan, &log).await;
        assert_eq!(offsets, [(part(0), 3), (part(1), 2)]);
        assert_eq!(row_count(&c, Target::Output(0)).await, 3);
        assert_eq!(row_count(&c, Target::Output(1)).await, 1);
        assert_eq!(row_count(&c, Target::DeadLetters).await, 3);
        // Every table moved every partition to its end, even a table that
        // got no rows of it: the offsets are accounted for.
        assert_eq!(table_versions(&mut c, 0).await, [Some(2); 3]);
        assert_eq!(table_versions(&mut c, 1).await, [Some(1); 3]);
        let progress = c.progress().versions("in", 1).unwrap();
        assert_eq!(progress.iter().collect::<Vec<_>>(), [Some(1); 3]);
    }

    fn text(values: &[&str]) -> ColumnValues {
        let mut offsets = vec![0];
        let mut bytes = Vec::new();
        for v in values {
            bytes.extend_from_slice(v.as_bytes());
            offsets.push(u32::try_from(bytes.len()).unwrap());
        }
        ColumnValues::Utf8 { offsets, bytes }
    }

    fn column(name: &str, values: ColumnValues) -> Column {
        Column {
            name: name.to_owned(),
            values,
            valid: None,
        }
    }

    #[tokio::test]
    async fn typed_columns_land_like_json_rows_and_a_bad_column_dead_letters_its_messages() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::ending_at(100);
        let mut c = positioned(dir.path(), &log, &[0]).await;
        let batch: Vec<KafkaMessage> = (0..5).map(|o| message(0, o)).collect();
        let output = BatchOutput {
            tables: vec![
                // Messages 0, 1, 3 → `a`; message 1's name is not UTF-8.
                TableOutput::Columns {
                    table: "a".to_owned(),
                    sources: vec![0, 1, 3],
                    columns: vec![
                        column("id", ColumnValues::Int64(vec![0, 1, 3])),
                        column(
                            "name",
                            ColumnValues::Utf8 {
                                offsets: vec![0, 4, 5, 8],
                                bytes: b"zero\xffthr".to_vec(),
                            },
                        ),
                    ],
                },
                // Message 3 → `b` too, but `id` holds text: every message
                // with rows in `b` is a dead letter, in every table.
                TableOutput::Columns {
                    table: "b".to_owned(),
                    sources: vec![3],
                    columns: vec![column("id", text(&["three"]))],
                },
                // A second part for `a`, from message 4, joins the first.
                TableOutput::Columns {
                    table: "a".to_owned(),
                    sources: vec![4],
                    columns: vec![column("id", ColumnValues::Int64(vec![4]))],
                },
            ],
            rejects: vec![(2, "no".to_owned())],
        };
        let plan = c.plan(&batch, whole(&batch, Ok(output)));
        let kinds: Vec<(usize, DeadLetterKind)> =
            plan.letters.iter().map(|(i, l)| (*i, l.kind)).collect();
        assert_eq!(
            kinds,
            [
                (1, DeadLetterKind::InvalidRow),
                (2, DeadLetterKind::Rejected),
                (3, DeadLetterKind::InvalidRow)
            ]
        );
        assert!(
            plan.letters[&1].reason.contains("column `name`"),
            "{:?}",
            plan.letters[&1]
        );
        assert!(
            plan.letters[&3]
                .reason
                .starts_with("table `b`: column `id`"),
            "{:?}",
            plan.letters[&3]
        );
        assert_eq!(plan.rows[0].as_ref().unwrap().sources, [0, 4]);
        assert_eq!(c.commit(plan, &log).await, [(part(0), 5)]);
        assert_eq!(row_count(&c, Target::Output(0)).await, 2);
        assert_eq!(row_count(&c, Target::Output(1)).await, 0);
        assert_eq!(row_count(&c, Target::DeadLetters).await, 3);
        assert_eq!(table_versions(&mut c, 0).await, [Some(4); 3]);
    }

    #[tokio::test]
    async fn indices_outside_the_batch_fail_it_as_an_invocation() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::ending_at(100);
        let c = positioned(dir.path(), &log, &[0]).await;
        let batch = [message(0, 0)];
        let output = BatchOutput {
            tables: Vec::new(),
            rejects: vec![(1, "a message that is not there".to_owned())],
        };
        let plan = c.plan(&batch, whole(&batch, Ok(output)));
        assert_eq!(plan.letters[&0].kind, DeadLetterKind::InvocationFailed);
        assert!(
            plan.letters[&0]
                .reason
                .contains("message 1 of a batch of 1")
        );
    }

    #[tokio::test]
    async fn a_failed_invocation_dead_letters_the_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::ending_at(100);
        let mut c = positioned(dir.path(), &log, &[0]).await;
        let batch = [message(0, 0), message(0, 1)];
        let plan = c.plan(&batch, whole(&batch, Err("trap: out of fuel".to_owned())));
        assert!(plan.rows.iter().all(Option::is_none));
        assert!(
            plan.letters
                .values()
                .all(|l| l.kind == DeadLetterKind::InvocationFailed && l.reason.contains("fuel"))
        );
        assert_eq!(c.commit(plan, &log).await, [(part(0), 2)]);
        assert_eq!(row_count(&c, Target::DeadLetters).await, 2);
        assert_eq!(row_count(&c, Target::Output(0)).await, 0);
        assert_eq!(table_versions(&mut c, 0).await, [Some(1); 3]);
    }

    #[tokio::test]
    async fn parts_run_apart_count_from_their_start_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::ending_at(100);
        let mut c = positioned(dir.path(), &log, &[0, 1]).await;
        // Partition 1's messages first, as a split may order them.
        let batch = [message(1, 0), message(1, 1), message(0, 0), message(0, 1)];
        let second = Part {
            messages: 2..4,
            output: Ok(both(&batch[2..])),
        };
        let first = Part {
            messages: 0..2,
            output: Err("trap: unreachable".to_owned()),
        };
        let plan = c.plan(&batch, vec![first, second]);
        assert_eq!(plan.rows[0].as_ref().unwrap().sources, [2, 3]);
        let failed: Vec<usize> = plan.letters.keys().copied().collect();
        assert_eq!(failed, [0, 1]);
        assert!(
            plan.letters
                .values()
                .all(|l| l.kind == DeadLetterKind::InvocationFailed)
        );
        assert_eq!(c.commit(plan, &log).await, [(part(0), 2), (part(1), 2)]);
        assert_eq!(row_count(&c, Target::Output(0)).await, 2);
        assert_eq!(row_count(&c, Target::DeadLetters).await, 2);
    }

    #[tokio::test]
    async fn resumes_after_the_table_furthest_behind_and_skips_what_each_table_has() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::ending_at(100);
        let mut c = positioned(dir.path(), &log, &[0]).await;
        let batch = [message(0, 0), message(0, 1)];
        let plan = c.plan(&batch, whole(&batch, Ok(both(&batch))));
        c.commit(plan, &log).await;
        // A crash between tables: `a` went on to offset 3, the others not.
        let ahead = [message(0, 2), message(0, 3)];
        let plan = c.plan(&ahead, whole(&ahead, Ok(both(&ahead))));
        let a_only = plan.rows[0].clone().map(|r| r.batch);
        let txn = c.txns(Target::Output(0), &plan.ends);
        let info = c.info.clone();
        let updates: Vec<TxnUpdate> = txn.into_iter().map(|(_, u)| u).collect();
        c.outputs[0].commit(a_only, &updates, &info).await.unwrap();
        drop(c);

        // The next owner starts after `b` and the dead letters (1), and
        // gives `a` only what it lacks.
        let mut c = committer(dir.path()).await;
        let log = Log::ending_at(100);
        c.position(part(0), 0, &log).await;
        assert_eq!(*log.seeks.lock().unwrap(), [(part(0), 2)]);
        let batch = [message(0, 2), message(0, 3), message(0, 4)];
        let plan = c.plan(&batch, whole(&batch, Ok(both(&batch))));
        assert_eq!(plan.rows[0].as_ref().unwrap().sources, [2]);
        assert_eq!(plan.rows[1].as_ref().unwrap().sources, [0, 1, 2]);
        let expected: Vec<Option<i64>> = c
            .targets()
            .map(|t| c.txns(t, &plan.ends)[0].1.expected)
            .collect();
        assert_eq!(expected, [Some(3), Some(1), Some(1)]);
        c.commit(plan, &log).await;
        assert_eq!(table_versions(&mut c, 0).await, [Some(4); 3]);
        // Offsets 0–4 in each output table exactly once.
        assert_eq!(row_count(&c, Target::Output(0)).await, 5);
        assert_eq!(row_count(&c, Target::Output(1)).await, 5);
        assert_eq!(row_count(&c, Target::DeadLetters).await, 0);
    }

    #[tokio::test]
    async fn a_partition_new_to_the_tables_starts_where_the_group_got_to_or_at_its_first_message() {
        let dir = tempfile::tempdir().unwrap();
        let seek_of = async |log: Log| {
            positioned(dir.path(), &log, &[0]).await;
            log.seeks.into_inner().unwrap()
        };
        let log = |low, committed| Log {
            low,
            high: 100,
            committed,
            ..Log::default()
        };
        assert_eq!(seek_of(log(0, Some(7))).await, [(part(0), 7)]);
        assert_eq!(seek_of(log(0, None)).await, [(part(0), 0)]);
        // Committed, then deleted by retention: the earliest message left.
        assert_eq!(seek_of(log(10, Some(5))).await, [(part(0), 10)]);
        // Committed past the end (the topic was recreated): from the start.
        assert_eq!(seek_of(log(10, Some(150))).await, [(part(0), 10)]);
        assert_eq!(seek_of(log(10, Some(100))).await, [(part(0), 100)]);
    }

    #[tokio::test]
    async fn a_fenced_commit_sends_its_partitions_back_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::ending_at(100);
        let mut old = positioned(dir.path(), &log, &[0, 1]).await;
        // Partition 0 moved to another host, which committed first.
        let mut new = committer(dir.path()).await;
        new.position(part(0), 0, &log).await;
        let batch = [message(0, 0)];
        let plan = new.plan(&batch, whole(&batch, Ok(both(&batch))));
        new.commit(plan, &log).await;

        let batch = [message(0, 0), message(0, 1), message(1, 0)];
        let plan = old.plan(&batch, whole(&batch, Ok(both(&batch))));
        let offsets = old.commit(plan, &log).await;
        // `a`'s commit was abandoned as a whole; no later table was tried.
        assert!(offsets.is_empty(), "{offsets:?}");
        assert_eq!(
            *log.paused.lock().unwrap(),
            BTreeSet::from([part(0), part(1)])
        );
        let due: Vec<Partition> = old
            .progress()
            .due(Instant::now())
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(due, [part(0), part(1)]);
        assert_eq!(row_count(&old, Target::Output(0)).await, 1);
        assert_eq!(row_count(&old, Target::Output(1)).await, 1);
        assert_eq!(table_versions(&mut old, 1).await, [None; 3]);

        // Re-read, partition 0 resumes after what the other host wrote.
        old.position(part(0), 0, &log).await;
        assert_eq!(log.seeks.lock().unwrap().last(), Some(&(part(0), 1)));
        assert!(old.progress().wants("in", 0, 1) && !old.progress().wants("in", 0, 0));
    }

    #[tokio::test]
    async fn a_partition_whose_log_went_backwards_is_refused_and_an_unreachable_one_retried() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::ending_at(100);
        let mut c = positioned(dir.path(), &log, &[0]).await;
        let batch = [message(0, 0), message(0, 1), message(0, 2)];
        let plan = c.plan(&batch, whole(&batch, Ok(both(&batch))));
        c.commit(plan, &log).await;

        // The topic was recreated: it ends before what the tables hold.
        let recreated = Log::ending_at(2);
        c.position(part(0), 0, &recreated).await;
        assert!(recreated.resumed.lock().unwrap().is_empty());
        assert!(!c.progress().wants("in", 0, 3));
        assert!(
            c.progress().due(Instant::now() + MAX_BACKOFF).is_empty(),
            "never retried"
        );

        let unreachable = Log {
            unreachable: true,
            ..Log::default()
        };
        let before = Instant::now();
        c.position(part(1), 2, &unreachable).await;
        // The third attempt: after 0.5 s doubled twice.
        assert!(
            c.progress()
                .due(before + Duration::from_millis(1900))
                .is_empty()
        );
        let after = Instant::now() + Duration::from_secs(2);
        assert_eq!(c.progress().due(after), [(part(1), 3)]);
    }

    #[tokio::test]
    async fn files_compacted_away_are_vacuumed_once_the_retention_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let settings = TableSettings {
            checkpoint_interval: 5,
            history: Duration::from_secs(2),
        };
        let mut c = committer_with(dir.path(), settings).await;
        let log = Log::ending_at(100);
        c.position(part(0), 0, &log).await;
        let vacuumed = |c: &Committer| {
            c.metrics
                .delta_vacuumed_files
                .with_label_values(&["transform", "b"])
                .get()
        };
        // Eight commits of one file each: the eighth compacts them.
        for offset in 0..8 {
            let batch = [message(0, offset)];
            let plan = c.plan(&batch, whole(&batch, Ok(both(&batch))));
            assert_eq!(c.commit(plan, &log).await, [(part(0), offset + 1)]);
        }
        let compactions = |c: &Committer| {
            c.metrics
                .delta_compactions
                .with_label_values(&["transform", "b"])
                .get()
        };
        assert_eq!(compactions(&c), 1);
        assert_eq!(vacuumed(&c), 0, "nothing is past the retention yet");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let batch = [message(0, 8)];
        let plan = c.plan(&batch, whole(&batch, Ok(both(&batch))));
        c.commit(plan, &log).await;
        assert_eq!(vacuumed(&c), 8, "the eight files compacted away");
        assert_eq!(row_count(&c, Target::Output(1)).await, 9);
        let parquet_in = |dir: &Path| {
            std::fs::read_dir(dir)
                .unwrap()
                .filter(|e| {
                    let path = e.as_ref().unwrap().path();
                    path.extension().is_some_and(|x| x == "parquet")
                })
                .count()
        };
        assert_eq!(
            parquet_in(&dir.path().join("b")),
            2,
            "the compacted file and the last commit's"
        );

        // The log entries of the past history go at the next checkpoint;
        // the partition's progress stays in the checkpoints.
        let first_entry = dir.path().join("b/_delta_log/00000000000000000000.json");
        let mut next = 9;
        while first_entry.exists() {
            assert!(next < 20, "no log entry expired after 11 more commits");
            let batch = [message(0, next)];
            let plan = c.plan(&batch, whole(&batch, Ok(both(&batch))));
            assert_eq!(c.commit(plan, &log).await, [(part(0), next + 1)]);
            next += 1;
        }
        let mut reopened = committer_with(dir.path(), settings).await;
        assert_eq!(table_versions(&mut reopened, 0).await, [Some(next - 1); 3]);
        assert_eq!(row_count(&reopened, Target::Output(1)).await, next as usize);
    }
}
