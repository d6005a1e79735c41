//! The admin API's bearer token as `weir up` and `weir deploy` find it:
//! given (`WEIR_ADMIN_TOKEN`), in a file (`--admin-token-file`), or, for a
//! host on loopback, made on first use in `<data dir>/admin.token`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The token options `weir up` and `weir deploy` share.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct TokenArgs {
    /// Bearer token for deploys and rollbacks.
    #[arg(long = "admin-token", env = "WEIR_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the bearer token (e.g. a Docker secret).
    #[arg(long = "admin-token-file", env = "WEIR_ADMIN_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

/// Where a loopback host keeps the token it made.
pub(super) fn local_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.token")
}

impl TokenArgs {
    /// The token given on the command line, environment or in a file.
    pub(super) fn given(&self) -> anyhow::Result<Option<String>> {
        if let Some(token) = &self.token {
            return non_empty(token.trim(), "WEIR_ADMIN_TOKEN").map(Some);
        }
        match &self.token_file {
            Some(file) => read(file).map(Some),
            None => Ok(None),
        }
    }

    /// The token a host listening on `listen` serves deploys with: the
    /// given one; else, on loopback, the data dir's (made if missing).
    /// Deploys on any other address without a token are refused outright.
    pub(super) fn for_host(&self, listen: SocketAddr, data_dir: &Path) -> anyhow::Result<String> {
        if let Some(token) = self.given()? {
            return Ok(token);
        }
        if !listen.ip().is_loopback() {
            bail!(
                "refusing to accept deploys on {listen} without a token: set WEIR_ADMIN_TOKEN or --admin-token-file, or pass --no-deploy"
            );
        }
        local_token(&local_token_path(data_dir))
    }
}

/// The token in `path`, made there if missing. Hosts sharing a data dir
/// may start together: the file appears whole or not at all (written
/// aside, then hard-linked into place), and a host that loses the race
/// reads the winner's token.
fn local_token(path: &Path) -> anyhow::Result<String> {
    if path.exists() {
        return read(path);
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let aside = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    let linked = write_private(&aside, &token).and_then(|()| std::fs::hard_link(&aside, path));
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "made an admin token for deploys on loopback");
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => {
            Err(e).with_context(|| format!("cannot write the admin token to `{}`", path.display()))
        }
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin token from `{}`", path.display()))?;
    non_empty(text.trim(), &path.display().to_string())
}

fn non_empty(token: &str, from: &str) -> anyhow::Result<String> {
    if token.is_empty() {
        bail!("the admin token from `{from}` is empty");
    }
    Ok(token.to_owned())
}

/// Writes `text` readable by the owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_starting_together_share_one_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("admin.token");
        let tokens: Vec<String> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..8).map(|_| s.spawn(|| local_token(&path))).collect();
            racers
                .into_iter()
                .map(|r| r.join().unwrap().unwrap())
                .collect()
        });
        assert_eq!(tokens[0].len(), 64);
        assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
        assert_eq!(read(&path).unwrap(), tokens[0]);
        // Nothing left aside.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["admin.token"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_empty_token_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, "  \n").unwrap();
        let e = local_token(&path).unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e:#}");
    }
}
