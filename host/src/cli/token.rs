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
        let path = local_token_path(data_dir);
        if path.exists() {
            return read(&path);
        }
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        write_private(&path, &token)
            .with_context(|| format!("cannot write the admin token to `{}`", path.display()))?;
        tracing::info!(path = %path.display(), "made an admin token for deploys on loopback");
        Ok(token)
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
    options.open(path)?.write_all(text.as_bytes())
}
