//! Rows collected column by column, in the layout Apache Arrow uses: one
//! vector of values per column, a validity bitmap, text as one byte buffer
//! with offsets. A row is written by name with typed setters; columns come
//! into being on first use, and a row that leaves one unset holds null.

/// The values of one column, one per row (a null row holds a placeholder).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Integers, timestamps (µs), dates (days).
    Int64(Vec<i64>),
    /// Floating-point numbers.
    Float64(Vec<f64>),
    /// Booleans.
    Boolean(Vec<bool>),
    /// UTF-8 text: row `i` is `bytes[offsets[i]..offsets[i + 1]]`.
    Utf8 {
        /// One more than there are rows, starting at 0.
        offsets: Vec<u32>,
        /// Every row's text, back to back.
        bytes: Vec<u8>,
    },
    /// Bytes, laid out as `Utf8`.
    Binary {
        /// One more than there are rows, starting at 0.
        offsets: Vec<u32>,
        /// Every row's bytes, back to back.
        bytes: Vec<u8>,
    },
}

impl Values {
    fn kind(&self) -> &'static str {
        match self {
            Self::Int64(_) => "an integer",
            Self::Float64(_) => "a float",
            Self::Boolean(_) => "a boolean",
            Self::Utf8 { .. } => "text",
            Self::Binary { .. } => "bytes",
        }
    }

    fn empty_like(&self) -> Self {
        match self {
            Self::Int64(_) => Self::Int64(Vec::new()),
            Self::Float64(_) => Self::Float64(Vec::new()),
            Self::Boolean(_) => Self::Boolean(Vec::new()),
            Self::Utf8 { .. } => Self::Utf8 {
                offsets: vec![0],
                bytes: Vec::new(),
            },
            Self::Binary { .. } => Self::Binary {
                offsets: vec![0],
                bytes: Vec::new(),
            },
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Int64(v) => v.len(),
            Self::Float64(v) => v.len(),
            Self::Boolean(v) => v.len(),
            Self::Utf8 { offsets, .. } | Self::Binary { offsets, .. } => offsets.len() - 1,
        }
    }

    fn push_placeholder(&mut self) {
        match self {
            Self::Int64(v) => v.push(0),
            Self::Float64(v) => v.push(0.0),
            Self::Boolean(v) => v.push(false),
            Self::Utf8 { offsets, .. } | Self::Binary { offsets, .. } => {
                let end = offsets.last().copied().unwrap_or(0);
                offsets.push(end);
            }
        }
    }

    fn truncate(&mut self, rows: usize) {
        match self {
            Self::Int64(v) => v.truncate(rows),
            Self::Float64(v) => v.truncate(rows),
            Self::Boolean(v) => v.truncate(rows),
            Self::Utf8 { offsets, bytes } | Self::Binary { offsets, bytes } => {
                offsets.truncate(rows + 1);
                bytes.truncate(offsets.last().copied().unwrap_or(0) as usize);
            }
        }
    }
}

/// One value of a table, as [`Table::get`] reads it back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// No value.
    Null,
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Bytes(&'a [u8]),
}

/// One column of a table's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    name: String,
    values: Values,
    /// Bit `i % 8` of byte `i / 8` is set when row `i` holds a value.
    valid: Vec<u8>,
    nulls: usize,
}

impl Column {
    fn new(name: &str, values: Values) -> Self {
        Self {
            name: name.to_owned(),
            values,
            valid: Vec::new(),
            nulls: 0,
        }
    }

    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The values, one per row.
    pub fn values(&self) -> &Values {
        &self.values
    }

