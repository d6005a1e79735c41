//! One Delta table the sink appends to: created on first use from its
//! declared schema, then appended to with one commit per flush, each
//! carrying the `txn` actions that make the append exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, StructField, Transaction};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake::{DeltaTable, DeltaTableError, TableProperty};
use futures::StreamExt as _;
use indexmap::IndexMap;

use super::schema::TableSchema;
use super::storage::StorageOptions;
use super::{CommitInfo, DeltaError, compact, read};

/// One `txn` action of a commit: after the commit, `app_id` has `version`.
/// The commit goes through only if the table still holds `expected` for
/// it (DESIGN.md §5.7); otherwise another host owns the partition now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnUpdate {
    /// `weir:<app>:<component>:<topic>:<partition>`.
    pub app_id: String,
    /// The version this host read or last committed; `None` if it had none.
    pub expected: Option<i64>,
    /// The last offset included in this commit.
    pub version: i64,
}

/// What one commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The table version written.
    pub version: u64,
    /// Rows appended.
    pub rows: usize,
    /// Parquet files added.
    pub files: usize,
}

/// A writer vacuums its table every quarter of the tombstone retention, and
/// at least this often.
const VACUUM_AT_LEAST_EVERY: Duration = Duration::from_secs(3600);

/// What one compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// The table version written.
    pub version: u64,
    /// Small files the version no longer references.
    pub removed: usize,
    /// Files written in their place.
    pub added: usize,
}

/// The Delta table properties weir keeps on the tables it writes: set when
/// it creates a table, and brought back to these values when it opens one
/// whose properties differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSettings {
    /// A checkpoint every this many commits (`delta.checkpointInterval`).
    pub checkpoint_interval: u32,
    /// How long older versions of the table stay readable: how long a
    /// removed file is kept as a tombstone, safe from a VACUUM
    /// (`delta.deletedFileRetentionDuration`), and how long log entries
    /// are kept before a checkpoint makes them expendable
    /// (`delta.logRetentionDuration`, with `delta.enableExpiredLogCleanup`).
    /// Every checkpoint carries the tombstones of this period and the log
    /// directory holds the entries of it, so it bounds both.
    pub history: Duration,
}

impl Default for TableSettings {
    /// What a trigger gets unless its manifest says otherwise: Delta's
    /// checkpoint interval, and an hour of history where Delta keeps
    /// removed files a week and log entries 30 days (docs/decisions.md,
    /// "An hour of history, and the host vacuums").
    fn default() -> Self {
        Self {
            checkpoint_interval: 10,
            history: Duration::from_secs(3600),
        }
    }
}

impl TableSettings {
    /// The table properties, as Delta writes them.
    fn properties(&self) -> HashMap<String, String> {
        HashMap::from([
            (
                TableProperty::CheckpointInterval.as_ref().to_owned(),
                self.checkpoint_interval.to_string(),
            ),
            (
                TableProperty::DeletedFileRetentionDuration
                    .as_ref()
                    .to_owned(),
                interval(self.history),
            ),
            (
                TableProperty::LogRetentionDuration.as_ref().to_owned(),
                interval(self.history),
            ),
            (
                TableProperty::EnableExpiredLogCleanup.as_ref().to_owned(),
                "true".to_owned(),
            ),
        ])
    }

    /// Whether `table` already has these properties.
    fn held_by(&self, table: &DeltaTable) -> Result<bool, DeltaTableError> {
        let config = table.snapshot()?.table_config();
        Ok(
            config.checkpoint_interval().get() == u64::from(self.checkpoint_interval)
                && config.deleted_file_retention_duration() == self.history
                && config.log_retention_duration() == self.history
                && config.enable_expired_log_cleanup(),
        )
    }
}

/// A duration as a Delta interval (`interval 90 minutes`), in the largest
/// unit that divides it, down to seconds.
fn interval(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (count, unit) = [
        (604_800, "weeks"),
        (86_400, "days"),
        (3_600, "hours"),
        (60, "minutes"),
    ]
    .into_iter()
    .find(|(size, _)| seconds > 0 && seconds.is_multiple_of(*size))
    .map_or((seconds, "seconds"), |(size, unit)| (seconds / size, unit));
    format!("interval {count} {unit}")
}

/// An open Delta table.
pub struct TableWriter {
    /// The name guests use.
    pub name: String,
    table: DeltaTable,
    arrow_schema: SchemaRef,
    schema_version: u32,
    known: KnownTxns,
    /// When this writer last vacuumed the table (or opened it).
    vacuumed_at: Instant,
}

