//! Triggers: what wakes a function. The set is closed: `cron` and `kafka`,
//! each module owning its config (as written in `spin.toml`), its validated
//! form and its run loop.

pub mod cron;
pub mod kafka;

use crate::runtime::World;

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
