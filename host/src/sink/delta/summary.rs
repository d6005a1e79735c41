//! What `weir table` shows of a table: version, files and rows (from the
//! log's statistics, no data read), rows per partition, the schema, and
//! its newest rows.

use std::collections::{BTreeMap, HashSet};

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;

use super::{DeltaError, read};

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

/// Up to `n` of the table's newest rows, newest file first: the live
/// files are read newest first (by the time they were written) and of
/// each its last rows are taken, in the order they were written. A
/// compacted file holds older rows than the appends made after it.
pub async fn newest_rows(table: &DeltaTable, n: usize) -> Result<Vec<RecordBatch>, DeltaError> {
    let state = table.snapshot().map_err(|source| DeltaError::Read {
        table: table.table_url().to_string(),
        source,
    })?;
    let mut files: Vec<(i64, String)> = state
        .log_data()
        .into_iter()
        .map(|file| (file.modification_time(), file.path().into_owned()))
        .collect();
    files.sort_by(|a, b| b.cmp(a));
    let mut out = Vec::new();
    let mut left = n;
    for (_, path) in files {
        if left == 0 {
            break;
        }
        let batches = read::scan_files(table, Some(&HashSet::from([path]))).await?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut skip = rows.saturating_sub(left);
        for batch in batches {
            let from = skip.min(batch.num_rows());
            skip -= from;
            if from < batch.num_rows() {
                left -= batch.num_rows() - from;
                out.push(batch.slice(from, batch.num_rows() - from));
            }
        }
    }
    Ok(out)
}