/// `txn` versions as of one table version: read from the log at that
/// version, or written by this writer's own commit made right on top of
/// the version before. Each read replays the log back to the last
/// checkpoint (delta-rs answers one app id per replay), and every commit
/// checks the versions of all its partitions: without this, a batch over 32
/// partitions replayed the log 32 times per table. A table that moved past
/// `at` by anyone else's commit empties it.
#[derive(Debug, Default)]
struct KnownTxns {
    at: Option<u64>,
    versions: HashMap<String, Option<i64>>,
}

impl KnownTxns {
    /// The known versions at table version `now`: kept if still `at`.
    fn at(&mut self, now: Option<u64>) -> &mut HashMap<String, Option<i64>> {
        if self.at != now {
            self.versions.clear();
            self.at = now;
        }
        &mut self.versions
    }

    /// This writer committed `txns` as table version `version`.
    fn committed(&mut self, version: u64, txns: &[TxnUpdate]) {
        if self.at.is_some_and(|at| at + 1 == version) {
            for txn in txns {
                self.versions.insert(txn.app_id.clone(), Some(txn.version));
            }
            self.at = Some(version);
        } else {
            // Another commit won a race in between: nothing known holds.
            self.versions.clear();
            self.at = None;
        }
    }
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("name", &self.name)
            .field("uri", &self.table.table_url().as_str())
            .field("version", &self.table.version())
            .finish_non_exhaustive()
    }
}

impl TableWriter {
    /// Opens the table at `uri`, creating it with `schema` and `settings`
    /// if nothing is there yet. An existing table must have exactly the
    /// declared columns and partitioning: the host never migrates a table
    /// silently. Its properties are brought to `settings`.
    pub async fn open(
        name: &str,
        uri: &str,
        storage: &StorageOptions,
        schema: &TableSchema,
        partition_by: &[String],
        settings: &TableSettings,
    ) -> Result<Self, DeltaError> {
        let err = |source| DeltaError::Open {
            table: name.to_owned(),
            source,
        };
        schema
            .check_partitions(partition_by)
            .map_err(|reason| DeltaError::SchemaMismatch {
                table: name.to_owned(),
                reason,
            })?;
        let url = deltalake::ensure_table_uri(uri).map_err(err)?;
        let options = storage.for_url(&url);
        let mut table = DeltaTable::try_from_url_with_storage_options(url.clone(), options.clone())
            .await
            .map_err(err)?;
        if table.version().is_none() {
            let created = table
                .create()
                .with_table_name(name)
                .with_comment(format!(
                    "written by weir; schema version {}",
                    schema.version
                ))
                .with_columns(schema.fields())
                .with_partition_columns(partition_by.to_vec())
                .with_configuration(settings.properties().into_iter().map(|(k, v)| (k, Some(v))))
                .with_save_mode(SaveMode::Ignore)
                // Only version 0 creates: delta-rs would retry a create
                // that lost the race as a second metadata commit on top
                // of the winner's, and every writer that read version 0
                // would then fail its first commit ("metadata changed").
                .with_commit_properties(CommitProperties::default().with_max_retries(0))
                .await;
            table = match created {
                Ok(table) => table,
                // Another host created it at the same moment: use theirs.
                Err(_) => DeltaTable::try_from_url_with_storage_options(url, options)
                    .await
                    .map_err(err)?,
            };
            tracing::info!(table = name, uri, "created Delta table");
        }
        check_matches(name, &table, schema, partition_by)?;
        let table = settle(name, table, settings).await;
        let arrow_schema = RecordBatchWriter::for_table(&table)
            .map_err(err)?
            .arrow_schema();
        Ok(Self {
            name: name.to_owned(),
            table,
            arrow_schema,
            schema_version: schema.version,
            known: KnownTxns::default(),
            vacuumed_at: Instant::now(),
        })
    }

