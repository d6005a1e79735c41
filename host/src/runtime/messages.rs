//! Domain types that cross the sandbox boundary for Kafka-triggered
//! functions, and their conversions from and to the generated WIT types.
//! A batch's result arrives in one of two forms — one outcome per message
//! with JSON rows (`transformer`) or typed columns (`typed-transformer`) —
//! and leaves as one [`BatchOutput`].

use crate::bindings::transformer::weir::function::batch_types as wit;
use crate::bindings::typed_transformer::weir::function::typed_batch_types as typed;

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

/// What a transform made of a batch: rows per table, and the messages it
/// rejected. A message that is neither rejected nor the source of a row
/// produced nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutput {
    /// Rows, per table (a table may appear more than once).
    pub tables: Vec<TableOutput>,
    /// Rejected messages: index in the batch, and the reason.
    pub rejects: Vec<(usize, String)>,
}

/// Rows for one table, in either form a guest returns them in.
#[derive(Debug, Clone, PartialEq)]
pub enum TableOutput {
    /// JSON objects, each with the index of its message.
    Json {
        /// A table of the trigger's `tables`, as the guest named it.
        table: String,
        /// Message index and JSON object text, per row.
        rows: Vec<(usize, String)>,
    },
    /// Typed columns, one value per row in each.
    Columns {
        /// A table of the trigger's `tables`, as the guest named it.
        table: String,
        /// The message index of each row.
        sources: Vec<u32>,
        /// The columns the guest set.
        columns: Vec<Column>,
    },
}

impl TableOutput {
    /// The table the rows are for.
    pub fn table(&self) -> &str {
        match self {
            Self::Json { table, .. } | Self::Columns { table, .. } => table,
        }
    }

    /// The message index of every row.
    pub fn sources(&self) -> Box<dyn Iterator<Item = usize> + '_> {
        match self {
            Self::Json { rows, .. } => Box::new(rows.iter().map(|(i, _)| *i)),
            Self::Columns { sources, .. } => Box::new(sources.iter().map(|s| *s as usize)),
        }
    }

    /// How many rows.
    pub fn rows(&self) -> usize {
        match self {
            Self::Json { rows, .. } => rows.len(),
            Self::Columns { sources, .. } => sources.len(),
        }
    }
}

/// One typed column: Arrow's layout, as `wit/batch.wit` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// A column of the table's schema.
    pub name: String,
    /// One value per row.
    pub values: ColumnValues,
    /// Validity bitmap (bit `i % 8` of byte `i / 8` set: row `i` holds a
    /// value); `None` when every row does.
    pub valid: Option<Vec<u8>>,
}

/// The values of a [`Column`].
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// Integers (and timestamps in µs, dates in days).
    Int64(Vec<i64>),
    /// Floating-point numbers.
    Float64(Vec<f64>),
    /// Booleans.
    Boolean(Vec<bool>),
    /// UTF-8 text: row `i` is `bytes[offsets[i]..offsets[i + 1]]`.
    Utf8 {
        /// One more than there are rows.
        offsets: Vec<u32>,
        /// The rows' bytes, back to back.
        bytes: Vec<u8>,
    },
    /// Bytes, laid out as `Utf8`.
    Binary {
        /// One more than there are rows.
        offsets: Vec<u32>,
        /// The rows' bytes, back to back.
        bytes: Vec<u8>,
    },
}

impl ColumnValues {
    /// How many values (rows) it holds.
    pub fn len(&self) -> usize {
        match self {
            Self::Int64(v) => v.len(),
            Self::Float64(v) => v.len(),
            Self::Boolean(v) => v.len(),
            Self::Utf8 { offsets, .. } | Self::Binary { offsets, .. } => {
                offsets.len().saturating_sub(1)
            }
        }
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What it holds, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Int64(_) => "integers",
            Self::Float64(_) => "floats",
            Self::Boolean(_) => "booleans",
            Self::Utf8 { .. } => "text",
            Self::Binary { .. } => "bytes",
        }
    }

    /// Bytes it takes on the host.
    fn size(&self) -> usize {
        match self {
            Self::Int64(v) => v.len() * 8,
            Self::Float64(v) => v.len() * 8,
            Self::Boolean(v) => v.len(),
            Self::Utf8 { offsets, bytes } | Self::Binary { offsets, bytes } => {
                offsets.len() * 4 + bytes.len()
            }
        }
    }
}

