//! JSON rows (as guests return them) → one Arrow `RecordBatch` in a table's
//! schema. The whole batch is decoded in one pass; only when that fails is
//! it decoded row by row, to name exactly the rows that are invalid.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::array::{BooleanArray, RecordBatch};
use deltalake::arrow::compute::{concat_batches, filter_record_batch};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::json::ReaderBuilder;

/// Rows decoded for one table, each tagged with the index of the input
/// message it came from (so the caller can drop every row of a message).
#[derive(Debug, Clone)]
pub struct DecodedRows {
    /// The rows, in input order.
    pub batch: RecordBatch,
    /// `sources[i]` is the message index of row `i`.
    pub sources: Vec<usize>,
}

/// Decodes `rows` (message index, JSON object text) into `schema`.
/// Returns the decoded rows of the valid ones and, for each message with an
/// invalid row, the first reason.
pub fn decode(
    schema: &SchemaRef,
    rows: &[(usize, &str)],
) -> (DecodedRows, BTreeMap<usize, String>) {
    match decode_all(schema, rows.iter().map(|(_, text)| *text), rows.len()) {
        Ok(batch) => (
            DecodedRows {
                batch,
                sources: rows.iter().map(|(source, _)| *source).collect(),
            },
            BTreeMap::new(),
        ),
        Err(_) => decode_one_by_one(schema, rows),
    }
}

/// Keeps only the rows whose message is not in `drop`.
pub fn without<V>(rows: DecodedRows, drop: &BTreeMap<usize, V>) -> DecodedRows {
    if drop.is_empty() || !rows.sources.iter().any(|s| drop.contains_key(s)) {
        return rows;
    }
    let keep: BooleanArray = rows
        .sources
        .iter()
        .map(|s| Some(!drop.contains_key(s)))
        .collect();
    let batch = match filter_record_batch(&rows.batch, &keep) {
        Ok(batch) => batch,
        // Filtering a batch by a mask of its own length cannot fail; if it
        // somehow does, writing nothing is the safe answer.
        Err(_) => RecordBatch::new_empty(rows.batch.schema()),
    };
    let sources = rows
        .sources
        .into_iter()
        .filter(|s| !drop.contains_key(s))
        .collect();
    DecodedRows { batch, sources }
}

/// Several tables' worth of rows for one table as one; `None` for none.
pub fn concat(schema: &SchemaRef, mut parts: Vec<DecodedRows>) -> Option<DecodedRows> {
    if parts.len() <= 1 {
        return parts.pop();
    }
    let batches: Vec<&RecordBatch> = parts.iter().map(|p| &p.batch).collect();
    let batch = match concat_batches(schema, batches) {
        Ok(batch) => batch,
        // Every part has the table's schema: concatenation cannot fail.
        Err(_) => RecordBatch::new_empty(Arc::clone(schema)),
    };
    let sources = parts.into_iter().flat_map(|p| p.sources).collect();
    Some(DecodedRows { batch, sources })
}

fn decode_all<'a>(
    schema: &SchemaRef,
    texts: impl Iterator<Item = &'a str>,
    expected: usize,
) -> Result<RecordBatch, String> {
    let mut decoder = ReaderBuilder::new(Arc::clone(schema))
        // One more than expected, so a row holding two objects shows up
        // as a count mismatch rather than a full decoder.
        .with_batch_size(expected + 1)
        .with_strict_mode(true)
        .build_decoder()
        .map_err(|e| describe(&e))?;
    for text in texts {
        let bytes = text.as_bytes();
        let used = decoder.decode(bytes).map_err(|e| describe(&e))?;
        if used != bytes.len() {
            return Err(format!("expected {expected} JSON object(s), found more"));
        }
        // A separator, so `1` `2` cannot run together into `12`.
        decoder.decode(b"\n").map_err(|e| describe(&e))?;
    }
    let batch = decoder
        .flush()
        .map_err(|e| describe(&e))?
        .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema)));
    if batch.num_rows() != expected {
        return Err(format!(
            "expected {expected} JSON object(s), found {}",
            batch.num_rows()
        ));
    }
    Ok(batch)
}

fn decode_one_by_one(
    schema: &SchemaRef,
    rows: &[(usize, &str)],
) -> (DecodedRows, BTreeMap<usize, String>) {
    let mut bad = BTreeMap::new();
    let mut good = Vec::with_capacity(rows.len());
    for (source, text) in rows {
        if bad.contains_key(source) {
            continue;
        }
        match decode_all(schema, std::iter::once(*text), 1) {
            Ok(_) => good.push((*source, *text)),
            Err(reason) => {
                bad.insert(*source, format!("invalid row: {reason}"));
            }
        }
    }
    // Rows that decoded alone decode together; an error here would be a
    // bug in arrow-json, reported on every row rather than lost.
    let good: Vec<_> = good
        .into_iter()
        .filter(|(s, _)| !bad.contains_key(s))
        .collect();
    match decode_all(schema, good.iter().map(|(_, t)| *t), good.len()) {
        Ok(batch) => (
            DecodedRows {
                batch,
                sources: good.iter().map(|(s, _)| *s).collect(),
            },
            bad,
        ),
        Err(reason) => {
            for (source, _) in &good {
                bad.insert(*source, format!("invalid row: {reason}"));
            }
            (
                DecodedRows {
                    batch: RecordBatch::new_empty(Arc::clone(schema)),
                    sources: Vec::new(),
                },
                bad,
            )
        }
    }
}

/// arrow-json's messages, without the `Json error: ` noise some carry.
fn describe(e: &ArrowError) -> String {
    match e {
        ArrowError::JsonError(m) | ArrowError::InvalidArgumentError(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::array::{Array, Float64Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("speed", DataType::Float64, true),
        ]))
    }

    #[test]
    fn decodes_a_clean_batch_in_one_pass() {
        let rows = [(0, r#"{"id":"a","speed":1.5}"#), (1, r#"{"id":"b"}"#)];
        let (decoded, bad) = decode(&schema(), &rows);
        assert!(bad.is_empty());
        assert_eq!(decoded.sources, vec![0, 1]);
        let speed = decoded
            .batch
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(speed.value(0), 1.5);
        assert!(speed.is_null(1));
    }

    #[test]
    fn names_each_invalid_row_and_keeps_the_rest() {
        let rows = [
            (0, r#"{"id":"a"}"#),
            (1, r#"{"speed":2.0}"#),
            (2, r#"{"id":"c","speed":"fast"}"#),
            (3, r#"{"id":"d","colour":"red"}"#),
            (4, "not json"),
            (5, r#"{"id":"f"}{"id":"g"}"#),
            (6, r#"{"id":"h"}"#),
        ];
        let (decoded, bad) = decode(&schema(), &rows);
        assert_eq!(decoded.sources, vec![0, 6]);
        let ids = decoded
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((ids.value(0), ids.value(1)), ("a", "h"));
        assert_eq!(bad.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
        assert!(bad[&3].contains("colour"), "{}", bad[&3]);
        assert!(bad[&5].contains("expected 1"), "{}", bad[&5]);
    }

    #[test]
    fn without_drops_every_row_of_a_message() {
        let rows = [
            (0, r#"{"id":"a"}"#),
            (1, r#"{"id":"b"}"#),
            (1, r#"{"id":"c"}"#),
        ];
        let (decoded, _) = decode(&schema(), &rows);
        let drop = BTreeMap::from([(1, "no".to_owned())]);
        let kept = without(decoded, &drop);
        assert_eq!(kept.sources, vec![0]);
        assert_eq!(kept.batch.num_rows(), 1);
    }
}
