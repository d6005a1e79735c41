//! Reading a Delta table back: every row of the current version, straight
//! from its parquet files (no query engine). Used by `weir table` and tests.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::{ArrayRef, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::arrow::error::ArrowError;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use object_store::ObjectStoreExt as _;

use super::DeltaError;
use super::storage::StorageOptions;

/// Opens the table at `uri` (a path or URL) at its newest version, its
/// object store configured from the environment alone.
pub async fn open(uri: &str) -> Result<DeltaTable, DeltaError> {
    open_with(uri, &StorageOptions::default()).await
}

/// Like [`open`], with the table's storage options from the manifest.
pub async fn open_with(uri: &str, storage: &StorageOptions) -> Result<DeltaTable, DeltaError> {
    let err = |source| DeltaError::Open {
        table: uri.to_owned(),
        source,
    };
    let url = deltalake::ensure_table_uri(uri).map_err(err)?;
    let options = storage.for_url(&url);
    deltalake::open_table_with_storage_options(url, options)
        .await
        .map_err(err)
}

/// Every row of the table's current version, one batch per file chunk.
/// Partition columns are not in the files (Delta keeps them in the log);
/// they are appended to each batch as text columns, as the log spells them.
pub async fn scan(table: &DeltaTable) -> Result<Vec<RecordBatch>, DeltaError> {
    scan_files(table, None).await
}

/// Like [`scan`], but only the files whose log path is in `only`.
pub async fn scan_files(
    table: &DeltaTable,
    only: Option<&HashSet<String>>,
) -> Result<Vec<RecordBatch>, DeltaError> {
    let name = table.table_url().to_string();
    let err = |source| DeltaError::Read {
        table: name.clone(),
        source,
    };
    let state = table.snapshot().map_err(err)?;
    let store = table.object_store();
    let partition_columns = state.metadata().partition_columns().to_vec();
    let mut batches = Vec::new();
    for add in state.log_data() {
        if only.is_some_and(|only| !only.contains(add.path().as_ref())) {
            continue;
        }
        let values = add.partition_values_map();
        let bytes = fetch(store.as_ref(), &add.object_store_path())
            .await
            .map_err(err)?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| err(e.into()))?;
        for batch in reader {
            let batch = batch.map_err(|e| err(e.into()))?;
            let batch = with_partition_values(batch, &partition_columns, &values)
                .map_err(|e| err(e.into()))?;
            batches.push(batch);
        }
    }
    Ok(batches)
}

/// `batch` with one text column per partition column, every row holding the
/// file's value (null for a null partition value).
fn with_partition_values(
    batch: RecordBatch,
    columns: &[String],
    values: &HashMap<String, Option<String>>,
) -> Result<RecordBatch, ArrowError> {
    if columns.is_empty() {
        return Ok(batch);
    }
    let rows = batch.num_rows();
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
    for name in columns {
        let value = values.get(name).cloned().flatten();
        fields.push(Field::new(name, DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from(vec![value; rows])));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

/// The whole object at `path` of the table's store.
pub(super) async fn fetch(
    store: &dyn object_store::ObjectStore,
    path: &object_store::path::Path,
) -> Result<bytes::Bytes, deltalake::DeltaTableError> {
    Ok(store.get(path).await?.bytes().await?)
}
