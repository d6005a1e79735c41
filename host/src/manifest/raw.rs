//! The manifest as written: serde structs that mirror Spin v2's `spin.toml`,
//! with spans kept on every value a later check may need to point at.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::trigger::cron::CronTriggerConfig;
use crate::trigger::kafka::KafkaTriggerConfig;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    pub spin_manifest_version: Spanned<toml::Value>,
    pub application: RawApplication,
    #[serde(default)]
    pub variables: BTreeMap<Spanned<String>, Spanned<RawVariable>>,
    #[serde(default)]
    pub trigger: RawTriggers,
    #[serde(default)]
    pub component: BTreeMap<Spanned<String>, Spanned<RawComponent>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApplication {
    pub name: Spanned<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[expect(dead_code, reason = "stock Spin key, accepted and not used")]
    pub authors: Vec<String>,
    /// Application-level trigger settings (`[application.trigger.kafka]`).
    #[serde(default)]
    pub trigger: RawApplicationTriggers,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApplicationTriggers {
    #[serde(default)]
    pub kafka: Option<crate::trigger::kafka::KafkaApplicationConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVariable {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    /// Only secret variables may fill secret storage options.
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    #[expect(dead_code, reason = "stock Spin key, accepted and not used")]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawTriggers {
    #[serde(default)]
    pub cron: Vec<Spanned<CronTriggerConfig>>,
    #[serde(default)]
    pub kafka: Vec<Spanned<KafkaTriggerConfig>>,
    /// Trigger types weir does not run (e.g. Spin's `http`): reported as
    /// errors (serde cannot keep spans through `flatten`).
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawComponent {
    pub source: Spanned<toml::Value>,
    #[serde(default)]
    #[expect(dead_code, reason = "stock Spin key, accepted and not used")]
    pub description: Option<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub variables: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub build: Option<RawBuild>,
    /// Tool-specific tables; Spin ignores them, weir reads `tool.weir`.
    #[serde(default)]
    pub tool: RawTools,
    /// Stock Spin keys weir cannot honour; reported as errors if present.
    #[serde(default)]
    pub files: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub key_value_stores: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub sqlite_databases: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBuild {
    pub command: Spanned<RawCommand>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

/// Spin accepts one command or a list run in order.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawCommand {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawTools {
    #[serde(default)]
    pub weir: Option<Spanned<RawWeirTool>>,
    #[serde(flatten)]
    #[expect(dead_code, reason = "other tools' tables are theirs")]
    pub other: BTreeMap<String, toml::Value>,
}

/// `[component.<id>.tool.weir]`: weir's per-component limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeirTool {
    #[serde(default)]
    pub timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_memory: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub http_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_response_bytes: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub max_rows_per_message: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_output_bytes: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub max_outbound_requests: Option<Spanned<u64>>,
}
