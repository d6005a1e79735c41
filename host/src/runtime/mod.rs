//! The sandbox: one wasmtime [`Engine`] (pooling allocator, epoch
//! interruption), components loaded and type-checked against their world,
//! and invocations with a hard deadline and memory cap. Knows nothing of
//! schedules, Kafka or Delta.

mod component;
mod error;
mod limiter;
mod limits;
pub mod messages;
mod output;
mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
};

pub use component::{
    ComponentSettings, CronInvocation, CronResult, LoadedComponent, World, digest,
};
pub use error::{InvokeError, LoadError, TrapKind};
pub use limits::{DEFAULT_MAX_MEMORY, DEFAULT_TIMEOUT, Limits};
pub use messages::{
    BatchOutput, Column, ColumnValues, KafkaMessage, Outcome, TableOutput, TableRows,
};
pub use state::GuestOutput;

use crate::metrics::Metrics;

/// Engine-wide settings; per-component limits are [`Limits`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Granularity of deadlines: the epoch advances once per tick, so a
    /// guest overruns its deadline by at most one tick.
    pub epoch_tick: Duration,
    /// Instances that may run at once (size of the pooling allocator).
    pub max_instances: u32,
    /// Upper bound of any component's `max_memory`; reserves this much
    /// address space per pooled memory slot.
    pub max_memory_ceiling: u64,
    /// Bytes of each pooled linear memory, table and async stack kept
    /// resident between instances and reset with `memset` instead of
    /// `madvise`: avoids page faults and TLB shootdowns on every invocation.
    /// Only pages a guest dirtied are reset (pagemap scan), so a large value
    /// costs small guests nothing; it bounds the resident size of each slot
    /// in use. 32 MiB holds a 10,000-message transform batch.
    pub keep_resident: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            epoch_tick: Duration::from_millis(10),
            max_instances: 128,
            max_memory_ceiling: 4 << 30,
            keep_resident: 32 << 20,
        }
    }
}

/// The engine and its epoch ticker; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Runtime {
    engine: Engine,
    config: RuntimeConfig,
    metrics: Arc<Metrics>,
    ticker: Arc<AtomicBool>,
}

impl Runtime {
    /// Builds the engine and starts the epoch ticker thread.
    pub fn new(config: RuntimeConfig, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::new();
        let instances = config.max_instances;
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(4))
            .total_memories(instances.saturating_mul(2))
            .total_tables(instances.saturating_mul(4))
            .total_stacks(instances)
            .max_memory_size(usize::try_from(config.max_memory_ceiling)?)
            .linear_memory_keep_resident(config.keep_resident)
            .table_keep_resident(config.keep_resident)
            .async_stack_keep_resident(config.keep_resident)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .wasm_component_model(true)
            .wasm_component_model_async(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if std::env::var_os("WEIR_PERF_MAP").is_some_and(|v| v == "1") {
            // Names compiled guest functions for `perf` (/tmp/perf-<pid>.map).
            wasm.profiler(ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&wasm)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticking, tick) = (engine.clone(), config.epoch_tick);
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    ticking.increment_epoch();
                }
            })?;
        Ok(Self {
            engine,
            config,
            metrics,
            ticker: stop,
        })
    }

    /// The shared engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The metrics every invocation reports to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.store(true, Ordering::Relaxed);
    }
}
