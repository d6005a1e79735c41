//! The Delta Lake sink of Kafka-triggered functions: one [`TableWriter`] per
//! output table plus the dead-letter table, JSON rows or typed columns →
//! Arrow → parquet, one commit per flush per table with `txn` actions
//! (DESIGN.md §5), small files compacted as they accumulate, on a local
//! path or S3-compatible object storage. It does not decide which
//! messages go where; the Kafka trigger does.

mod columns;
mod compact;
mod dead_letter;
mod error;
pub mod lineage;
pub mod read;
mod rows;
mod schema;
pub mod storage;
pub mod summary;
mod table;

use std::collections::HashSet;

use futures::TryStreamExt;

pub use columns::assemble;
pub use dead_letter::{DeadLetter, DeadLetterKind};
pub use error::DeltaError;
pub use rows::{DecodedRows, concat, decode, without};
pub use schema::{Column, TableSchema};
pub use storage::StorageOptions;
pub use table::{Committed, Compacted, TableSettings, TableWriter, TxnUpdate};

/// What every commit's `commitInfo` records: the lineage of its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The function (component id).
    pub function: String,
    /// sha256 of the component that produced the rows.
    pub component_digest: String,
    /// The trigger id.
    pub trigger: String,
    /// This host process (hostname + a random suffix).
    pub host_id: String,
}

impl CommitInfo {
    fn metadata(&self, schema_version: u32) -> Vec<(String, serde_json::Value)> {
        vec![
            ("weir.function".to_owned(), self.function.clone().into()),
            (
                "weir.componentDigest".to_owned(),
                self.component_digest.clone().into(),
            ),
            ("weir.trigger".to_owned(), self.trigger.clone().into()),
            ("weir.hostId".to_owned(), self.host_id.clone().into()),
            ("weir.schemaVersion".to_owned(), schema_version.into()),
        ]
    }
}

/// The `txn` app id of one table's progress through one partition
/// (DESIGN.md §5.1). The table is not part of it: each table has its own log.
pub fn app_id(app: &str, component: &str, topic: &str, partition: i32) -> String {
    format!("weir:{app}:{component}:{topic}:{partition}")
}

/// Parquet files under the table's directory that the log neither holds
/// nor removed within the retention period: left by a host that crashed
/// between writing files and committing them, or removed (compacted) so
/// long ago that no reader may still need them.
pub async fn orphans(table: &TableWriter) -> Result<Vec<String>, DeltaError> {
    let delta = table.table();
    let err = |source| DeltaError::Read {
        table: table.name.clone(),
        source,
    };
    let state = delta.snapshot().map_err(err)?;
    let mut referenced: HashSet<String> = state
        .log_data()
        .into_iter()
        .map(|add| add.object_store_path().to_string())
        .collect();
    let log_store = delta.log_store();
    let mut removed = state.all_tombstones(log_store.as_ref());
    while let Some(tombstone) = removed.try_next().await.map_err(err)? {
        let path = tombstone.path();
        let path = object_store::path::Path::parse(path.as_ref())
            .unwrap_or_else(|_| object_store::path::Path::from(path.as_ref()));
        referenced.insert(path.to_string());
    }
    let listed: Vec<_> = delta
        .object_store()
        .list(None)
        .try_collect()
        .await
        .map_err(|e| err(e.into()))?;
    let mut orphans: Vec<String> = listed
        .into_iter()
        .map(|meta| meta.location.to_string())
        .filter(|p| {
            p.ends_with(".parquet") && !p.starts_with("_delta_log") && !referenced.contains(p)
        })
        .collect();
    orphans.sort();
    Ok(orphans)
}
