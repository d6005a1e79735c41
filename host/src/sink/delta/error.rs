//! Errors of the Delta sink.

use deltalake::DeltaTableError;

/// Why a Delta table could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// A schema file could not be read.
    #[error("cannot read table schema `{path}`")]
    SchemaFile {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A schema file is not a valid schema.
    #[error("table schema `{path}`: {reason}")]
    Schema {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The table could not be opened or created.
    #[error("cannot open Delta table `{table}`")]
    Open {
        /// Table name.
        table: String,
        /// delta-rs' error.
        #[source]
        source: DeltaTableError,
    },
    /// The table exists with other columns or partitioning than declared.
    #[error("Delta table `{table}` does not match its declared schema: {reason}")]
    SchemaMismatch {
        /// Table name.
        table: String,
        /// The first difference.
        reason: String,
    },
    /// The table's log could not be read.
    #[error("cannot read the log of Delta table `{table}`")]
    Read {
        /// Table name.
        table: String,
        /// delta-rs' error.
        #[source]
        source: DeltaTableError,
    },
    /// Parquet files could not be written.
    #[error("cannot write parquet files to Delta table `{table}`")]
    Write {
        /// Table name.
        table: String,
        /// delta-rs' error.
        #[source]
        source: DeltaTableError,
    },
    /// The commit failed for a reason other than fencing; whether the
    /// files are referenced is decided by the log, so they are left alone.
    #[error("cannot commit to Delta table `{table}`")]
    Commit {
        /// Table name.
        table: String,
        /// delta-rs' error.
        #[source]
        source: DeltaTableError,
    },
    /// Another writer advanced one of this commit's app ids first: the
    /// partition has moved to another host (DESIGN.md §5.7).
    #[error(
        "Delta table `{table}`: `{app_id}` is at version {found:?}, this host expected {expected:?}; another host owns the partition"
    )]
    Fenced {
        /// Table name.
        table: String,
        /// The app id that moved.
        app_id: String,
        /// What this host expected.
        expected: Option<i64>,
        /// What the log holds.
        found: Option<i64>,
    },
    /// A VACUUM could not list, delete or record its work.
    #[error("cannot vacuum Delta table `{table}`")]
    Vacuum {
        /// Table name.
        table: String,
        /// delta-rs' error.
        #[source]
        source: DeltaTableError,
    },
    /// Delta's own conflict check refused the commit (a concurrent commit
    /// with the same app id).
    #[error("Delta table `{table}`: concurrent commit: {reason}")]
    Conflict {
        /// Table name.
        table: String,
        /// delta-rs' description.
        reason: String,
    },
}

impl DeltaError {
    /// Whether the commit lost to another writer of the same partitions,
    /// so the batch must be abandoned and the partitions re-read.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Self::Fenced { .. } | Self::Conflict { .. })
    }
}
