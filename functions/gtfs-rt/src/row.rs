//! Writing one table row as JSON text, the form the transformer world
//! returns rows in. Column names are identifiers, so they are written as
//! they are; values go through `itoa`/`zmij` (the formatters serde_json
//! uses) and strings are copied as they are unless they need escaping.
//! Per row this is about a quarter of the work of serializing a
//! `#[derive(Serialize)]` struct with serde_json, which escapes every key
//! byte by byte — it matters inside a Wasm guest (see BENCHMARKS.md).

/// One row being written: a JSON object, absent values left out (null).
#[derive(Debug, Clone)]
pub struct JsonRow(String);

impl Default for JsonRow {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonRow {
    /// An empty row.
    pub fn new() -> Self {
        let mut text = String::with_capacity(512);
        text.push('{');
        Self(text)
    }

    /// Starts column `name`, which must need no JSON escaping.
    fn key(&mut self, name: &str) {
        debug_assert!(!needs_escape(name), "column name {name:?}");
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(name);
        self.0.push_str("\":");
    }

    /// A string column; `None` leaves it out.
    pub fn str(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.key(name);
            if needs_escape(value) {
                // Rare (quotes, backslashes, control characters): serde_json escapes.
                self.0
                    .push_str(&serde_json::to_string(value).unwrap_or_default());
            } else {
                self.0.push('"');
                self.0.push_str(value);
                self.0.push('"');
            }
        }
        self
    }

    /// An integer column; `None` leaves it out.
    pub fn int<I: itoa::Integer>(&mut self, name: &str, value: Option<I>) -> &mut Self {
        if let Some(value) = value {
            self.key(name);
            self.0.push_str(itoa::Buffer::new().format(value));
        }
        self
    }

    /// A floating-point column; `None` leaves it out, and so does a NaN or
    /// an infinity, which JSON cannot express.
    pub fn float(&mut self, name: &str, value: Option<f64>) -> &mut Self {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            self.key(name);
            self.0.push_str(zmij::Buffer::new().format_finite(value));
        }
        self
    }

    /// The JSON text.
    pub fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// Whether `s` holds a character JSON strings must escape.
fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::JsonRow;

    #[test]
    fn reads_back_as_the_values_written() {
        let mut row = JsonRow::new();
        row.str("plain", Some("Line 7 → Mitte"))
            .str("escaped", Some("a \"quoted\" \\ path\n\u{1}"))
            .str("absent", None)
            .int("small", Some(-3_i32))
            .int("big", Some(1_764_000_000_000_000_i64))
            .int::<u32>("no_int", None)
            .float("lat", Some(37.370_46))
            .float("whole", Some(90.0))
            .float("tiny", Some(1e-7))
            .float("nan", Some(f64::NAN))
            .float("no_float", None);
        let text = row.finish();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let expected = serde_json::json!({
            "plain": "Line 7 → Mitte",
            "escaped": "a \"quoted\" \\ path\n\u{1}",
            "small": -3,
            "big": 1_764_000_000_000_000_i64,
            "lat": 37.370_46,
            "whole": 90.0,
            "tiny": 1e-7,
        });
        assert_eq!(value, expected, "{text}");
        assert_eq!(JsonRow::new().finish(), "{}");
    }
}