    /// The Arrow schema rows are decoded into.
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow_schema
    }

    /// Reads the newest log and returns each app id's `txn` version.
    pub async fn versions(&mut self, app_ids: &[String]) -> Result<Vec<Option<i64>>, DeltaError> {
        self.table
            .update_state()
            .await
            .map_err(|source| self.error_read(source))?;
        let mut out = Vec::with_capacity(app_ids.len());
        for app_id in app_ids {
            out.push(self.version_of(app_id).await?);
        }
        Ok(out)
    }

    /// `app_id`'s `txn` version in the table as last read or committed.
    async fn version_of(&mut self, app_id: &str) -> Result<Option<i64>, DeltaError> {
        if let Some(&known) = self.known.at(self.table.version()).get(app_id) {
            return Ok(known);
        }
        let read = self.read_version_of(app_id).await?;
        self.known.versions.insert(app_id.to_owned(), read);
        Ok(read)
    }

    async fn read_version_of(&self, app_id: &str) -> Result<Option<i64>, DeltaError> {
        let state = self.table.snapshot().map_err(|e| self.error_read(e))?;
        state
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await
            .map_err(|e| self.error_read(e))
    }

    fn error_read(&self, source: DeltaTableError) -> DeltaError {
        DeltaError::Read {
            table: self.name.clone(),
            source,
        }
    }

    /// Appends `batch` (possibly empty) and the `txn` updates in one commit.
    ///
    /// Files are written first; then the newest log is read and every
    /// app id must still hold its `expected` version, else the commit is
    /// abandoned as [`DeltaError::Fenced`]. Delta's conflict check then
    /// catches a concurrent commit with the same app id. On either kind of
    /// fencing the files just written are deleted.
    pub async fn commit(
        &mut self,
        batch: Option<RecordBatch>,
        txns: &[TxnUpdate],
        info: &CommitInfo,
    ) -> Result<Committed, DeltaError> {
        let started = Instant::now();
        let rows = batch.as_ref().map_or(0, RecordBatch::num_rows);
        let adds = match batch {
            Some(batch) if batch.num_rows() > 0 => self.write_files(batch).await?,
            _ => Vec::new(),
        };
        let files = adds.len();
        let result = self.commit_files(adds.clone(), txns, info).await;
        if let Err(e) = &result
            && e.is_fenced()
        {
            self.delete_files(&adds).await;
        }
        let version = result?;
        tracing::debug!(table = %self.name, version, rows, files, elapsed_ms = started.elapsed().as_millis(), "committed");
        Ok(Committed {
            version,
            rows,
            files,
        })
    }

    async fn write_files(&mut self, batch: RecordBatch) -> Result<Vec<Action>, DeltaError> {
        let err = |source| DeltaError::Write {
            table: self.name.clone(),
            source,
        };
        let mut writer = RecordBatchWriter::for_table(&self.table).map_err(err)?;
        writer.write(batch).await.map_err(err)?;
        let adds = writer.flush().await.map_err(err)?;
        crate::failpoint::hit("delta-after-write");
        Ok(adds.into_iter().map(Action::Add).collect())
    }

    async fn commit_files(
        &mut self,
        adds: Vec<Action>,
        txns: &[TxnUpdate],
        info: &CommitInfo,
    ) -> Result<u64, DeltaError> {
        self.table
            .update_state()
            .await
            .map_err(|source| self.error_read(source))?;
        for txn in txns {
            let found = self.version_of(&txn.app_id).await?;
            if found != txn.expected {
                return Err(DeltaError::Fenced {
                    table: self.name.clone(),
                    app_id: txn.app_id.clone(),
                    expected: txn.expected,
                    found,
                });
            }
        }
        let properties = CommitProperties::default()
            .with_application_transactions(
                txns.iter()
                    .map(|t| Transaction::new(&t.app_id, t.version))
                    .collect(),
            )
            .with_metadata(info.metadata(self.schema_version));
        let state = self.table.snapshot().map_err(|e| self.error_read(e))?;
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(state.metadata().partition_columns().to_vec()),
            predicate: None,
        };
        self.commit_actions(adds, operation, properties, txns).await
    }

    /// Commits `actions` on top of the table as last read; on success the
    /// writer's state is the committed version's.
    async fn commit_actions(
        &mut self,
        actions: Vec<Action>,
        operation: DeltaOperation,
        properties: CommitProperties,
        txns: &[TxnUpdate],
    ) -> Result<u64, DeltaError> {
        let state = self.table.snapshot().map_err(|e| self.error_read(e))?;
        let finalized = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(state), self.table.log_store(), operation)
            .await;
        match finalized {
            Ok(finalized) => {
                let version = finalized.version();
                self.table.state = Some(finalized.snapshot());
                self.known.committed(version, txns);
                Ok(version)
            }
            Err(DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(conflict),
            }) => Err(DeltaError::Conflict {
                table: self.name.clone(),
                reason: conflict.to_string(),
            }),
            Err(source) => Err(DeltaError::Commit {
                table: self.name.clone(),
                source,
            }),
        }
    }

    /// Rewrites the small files [`compact::pick`] chooses as one larger
    /// file (or a few, each up to [`compact::TARGET_FILE_SIZE`]) in a
    /// commit that changes no data: `remove` and `add` actions with
    /// `dataChange: false`, operation `OPTIMIZE`, no `txn`. Files are read
    /// one at a time and streamed into the new ones.
    ///
    /// The commit goes through only right on top of the version the files
    /// were chosen at; after any concurrent commit it is abandoned as
    /// [`DeltaError::Conflict`] and its files deleted. Delta's conflict
    /// check would let two compactions remove the same files (removals
    /// without data change do not conflict) and both add their rewrite,
    /// which would duplicate the rows. Returns `None` if nothing is due.
    pub async fn compact(&mut self, info: &CommitInfo) -> Result<Option<Compacted>, DeltaError> {
        let Some((removes, adds)) = self.rewrite_small_files().await? else {
            return Ok(None);
        };
        let removed = removes.len();
        let added = adds.len();
        let properties = CommitProperties::default()
            .with_max_retries(0)
            .with_metadata(info.metadata(self.schema_version));
        let operation = DeltaOperation::Optimize {
            predicate: None,
            target_size: i64::try_from(compact::TARGET_FILE_SIZE).unwrap_or(i64::MAX),
        };
        let mut actions = removes;
        actions.extend(adds.iter().cloned());
        match self
            .commit_actions(actions, operation, properties, &[])
            .await
        {
            Ok(version) => Ok(Some(Compacted {
                version,
                removed,
                added,
            })),
            Err(e) => {
                let lost = match &e {
                    DeltaError::Conflict { .. } => true,
                    DeltaError::Commit { source, .. } => matches!(
                        source,
                        DeltaTableError::Transaction {
                            source: TransactionError::MaxCommitAttempts(_)
                                | TransactionError::VersionAlreadyExists(_)
                        }
                    ),
                    _ => false,
                };
                if !lost {
                    // Whether the log references the files is unknown.
                    return Err(e);
                }
                self.delete_files(&adds).await;
                Err(DeltaError::Conflict {
                    table: self.name.clone(),
                    reason: "the table moved while its files were compacted".to_owned(),
                })
            }
        }
    }

    /// Writes the rows of the files due for compaction into new files:
    /// the `remove` actions of the old ones and the `add` actions of the
    /// new, or `None` if nothing is due.
    async fn rewrite_small_files(&self) -> Result<Option<(Vec<Action>, Vec<Action>)>, DeltaError> {
        let read = |source| self.error_read(source);
        let write = |source| DeltaError::Write {
            table: self.name.clone(),
            source,
        };
        let state = self.table.snapshot().map_err(read)?;
        let columns = state.metadata().partition_columns().to_vec();
        let schema = state.schema();
        let files: Vec<_> = state.log_data().into_iter().collect();
        let candidates: Vec<compact::Candidate> = files
            .iter()
            .map(|file| {
                let values = file.partition_values_map();
                compact::Candidate {
                    size: file.size(),
                    modified: file.modification_time(),
                    partition: columns
                        .iter()
                        .map(|c| values.get(c).cloned().flatten())
                        .collect(),
                }
            })
            .collect();
        let chosen = compact::pick(&candidates);
        if chosen.is_empty() {
            return Ok(None);
        }
        let store = self.table.object_store();
        let mut writer = RecordBatchWriter::for_table(&self.table)
            .map_err(write)?
            .with_target_file_size(compact::TARGET_FILE_SIZE);
        let mut removes = Vec::with_capacity(chosen.len());
        for i in chosen {
            let file = &files[i];
            let mut values = IndexMap::with_capacity(columns.len());
            for (column, raw) in columns.iter().zip(&candidates[i].partition) {
                let primitive = schema
                    .field(column)
                    .and_then(|f| f.data_type().as_primitive_opt())
                    .ok_or_else(|| DeltaError::SchemaMismatch {
                        table: self.name.clone(),
                        reason: format!("partition column `{column}` is not a primitive column"),
                    })?;
                let value = primitive
                    .parse_scalar(raw.as_deref().unwrap_or(""))
                    .map_err(|e| read(e.into()))?;
                values.insert(column.clone(), value);
            }
            let bytes = read::fetch(store.as_ref(), &file.object_store_path())
                .await
                .map_err(read)?;
            let rows = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .and_then(ParquetRecordBatchReaderBuilder::build)
                .map_err(|e| read(e.into()))?;
            for batch in rows {
                let batch = batch.map_err(|e| read(e.into()))?;
                writer
                    .write_partition(batch, &values, WriteMode::Default)
                    .await
                    .map_err(write)?;
            }
            removes.push(Action::Remove(file.remove_action(false)));
        }
        let adds = writer
            .flush()
            .await
            .map_err(write)?
            .into_iter()
            .map(|mut add| {
                add.data_change = false;
                Action::Add(add)
            })
            .collect();
        Ok(Some((removes, adds)))
    }

    /// Deletes the files no version within the retention period needs, if
    /// a vacuum is due (see [`VACUUM_AT_LEAST_EVERY`]): those a compaction removed
    /// longer ago than the table's `delta.deletedFileRetentionDuration`,
    /// and files older than that which no version references (a crash
    /// between writing and committing). Delta's VACUUM in full mode: it
    /// lists the table's files, and when it deletes any it records
    /// `VACUUM START` and `VACUUM END` in the log. Returns how many files
    /// it deleted, `None` if none was due.
    pub async fn vacuum_if_due(&mut self, info: &CommitInfo) -> Result<Option<usize>, DeltaError> {
        let retention = self
            .table
            .snapshot()
            .map_err(|e| self.error_read(e))?
            .table_config()
            .deleted_file_retention_duration();
        let every = (retention / 4).min(VACUUM_AT_LEAST_EVERY);
        if self.vacuumed_at.elapsed() < every {
            return Ok(None);
        }
        self.vacuum(info).await.map(Some)
    }

    /// [`Self::vacuum_if_due`], now.
    pub async fn vacuum(&mut self, info: &CommitInfo) -> Result<usize, DeltaError> {
        self.vacuumed_at = Instant::now();
        let (table, done) = self
            .table
            .clone()
            .vacuum()
            .with_mode(VacuumMode::Full)
            .with_commit_properties(
                CommitProperties::default().with_metadata(info.metadata(self.schema_version)),
            )
            .await
            .map_err(|source| DeltaError::Vacuum {
                table: self.name.clone(),
                source,
            })?;
        self.table = table;
        Ok(done.files_deleted.len())
    }

    /// Data files in the table as last read or committed.
    pub fn live_files(&self) -> usize {
        self.table
            .snapshot()
            .map_or(0, |state| state.log_data().num_files())
    }

    /// Best effort: a file left behind is unreferenced, never read, and
    /// reported by [`super::orphans`].
    async fn delete_files(&self, adds: &[Action]) {
        let paths: Vec<_> = adds
            .iter()
            .filter_map(|a| match a {
                Action::Add(add) => Some(Ok(deltalake::Path::from(add.path.as_str()))),
                _ => None,
            })
            .collect();
        if paths.is_empty() {
            return;
        }
        let mut deleted = self
            .table
            .object_store()
            .delete_stream(futures::stream::iter(paths).boxed());
        while let Some(result) = deleted.next().await {
            if let Err(e) = result {
                tracing::warn!(table = %self.name, error = %e, "cannot delete an uncommitted file");
            }
        }
    }

    /// The open table, for readers (row counts, lineage).
    pub fn table(&self) -> &DeltaTable {
        &self.table
    }
}

