//! Per-invocation overhead of an empty guest: a fresh instance from the
//! `InstancePre` (pooling allocator), one call, drop — all through the same
//! `handle_cron` path the cron trigger uses. `cargo bench --bench invoke`
//! prints a Markdown table for BENCHMARKS.md; under `cargo test` it runs a
//! few iterations only, as a smoke test.

use std::sync::Arc;
use std::time::Duration;

use weir::{Metrics, Runtime, RuntimeConfig};

#[path = "support/empty_call.rs"]
mod empty_call;
#[path = "../tests/guests/locate.rs"]
#[expect(dead_code, reason = "this bench uses only the guest fixtures")]
mod locate;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// Per-call times of the empty guest on a runtime built from `config`.
fn measure(config: RuntimeConfig, iterations: usize) -> anyhow::Result<Vec<Duration>> {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let runtime = Arc::new(Runtime::new(config, Arc::new(Metrics::new()))?);
    tokio.block_on(empty_call::times(&runtime, iterations))
}

fn main() -> anyhow::Result<()> {
    let benching = std::env::args().any(|a| a == "--bench");
    let iterations = if benching { 20_000 } else { 50 };
    println!(
        "| empty guest: instantiate (InstancePre, pooling) + call + drop | iterations | median | p99 | mean |"
    );
    println!("|---|---|---|---|---|");
    let resident = |bytes: usize| RuntimeConfig {
        keep_resident: bytes,
        ..RuntimeConfig::default()
    };
    let variants = [
        (
            "default (RuntimeConfig::default())",
            RuntimeConfig::default(),
        ),
        ("nothing kept resident (madvise every time)", resident(0)),
        ("1 MiB kept resident", resident(1 << 20)),
        ("4 MiB kept resident", resident(4 << 20)),
        ("16 MiB kept resident", resident(16 << 20)),
    ];
    for (name, config) in variants {
        let samples = measure(config, iterations)?;
        let mean = samples.iter().sum::<Duration>() / u32::try_from(samples.len())?;
        println!(
            "| {name} | {} | {:.1} µs | {:.1} µs | {:.1} µs |",
            samples.len(),
            percentile(&samples, 0.5).as_secs_f64() * 1e6,
            percentile(&samples, 0.99).as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6,
        );
    }
    Ok(())
}
