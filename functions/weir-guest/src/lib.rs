//! Writing a weir transform in Rust. A transform turns each Kafka message
//! of a batch into rows for its trigger's tables, or rejects it with a
//! reason; this crate collects the rows column by column (the form the host
//! turns into Arrow without parsing anything) and hides the WIT plumbing:
//!
//! ```
//! use weir_guest::{Message, Output};
//!
//! fn transform(message: &Message<'_>, out: &mut Output) -> Result<(), String> {
//!     let value = message.value.ok_or("no value")?;
//!     let text = std::str::from_utf8(value).map_err(|e| e.to_string())?;
//!     out.row("lines")
//!         .str("text", Some(text))
//!         .int("length", Some(text.len() as i64))
//!         .int("kafka_offset", Some(message.offset));
//!     Ok(())
//! }
//! # let mut out = Output::default();
//! # let message = Message::new("t", 0, 7, Some(b"hello"));
//! # out.handle(&message, transform);
//! # assert_eq!(out.tables()[0].rows(), 1);
//! ```
//!
//! and in the component crate (`crate-type = ["cdylib"]`, built for
//! `wasm32-wasip2`):
//!
//! ```ignore
//! weir_guest::export_transform!(transform);
//! ```
//!
//! Every row of a message lands, or none does: when the function returns
//! an error, the rows it wrote for that message are taken back and the
//! message is rejected with the error as its reason. A column a row leaves
//! unset is null in that row.

mod columns;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod component;

pub use columns::{Cell, Column, Row, Table, Values};

/// One Kafka message of the batch, borrowed from the host's input.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The topic it was read from.
    pub topic: &'a str,
    /// Its partition within the topic.
    pub partition: i32,
    /// Its offset within the partition.
    pub offset: i64,
    /// The record timestamp (milliseconds since the Unix epoch), if set.
    pub timestamp_ms: Option<i64>,
    /// The key; `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value; `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// Headers in broker order: name and value (`None`: a null header).
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

impl<'a> Message<'a> {
    /// A message without key, timestamp or headers (for tests).
    pub fn new(topic: &'a str, partition: i32, offset: i64, value: Option<&'a [u8]>) -> Self {
        Self {
            topic,
            partition,
            offset,
            timestamp_ms: None,
            key: None,
            value,
            headers: Vec::new(),
        }
    }
}

/// The rows of a batch so far, per table, and the rejected messages.
#[derive(Debug, Default)]
pub struct Output {
    tables: Vec<Table>,
    rejects: Vec<(u32, String)>,
    /// The index of the message being handled: the source of new rows.
    message: u32,
}

