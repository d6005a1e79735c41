//! Free space where weir writes on local disks: the data dir (the embedded
//! broker's log, the feed ledger, the admin token) and every table on a
//! local path. A full disk makes table commits and the broker's writes
//! fail (each failure is counted where it happens); this says why, before
//! and while it happens: `weir_disk_free_bytes{path}`, and a warning when a
//! filesystem has less than [`LOW`] left.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Below this many free bytes a path's filesystem is reported as full.
pub const LOW: u64 = 64 * 1024 * 1024;

/// How often free space is measured.
const EVERY: Duration = Duration::from_secs(10);

/// Bytes an unprivileged writer may still use on `path`'s filesystem.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// The local directory of a table URI (a path or `file://`), or `None`
/// for object storage.
pub fn local_table(uri: &str) -> Option<PathBuf> {
    match uri.split_once("://") {
        None => Some(PathBuf::from(uri)),
        Some(("file", path)) => Some(PathBuf::from(path)),
        Some(_) => None,
    }
}

/// Measures every path in `paths` every [`EVERY`] until `shutdown`; a path
/// not made yet is measured at its nearest existing parent.
pub async fn watch(paths: BTreeSet<PathBuf>, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut low = BTreeSet::new();
    loop {
        for path in &paths {
            let Some(existing) = path.ancestors().find(|p| p.exists()) else {
                continue;
            };
            let free = match free_bytes(existing) {
                Ok(free) => free,
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "cannot measure free space");
                    continue;
                }
            };
            let shown = path.display().to_string();
            metrics
                .disk_free
                .with_label_values(&[shown.as_str()])
                .set(i64::try_from(free).unwrap_or(i64::MAX));
            if free < LOW && low.insert(path.clone()) {
                tracing::warn!(path = %shown, free_bytes = free, "the disk under this path is (almost) full: the embedded broker's log, the feed ledger and tables there cannot grow, so publishes and commits fail until space is freed");
            } else if free >= LOW && low.remove(path) {
                tracing::info!(path = %shown, free_bytes = free, "the disk under this path has room again");
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
    use super::{free_bytes, local_table};

    #[test]
    fn table_uris_on_local_disks_and_elsewhere() {
        assert_eq!(
            local_table("data/delta/t").unwrap().to_str(),
            Some("data/delta/t")
        );
        assert_eq!(
            local_table("file:///srv/t").unwrap().to_str(),
            Some("/srv/t")
        );
        assert_eq!(local_table("s3://bucket/t"), None);
    }

    #[test]
    fn free_space_of_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }
}
