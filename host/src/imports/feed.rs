//! The `feed` import and the ledger behind it: the header timestamp of the
//! last published feed per trigger, kept in a small JSON file so that an
//! unchanged feed is still recognised after a restart; and the count of a
//! feed's strings that were not valid text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::fetcher::weir::function::feed::{self, Freshness, Host};
use crate::metrics::Metrics;

/// Last published header timestamp per feed (trigger id).
#[derive(Debug, Default)]
pub struct FeedLedger {
    path: Option<PathBuf>,
    last: Mutex<BTreeMap<String, u64>>,
}

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// File I/O failed.
    #[error("cannot access the feed ledger `{}`", path.display())]
    Io {
        /// The ledger file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the JSON the host writes.
    #[error("the feed ledger `{}` is corrupt", path.display())]
    Corrupt {
        /// The ledger file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

impl FeedLedger {
    /// A ledger kept only in memory (tests, `weir feed decode`).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Opens (or starts) the ledger file at `path`.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let last = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| LedgerError::Corrupt {
                path: path.to_path_buf(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(LedgerError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Ok(Self {
            path: Some(path.to_path_buf()),
            last: Mutex::new(last),
        })
    }

    /// The last published header timestamp of `feed`.
    pub fn last(&self, feed: &str) -> Option<u64> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(feed)
            .copied()
    }

    /// Records `timestamp` as published for `feed`, durably (write + rename).
    pub fn commit(&self, feed: &str, timestamp: u64) -> Result<(), LedgerError> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.insert(feed.to_owned(), timestamp);
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |source| LedgerError::Io {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let bytes = serde_json::to_vec_pretty(&*last).unwrap_or_default();
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Records `timestamp` for `feed` if it is newer than what the ledger
    /// holds (another host's ledger, taken over).
    pub fn raise(&self, feed: &str, timestamp: u64) -> Result<(), LedgerError> {
        if self.last(feed).is_some_and(|last| last >= timestamp) {
            return Ok(());
        }
        self.commit(feed, timestamp)
    }
}

/// What one cron invocation knows about its feed.
#[derive(Debug, Clone)]
pub struct FeedObservation {
    /// The feed's name: the trigger id.
    pub feed: String,
    /// The last published header timestamp, if any.
    pub last: Option<u64>,
    /// The header timestamp the guest reported in this invocation.
    pub observed: Option<u64>,
    metrics: Arc<Metrics>,
    function: Arc<str>,
}

impl FeedObservation {
    /// Starts an observation of `feed` for `function`.
    pub fn new(feed: String, last: Option<u64>, function: Arc<str>, metrics: Arc<Metrics>) -> Self {
        Self {
            feed,
            last,
            observed: None,
            metrics,
            function,
        }
    }

    fn observe(&mut self, header_timestamp: u64, now: u64) -> Freshness {
        self.observed = Some(header_timestamp);
        let age = now.saturating_sub(header_timestamp) as f64;
        self.metrics
            .feed_age
            .with_label_values(&[&self.feed])
            .set(age);
        #[expect(
            clippy::cast_precision_loss,
            reason = "seconds since 1970 fit an f64 exactly"
        )]
        self.metrics
            .feed_timestamp
            .with_label_values(&[&self.feed])
            .set(header_timestamp as f64);
        if let Some(last) = self.last
            && header_timestamp > last
        {
            #[expect(clippy::cast_precision_loss, reason = "a gauge in seconds")]
            self.metrics
                .feed_refresh_interval
                .with_label_values(&[&self.feed])
                .set((header_timestamp - last) as f64);
        }
        if self.last.is_some_and(|last| header_timestamp <= last) {
            self.metrics
                .feed_unchanged
                .with_label_values(&[&*self.function, &self.feed])
                .inc();
            Freshness::Unchanged
        } else {
            Freshness::New
        }
    }
}

/// The feed an invocation observes, if its trigger has one (`weir feed
/// decode` runs without).
#[derive(Debug, Default)]
pub struct FeedImport(pub Option<FeedObservation>);

impl Host for FeedImport {
    fn invalid_strings(&mut self, count: u64) {
        if let Some(observation) = &self.0 {
            observation
                .metrics
                .feed_invalid_strings
                .with_label_values(&[&*observation.function, &observation.feed])
                .inc_by(count);
        }
    }

    fn observe(&mut self, header_timestamp: u64, _body_bytes: u64) -> Freshness {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match &mut self.0 {
            Some(observation) => observation.observe(header_timestamp, now),
            None => Freshness::New,
        }
    }
}

/// Adds the interface to `linker`; `feed` finds the invocation's feed.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    feed: fn(&mut T) -> &mut FeedImport,
) -> wasmtime::Result<()> {
    feed::add_to_linker::<T, HasSelf<FeedImport>>(linker, feed)
}

#[cfg(test)]
mod tests {
    use super::FeedLedger;

    #[test]
    fn ledger_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/feeds.json");
        let ledger = FeedLedger::open(&path).unwrap();
        assert_eq!(ledger.last("vehicles"), None);
        ledger.commit("vehicles", 100).unwrap();
        ledger.commit("alerts", 7).unwrap();
        let reopened = FeedLedger::open(&path).unwrap();
        assert_eq!(reopened.last("vehicles"), Some(100));
        assert_eq!(reopened.last("alerts"), Some(7));
        reopened.raise("vehicles", 90).unwrap();
        assert_eq!(reopened.last("vehicles"), Some(100), "never lowered");
        reopened.raise("vehicles", 120).unwrap();
        assert_eq!(FeedLedger::open(&path).unwrap().last("vehicles"), Some(120));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(
            FeedLedger::open(&path)
                .unwrap_err()
                .to_string()
                .contains("is corrupt")
        );
    }
}
