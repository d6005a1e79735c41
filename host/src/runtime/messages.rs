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

impl KafkaMessage {
    /// The message as the guest receives it, borrowing this one's data
    /// (`headers` holds the borrowed headers, kept alive by the caller).
    pub(crate) fn borrowed<'a>(&'a self, headers: &'a [wit::Header<'a>]) -> wit::Message<'a> {
        wit::Message {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers,
        }
    }

    /// This message's headers, borrowed, for [`KafkaMessage::borrowed`].
    pub(crate) fn borrowed_headers(&self) -> Vec<wit::Header<'_>> {
        self.headers
            .iter()
            .map(|(key, value)| wit::Header {
                key,
                value: value.as_deref(),
            })
            .collect()
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
