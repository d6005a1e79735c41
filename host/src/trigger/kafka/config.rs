//! The Kafka trigger's configuration (`[[trigger.kafka]]` and
//! `[application.trigger.kafka]`) and its validation.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::sink::delta::{StorageOptions, TableSchema, TableSettings, storage};
use crate::trigger::ConfigCheck;

/// The tombstone retention a trigger may ask for, in minutes: at least
/// well beyond the longest time between writing a commit's files and
/// committing them (the host's vacuum deletes unreferenced files older
/// than the retention), at most a year.
const DELETED_FILE_RETENTION_MINUTES: (u64, u64) = (10, 366 * 24 * 60);

/// `[application.trigger.kafka]`: settings shared by every Kafka trigger.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaApplicationConfig {
    /// Bootstrap servers, `host:port[,host:port…]`. `WEIR_KAFKA_BROKERS` overrides it.
    #[serde(default)]
    pub brokers: Option<String>,
}

/// One `[[trigger.kafka]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTriggerConfig {
    /// Trigger id; default `kafka-<index>`.
    #[serde(default)]
    pub id: Option<String>,
    /// Component to invoke; must implement the `transformer` world.
    pub component: Spanned<String>,
    /// Topics to consume (at least one).
    pub topics: Spanned<Vec<Spanned<String>>>,
    /// Consumer group; default: the component id.
    #[serde(default)]
    pub group: Option<Spanned<String>>,
    /// When to hand a batch to the function.
    #[serde(default)]
    pub batch: Option<Spanned<BatchConfig>>,
    /// Output tables by name (the names guests use in `table-rows`); at least one.
    pub tables: Spanned<BTreeMap<Spanned<String>, TableConfig>>,
    /// Where rejected messages and failed batches go (no `schema`: the
    /// dead-letter table's columns are fixed).
    pub dead_letter: TableConfig,
    /// A Delta checkpoint every this many commits per table (default 10, at least 1).
    #[serde(default)]
    pub checkpoint_interval: Option<Spanned<u32>>,
    /// How long files removed from the trigger's tables (by compaction)
    /// stay in their logs as tombstones — and on storage — in minutes
    /// (default: that of [`TableSettings::default`], at least 10).
    #[serde(default)]
    pub history_minutes: Option<Spanned<u64>>,
    /// How long the group waits for a silent member before giving its
    /// partitions to another host, in ms (default 10 000; the broker bounds it).
    #[serde(default)]
    pub session_timeout_ms: Option<Spanned<u64>>,
}

/// `batch = { … }`: a batch closes at whichever limit is reached first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Most messages per batch (default 10 000, at least 1).
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// Most value + key bytes per batch (default 16 MiB, at least 1).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Latency budget in ms (default 1000): a batch collects messages for
    /// this long after its first, minus the time recent batches took to
    /// transform and commit, so a message is visible in Delta about this
    /// long after the host received it.
    #[serde(default = "default_max_ms")]
    pub max_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: default_max_records(),
            max_bytes: default_max_bytes(),
            max_ms: default_max_ms(),
        }
    }
}

fn default_max_records() -> usize {
    10_000
}
fn default_max_bytes() -> usize {
    16 << 20
}
fn default_max_ms() -> u64 {
    1000
}

/// One Delta table target as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// A path (relative to the manifest) or a URL such as `s3://bucket/table`.
    pub uri: Spanned<String>,
    /// Partition columns, in order.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// The table's schema file (JSON, relative to the manifest); required
    /// for output tables.
    #[serde(default)]
    pub schema: Option<Spanned<String>>,
    /// Object-store options of an `s3://` table (`aws_endpoint`,
    /// `aws_region`, …); values may be `{{ variable }}` templates, and
    /// secrets must be.
    #[serde(default)]
    pub storage: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// A validated Kafka trigger.
