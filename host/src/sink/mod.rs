//! Where function output goes: Kafka (fetchers' messages) and Delta Lake
//! (transforms' rows and dead letters). Sinks never call back into
//! triggers; they report what they did in their return value.

pub mod delta;
pub mod kafka;