impl Output {
    /// Starts a new row of `table` (a table of the trigger's `tables`),
    /// from the message being handled.
    pub fn row(&mut self, table: &str) -> Row<'_> {
        let index = match self.tables.iter().position(|t| t.name() == table) {
            Some(i) => i,
            None => {
                self.tables.push(Table::new(table));
                self.tables.len() - 1
            }
        };
        self.tables[index].start_row(self.message)
    }

    /// Runs `transform` on the next message of the batch: its rows stay if
    /// it returns `Ok` and no setter was misused, else they are taken back
    /// and the message is rejected with the reason.
    pub fn handle<F>(&mut self, message: &Message<'_>, transform: F)
    where
        F: FnOnce(&Message<'_>, &mut Self) -> Result<(), String>,
    {
        let marks: Vec<usize> = self.tables.iter().map(Table::rows).collect();
        let result = transform(message, self);
        let misuse = self.tables.iter_mut().find_map(Table::take_error);
        if let Some(reason) = result.err().or(misuse) {
            for (i, table) in self.tables.iter_mut().enumerate() {
                table.truncate(marks.get(i).copied().unwrap_or(0));
            }
            self.rejects.push((self.message, reason));
        }
        self.message += 1;
    }

    /// The tables written so far, each with its rows completed.
    pub fn tables(&mut self) -> &[Table] {
        for table in &mut self.tables {
            table.finish_row();
        }
        &self.tables
    }

    /// The rejected messages: index in the batch and reason.
    pub fn rejects(&self) -> &[(u32, String)] {
        &self.rejects
    }

    /// The tables (rows completed) and the rejects, taken out.
    pub fn into_parts(mut self) -> (Vec<Table>, Vec<(u32, String)>) {
        for table in &mut self.tables {
            table.finish_row();
        }
        (self.tables, self.rejects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(offset: i64, value: &'static str) -> Message<'static> {
        Message::new("in", 0, offset, Some(value.as_bytes()))
    }

    fn texts(values: &Values) -> Vec<&str> {
        let Values::Utf8 { offsets, bytes } = values else {
            panic!("not text: {values:?}")
        };
        offsets
            .windows(2)
            .map(|w| std::str::from_utf8(&bytes[w[0] as usize..w[1] as usize]).unwrap())
            .collect()
    }

    #[test]
    fn rows_become_columns_with_nulls_where_a_row_set_nothing() {
        let mut out = Output::default();
        for (offset, value) in [(10, "a"), (11, "skip"), (12, "bb"), (13, "ccc")] {
            out.handle(&message(offset, value), |m, out| {
                let text = std::str::from_utf8(m.value.unwrap()).unwrap();
                if text == "skip" {
                    return Ok(()); // no rows: done, not rejected
                }
                let mut row = out.row("t");
                row.str("text", Some(text)).int("offset", Some(m.offset));
                // A column only some rows set, first set in the second row.
                if text.len() > 1 {
                    row.float("len", Some(text.len() as f64));
                }
                if text == "ccc" {
                    out.row("other").bool("flag", Some(true));
                }
                Ok(())
            });
        }
        let tables = out.tables();
        assert_eq!(tables.len(), 2);
        let t = &tables[0];
        assert_eq!(t.sources(), [0, 2, 3]);
        let [text, offset, len] = t.columns() else {
            panic!("{:?}", t.columns())
        };
        assert_eq!(texts(text.values()), ["a", "bb", "ccc"]);
        assert_eq!(text.valid(), None);
        assert_eq!(offset.values(), &Values::Int64(vec![10, 12, 13]));
        assert_eq!(len.values(), &Values::Float64(vec![0.0, 2.0, 3.0]));
        assert_eq!(len.valid(), Some(&[0b110][..]), "row 0 is null");
        assert_eq!(tables[1].sources(), [3]);
        assert!(out.rejects().is_empty());
    }

    #[test]
    fn a_failed_or_misused_message_takes_back_every_row_it_wrote() {
        let mut out = Output::default();
        out.handle(&message(0, "ok"), |_, out| {
            out.row("t").int("n", Some(1)).str("s", None);
            Ok(())
        });
        out.handle(&message(1, "fails"), |_, out| {
            out.row("t").int("n", Some(2));
            out.row("u").int("n", Some(2));
            Err("not this one".to_owned())
        });
        out.handle(&message(2, "wrong type"), |_, out| {
            out.row("t").str("n", Some("three"));
            Ok(())
        });
        out.handle(&message(3, "twice"), |_, out| {
            out.row("t").int("n", Some(4)).int("n", Some(5));
            Ok(())
        });
        out.handle(&message(4, "too big"), |_, out| {
            out.row("t").int("n", Some(u64::MAX));
            Ok(())
        });
        out.handle(&message(5, "ok"), |_, out| {
            out.row("t").int("n", Some(6)).str("s", Some("six"));
            Ok(())
        });
        let reasons: Vec<(u32, String)> = out.rejects().to_vec();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert_eq!(reasons[0], (1, "not this one".to_owned()));
        assert!(
            reasons[1]
                .1
                .contains("column `n` set to text, but it holds an integer")
        );
        assert!(reasons[2].1.contains("set twice"));
        assert!(reasons[3].1.contains("does not fit"));
        let (tables, _) = out.into_parts();
        let t = &tables[0];
        assert_eq!(t.sources(), [0, 5]);
        assert_eq!(t.columns()[0].values(), &Values::Int64(vec![1, 6]));
        assert_eq!(texts(t.columns()[1].values()), ["", "six"]);
        assert_eq!(t.columns()[1].valid(), Some(&[0b10][..]));
        assert_eq!(tables[1].rows(), 0, "u's only row was taken back");
    }

    #[test]
    fn taking_rows_back_keeps_the_bitmap_and_text_in_step() {
        let mut out = Output::default();
        for i in 0..20_i64 {
            out.handle(&message(i, "x"), |m, out| {
                let value = (m.offset % 3 != 0).then(|| m.offset.to_string());
                out.row("t").str("s", value.as_deref());
                if m.offset % 7 == 6 {
                    return Err("every seventh".to_owned());
                }
                Ok(())
            });
        }
        let (tables, rejects) = out.into_parts();
        assert_eq!(rejects.len(), 2);
        let column = &tables[0].columns()[0];
        let kept: Vec<i64> = (0..20).filter(|i| i % 7 != 6).collect();
        assert_eq!(column.len(), kept.len());
        let text = texts(column.values());
        let valid = column.valid().unwrap();
        for (row, i) in kept.iter().enumerate() {
            let is_valid = valid[row / 8] & (1 << (row % 8)) != 0;
            assert_eq!(is_valid, i % 3 != 0, "row {row} (offset {i})");
            if is_valid {
                assert_eq!(text[row], i.to_string());
            }
        }
    }
}