impl BatchOutput {
    /// The per-message form (`transformer`): one outcome per message, in order.
    pub fn from_outcomes(outcomes: Vec<Outcome>) -> Self {
        let mut output = Self::default();
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Outcome::Reject(reason) => output.rejects.push((i, reason)),
                Outcome::Rows(tables) => {
                    for TableRows { table, rows } in tables {
                        let at = match output.tables.iter().position(|t| t.table() == table) {
                            Some(at) => at,
                            None => {
                                output.tables.push(TableOutput::Json {
                                    table,
                                    rows: Vec::new(),
                                });
                                output.tables.len() - 1
                            }
                        };
                        if let TableOutput::Json { rows: all, .. } = &mut output.tables[at] {
                            all.extend(rows.into_iter().map(|r| (i, r)));
                        }
                    }
                }
            }
        }
        output
    }

    /// Adds `other`'s rows and rejects, its message indices counted from
    /// `start` (the output of a slice of the batch starting there).
    pub fn append(&mut self, other: Self, start: usize) {
        for table in other.tables {
            self.tables.push(match table {
                TableOutput::Json { table, rows } => TableOutput::Json {
                    table,
                    rows: rows.into_iter().map(|(i, r)| (i + start, r)).collect(),
                },
                TableOutput::Columns {
                    table,
                    mut sources,
                    columns,
                } => {
                    let shift = u32::try_from(start).unwrap_or(u32::MAX);
                    for s in &mut sources {
                        *s = s.saturating_add(shift);
                    }
                    TableOutput::Columns {
                        table,
                        sources,
                        columns,
                    }
                }
            });
        }
        self.rejects
            .extend(other.rejects.into_iter().map(|(i, r)| (i + start, r)));
    }

    /// How many rows, over every table.
    pub fn rows(&self) -> usize {
        self.tables.iter().map(TableOutput::rows).sum()
    }

    /// Bytes the rows take on the host (text, values, offsets).
    pub fn bytes(&self) -> usize {
        self.tables
            .iter()
            .map(|t| match t {
                TableOutput::Json { rows, .. } => rows.iter().map(|(_, r)| r.len()).sum::<usize>(),
                TableOutput::Columns { columns, .. } => {
                    columns.iter().map(|c| c.values.size()).sum()
                }
            })
            .sum()
    }

    /// Checks that every message index is one of the batch's `messages`.
    pub fn check_sources(&self, messages: usize) -> Result<(), String> {
        let outside = self
            .tables
            .iter()
            .flat_map(TableOutput::sources)
            .chain(self.rejects.iter().map(|(i, _)| *i))
            .find(|i| *i >= messages);
        match outside {
            Some(i) => Err(format!(
                "named message {i} of a batch of {messages} as the source of a row or reject"
            )),
            None => Ok(()),
        }
    }
}

impl From<typed::TypedOutput> for BatchOutput {
    /// Moves the guest's vectors over as they are: no value is copied.
    fn from(output: typed::TypedOutput) -> Self {
        let column = |c: typed::Column| Column {
            name: c.name,
            values: match c.values {
                typed::Values::Int64(v) => ColumnValues::Int64(v),
                typed::Values::Float64(v) => ColumnValues::Float64(v),
                typed::Values::Boolean(v) => ColumnValues::Boolean(v),
                typed::Values::Utf8(b) => ColumnValues::Utf8 {
                    offsets: b.offsets,
                    bytes: b.bytes,
                },
                typed::Values::Binary(b) => ColumnValues::Binary {
                    offsets: b.offsets,
                    bytes: b.bytes,
                },
            },
            valid: c.valid,
        };
        Self {
            tables: output
                .tables
                .into_iter()
                .map(|t| TableOutput::Columns {
                    table: t.table,
                    sources: t.sources,
                    columns: t.columns.into_iter().map(column).collect(),
                })
                .collect(),
            rejects: output
                .rejects
                .into_iter()
                .map(|r| (r.message as usize, r.reason))
                .collect(),
        }
    }
}