/// Brings an existing table's properties to `settings` with a metadata
/// commit. Not fatal: a host that loses the race to another host's commit
/// (or cannot write) keeps the table as it is and says so; the properties
/// only shape checkpoints and retention, never what is written.
async fn settle(name: &str, table: DeltaTable, settings: &TableSettings) -> DeltaTable {
    match settings.held_by(&table) {
        Ok(true) => return table,
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(table = name, error = %e, "cannot read the table's properties");
            return table;
        }
    }
    let kept = table.clone();
    let set = table
        .set_tbl_properties()
        .with_properties(settings.properties())
        .with_commit_properties(CommitProperties::default().with_max_retries(0))
        .await;
    match set {
        Ok(table) => {
            tracing::info!(table = name, properties = ?settings, "updated the table's properties");
            table
        }
        Err(e) => {
            tracing::warn!(table = name, error = %e, "could not update the table's properties; kept as they are");
            kept
        }
    }
}

/// An existing table must have the declared columns, types, nullability
/// and partitioning.
fn check_matches(
    name: &str,
    table: &DeltaTable,
    schema: &TableSchema,
    partition_by: &[String],
) -> Result<(), DeltaError> {
    let mismatch = |reason: String| DeltaError::SchemaMismatch {
        table: name.to_owned(),
        reason,
    };
    let state = table.snapshot().map_err(|source| DeltaError::Open {
        table: name.to_owned(),
        source,
    })?;
    let table_schema = state.schema();
    let actual: HashMap<&str, &StructField> = table_schema
        .fields()
        .map(|f| (f.name().as_str(), f))
        .collect::<HashMap<_, _>>();
    let declared = schema.fields();
    for field in &declared {
        match actual.get(field.name().as_str()) {
            None => {
                return Err(mismatch(format!(
                    "column `{}` is declared but not in the table",
                    field.name()
                )));
            }
            Some(a)
                if a.data_type() != field.data_type() || a.is_nullable() != field.is_nullable() =>
            {
                return Err(mismatch(format!(
                    "column `{}` is {:?} (nullable: {}) in the table but declared {:?} (nullable: {})",
                    field.name(),
                    a.data_type(),
                    a.is_nullable(),
                    field.data_type(),
                    field.is_nullable()
                )));
            }
            Some(_) => {}
        }
    }
    if actual.len() != declared.len() {
        let extra: Vec<&str> = actual
            .keys()
            .filter(|k| !declared.iter().any(|f| f.name() == *k))
            .copied()
            .collect();
        return Err(mismatch(format!(
            "the table has columns the schema does not declare: {}",
            extra.join(", ")
        )));
    }
    let actual_partitions = state.metadata().partition_columns();
    if actual_partitions != partition_by {
        return Err(mismatch(format!(
            "the table is partitioned by [{}], the manifest says [{}]",
            actual_partitions.join(", "),
            partition_by.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use deltalake::arrow::array::{Array as _, Date32Array, Int64Array};
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use deltalake::table::config::TablePropertiesExt as _;

    use super::{
        CommitInfo, DeltaError, KnownTxns, StorageOptions, TableSettings, TableWriter, TxnUpdate,
        interval,
    };
    use crate::sink::delta::{TableSchema, orphans, read};

    fn txn(app_id: &str, version: i64) -> TxnUpdate {
        TxnUpdate {
            app_id: app_id.to_owned(),
            expected: None,
            version,
        }
    }

    #[test]
    fn known_txn_versions_hold_only_while_the_table_moves_by_this_writers_commits() {
        let mut known = KnownTxns::default();
        known.at(Some(3)).insert("p0".to_owned(), Some(1));
        // Our commit right on top of version 3: what it wrote is known.
        known.committed(4, &[txn("p1", 9)]);
        let at_4 = known.at(Some(4));
        assert_eq!(at_4.get("p0"), Some(&Some(1)));
        assert_eq!(at_4.get("p1"), Some(&Some(9)));
        // Someone else committed version 5: nothing known holds at 5.
        assert!(known.at(Some(5)).is_empty());
        known.at(Some(5)).insert("p0".to_owned(), Some(2));
        // Our commit landed as 7 after a race with 6: forget everything.
        known.committed(7, &[txn("p0", 3)]);
        assert!(known.at(Some(7)).is_empty());
    }

    /// Ten rows per commit, half on each of two days: two files a commit.
    async fn append(table: &mut TableWriter, commit: i64) {
        let ids: Vec<i64> = (commit * 10..commit * 10 + 10).collect();
        let days: Vec<i32> = ids
            .iter()
            .map(|id| 20_000 + i32::from(id % 2 == 1))
            .collect();
        let batch = deltalake::arrow::array::RecordBatch::try_new(
            Arc::clone(table.arrow_schema()),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Date32Array::from(days)),
            ],
        )
        .unwrap();
        let update = TxnUpdate {
            app_id: "p0".to_owned(),
            expected: (commit > 0).then(|| commit - 1),
            version: commit,
        };
        table.commit(Some(batch), &[update], &info()).await.unwrap();
    }

    fn info() -> CommitInfo {
        CommitInfo {
            function: "f".to_owned(),
            component_digest: "sha256:test".to_owned(),
            trigger: "t".to_owned(),
            host_id: "h".to_owned(),
        }
    }

    /// Every `id` in the table, and how many times it appears in all.
    async fn ids(uri: &str) -> (BTreeSet<i64>, usize) {
        let table = read::open(uri).await.unwrap();
        let mut ids = BTreeSet::new();
        let mut count = 0;
        for batch in read::scan(&table).await.unwrap() {
            let column = batch.column_by_name("id").unwrap();
            let column = column.as_any().downcast_ref::<Int64Array>().unwrap();
            count += column.len();
            ids.extend(column.values().iter().copied());
        }
        (ids, count)
    }

    #[tokio::test]
    async fn compaction_keeps_every_row_once_and_a_second_compactor_of_the_same_files_gives_up() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().join("t").to_str().unwrap().to_owned();
        let settings = TableSettings {
            checkpoint_interval: 5,
            ..TableSettings::default()
        };
        let open = async || open_with(&uri, &settings).await;
        let mut writer = open().await;
        for commit in 0..7 {
            append(&mut writer, commit).await;
        }
        // Seven small files per day: nothing is due yet.
        assert!(writer.compact(&info()).await.unwrap().is_none());
        for commit in 7..12 {
            append(&mut writer, commit).await;
        }
        assert_eq!(writer.live_files(), 24);

        // A second writer reads the same version and so picks the same files.
        let mut other = open().await;
        let done = writer.compact(&info()).await.unwrap().unwrap();
        assert_eq!((done.removed, done.added), (12, 1));
        let lost = other.compact(&info()).await;
        assert!(
            matches!(lost, Err(DeltaError::Conflict { .. })),
            "the second compaction of the same files must give up: {lost:?}"
        );
        let (seen, count) = ids(&uri).await;
        assert_eq!((seen.len(), count), (120, 120), "every row once");
        assert_eq!(orphans(&writer).await.unwrap(), Vec::<String>::new());

        // The other day next, then nothing; appends go on on top.
        assert!(writer.compact(&info()).await.unwrap().is_some());
        assert_eq!(writer.live_files(), 2);
        assert!(writer.compact(&info()).await.unwrap().is_none());
        append(&mut writer, 12).await;
        assert_eq!(
            writer.versions(&["p0".to_owned()]).await.unwrap(),
            [Some(12)]
        );
        let (seen, count) = ids(&uri).await;
        assert_eq!((seen.len(), count), (130, 130));
        assert_eq!(seen.last(), Some(&129));
        // A reader opening the table afresh sees the same rows (the
        // checkpoints written meanwhile hold the compactions too).
        let reopened = open().await;
        assert_eq!(reopened.live_files(), 4);
    }

    #[test]
    fn retention_is_written_as_a_delta_interval_in_its_largest_whole_unit() {
        let of = |seconds| interval(Duration::from_secs(seconds));
        assert_eq!(of(7 * 24 * 3600), "interval 1 weeks");
        assert_eq!(of(2 * 24 * 3600), "interval 2 days");
        assert_eq!(of(90 * 60), "interval 90 minutes");
        assert_eq!(of(3600), "interval 1 hours");
        assert_eq!(of(61), "interval 61 seconds");
        assert_eq!(of(0), "interval 0 seconds");
    }

    fn day_table() -> TableSchema {
        TableSchema::parse(
            r#"{"version": 1, "columns": [{"name": "id", "type": "long", "nullable": false},
                {"name": "day", "type": "date", "nullable": false}]}"#,
        )
        .unwrap()
    }

    async fn open_with(uri: &str, settings: &TableSettings) -> TableWriter {
        TableWriter::open(
            "t",
            uri,
            &StorageOptions::default(),
            &day_table(),
            &["day".to_owned()],
            settings,
        )
        .await
        .unwrap()
    }

    /// `remove` actions (tombstones) in the checkpoint of `version`.
    fn tombstones_in_checkpoint(uri: &str, version: u64) -> usize {
        let path = Path::new(uri).join(format!("_delta_log/{version:020}.checkpoint.parquet"));
        let file = std::fs::File::open(&path).unwrap();
        ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .map(|batch| {
                let batch = batch.unwrap();
                let remove = batch.column_by_name("remove").unwrap();
                remove.len() - remove.null_count()
            })
            .sum()
    }

    #[tokio::test]
    async fn a_checkpoint_carries_the_tombstones_of_the_retention_period_only() {
        let kept = tempfile::tempdir().unwrap();
        let expired = tempfile::tempdir().unwrap();
        let mut counts = Vec::new();
        for (dir, retention) in [(&kept, 3600), (&expired, 1)] {
            let uri = dir.path().to_str().unwrap();
            let settings = TableSettings {
                checkpoint_interval: 5,
                history: Duration::from_secs(retention),
            };
            let mut writer = open_with(uri, &settings).await;
            // Versions 1-12: two files each; 13 and 14: each day compacted.
            for commit in 0..12 {
                append(&mut writer, commit).await;
            }
            let first = writer.compact(&info()).await.unwrap().unwrap();
            let second = writer.compact(&info()).await.unwrap().unwrap();
            assert_eq!(first.removed + second.removed, 24);
            std::thread::sleep(Duration::from_millis(1500));
            // Versions 15-19; delta-rs checkpoints every fifth, 19.
            for commit in 12..17 {
                append(&mut writer, commit).await;
            }
            assert_eq!(writer.table().version(), Some(19));
            counts.push(tombstones_in_checkpoint(uri, 19));
            let (seen, count) = ids(uri).await;
            assert_eq!((seen.len(), count), (170, 170), "every row once");
        }
        assert_eq!(
            counts,
            [24, 0],
            "an hour's retention keeps all 24 removed files, a second's none"
        );
    }

    #[tokio::test]
    async fn an_existing_table_takes_the_settings_it_is_opened_with() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap();
        let first = TableSettings::default();
        let writer = open_with(uri, &first).await;
        assert_eq!(writer.table().version(), Some(0));
        let config = |writer: &TableWriter| {
            let config = writer.table().snapshot().unwrap().table_config();
            (
                config.checkpoint_interval().get(),
                config.deleted_file_retention_duration(),
                config.log_retention_duration(),
            )
        };
        let hour = Duration::from_secs(3600);
        assert_eq!(config(&writer), (10, hour, hour));

        let second = TableSettings {
            checkpoint_interval: 50,
            history: Duration::from_secs(30 * 60),
        };
        let mut writer = open_with(uri, &second).await;
        let half_hour = Duration::from_secs(1800);
        assert_eq!(config(&writer), (50, half_hour, half_hour));
        assert_eq!(writer.table().version(), Some(1), "one metadata commit");
        append(&mut writer, 0).await;
        // Opened again with the same settings: nothing to commit.
        let writer = open_with(uri, &second).await;
        assert_eq!(writer.table().version(), Some(2));
        assert_eq!(config(&writer), (50, half_hour, half_hour));
    }

    /// Parquet files under the table's directory.
    fn parquet_on_disk(dir: &Path) -> usize {
        walkdir(dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .filter(|p| !p.to_string_lossy().contains("_delta_log"))
            .count()
    }

    fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(walkdir(&path));
            } else {
                found.push(path);
            }
        }
        found
    }

    #[tokio::test]
    async fn a_vacuum_deletes_files_removed_or_left_longer_ago_than_the_retention_only() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().to_str().unwrap();
        let settings = TableSettings {
            checkpoint_interval: 5,
            history: Duration::from_secs(2),
        };
        let mut writer = open_with(uri, &settings).await;
        for commit in 0..12 {
            append(&mut writer, commit).await;
        }
        // A crash between writing and committing leaves a file behind.
        let leftover = dir.path().join("day=2024-10-04/part-00000-crash.parquet");
        std::fs::copy(
            walkdir(dir.path())
                .into_iter()
                .find(|p| p.extension().is_some_and(|e| e == "parquet"))
                .unwrap(),
            &leftover,
        )
        .unwrap();
        writer.compact(&info()).await.unwrap().unwrap();
        writer.compact(&info()).await.unwrap().unwrap();
        assert_eq!(parquet_on_disk(dir.path()), 24 + 1 + 2);

        // Within the retention nothing goes, and nothing is recorded.
        let version = writer.table().version();
        assert_eq!(writer.vacuum(&info()).await.unwrap(), 0);
        assert_eq!(writer.table().version(), version);

        std::thread::sleep(Duration::from_millis(2500));
        // A file written just now is younger than the retention: kept.
        let fresh = dir.path().join("day=2024-10-04/part-00001-fresh.parquet");
        std::fs::copy(&leftover, &fresh).unwrap();
        assert_eq!(writer.vacuum(&info()).await.unwrap(), 24 + 1);
        assert_eq!(parquet_on_disk(dir.path()), 2 + 1);
        assert!(fresh.exists() && !leftover.exists());
        let (seen, count) = ids(uri).await;
        assert_eq!((seen.len(), count), (120, 120), "every row once");
        // Appends go on on top of the vacuum's commits.
        append(&mut writer, 12).await;
        let (seen, count) = ids(uri).await;
        assert_eq!((seen.len(), count), (130, 130));
    }
}
