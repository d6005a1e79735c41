//! The `producer` import: a per-invocation outbox. Messages are only
//! buffered here; the cron trigger publishes them if the invocation succeeds.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::fetcher::weir::function::producer::{self, Host, Message, SendError};

/// Most bytes (keys + values) one invocation may buffer.
pub const MAX_OUTBOX_BYTES: usize = 256 << 20;
/// Most messages one invocation may buffer.
pub const MAX_OUTBOX_MESSAGES: usize = 1_000_000;

/// One message a guest asked to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    /// Destination topic, one of the trigger's `outputs`.
    pub topic: String,
    /// Partitioning key.
    pub key: Option<Vec<u8>>,
    /// Payload.
    pub value: Vec<u8>,
}

/// Messages buffered during one invocation.
#[derive(Debug, Default)]
pub struct Outbox {
    allowed: Arc<[String]>,
    messages: Vec<OutMessage>,
    bytes: usize,
}

impl Outbox {
    /// An empty outbox accepting only `allowed` topics.
    pub fn new(allowed: Arc<[String]>) -> Self {
        Self {
            allowed,
            messages: Vec::new(),
            bytes: 0,
        }
    }

    /// Buffers one message, enforcing the topic allow-list and the size caps.
    pub fn push(&mut self, message: OutMessage) -> Result<(), SendError> {
        if !self.allowed.contains(&message.topic) {
            return Err(SendError::TopicNotAllowed(format!(
                "topic `{}` is not in the trigger's outputs [{}]",
                message.topic,
                self.allowed.join(", ")
            )));
        }
        let size = message.value.len() + message.key.as_ref().map_or(0, Vec::len);
        if self.messages.len() >= MAX_OUTBOX_MESSAGES || self.bytes + size > MAX_OUTBOX_BYTES {
            return Err(SendError::TooLarge(format!(
                "one invocation may send at most {MAX_OUTBOX_MESSAGES} messages and {MAX_OUTBOX_BYTES} bytes"
            )));
        }
        self.bytes += size;
        self.messages.push(message);
        Ok(())
    }

    /// The buffered messages, in send order.
    pub fn into_messages(self) -> Vec<OutMessage> {
        self.messages
    }
}

impl Outbox {
    /// Buffers all of `messages` or, on the first refusal, none of them.
    pub fn push_all(&mut self, messages: Vec<OutMessage>) -> Result<(), SendError> {
        let (len, bytes) = (self.messages.len(), self.bytes);
        for message in messages {
            if let Err(e) = self.push(message) {
                self.messages.truncate(len);
                self.bytes = bytes;
                return Err(e);
            }
        }
        Ok(())
    }
}

impl Host for Outbox {
    fn send_batch(&mut self, messages: Vec<Message>) -> Result<(), SendError> {
        let messages = messages
            .into_iter()
            .map(|m| OutMessage {
                topic: m.topic,
                key: m.key,
                value: m.value,
            })
            .collect();
        self.push_all(messages)
    }

    fn send(
        &mut self,
        topic: String,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<(), SendError> {
        self.push(OutMessage { topic, key, value })
    }
}

/// Adds the interface to `linker`; `outbox` finds the invocation's outbox.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    outbox: fn(&mut T) -> &mut Outbox,
) -> wasmtime::Result<()> {
    producer::add_to_linker::<T, HasSelf<Outbox>>(linker, outbox)
}

#[cfg(test)]
mod tests {
    use super::{OutMessage, Outbox, SendError};

    fn msg(topic: &str) -> OutMessage {
        OutMessage {
            topic: topic.into(),
            key: Some(b"k".to_vec()),
            value: b"v".to_vec(),
        }
    }

    #[test]
    fn refuses_undeclared_topics() {
        let mut outbox = Outbox::new(vec!["vehicle_topic".to_owned()].into());
        assert!(outbox.push(msg("vehicle_topic")).is_ok());
        assert!(
            matches!(outbox.push(msg("other")), Err(SendError::TopicNotAllowed(m)) if m.contains("`other`"))
        );
        assert_eq!(outbox.into_messages().len(), 1);
    }

    #[test]
    fn a_batch_is_all_or_nothing() {
        let mut outbox = Outbox::new(vec!["a".to_owned()].into());
        assert!(outbox.push_all(vec![msg("a"), msg("a")]).is_ok());
        assert!(outbox.push_all(vec![msg("a"), msg("b"), msg("a")]).is_err());
        assert_eq!(outbox.into_messages().len(), 2);
    }
}
