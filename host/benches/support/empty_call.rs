//! The machine-speed check: an empty guest's invocation (a fresh instance
//! from the `InstancePre`, one call through the cron path, drop). Shared by
//! the invoke benchmark, which reports it, and the transform benchmark,
//! which reports it beside its throughput from the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::runtime::{ComponentSettings, CronInvocation};
use weir::{Runtime, World};

use super::locate;

/// Sorted per-call times of `iterations` calls of the empty guest, after a
/// tenth as many that warm the pool's slots and caches.
pub async fn times(runtime: &Arc<Runtime>, iterations: usize) -> anyhow::Result<Vec<Duration>> {
    let empty = runtime.load_file(
        "empty",
        &locate::guest("empty"),
        World::Fetcher,
        ComponentSettings::default(),
    )?;
    let outputs: Arc<[String]> = Arc::from(Vec::new());
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + iterations / 10 {
        let started = Instant::now();
        let (result, _) = empty
            .handle_cron(
                1,
                CronInvocation {
                    outputs: Arc::clone(&outputs),
                    ..CronInvocation::default()
                },
            )
            .await;
        let elapsed = started.elapsed();
        result.map_err(|e| anyhow::anyhow!("{e}"))?;
        if i >= iterations / 10 {
            samples.push(elapsed);
        }
    }
    samples.sort();
    Ok(samples)
}
