//! Typed columns (as `typed-transformer` guests return them) → one Arrow
//! `RecordBatch` in a table's schema, without parsing: each column's
//! vector becomes an Arrow buffer as it is, then is cast to the column's
//! type where the two differ (`long` → `integer`, text → `date`, …).
//!
//! What cannot be trusted is checked. A problem with a whole column — a
//! name the schema lacks, a variant that does not fit the column's type,
//! a length other than the row count, malformed offsets or bitmap, a
//! non-null column left out — dead-letters every message with rows in the
//! table. A problem with one value — out of the column's range, text that
//! is not UTF-8 or not a date, null in a non-null column — dead-letters
//! that row's message. Every reason names the column.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, RecordBatch,
    RecordBatchOptions, StringArray, new_null_array,
};
use deltalake::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use deltalake::arrow::compute::{CastOptions, cast_with_options, filter};
use deltalake::arrow::datatypes::{DataType, Field, SchemaRef};

use super::rows::DecodedRows;
use crate::runtime::{Column, ColumnValues};

/// Builds `schema`'s batch from `columns`, one value per row of `sources`
/// (the message index of each row). Returns the rows of messages without
/// problems and, per message with one, the first reason.
pub fn assemble(
    schema: &SchemaRef,
    sources: &[u32],
    columns: Vec<Column>,
) -> (DecodedRows, BTreeMap<usize, String>) {
    let rows = sources.len();
    let sources: Vec<usize> = sources.iter().map(|s| *s as usize).collect();
    let mut by_name: BTreeMap<String, Column> = BTreeMap::new();
    for column in columns {
        if schema.field_with_name(&column.name).is_err() {
            return every_message(
                schema,
                &sources,
                format!("unknown column `{}`", column.name),
            );
        }
        let name = column.name.clone();
        if by_name.insert(name.clone(), column).is_some() {
            return every_message(schema, &sources, format!("column `{name}` given twice"));
        }
    }
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    let mut bad_rows: BTreeMap<usize, String> = BTreeMap::new();
    for field in schema.fields() {
        let array = match by_name.remove(field.name()) {
            Some(column) => match column_array(field, column, rows) {
                Ok((array, bad)) => {
                    for (row, reason) in bad {
                        bad_rows.entry(row).or_insert(reason);
                    }
                    array
                }
                Err(reason) => return every_message(schema, &sources, reason),
            },
            None if field.is_nullable() => new_null_array(field.data_type(), rows),
            None => {
                return every_message(
                    schema,
                    &sources,
                    format!("missing non-null column `{}`", field.name()),
                );
            }
        };
        if !field.is_nullable() && array.null_count() > 0 {
            for row in 0..rows {
                if array.is_null(row) {
                    bad_rows.entry(row).or_insert_with(|| {
                        format!("column `{}` is null, but it is not nullable", field.name())
                    });
                }
            }
        }
        arrays.push(array);
    }
    let mut bad: BTreeMap<usize, String> = BTreeMap::new();
    for (row, reason) in bad_rows {
        bad.entry(sources[row]).or_insert(reason);
    }
    // Every row of a message with a bad row goes, before the batch is
    // built: a null in a non-null column would not even make a batch.
    let (arrays, sources) = if bad.is_empty() {
        (arrays, sources)
    } else {
        let keep: BooleanArray = sources.iter().map(|s| Some(!bad.contains_key(s))).collect();
        let arrays: Result<Vec<ArrayRef>, _> = arrays.iter().map(|a| filter(a, &keep)).collect();
        match arrays {
            Ok(arrays) => (
                arrays,
                sources
                    .into_iter()
                    .filter(|s| !bad.contains_key(s))
                    .collect(),
            ),
            // A mask of the arrays' own length cannot fail to apply.
            Err(e) => {
                return every_message(
                    schema,
                    &sources,
                    format!("cannot drop the invalid rows: {e}"),
                );
            }
        }
    };
    let options = RecordBatchOptions::new().with_row_count(Some(sources.len()));
    match RecordBatch::try_new_with_options(Arc::clone(schema), arrays, &options) {
        Ok(batch) => (DecodedRows { batch, sources }, bad),
        // Every array was built or cast to its field's type and length.
        Err(e) => every_message(schema, &sources, format!("cannot assemble the rows: {e}")),
    }
}

/// No rows, and `reason` for every message in `sources`.
fn every_message(
    schema: &SchemaRef,
    sources: &[usize],
    reason: String,
) -> (DecodedRows, BTreeMap<usize, String>) {
    let bad = sources.iter().map(|s| (*s, reason.clone())).collect();
    let rows = DecodedRows {
        batch: RecordBatch::new_empty(Arc::clone(schema)),
        sources: Vec::new(),
    };
    (rows, bad)
}

