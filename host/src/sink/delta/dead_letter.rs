//! Rows of the dead-letter table: the raw record, its coordinates, and why
//! it could not be turned into rows.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    ArrayRef, BinaryArray, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;

use crate::runtime::KafkaMessage;

/// Why a message was dead-lettered; the `reason` label of
/// `weir_dead_letters_total` (a closed set, so the metric stays small).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeadLetterKind {
    /// The function rejected the message.
    Rejected,
    /// The function's rows for it do not fit the table's schema.
    InvalidRow,
    /// The function wrote rows for a table the trigger does not declare.
    UnknownTable,
    /// The invocation failed twice (error, trap, timeout, memory).
    InvocationFailed,
}

impl DeadLetterKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::InvalidRow => "invalid_row",
            Self::UnknownTable => "unknown_table",
            Self::InvocationFailed => "invocation_failed",
        }
    }
}

/// One dead-letter row before it is written: the message as it was read
/// (its coordinates, timestamp, key and value go into the row), and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetter<'a> {
    /// The message.
    pub message: &'a KafkaMessage,
    /// The kind of failure.
    pub kind: DeadLetterKind,
    /// The failure in words.
    pub reason: &'a str,
}

impl DeadLetter<'_> {
    /// Builds the dead-letter table's batch for `letters`, stamped `now`.
    pub fn to_batch(
        letters: &[Self],
        schema: &SchemaRef,
        function: &str,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<RecordBatch, ArrowError> {
        let n = letters.len();
        let now_us = now.timestamp_micros();
        let days = now.date_naive().to_epoch_days();
        let strings = |f: fn(&Self) -> &str| -> ArrayRef {
            Arc::new(letters.iter().map(|l| Some(f(l))).collect::<StringArray>())
        };
        let columns: Vec<ArrayRef> = vec![
            strings(|l| &l.message.topic),
            Arc::new(Int32Array::from_iter_values(
                letters.iter().map(|l| l.message.partition),
            )),
            Arc::new(Int64Array::from_iter_values(
                letters.iter().map(|l| l.message.offset),
            )),
            Arc::new(
                letters
                    .iter()
                    .map(|l| l.message.timestamp_ms.map(|ms| ms.saturating_mul(1000)))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
            Arc::new(
                letters
                    .iter()
                    .map(|l| l.message.key.as_deref())
                    .collect::<BinaryArray>(),
            ),
            Arc::new(
                letters
                    .iter()
                    .map(|l| l.message.value.as_deref())
                    .collect::<BinaryArray>(),
            ),
            Arc::new(StringArray::from(vec![function; n])),
            Arc::new(StringArray::from(vec![digest; n])),
            strings(|l| l.kind.as_str()),
            strings(|l| l.reason),
            Arc::new(TimestampMicrosecondArray::from(vec![now_us; n]).with_timezone("UTC")),
            Arc::new(Date32Array::from(vec![days; n])),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns)
    }
}