    /// The validity bitmap (bit `i % 8` of byte `i / 8` set: row `i` holds
    /// a value), or `None` when every row does.
    pub fn valid(&self) -> Option<&[u8]> {
        (self.nulls > 0).then_some(self.valid.as_slice())
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether it holds no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `row`'s value (`Null` past the end).
    pub fn get(&self, row: usize) -> Cell<'_> {
        let valid = self
            .valid
            .get(row / 8)
            .is_some_and(|b| b & (1 << (row % 8)) != 0);
        if !valid || row >= self.len() {
            return Cell::Null;
        }
        match &self.values {
            Values::Int64(v) => Cell::Int(v[row]),
            Values::Float64(v) => Cell::Float(v[row]),
            Values::Boolean(v) => Cell::Bool(v[row]),
            Values::Utf8 { offsets, bytes } => {
                let slice = &bytes[offsets[row] as usize..offsets[row + 1] as usize];
                std::str::from_utf8(slice).map_or(Cell::Bytes(slice), Cell::Text)
            }
            Values::Binary { offsets, bytes } => {
                Cell::Bytes(&bytes[offsets[row] as usize..offsets[row + 1] as usize])
            }
        }
    }

    /// The values and the validity bitmap (`None`: no nulls), taken out.
    pub fn into_parts(self) -> (String, Values, Option<Vec<u8>>) {
        let valid = (self.nulls > 0).then_some(self.valid);
        (self.name, self.values, valid)
    }

    /// Marks the row just pushed as holding a value (`true`) or null.
    fn mark(&mut self, valid: bool) {
        let row = self.values.len() - 1;
        if row / 8 >= self.valid.len() {
            self.valid.push(0);
        }
        if valid {
            self.valid[row / 8] |= 1 << (row % 8);
        } else {
            self.nulls += 1;
        }
    }

    fn push_null(&mut self) {
        self.values.push_placeholder();
        self.mark(false);
    }

    fn truncate(&mut self, rows: usize) {
        for row in rows..self.len() {
            if self.valid[row / 8] & (1 << (row % 8)) == 0 {
                self.nulls -= 1;
            }
        }
        self.values.truncate(rows);
        self.valid.truncate(rows.div_ceil(8));
        if let Some(last) = self.valid.last_mut()
            && !rows.is_multiple_of(8)
        {
            *last &= (1u8 << (rows % 8)) - 1;
        }
    }
}

/// The rows of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    name: String,
    /// The index of the message each row came from.
    sources: Vec<u32>,
    columns: Vec<Column>,
    /// Where the next setter's column probably is: rows set their columns
    /// in the same order, so a lookup is usually one comparison.
    cursor: usize,
    /// The first misuse of a setter while handling the current message.
    error: Option<String>,
}

impl Table {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            sources: Vec::new(),
            columns: Vec::new(),
            cursor: 0,
            error: None,
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many rows it holds.
    pub fn rows(&self) -> usize {
        self.sources.len()
    }

    /// The index of the message each row came from.
    pub fn sources(&self) -> &[u32] {
        &self.sources
    }

    /// The columns, in order of first use.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Row `row`'s value of column `column`: `Null` for a column the
    /// table does not have (no row set it), as in the table itself.
    pub fn get(&self, row: usize, column: &str) -> Cell<'_> {
        self.columns
            .iter()
            .find(|c| c.name == column)
            .map_or(Cell::Null, |c| c.get(row))
    }

    /// Name, sources and columns, taken out.
    pub fn into_parts(self) -> (String, Vec<u32>, Vec<Column>) {
        (self.name, self.sources, self.columns)
    }

    pub(crate) fn start_row(&mut self, message: u32) -> Row<'_> {
        self.finish_row();
        self.sources.push(message);
        self.cursor = 0;
        Row { table: self }
    }

    /// Fills the columns the last row left unset with null.
    pub(crate) fn finish_row(&mut self) {
        let rows = self.rows();
        for column in &mut self.columns {
            while column.len() < rows {
                column.push_null();
            }
        }
    }

    pub(crate) fn truncate(&mut self, rows: usize) {
        self.sources.truncate(rows);
        for column in &mut self.columns {
            column.truncate(rows);
        }
    }

    pub(crate) fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    /// The column `name` ready for this row's value, created (null in
    /// every earlier row) on first use; `None` after a misuse, recorded.
    fn column(&mut self, name: &str, like: Values) -> Option<&mut Column> {
        let row = self.rows() - 1;
        let at = match self.columns.get(self.cursor) {
            Some(c) if c.name == name => self.cursor,
            _ => match self.columns.iter().position(|c| c.name == name) {
                Some(i) => i,
                None => {
                    let mut column = Column::new(name, like.empty_like());
                    for _ in 0..row {
                        column.push_null();
                    }
                    self.columns.push(column);
                    self.columns.len() - 1
                }
            },
        };
        self.cursor = at + 1;
        let column = &mut self.columns[at];
        let misuse = if std::mem::discriminant(&column.values) != std::mem::discriminant(&like) {
            Some(format!(
                "column `{name}` set to {}, but it holds {}",
                like.kind(),
                column.values.kind()
            ))
        } else if column.len() > row {
            Some(format!("column `{name}` set twice in one row"))
        } else {
            None
        };
        if let Some(reason) = misuse {
            self.error.get_or_insert(reason);
            return None;
        }
        while column.len() < row {
            column.push_null();
        }
        Some(column)
    }
}

