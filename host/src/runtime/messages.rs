//! Domain types that cross the sandbox boundary for Kafka-triggered
//! functions, and their conversions from and to the generated WIT types.

use crate::bindings::transformer::weir::function::batch_types as wit;

/// One Kafka record handed to a transformer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaMessage {
    /// Topic the record was read from.
    pub topic: String,
    /// Partition within the topic.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Broker or producer timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Record headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Rows for one table, each a JSON object in text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRows {
    /// A table declared in the trigger's `tables`.
    pub table: String,
    /// One JSON object per row.
    pub rows: Vec<String>,
}

/// What a transformer made of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rows for zero or more tables.
    Rows(Vec<TableRows>),
    /// Invalid input, with the reason for the dead-letter table.
    Reject(String),
}

/// Copies: the host keeps its messages for a retry and for dead letters.
impl From<&KafkaMessage> for wit::Message {
    fn from(m: &KafkaMessage) -> Self {
        Self {
            topic: m.topic.clone(),
            partition: m.partition,
            offset: m.offset,
            timestamp_ms: m.timestamp_ms,
            key: m.key.clone(),
            value: m.value.clone(),
            headers: m
                .headers
                .iter()
                .map(|(key, value)| wit::Header {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

impl From<wit::Outcome> for Outcome {
    fn from(o: wit::Outcome) -> Self {
        match o {
            wit::Outcome::Rows(tables) => Self::Rows(
                tables
                    .into_iter()
                    .map(|t| TableRows {
                        table: t.table,
                        rows: t.rows,
                    })
                    .collect(),
            ),
            wit::Outcome::Reject(reason) => Self::Reject(reason),
        }
    }
}
