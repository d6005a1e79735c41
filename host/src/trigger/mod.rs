//! Triggers: what wakes a function. The set is closed: `cron` and `kafka`,
//! each module owning its config (as written in `spin.toml`), its validated
//! form and its run loop.

pub mod cron;
pub mod kafka;

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use crate::runtime::World;

/// What validating a trigger's table needs from the manifest being read:
/// problems reported at a place in the file, the components it declares,
/// and template expansion. The manifest's validator implements it, so the
/// triggers own their validation without importing the manifest.
pub(crate) trait ConfigCheck {
    /// Records a problem at `span` for `key`.
    fn report(&mut self, span: &Range<usize>, key: impl Into<String>, message: impl Into<String>);

    /// Problems recorded so far.
    fn problem_count(&self) -> usize;

    /// Reports a trigger's `component` that names no declared component.
    fn check_component(&mut self, component: &Spanned<String>, key: &str);

    /// Expands one `{{ name }}` template found at `key`, reporting unknown
    /// or unset variables; a `secret` template may only name variables
    /// marked `secret = true` and hold no text of its own.
    fn expand_template(
        &mut self,
        template: &Spanned<String>,
        key: &str,
        secret: bool,
    ) -> Option<String>;

    /// Expands a `variables = { name = "template" }` table found at `prefix`.
    fn expand_variables(
        &mut self,
        templates: &BTreeMap<Spanned<String>, Spanned<String>>,
        prefix: &str,
    ) -> BTreeMap<String, String>;
}

/// A validated trigger from the manifest.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// `[[trigger.cron]]`.
    Cron(cron::CronTrigger),
    /// `[[trigger.kafka]]`.
    Kafka(kafka::KafkaTrigger),
}

impl Trigger {
    /// The trigger id (given, or `<type>-<index>`).
    pub fn id(&self) -> &str {
        match self {
            Self::Cron(t) => &t.id,
            Self::Kafka(t) => &t.id,
        }
    }

    /// The component it invokes.
    pub fn component(&self) -> &str {
        match self {
            Self::Cron(t) => &t.component,
            Self::Kafka(t) => &t.component,
        }
    }

    /// The world its component must implement.
    pub fn world(&self) -> World {
        match self {
            Self::Cron(_) => World::Fetcher,
            Self::Kafka(_) => World::Transformer,
        }
    }
}

/// Checks a Kafka topic name: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(crate) fn check_topic(topic: &str) -> Result<(), String> {
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid Kafka topic `{topic}`: use 1 to 249 characters of letters, digits, `.`, `_` and `-`"
        ))
    }
}
