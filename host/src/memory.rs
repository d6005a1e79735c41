//! The heap as jemalloc sees it: the `weir` binary allocates through
//! jemalloc (librdkafka's allocations included, see `main.rs`), so its
//! statistics tell what live allocations hold
//! (`weir_memory_allocated_bytes`) apart from what the allocator keeps
//! resident for them (`weir_memory_resident_bytes`). RSS alone cannot say
//! whether a host that grows holds more data or only keeps freed pages. In
//! a process whose global allocator is another (the integration tests) they
//! stay near zero.

use std::sync::Arc;
use std::time::Duration;

use tikv_jemalloc_ctl::{epoch, stats};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often the statistics are read.
const EVERY: Duration = Duration::from_secs(10);

/// Bytes allocated and bytes resident, as of now.
pub fn heap() -> anyhow::Result<(usize, usize)> {
    // jemalloc's statistics are a snapshot refreshed by advancing the epoch.
    epoch::advance().map_err(|e| anyhow::anyhow!("jemalloc epoch: {e}"))?;
    let allocated = stats::allocated::read().map_err(|e| anyhow::anyhow!("jemalloc stats: {e}"))?;
    let resident = stats::resident::read().map_err(|e| anyhow::anyhow!("jemalloc stats: {e}"))?;
    Ok((allocated, resident))
}

/// Has jemalloc return freed pages to the system on its own. Without its
/// background threads an arena purges the dirty pages it keeps only when
/// it next allocates, so pages an idle arena freed stay resident until
/// then; with them every arena's freed pages are purged as they decay
/// (10 s). Under the soak's steady load it changed nothing measurable
/// (jemalloc resident 85–178 MB without, 108–200 MB with, the allocated
/// heap 23–40 MB in both: what stays resident there is the last seconds'
/// peaks, see docs/decisions.md); it is for a host whose load stops.
pub fn purge_in_background() -> anyhow::Result<()> {
    tikv_jemalloc_ctl::background_thread::write(true)
        .map_err(|e| anyhow::anyhow!("cannot start jemalloc's background threads: {e}"))
}

/// Sets the memory gauges every [`EVERY`] until `shutdown`.
pub async fn watch(metrics: Arc<Metrics>, shutdown: CancellationToken) {
    loop {
        match heap() {
            Ok((allocated, resident)) => {
                metrics
                    .memory_allocated
                    .set(i64::try_from(allocated).unwrap_or(i64::MAX));
                metrics
                    .memory_resident
                    .set(i64::try_from(resident).unwrap_or(i64::MAX));
            }
            Err(e) => {
                tracing::debug!(
                    error = format!("{e:#}"),
                    "cannot read the heap's statistics"
                );
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    /// The unit tests allocate through jemalloc too, as the binary does.
    #[global_allocator]
    static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

    #[test]
    fn the_heap_statistics_follow_an_allocation() {
        let (before, _) = super::heap().unwrap();
        let block = vec![1u8; 64 << 20];
        let (during, resident) = super::heap().unwrap();
        assert!(during >= before + (63 << 20), "{before} then {during}");
        assert!(
            resident >= 64 << 20,
            "{during} allocated, {resident} resident"
        );
        drop(block);
        let (after, _) = super::heap().unwrap();
        assert!(
            after + (32 << 20) < during,
            "{during} then {after} after freeing"
        );
    }
}
