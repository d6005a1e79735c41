//! Where function output goes: Kafka (fetchers' messages) and Delta Lake
//! (transforms' rows and dead letters). Sinks never call back into
//! triggers; they report what they did in their return value.

pub mod delta;
pub mod kafka;

use crate::imports::producer::OutMessage;

/// Where a successful tick's messages go (the Kafka producer in `weir up`).
pub trait Publish: Send + Sync {
    /// Publishes one invocation's messages, all of them or fail.
    fn publish(
        &self,
        function: &str,
        messages: Vec<OutMessage>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}
