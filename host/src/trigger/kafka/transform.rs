//! What the Kafka trigger invokes: a batch transform. Normally the current
//! version of a deployed Wasm component; the benchmarks also plug in the
//! same transform compiled natively, to measure what the sandbox costs.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::runtime::{BatchOutput, KafkaMessage, LoadedComponent};
use crate::versions::{Function, InUse};

/// Turns a batch of messages into rows and rejects, or fails as a whole
/// (the trigger then retries once and dead-letters the batch).
pub trait Transform: Send + Sync {
    /// The function's id (metrics, lineage).
    fn id(&self) -> &str;
    /// What produced the rows: the component's sha256, recorded in every commit.
    fn digest(&self) -> &str;
    /// Runs the batch.
    fn handle<'a>(
        &'a self,
        batch: &'a [KafkaMessage],
    ) -> BoxFuture<'a, Result<BatchOutput, String>>;
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
    ) -> BoxFuture<'a, Result<BatchOutput, String>> {
        Box::pin(async move {
            let (result, _output) = self.handle_batch(batch).await;
            result.map_err(|e| e.to_string())
        })
    }
}

/// Where each batch's transform comes from.
#[derive(Clone)]
pub enum TransformSource {
    /// One transform for the runner's whole life (benchmarks, tests).
    Fixed(Arc<dyn Transform>),
    /// A deployed function: its current version, checked out per batch so
    /// a swap lands between two batches.
    Function(Arc<Function>),
}

impl std::fmt::Debug for TransformSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(t) => f.debug_tuple("Fixed").field(&t.digest()).finish(),
            Self::Function(function) => f.debug_tuple("Function").field(&function.id).finish(),
        }
    }
}

impl From<Arc<dyn Transform>> for TransformSource {
    fn from(transform: Arc<dyn Transform>) -> Self {
        Self::Fixed(transform)
    }
}

impl From<Arc<Function>> for TransformSource {
    fn from(function: Arc<Function>) -> Self {
        Self::Function(function)
    }
}

/// The transform of one batch; holding it keeps a swap from switching
/// until the batch is committed.
pub(super) struct Checkout {
    pub transform: Arc<dyn Transform>,
    _in_use: Option<InUse>,
}

impl TransformSource {
    /// The function id.
    pub fn id(&self) -> &str {
        match self {
            Self::Fixed(t) => t.id(),
            Self::Function(f) => &f.id,
        }
    }

    pub(super) async fn checkout(&self) -> Checkout {
        match self {
            Self::Fixed(t) => Checkout {
                transform: Arc::clone(t),
                _in_use: None,
            },
            Self::Function(f) => {
                let in_use = f.checkout().await;
                Checkout {
                    transform: Arc::clone(&in_use.component) as Arc<dyn Transform>,
                    _in_use: Some(in_use),
                }
            }
        }
    }

    /// Keeps the batch for the next deploy's smoke test.
    pub(super) fn processed(&self, batch: Vec<KafkaMessage>) {
        if let Self::Function(f) = self {
            f.remember_batch(batch.into());
        }
    }

    pub(super) fn failed(&self, error: &str) {
        if let Self::Function(f) = self {
            f.record_error(error.to_owned());
        }
    }
}
