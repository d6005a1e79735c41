//! Reading a Delta table back: every row of the current version, straight
//! from its parquet files (no query engine). Used by `weir table` and tests.

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use object_store::ObjectStoreExt as _;

use super::DeltaError;

/// Opens the table at `uri` (a path or URL) at its newest version.
pub async fn open(uri: &str) -> Result<DeltaTable, DeltaError> {
    let err = |source| DeltaError::Open {
        table: uri.to_owned(),
        source,
    };
    let url = deltalake::ensure_table_uri(uri).map_err(err)?;
    deltalake::open_table(url).await.map_err(err)
}

/// Every row of the table's current version, one batch per file chunk.
/// Partition columns are not in the files (Delta keeps them in the log),
/// so they are absent here.
pub async fn scan(table: &DeltaTable) -> Result<Vec<RecordBatch>, DeltaError> {
    let name = table.table_url().to_string();
    let err = |source| DeltaError::Read {
        table: name.clone(),
        source,
    };
    let state = table.snapshot().map_err(err)?;
    let store = table.object_store();
    let mut batches = Vec::new();
    for add in state.log_data() {
        let path = add.object_store_path();
        let bytes = store
            .get(&path)
            .await
            .map_err(|e| err(e.into()))?
            .bytes()
            .await
            .map_err(|e| err(e.into()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| err(e.into()))?;
        for batch in reader {
            batches.push(batch.map_err(|e| err(e.into()))?);
        }
    }
    Ok(batches)
}
