//! The swap protocol: compile and type-check the new component against the
//! function's world, smoke-test it on the last batch, and only then switch,
//! between two invocations. Any refusal leaves the running version alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::{Function, Origin, Version};
use crate::runtime::{LoadError, LoadedComponent, World};

/// How a deploy is checked before the switch.
#[derive(Debug, Clone, Copy)]
pub struct SwapOptions {
    /// Run the new version on the last processed batch first; refuse it if
    /// the call fails (error, trap, timeout).
    pub smoke_test: bool,
}

impl Default for SwapOptions {
    fn default() -> Self {
        Self { smoke_test: true }
    }
}

/// What a smoke test found.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SmokeTest {
    /// The new version handled the last batch.
    Passed {
        /// Messages in the batch.
        messages: usize,
        /// Rows it produced, all tables.
        rows: usize,
        /// Messages it rejected.
        rejected: usize,
    },
    /// Not run, and why.
    Skipped {
        /// E.g. no batch processed yet, or a fetcher (a call would fetch).
        reason: String,
    },
}

/// A switch that happened (or was not needed).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Swap {
    /// The component id.
    pub function: String,
    /// Digest running before.
    pub old: String,
    /// Digest running now.
    pub new: String,
    /// `swapped`, `rolled_back` or `unchanged` (the same bytes already run).
    pub result: &'static str,
    /// The smoke test, for deploys.
    pub smoke_test: Option<SmokeTest>,
    /// How long the switch held invocations back, in milliseconds.
    pub pause_ms: f64,
}

/// Why a deploy or rollback was refused; the old version keeps running.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// Not a component, does not compile, or does not fit the world.
    #[error("`{function}`: new version refused")]
    Load {
        /// The component id.
        function: String,
        /// What the loader found.
        #[source]
        source: LoadError,
    },
    /// The new version failed on the last batch.
    #[error(
        "`{function}`: new version refused: it failed the smoke test on the last batch ({messages} messages): {reason}"
    )]
    Smoke {
        /// The component id.
        function: String,
        /// Messages in the batch.
        messages: usize,
        /// The invocation error.
        reason: String,
    },
    /// Nothing to roll back to.
    #[error("`{function}`: no previous version to roll back to")]
    NoPrevious {
        /// The component id.
        function: String,
    },
    /// Compiling was cancelled (the host is shutting down).
    #[error("`{function}`: compiling the new version was interrupted")]
    Interrupted {
        /// The component id.
        function: String,
    },
}

impl SwapError {
    /// The message with its causes, for users (API answers, logs).
    pub fn describe(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// The `result` label of `weir_swaps_total`.
    pub fn result(&self) -> &'static str {
        match self {
            Self::Load {
                source: LoadError::WrongWorld { .. } | LoadError::Imports { .. },
                ..
            } => "wrong_world",
            Self::Load { .. } | Self::Interrupted { .. } => "invalid",
            Self::Smoke { .. } => "smoke_failed",
            Self::NoPrevious { .. } => "no_previous",
        }
    }
}

impl Function {
    /// Deploys component `bytes` as the function's new version.
    pub async fn deploy(
        &self,
        bytes: Vec<u8>,
        origin: Origin,
        options: SwapOptions,
    ) -> Result<Swap, SwapError> {
        let _one = self.deploying.lock().await;
        let result = self.try_deploy(bytes, origin, options).await;
        self.count(result.as_ref().map(|s| s.result));
        result
    }

    async fn try_deploy(
        &self,
        bytes: Vec<u8>,
        origin: Origin,
        options: SwapOptions,
    ) -> Result<Swap, SwapError> {
        let current = self.current();
        let old = current.component.digest.clone();
        if crate::runtime::digest(&bytes) == old {
            return Ok(Swap {
                function: self.id.clone(),
                new: old.clone(),
                old,
                result: "unchanged",
                smoke_test: None,
                pause_ms: 0.0,
            });
        }
        let candidate = self.compile(&current.component, bytes).await?;
        let smoke_test = if options.smoke_test {
            self.smoke_test(&candidate).await?
        } else {
            SmokeTest::Skipped {
                reason: "not asked for".to_owned(),
            }
        };
        let pause = self.switch(candidate, origin);
        let mut swap = self.report(old, "swapped", pause.await);
        swap.smoke_test = Some(smoke_test);
        Ok(swap)
    }

