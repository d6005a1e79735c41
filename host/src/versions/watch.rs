//! `weir up --watch`: deploys a function's built component when its file
//! changes. Polls size and modification time instead of using inotify,
//! which misses changes on WSL2's `/mnt/c` and on some network filesystems.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{Function, Origin, SwapOptions};

/// What a file looked like at one poll.
type Stamp = Option<(u64, SystemTime)>;

/// One watched component file.
#[derive(Debug)]
struct Watched {
    function: Arc<Function>,
    path: PathBuf,
    /// The stamp last seen.
    seen: Stamp,
    /// A change seen but not yet acted on: waits one more poll for the
    /// writer (cargo, a copy) to finish.
    pending: bool,
    /// The digest of the last upload that was refused, not retried until
    /// the file changes again.
    refused: Option<String>,
}

/// Watches every `(function, component file)` pair until `shutdown`,
/// checking every `every`.
pub async fn run(
    sources: Vec<(Arc<Function>, PathBuf)>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut watched: Vec<Watched> = sources
        .into_iter()
        .map(|(function, path)| Watched {
            seen: stamp(&path),
            function,
            path,
            pending: false,
            refused: None,
        })
        .collect();
    tracing::info!(
        files = watched.len(),
        every_ms = every.as_millis(),
        "watching component files for changes"
    );
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        for w in &mut watched {
            let now = stamp(&w.path);
            if now != w.seen {
                w.seen = now;
                w.pending = now.is_some();
            } else if w.pending {
                w.pending = false;
                deploy(w).await;
            }
        }
    }
}

async fn deploy(w: &mut Watched) {
    let bytes = match tokio::fs::read(&w.path).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(function = %w.function.id, path = %w.path.display(), error = %e, "cannot read the changed component");
            return;
        }
    };
    let digest = crate::runtime::digest(&bytes);
    if w.refused.as_ref() == Some(&digest) {
        return;
    }
    match w
        .function
        .deploy(bytes, Origin::Watch, SwapOptions::default())
        .await
    {
        Ok(swap) => {
            w.refused = None;
            tracing::info!(function = %swap.function, old = %swap.old, new = %swap.new, result = swap.result, "--watch: deployed the rebuilt component");
        }
        Err(e) => {
            w.refused = Some(digest);
            tracing::error!(function = %w.function.id, path = %w.path.display(), error = %e.describe(), "--watch: rebuilt component refused; the old version keeps running");
        }
    }
}

fn stamp(path: &std::path::Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