#[derive(Debug, Clone)]
pub struct KafkaTrigger {
    /// Trigger id.
    pub id: String,
    /// Component id.
    pub component: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group.
    pub group: String,
    /// Most messages per batch.
    pub max_records: usize,
    /// Most bytes per batch.
    pub max_bytes: usize,
    /// Longest wait for a batch to fill.
    pub max_wait: Duration,
    /// Output tables by name.
    pub tables: BTreeMap<String, TableTarget>,
    /// The dead-letter table.
    pub dead_letter: TableTarget,
    /// The Delta properties of every table of the trigger.
    pub table_settings: TableSettings,
    /// librdkafka's `session.timeout.ms`.
    pub session_timeout: Duration,
}

/// A validated table target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableTarget {
    /// Absolute path or URL.
    pub uri: String,
    /// Partition columns.
    pub partition_by: Vec<String>,
    /// The declared columns.
    pub schema: TableSchema,
    /// Object-store options (values hidden from `Debug`).
    pub storage: StorageOptions,
}

impl KafkaTriggerConfig {
    pub(crate) fn validate(
        &self,
        v: &mut impl ConfigCheck,
        key: &str,
        index: usize,
        dir: &Path,
    ) -> Option<KafkaTrigger> {
        let before = v.problem_count();
        v.check_component(&self.component, key);
        if self.topics.get_ref().is_empty() {
            v.report(
                &self.topics.span(),
                format!("{key}.topics"),
                "needs at least one topic",
            );
        }
        for topic in self.topics.get_ref() {
            if let Err(why) = crate::trigger::check_topic(topic.get_ref()) {
                v.report(&topic.span(), format!("{key}.topics"), why);
            }
        }
        if let Some(group) = &self.group
            && group.get_ref().trim().is_empty()
        {
            v.report(&group.span(), format!("{key}.group"), "must not be empty");
        }
        let default_batch = BatchConfig::default();
        let batch = self.batch.as_ref().map_or(&default_batch, Spanned::get_ref);
        if let Some(spanned) = &self.batch
            && (batch.max_records == 0 || batch.max_bytes == 0)
        {
            v.report(
                &spanned.span(),
                format!("{key}.batch"),
                "`max_records` and `max_bytes` must be at least 1",
            );
        }
        if self.tables.get_ref().is_empty() {
            v.report(
                &self.tables.span(),
                format!("{key}.tables"),
                "needs at least one table",
            );
        }
        let mut tables = BTreeMap::new();
        for (name, table) in self.tables.get_ref() {
            let valid = name.get_ref().starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                v.report(
                    &name.span(),
                    format!("{key}.tables"),
                    format!(
                        "invalid table name `{}`: use lower-case letters, digits and `_`",
                        name.get_ref()
                    ),
                );
            }
            let table_key = format!("{key}.tables.{}", name.get_ref());
            let schema = match &table.schema {
                Some(file) => load_schema(v, file, &format!("{table_key}.schema"), dir),
                None => {
                    v.report(
                        &name.span(),
                        table_key.clone(),
                        "needs a `schema` file declaring its columns",
                    );
                    None
                }
            };
            if let Some(schema) = schema {
                tables.insert(
                    name.get_ref().clone(),
                    table.resolve(v, &table_key, dir, schema),
                );
            }
        }
        if let Some(file) = &self.dead_letter.schema {
            v.report(
                &file.span(),
                format!("{key}.dead_letter.schema"),
                "the dead-letter table's columns are fixed; remove `schema`",
            );
        }
        let dead_letter = self.dead_letter.resolve(
            v,
            &format!("{key}.dead_letter"),
            dir,
            TableSchema::dead_letters(),
        );
        if let Some(interval) = &self.checkpoint_interval
            && *interval.get_ref() == 0
        {
            v.report(
                &interval.span(),
                format!("{key}.checkpoint_interval"),
                "must be at least 1",
            );
        }
        if let Some(minutes) = &self.history_minutes
            && !(DELETED_FILE_RETENTION_MINUTES.0..=DELETED_FILE_RETENTION_MINUTES.1)
                .contains(minutes.get_ref())
        {
            let (least, most) = DELETED_FILE_RETENTION_MINUTES;
            v.report(
                &minutes.span(),
                format!("{key}.history_minutes"),
                format!("must be between {least} and {most} (a year)"),
            );
        }
        if let Some(timeout) = &self.session_timeout_ms
            && !(1_000..=3_600_000).contains(timeout.get_ref())
        {
            v.report(
                &timeout.span(),
                format!("{key}.session_timeout_ms"),
                "must be between 1000 and 3600000",
            );
        }
        if tables.values().any(|t| t.uri == dead_letter.uri) {
            v.report(
                &self.dead_letter.uri.span(),
                format!("{key}.dead_letter.uri"),
                "the dead-letter table must not also be an output table",
            );
        }
        let defaults = TableSettings::default();
        (v.problem_count() == before).then(|| KafkaTrigger {
            id: self.id.clone().unwrap_or_else(|| format!("kafka-{index}")),
            component: self.component.get_ref().clone(),
            topics: self
                .topics
                .get_ref()
                .iter()
                .map(|t| t.get_ref().clone())
                .collect(),
            group: self
                .group
                .as_ref()
                .map_or_else(|| self.component.get_ref().clone(), |g| g.get_ref().clone()),
            max_records: batch.max_records,
            max_bytes: batch.max_bytes,
            max_wait: Duration::from_millis(batch.max_ms),
            tables,
            dead_letter,
            table_settings: TableSettings {
                checkpoint_interval: self
                    .checkpoint_interval
                    .as_ref()
                    .map_or(defaults.checkpoint_interval, |i| *i.get_ref()),
                history: self
                    .history_minutes
                    .as_ref()
                    .map_or(defaults.history, |m| Duration::from_secs(60 * m.get_ref())),
            },
            session_timeout: Duration::from_millis(
                self.session_timeout_ms
                    .as_ref()
                    .map_or(10_000, |t| *t.get_ref()),
            ),
        })
    }
}