    /// Restores the previous version; the one it replaces becomes the
    /// previous (so a second rollback undoes the first).
    pub async fn rollback(&self) -> Result<Swap, SwapError> {
        let _one = self.deploying.lock().await;
        let result = match self.previous() {
            None => Err(SwapError::NoPrevious {
                function: self.id.clone(),
            }),
            Some(previous) => {
                let old = self.current().component.digest.clone();
                let pause = self.switch(previous.component, Origin::Rollback).await;
                Ok(self.report(old, "rolled_back", pause))
            }
        };
        self.count(result.as_ref().map(|_| "rollback"));
        result
    }

    /// Compiles off the async workers: a large component takes a while.
    async fn compile(
        &self,
        current: &LoadedComponent,
        bytes: Vec<u8>,
    ) -> Result<Arc<LoadedComponent>, SwapError> {
        let runtime = Arc::clone(current.runtime());
        let (id, world, settings) = (self.id.clone(), self.world, current.settings.clone());
        let loaded =
            tokio::task::spawn_blocking(move || runtime.load(&id, &bytes, world, settings)).await;
        match loaded {
            Ok(Ok(component)) => Ok(Arc::new(component)),
            Ok(Err(source)) => Err(SwapError::Load {
                function: self.id.clone(),
                source,
            }),
            Err(_) => Err(SwapError::Interrupted {
                function: self.id.clone(),
            }),
        }
    }

    /// Runs `candidate` on the last batch, unmetered: its outcomes are
    /// thrown away, only whether the call succeeds counts.
    async fn smoke_test(&self, candidate: &LoadedComponent) -> Result<SmokeTest, SwapError> {
        if self.world != World::Transformer {
            return Ok(SmokeTest::Skipped {
                reason: "fetchers are not smoke-tested: a test call would fetch the feed"
                    .to_owned(),
            });
        }
        let Some(batch) = self.last_batch() else {
            return Ok(SmokeTest::Skipped {
                reason: "no batch processed yet".to_owned(),
            });
        };
        candidate.set_metered(false);
        let (result, _output) = candidate.handle_batch(&batch).await;
        candidate.set_metered(true);
        let output = result.map_err(|e| SwapError::Smoke {
            function: self.id.clone(),
            messages: batch.len(),
            reason: e.to_string(),
        })?;
        Ok(SmokeTest::Passed {
            messages: batch.len(),
            rows: output.rows(),
            rejected: output.rejects.len(),
        })
    }

    /// Makes `component` current once no invocation holds the old one;
    /// returns how long invocations were held back.
    async fn switch(&self, component: Arc<LoadedComponent>, origin: Origin) -> Duration {
        let gate = self.gate.write().await;
        let started = Instant::now();
        let metrics = Arc::clone(component.metrics());
        metrics.set_component(&self.id, self.world.name(), &component.digest);
        let retired = {
            let mut versions = self.lock();
            let new = Version {
                component,
                since: Utc::now(),
                origin,
            };
            let old = std::mem::replace(&mut versions.current, new);
            versions.previous.replace(old)
        };
        let pause = started.elapsed();
        drop(gate);
        // The version two back is dropped only now, outside the gate:
        // unmapping its compiled code took ~0.3 ms inside it.
        drop(retired);
        metrics
            .swap_pause
            .with_label_values(&[&self.id])
            .observe(pause.as_secs_f64());
        pause
    }

    fn report(&self, old: String, result: &'static str, pause: Duration) -> Swap {
        let current = self.current();
        tracing::info!(function = %self.id, %old, new = %current.component.digest, result, pause_us = pause.as_micros(), "function version switched");
        Swap {
            function: self.id.clone(),
            old,
            new: current.component.digest.clone(),
            result,
            smoke_test: None,
            pause_ms: pause.as_secs_f64() * 1000.0,
        }
    }

    fn count(&self, result: Result<&'static str, &SwapError>) {
        let label = match result {
            Ok("swapped") => "ok",
            Ok(other) => other,
            Err(e) => {
                tracing::warn!(function = %self.id, error = %e.describe(), "swap refused");
                e.result()
            }
        };
        self.current()
            .component
            .metrics()
            .swaps
            .with_label_values(&[&self.id, label])
            .inc();
    }
}
