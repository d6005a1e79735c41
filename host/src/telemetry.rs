//! Logging: `tracing` to stderr at `info`, or as `RUST_LOG` says, with
//! delta-rs' own chatter kept down either way.

use tracing_subscriber::EnvFilter;

/// What delta-rs and its kernel may log unless `RUST_LOG` names them: they
/// log every snapshot and commit at `info`, a missing table (normal before
/// the first commit) as an `error`, and a `warn` for every binary column of
/// every file written (the dead-letter table's key and value); the embedded
/// broker's storage logs its maintenance runs at `info`, and its record
/// codec the size of every record's headers it encodes (thousands of lines
/// a minute in local mode): noise for weir's users.
const QUIET: &str = "buoyant_kernel=off,deltalake_core=warn,deltalake_core::writer::stats=error,tansu_storage=warn,tansu_sans_io=warn";

/// The filter for `RUST_LOG` = `user`: `info` when unset, delta-rs quiet
/// unless a directive of `user` names it (later directives win). A `user`
/// that does not parse is left out, and the error says why.
pub fn filter(user: Option<&str>) -> (EnvFilter, Option<String>) {
    let user = user.map(str::trim).filter(|u| !u.is_empty());
    let (extra, error) = match user.map(|u| (u, EnvFilter::try_new(u))) {
        Some((u, Ok(_))) => (format!(",{u}"), None),
        Some((u, Err(e))) => (
            String::new(),
            Some(format!("ignoring RUST_LOG `{u}` ({e}); logging at info")),
        ),
        None => (String::new(), None),
    };
    (EnvFilter::new(format!("info,{QUIET}{extra}")), error)
}

/// Installs the global subscriber; call once, from `main`.
pub fn init() {
    let user = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let (filter, error) = filter(user.as_deref());
    // Colours only on a terminal: escape codes in a log file or `docker logs` are noise.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(error) = error {
        tracing::warn!("{error}");
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing::Level;

    use super::filter;

    /// The lines a subscriber with `filter(user)` writes for one event per
    /// (target, level) below.
    fn logged(user: Option<&str>) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter(user).0)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::event!(target: "weir::run", Level::INFO, "weir info");
            tracing::event!(target: "weir::run", Level::DEBUG, "weir debug");
            tracing::event!(target: "deltalake_core::kernel", Level::INFO, "delta info");
            tracing::event!(target: "deltalake_core::kernel", Level::WARN, "delta warn");
            tracing::event!(target: "deltalake_core::writer::stats", Level::WARN, "stats warn");
            tracing::event!(target: "buoyant_kernel::snapshot", Level::ERROR, "kernel error");
            tracing::event!(target: "tansu_storage::lite", Level::INFO, "vacuum info");
            tracing::event!(target: "tansu_sans_io::record::codec", Level::INFO, "codec info");
        });
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn messages(log: &str) -> Vec<&str> {
        log.lines().filter_map(|l| l.rsplit(": ").next()).collect()
    }

    #[test]
    fn without_rust_log_weir_logs_info_and_delta_rs_only_its_warnings() {
        assert_eq!(messages(&logged(None)), ["weir info", "delta warn"]);
        assert_eq!(messages(&logged(Some(" "))), ["weir info", "delta warn"]);
    }

    #[test]
    fn rust_log_sets_the_level_and_delta_rs_stays_quiet_unless_named() {
        assert_eq!(
            messages(&logged(Some("debug"))),
            ["weir info", "weir debug", "delta warn"]
        );
        assert_eq!(messages(&logged(Some("warn"))), ["delta warn"]);
        assert_eq!(
            messages(&logged(Some(
                "warn,deltalake_core=info,buoyant_kernel=error"
            ))),
            ["delta info", "delta warn", "kernel error"]
        );
    }

    #[test]
    fn a_rust_log_that_does_not_parse_is_reported_and_left_out() {
        let (_, error) = filter(Some("weir=loud"));
        let error = error.expect("an error");
        assert!(error.contains("ignoring RUST_LOG `weir=loud`"), "{error}");
        assert_eq!(
            messages(&logged(Some("weir=loud"))),
            ["weir info", "delta warn"]
        );
        assert_eq!(filter(Some("debug")).1, None);
    }
}