impl TableConfig {
    fn resolve(
        &self,
        v: &mut impl ConfigCheck,
        key: &str,
        dir: &Path,
        schema: TableSchema,
    ) -> TableTarget {
        let uri = self.uri.get_ref().trim();
        if uri.is_empty() {
            v.report(&self.uri.span(), format!("{key}.uri"), "must not be empty");
        }
        let uri = if uri.contains("://") {
            uri.to_owned()
        } else {
            dir.join(uri).display().to_string()
        };
        if let Err(why) = schema.check_partitions(&self.partition_by) {
            v.report(&self.uri.span(), format!("{key}.partition_by"), why);
        }
        let mut options = StorageOptions::default();
        for (name, template) in &self.storage {
            let option_key = format!("{key}.storage.{}", name.get_ref());
            let secret = storage::is_secret(name.get_ref());
            let Some(value) = v.expand_template(template, &option_key, secret) else {
                continue;
            };
            match storage::check_option(&uri, name.get_ref(), &value) {
                Ok(()) => options.insert(name.get_ref(), value),
                Err(why) => v.report(&name.span(), option_key, why),
            }
        }
        TableTarget {
            uri,
            partition_by: self.partition_by.clone(),
            schema,
            storage: options,
        }
    }
}

/// Reads a table's schema file, reporting a missing or invalid one.
fn load_schema(
    v: &mut impl ConfigCheck,
    file: &Spanned<String>,
    key: &str,
    dir: &Path,
) -> Option<TableSchema> {
    let path = dir.join(file.get_ref());
    match std::fs::read_to_string(&path) {
        Err(e) => {
            v.report(
                &file.span(),
                key.to_owned(),
                format!("cannot read `{}`: {e}", file.get_ref()),
            );
            None
        }
        Ok(text) => match TableSchema::parse(&text) {
            Ok(schema) => Some(schema),
            Err(why) => {
                v.report(
                    &file.span(),
                    key.to_owned(),
                    format!("`{}`: {why}", file.get_ref()),
                );
                None
            }
        },
    }
}
