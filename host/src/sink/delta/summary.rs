//! What `weir table` shows of a table: version, files and rows (from the
//! log's statistics, no data read), rows per partition, the schema, and
//! the rows its newest commits added.

use std::collections::{BTreeMap, HashSet};

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;

use super::{DeltaError, lineage, read};

/// A table at its newest version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The table version.
    pub version: u64,
    /// Data files in this version.
    pub files: usize,
    /// Rows, from the files' statistics.
    pub rows: u64,
    /// Rows per partition (`date=2026-11-25`); one entry `""` if unpartitioned.
    pub partitions: BTreeMap<String, u64>,
    /// Columns: name, Delta type, nullable.
    pub columns: Vec<(String, String, bool)>,
}

/// Reads the summary from the log alone.
pub fn summary(table: &DeltaTable) -> Result<Summary, DeltaError> {
    let err = |source| DeltaError::Read {
        table: table.table_url().to_string(),
        source,
    };
    let state = table.snapshot().map_err(err)?;
    let partition_columns = state.metadata().partition_columns().to_vec();
    let (mut files, mut rows) = (0, 0);
    let mut partitions = BTreeMap::new();
    for add in state.log_data() {
        let values = add.partition_values_map();
        let key: Vec<String> = partition_columns
            .iter()
            .map(|c| {
                let value = values.get(c).cloned().flatten();
                format!("{c}={}", value.as_deref().unwrap_or("null"))
            })
            .collect();
        let n = add.num_records().unwrap_or(0) as u64;
        *partitions.entry(key.join("/")).or_default() += n;
        files += 1;
        rows += n;
    }
    let columns = state
        .schema()
        .fields()
        .map(|f| {
            let ty = serde_json::to_value(f.data_type())
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| f.data_type().to_string());
            (f.name().clone(), ty, f.is_nullable())
        })
        .collect();
    Ok(Summary {
        version: table.version().unwrap_or_default(),
        files,
        rows,
        partitions,
        columns,
    })
}

/// How many of the newest commits [`newest_rows`] needs at most.
pub const NEWEST_ROWS_COMMITS: usize = 50;

/// Up to `n` rows added by the newest of `commits` (the table's last ones,
/// oldest first, as [`lineage::commits`] returns them; the newest
/// [`NEWEST_ROWS_COMMITS`] are looked at), newest commit's first.
pub async fn newest_rows(
    table: &DeltaTable,
    commits: &[lineage::Commit],
    n: usize,
) -> Result<Vec<RecordBatch>, DeltaError> {
    let mut paths = HashSet::new();
    let mut counted = 0;
    for commit in commits.iter().rev().take(NEWEST_ROWS_COMMITS) {
        if counted >= n {
            break;
        }
        counted += usize::try_from(commit.rows).unwrap_or(usize::MAX);
        paths.extend(commit.paths.iter().cloned());
    }
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let batches = read::scan_files(table, Some(&paths)).await?;
    let mut out = Vec::new();
    let mut left = n;
    for batch in batches {
        if left == 0 {
            break;
        }
        let take = batch.num_rows().min(left);
        out.push(batch.slice(0, take));
        left -= take;
    }
    Ok(out)
}
