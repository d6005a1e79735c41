//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`,
//! with delta-rs' own chatter off).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; call once, from `main`.
pub fn init() {
    // delta-rs and its kernel log every snapshot and commit at `info`, and
    // log a missing table (normal before the first commit) as an `error`:
    // noise for weir's users unless asked for with RUST_LOG.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,buoyant_kernel=off,deltalake_core=warn"));
    // Colours only on a terminal: escape codes in a log file or `docker logs` are noise.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
