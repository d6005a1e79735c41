//! Where function output goes: Kafka (fetchers' messages). Sinks never call
//! back into triggers; they report what they did in their return value.

pub mod kafka;
