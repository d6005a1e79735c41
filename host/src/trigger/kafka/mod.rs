//! The Kafka trigger: its configuration, the consumer (group membership,
//! rebalances), batching, and the run loop that turns batches into Delta
//! commits exactly once (DESIGN.md §5).

mod commit;
mod config;
mod consumer;
mod progress;
mod runner;
mod transform;

pub use config::{
    BatchConfig, KafkaApplicationConfig, KafkaTrigger, KafkaTriggerConfig, TableConfig, TableTarget,
};
pub use consumer::Ownership;
pub use runner::{KafkaRunner, RunnerConfig, default_parallelism};
pub use transform::{Transform, TransformSource};