/// One column as an array of `field`'s type, and the rows whose value does
/// not fit it (reasons by row); `Err` for a problem with the whole column.
fn column_array(
    field: &Field,
    column: Column,
    rows: usize,
) -> Result<(ArrayRef, BTreeMap<usize, String>), String> {
    let name = field.name();
    let target = field.data_type();
    let nulls = match column.valid {
        None => None,
        Some(bitmap) if bitmap.len() >= rows.div_ceil(8) => Some(NullBuffer::new(
            BooleanBuffer::new(Buffer::from_vec(bitmap), 0, rows),
        )),
        Some(bitmap) => {
            return Err(format!(
                "column `{name}`: a validity bitmap of {} bytes for {rows} rows",
                bitmap.len()
            ));
        }
    };
    let count = column.values.len();
    if count != rows {
        return Err(format!(
            "column `{name}` has {count} values for {rows} rows"
        ));
    }
    let fits = matches!(
        (&column.values, target),
        (
            ColumnValues::Int64(_),
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::Date32
                | DataType::Timestamp(..),
        ) | (
            ColumnValues::Float64(_),
            DataType::Float32 | DataType::Float64
        ) | (ColumnValues::Boolean(_), DataType::Boolean)
            | (
                ColumnValues::Utf8 { .. },
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Date32
                    | DataType::Timestamp(..),
            )
            | (
                ColumnValues::Binary { .. },
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView,
            )
    );
    if !fits {
        return Err(format!(
            "column `{name}` holds {}, which does not fit its type {target}",
            column.values.kind()
        ));
    }
    let mut bad = BTreeMap::new();
    let natural: ArrayRef = match column.values {
        ColumnValues::Int64(v) => Arc::new(Int64Array::new(ScalarBuffer::from(v), nulls)),
        ColumnValues::Float64(v) => Arc::new(Float64Array::new(ScalarBuffer::from(v), nulls)),
        ColumnValues::Boolean(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(v), nulls)),
        ColumnValues::Utf8 { offsets, bytes } => {
            let offsets = offsets_of(name, &offsets, bytes.len())?;
            // Buffers are shared, not copied: a failed check keeps them.
            let values = Buffer::from_vec(bytes);
            match StringArray::try_new(offsets.clone(), values.clone(), nulls.clone()) {
                Ok(array) => Arc::new(array),
                // Some row is not UTF-8: it becomes null and its message a
                // dead letter; the others stay.
                Err(_) => {
                    let text = |row: usize| {
                        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                        std::str::from_utf8(&values[start..end]).ok()
                    };
                    let array: StringArray = (0..rows)
                        .map(|row| {
                            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                                return None;
                            }
                            let value = text(row);
                            if value.is_none() {
                                bad.insert(row, format!("column `{name}`: the text is not UTF-8"));
                            }
                            value
                        })
                        .collect();
                    Arc::new(array)
                }
            }
        }
        ColumnValues::Binary { offsets, bytes } => {
            let offsets = offsets_of(name, &offsets, bytes.len())?;
            Arc::new(BinaryArray::new(offsets, Buffer::from_vec(bytes), nulls))
        }
    };
    if natural.data_type() == target {
        return Ok((natural, bad));
    }
    // Days arrive as integers; arrow casts dates from 32-bit ones.
    let natural = if *target == DataType::Date32 && *natural.data_type() == DataType::Int64 {
        cast(&natural, &DataType::Int32, name)?
    } else {
        natural
    };
    let cast = cast(&natural, target, name)?;
    // A safe cast turns what does not fit into null: those rows are bad.
    if cast.null_count() > natural.null_count() {
        for row in 0..rows {
            if natural.is_valid(row) && cast.is_null(row) {
                bad.entry(row).or_insert_with(|| {
                    format!("column `{name}`: a value that does not fit its type {target}")
                });
            }
        }
    }
    Ok((cast, bad))
}

fn cast(array: &ArrayRef, to: &DataType, name: &str) -> Result<ArrayRef, String> {
    let options = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    cast_with_options(array, to, &options)
        .map_err(|e| format!("column `{name}`: cannot convert to {to}: {e}"))
}

