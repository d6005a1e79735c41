//! What the Kafka trigger invokes: a batch transform. Normally a Wasm
//! component; the benchmarks also plug in the same transform compiled
//! natively, to measure what the sandbox costs.

use futures::future::BoxFuture;

use crate::runtime::{KafkaMessage, LoadedComponent, Outcome};

/// Turns a batch of messages into one outcome per message, or fails as a
/// whole (the trigger then retries once and dead-letters the batch).
pub trait Transform: Send + Sync {
    /// The function's id (metrics, lineage).
    fn id(&self) -> &str;
    /// What produced the rows: the component's sha256, recorded in every commit.
    fn digest(&self) -> &str;
    /// Runs the batch.
    fn handle<'a>(
        &'a self,
        batch: &'a [KafkaMessage],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, String>>;
}

impl Transform for LoadedComponent {
    fn id(&self) -> &str {
        &self.id
    }

    fn digest(&self) -> &str {
        &self.digest
    }

    fn handle<'a>(
        &'a self,
        batch: &'a [KafkaMessage],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, String>> {
        Box::pin(async move {
            let (result, _output) = self.handle_batch(batch).await;
            result.map_err(|e| e.to_string())
        })
    }
}
