//! Rows a transform wrote through `weir-guest`, natively, in the form the
//! host takes from `typed-transformer` guests: the same vectors, moved.
//! Shared by the benchmarks that run transforms natively.

use weir::runtime::{BatchOutput, Column, ColumnValues, TableOutput};

/// One column's values as the host holds them.
fn values(values: weir_guest::Values) -> ColumnValues {
    match values {
        weir_guest::Values::Int64(v) => ColumnValues::Int64(v),
        weir_guest::Values::Float64(v) => ColumnValues::Float64(v),
        weir_guest::Values::Boolean(v) => ColumnValues::Boolean(v),
        weir_guest::Values::Utf8 { offsets, bytes } => ColumnValues::Utf8 { offsets, bytes },
        weir_guest::Values::Binary { offsets, bytes } => ColumnValues::Binary { offsets, bytes },
    }
}

/// A table's columns as the host holds them.
pub fn columns(columns: Vec<weir_guest::Column>) -> Vec<Column> {
    columns
        .into_iter()
        .map(|column| {
            let (name, v, valid) = column.into_parts();
            Column {
                name,
                values: values(v),
                valid,
            }
        })
        .collect()
}

/// The whole output of a batch.
pub fn output(out: weir_guest::Output) -> BatchOutput {
    let (tables, rejects) = out.into_parts();
    let tables = tables
        .into_iter()
        .map(|table| {
            let (table, sources, c) = table.into_parts();
            TableOutput::Columns {
                table,
                sources,
                columns: columns(c),
            }
        })
        .collect();
    BatchOutput {
        tables,
        rejects: rejects
            .into_iter()
            .map(|(i, reason)| (i as usize, reason))
            .collect(),
    }
}