/// Arrow offsets from a guest's: from 0, never decreasing, ending at the
/// byte count, each within `i32`.
fn offsets_of(name: &str, offsets: &[u32], bytes: usize) -> Result<OffsetBuffer<i32>, String> {
    let malformed = |why: &str| format!("column `{name}`: malformed offsets ({why})");
    if offsets.first() != Some(&0) {
        return Err(malformed("the first is not 0"));
    }
    if offsets.last().map(|l| *l as usize) != Some(bytes) {
        return Err(malformed("the last is not the byte count"));
    }
    if offsets.windows(2).any(|w| w[1] < w[0]) {
        return Err(malformed("they decrease"));
    }
    let converted: Vec<i32> = offsets
        .iter()
        .map(|o| i32::try_from(*o))
        .collect::<Result<_, _>>()
        .map_err(|_| malformed("past 2 GiB"))?;
    Ok(OffsetBuffer::new(ScalarBuffer::from(converted)))
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::array::{Date32Array, Int32Array, TimestampMicrosecondArray};
    use deltalake::arrow::datatypes::{Schema, TimeUnit};

    use super::*;
    use crate::runtime::ColumnValues as V;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("small", DataType::Int32, true),
            Field::new("day", DataType::Date32, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("name", DataType::Utf8, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("x", DataType::Float64, true),
        ]))
    }

    fn text(values: &[&str]) -> V {
        let mut offsets = vec![0];
        let mut bytes = Vec::new();
        for v in values {
            bytes.extend_from_slice(v.as_bytes());
            offsets.push(u32::try_from(bytes.len()).unwrap());
        }
        V::Utf8 { offsets, bytes }
    }

    fn col(name: &str, values: V) -> Column {
        Column {
            name: name.to_owned(),
            values,
            valid: None,
        }
    }

    fn ids(n: i64) -> Column {
        col("id", V::Int64((0..n).collect()))
    }

    #[test]
    fn columns_become_the_tables_types_and_left_out_ones_are_null() {
        let columns = vec![
            ids(3),
            col("small", V::Int64(vec![1, -2, 3])),
            // Days as integers, and as text.
            col("day", V::Int64(vec![0, 19_669, 1])),
            col("at", V::Int64(vec![1_699_405_549_000_000, 0, 1])),
            Column {
                valid: Some(vec![0b101]),
                ..col("name", text(&["a", "", "c"]))
            },
            col("ok", V::Boolean(vec![true, false, true])),
        ];
        let (rows, bad) = assemble(&schema(), &[7, 7, 9], columns);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(rows.sources, [7, 7, 9]);
        let b = &rows.batch;
        assert_eq!(b.num_rows(), 3);
        let small = b.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(small.values(), &[1, -2, 3]);
        let day = b.column(2).as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(day.value(1), 19_669);
        let at = b
            .column(3)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(at.value(0), 1_699_405_549_000_000);
        assert!(b.column(4).is_null(1) && !b.column(4).is_null(2));
        assert_eq!(b.column(6).null_count(), 3, "left out: null");

        let (rows, bad) = assemble(
            &schema(),
            &[0],
            vec![ids(1), col("day", text(&["2023-11-08"]))],
        );
        assert!(bad.is_empty(), "{bad:?}");
        let day = rows
            .batch
            .column(2)
            .as_any()
            .downcast_ref::<Date32Array>()
            .unwrap();
        assert_eq!(day.value(0), 19_669);
    }

    #[test]
    fn a_bad_column_dead_letters_every_message_and_names_the_column() {
        let cases: Vec<(Vec<Column>, &str)> = vec![
            (
                vec![ids(2), col("x", text(&["1", "2"]))],
                "column `x` holds text",
            ),
            (
                vec![col("name", text(&["a", "b"]))],
                "missing non-null column `id`",
            ),
            (
                vec![ids(2), col("small", V::Int64(vec![1]))],
                "column `small` has 1 values for 2 rows",
            ),
            (
                vec![ids(2), col("colour", text(&["a", "b"]))],
                "unknown column `colour`",
            ),
            (vec![ids(2), ids(2)], "column `id` given twice"),
            (
                vec![
                    ids(2),
                    Column {
                        valid: Some(Vec::new()),
                        ..col("x", V::Float64(vec![1.0, 2.0]))
                    },
                ],
                "column `x`: a validity bitmap of 0 bytes for 2 rows",
            ),
            (
                vec![
                    ids(2),
                    col(
                        "name",
                        V::Utf8 {
                            offsets: vec![0, 2, 1],
                            bytes: b"ab".to_vec(),
                        },
                    ),
                ],
                "column `name`: malformed offsets",
            ),
            (
                vec![
                    ids(2),
                    col(
                        "name",
                        V::Utf8 {
                            offsets: vec![0, 1, 9],
                            bytes: b"ab".to_vec(),
                        },
                    ),
                ],
                "column `name`: malformed offsets",
            ),
        ];
        for (columns, reason) in cases {
            let (rows, bad) = assemble(&schema(), &[4, 5], columns);
            assert_eq!(rows.batch.num_rows(), 0, "{reason}");
            assert_eq!(bad.keys().copied().collect::<Vec<_>>(), [4, 5], "{reason}");
            assert!(bad[&4].contains(reason), "{reason}: {}", bad[&4]);
        }
    }

    #[test]
    fn a_bad_value_dead_letters_only_its_message() {
        let columns = vec![
            Column {
                // Row 1's id is null in a non-null column.
                valid: Some(vec![0b1101]),
                ..ids(4)
            },
            // Row 2's value does not fit 32 bits.
            col("small", V::Int64(vec![1, 2, 1 << 40, 4])),
            // Row 3 is not a date.
            col(
                "day",
                text(&["2023-11-08", "2023-11-08", "2023-11-08", "yesterday"]),
            ),
        ];
        let (rows, bad) = assemble(&schema(), &[10, 11, 12, 13], columns);
        assert_eq!(rows.sources, [10]);
        assert_eq!(rows.batch.num_rows(), 1);
        assert!(bad[&11].contains("column `id` is null"), "{bad:?}");
        assert!(bad[&12].contains("column `small`"), "{bad:?}");
        assert!(bad[&13].contains("column `day`"), "{bad:?}");
    }
}