/// One row being written. Each setter takes the column's name and its
/// value; `None` is null.
#[derive(Debug)]
pub struct Row<'a> {
    table: &'a mut Table,
}

impl Row<'_> {
    /// A text column (Delta `string`; also `date` as `YYYY-MM-DD`).
    pub fn str(&mut self, column: &str, value: Option<&str>) -> &mut Self {
        self.bytes_like(
            column,
            value.map(str::as_bytes),
            Values::Utf8 {
                offsets: Vec::new(),
                bytes: Vec::new(),
            },
        )
    }

    /// A binary column.
    pub fn bytes(&mut self, column: &str, value: Option<&[u8]>) -> &mut Self {
        self.bytes_like(
            column,
            value,
            Values::Binary {
                offsets: Vec::new(),
                bytes: Vec::new(),
            },
        )
    }

    fn bytes_like(&mut self, name: &str, value: Option<&[u8]>, like: Values) -> &mut Self {
        if let Some(column) = self.table.column(name, like) {
            if let Values::Utf8 { offsets, bytes } | Values::Binary { offsets, bytes } =
                &mut column.values
            {
                if let Some(value) = value {
                    bytes.extend_from_slice(value);
                }
                // Offsets are u32: a batch's text column holds < 4 GiB
                // (the guest's memory is far smaller).
                offsets.push(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
            }
            column.mark(value.is_some());
        }
        self
    }

    /// An integer column (Delta `long`, `integer`, `short`, `byte`;
    /// `timestamp` in microseconds and `date` in days since the epoch).
    pub fn int<I: TryInto<i64>>(&mut self, column: &str, value: Option<I>) -> &mut Self {
        let value = match value.map(TryInto::try_into) {
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => {
                self.table
                    .error
                    .get_or_insert(format!("column `{column}`: the value does not fit 64 bits"));
                return self;
            }
            None => None,
        };
        if let Some(c) = self.table.column(column, Values::Int64(Vec::new())) {
            if let Values::Int64(v) = &mut c.values {
                v.push(value.unwrap_or(0));
            }
            c.mark(value.is_some());
        }
        self
    }

    /// A floating-point column (Delta `double`, `float`). A NaN or an
    /// infinity is null, as it is in JSON rows.
    pub fn float(&mut self, column: &str, value: Option<f64>) -> &mut Self {
        let value = value.filter(|v| v.is_finite());
        if let Some(c) = self.table.column(column, Values::Float64(Vec::new())) {
            if let Values::Float64(v) = &mut c.values {
                v.push(value.unwrap_or(0.0));
            }
            c.mark(value.is_some());
        }
        self
    }

    /// A boolean column.
    pub fn bool(&mut self, column: &str, value: Option<bool>) -> &mut Self {
        if let Some(c) = self.table.column(column, Values::Boolean(Vec::new())) {
            if let Values::Boolean(v) = &mut c.values {
                v.push(value.unwrap_or(false));
            }
            c.mark(value.is_some());
        }
        self
    }
}
