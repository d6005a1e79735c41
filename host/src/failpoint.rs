//! Crash points for the kill -9 tests: `WEIR_FAILPOINT=<name>[:<n>]` makes
//! the process abort (no destructors, no flushing — as a `kill -9` would)
//! the n-th time (default: first) execution passes the named point. Unset,
//! a point costs one atomic load. The points of the Kafka → Delta path, in
//! order: `batch-before-write`, `delta-after-write` (parquet files written,
//! not committed), `delta-between-tables`, `delta-before-offset-commit`.
//! Of the cron path: `cron-after-publishing` (the fleet's ledger says a feed
//! version is being published; none of its messages is sent yet).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static ARMED: OnceLock<(String, u64)> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

/// Arms the crash point described by `spec` (`name` or `name:n`); called
/// once by `main` with the environment's value.
pub fn arm(spec: &str) {
    let (name, n) = match spec.rsplit_once(':') {
        Some((name, n)) => (name, n.parse().unwrap_or(1)),
        None => (spec, 1),
    };
    if ARMED.set((name.to_owned(), n.max(1))).is_ok() {
        tracing::warn!(point = name, hit = n, "crash point armed");
    }
}

/// Aborts the process if `name` is the armed point and this is its n-th hit.
pub fn hit(name: &str) {
    if let Some((armed, n)) = ARMED.get()
        && armed == name
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        eprintln!("weir: crash point `{name}` reached; aborting");
        std::process::abort();
    }
}
