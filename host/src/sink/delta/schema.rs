//! Declared table schemas: the versioned JSON files a Kafka trigger's
//! `tables.<name>.schema` points at, and the fixed schema of the dead-letter
//! table. Types are Delta's own primitive type names.

use std::path::Path;

use deltalake::kernel::{DataType, PrimitiveType, StructField};
use serde::Deserialize;

use super::DeltaError;

/// A table's declared schema, as written in its schema file:
///
/// ```json
/// { "version": 1,
///   "columns": [ { "name": "entity_id", "type": "string", "nullable": false } ] }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSchema {
    /// Bumped by hand whenever the columns change; recorded in every commit.
    pub version: u32,
    /// Columns in table order.
    pub columns: Vec<Column>,
}

/// One column of a [`TableSchema`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// A Delta primitive type: `string`, `long`, `integer`, `short`, `byte`,
    /// `double`, `float`, `boolean`, `binary`, `date`, `timestamp`, `timestamp_ntz`.
    #[serde(rename = "type")]
    pub data_type: PrimitiveType,
    /// Whether rows may leave it out or set it to null (default true).
    #[serde(default = "yes")]
    pub nullable: bool,
    /// What the column means, for readers of the schema file.
    #[serde(default)]
    pub doc: Option<String>,
}

fn yes() -> bool {
    true
}

impl TableSchema {
    /// Reads and checks a schema file.
    pub fn load(path: &Path) -> Result<Self, DeltaError> {
        let text = std::fs::read_to_string(path).map_err(|source| DeltaError::SchemaFile {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| DeltaError::Schema {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses schema JSON; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let schema: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if schema.columns.is_empty() {
            return Err("declares no columns".to_owned());
        }
        let mut seen = std::collections::HashSet::new();
        for column in &schema.columns {
            if column.name.is_empty() {
                return Err("a column has an empty name".to_owned());
            }
            if !seen.insert(column.name.as_str()) {
                return Err(format!("column `{}` is declared twice", column.name));
            }
        }
        Ok(schema)
    }

    /// The Delta columns.
    pub fn fields(&self) -> Vec<StructField> {
        self.columns
            .iter()
            .map(|c| {
                StructField::new(
                    c.name.clone(),
                    DataType::Primitive(c.data_type.clone()),
                    c.nullable,
                )
            })
            .collect()
    }

    /// Checks that every partition column is declared, and not nullable
    /// (a null partition value would land in a `__HIVE_DEFAULT_PARTITION__`
    /// directory that many readers handle badly).
    pub fn check_partitions(&self, partition_by: &[String]) -> Result<(), String> {
        for name in partition_by {
            match self.columns.iter().find(|c| &c.name == name) {
                None => return Err(format!("partition column `{name}` is not in the schema")),
                Some(c) if c.nullable => {
                    return Err(format!(
                        "partition column `{name}` must be declared `\"nullable\": false`"
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The dead-letter table's schema, the same for every trigger.
    pub fn dead_letters() -> Self {
        let column = |name: &str, data_type, nullable, doc: &str| Column {
            name: name.to_owned(),
            data_type,
            nullable,
            doc: Some(doc.to_owned()),
        };
        Self {
            version: 1,
            columns: vec![
                column("topic", PrimitiveType::String, false, "source topic"),
                column(
                    "partition",
                    PrimitiveType::Integer,
                    false,
                    "source partition",
                ),
                column("offset", PrimitiveType::Long, false, "source offset"),
                column(
                    "timestamp",
                    PrimitiveType::Timestamp,
                    true,
                    "the record's Kafka timestamp",
                ),
                column("key", PrimitiveType::Binary, true, "the record's key, raw"),
                column(
                    "value",
                    PrimitiveType::Binary,
                    true,
                    "the record's value, raw",
                ),
                column(
                    "function",
                    PrimitiveType::String,
                    false,
                    "the function that handled it",
                ),
                column(
                    "component_digest",
                    PrimitiveType::String,
                    false,
                    "sha256 of the component that handled it",
                ),
                column(
                    "kind",
                    PrimitiveType::String,
                    false,
                    "rejected, invalid_row, unknown_table or invocation_failed",
                ),
                column("reason", PrimitiveType::String, false, "why, in words"),
                column(
                    "dead_lettered_at",
                    PrimitiveType::Timestamp,
                    false,
                    "when the host wrote this row",
                ),
                column(
                    "date",
                    PrimitiveType::Date,
                    false,
                    "UTC date of dead_lettered_at (partition)",
                ),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_delta_type_names_and_defaults_nullable() {
        let schema = TableSchema::parse(
            r#"{"version": 2, "columns": [
                {"name": "id", "type": "string", "nullable": false},
                {"name": "speed", "type": "double"},
                {"name": "at", "type": "timestamp"}]}"#,
        )
        .unwrap();
        assert_eq!(schema.version, 2);
        assert!(!schema.columns[0].nullable);
        assert!(schema.columns[1].nullable);
        assert_eq!(schema.columns[2].data_type, PrimitiveType::Timestamp);
    }

    #[test]
    fn refuses_bad_schemas_with_a_reason() {
        for (text, expected) in [
            (r#"{"version": 1, "columns": []}"#, "declares no columns"),
            (
                r#"{"version": 1, "columns": [{"name": "a", "type": "long"}, {"name": "a", "type": "long"}]}"#,
                "column `a` is declared twice",
            ),
            (
                r#"{"version": 1, "columns": [{"name": "a", "type": "lng"}]}"#,
                "Unsupported Delta table type: 'lng'",
            ),
            (
                r#"{"version": 1, "columns": [{"name": "a", "type": "long", "width": 3}]}"#,
                "unknown field `width`",
            ),
        ] {
            let err = TableSchema::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn partition_columns_must_exist_and_be_required() {
        let schema = TableSchema::dead_letters();
        assert!(schema.check_partitions(&["date".to_owned()]).is_ok());
        assert!(
            schema
                .check_partitions(&["timestamp".to_owned()])
                .unwrap_err()
                .contains("nullable")
        );
        assert!(
            schema
                .check_partitions(&["day".to_owned()])
                .unwrap_err()
                .contains("not in the schema")
        );
    }
}
