//! `weir deploy` and `weir rollback`: swap a function's component in a
//! running host through its admin API, and say what changed.

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::ManifestArg;
use super::build::build_component;
use super::token::{TokenArgs, local_token_path};
use crate::manifest::Manifest;

/// Where the host is and how to get in.
#[derive(Debug, clap::Args)]
struct HostArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    /// The running host's admin address.
    #[arg(long, env = "WEIR_ADMIN_URL", default_value = "http://127.0.0.1:9464")]
    admin: String,
    /// The host's data dir, relative to the manifest (where a host on
    /// loopback keeps the token it made).
    #[arg(long, env = "WEIR_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    #[command(flatten)]
    token: TokenArgs,
}

/// Arguments of `weir deploy`.
#[derive(Debug, clap::Args)]
pub(super) struct DeployArgs {
    /// The component id, as in `spin.toml`.
    component: String,
    /// The component file; default: the component's `source`.
    path: Option<PathBuf>,
    /// Run the component's build command first (as `weir build -c <id>`).
    #[arg(long)]
    build: bool,
    /// Switch without running the new version on the last batch first.
    #[arg(long)]
    no_smoke_test: bool,
    #[command(flatten)]
    host: HostArgs,
}

/// Arguments of `weir rollback`.
#[derive(Debug, clap::Args)]
pub(super) struct RollbackArgs {
    /// The component id, as in `spin.toml`.
    component: String,
    #[command(flatten)]
    host: HostArgs,
}

impl DeployArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let manifest = if self.path.is_none() || self.build {
            Some(self.host.manifest.load()?)
        } else {
            self.host.manifest.load().ok()
        };
        let path = match (&self.path, &manifest) {
            (Some(path), _) => path.clone(),
            (None, Some(manifest)) => component(manifest, &self.component)?.source.clone(),
            (None, None) => bail!("give the component file, or a manifest that names it"),
        };
        if self.build
            && let Some(manifest) = &manifest
        {
            build_component(component(manifest, &self.component)?)?;
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let query = if self.no_smoke_test {
            "?smoke_test=false"
        } else {
            ""
        };
        let url = format!(
            "{}/functions/{}/component{query}",
            self.host.admin.trim_end_matches('/'),
            self.component
        );
        let token = self.host.token(manifest.as_ref())?;
        let upload = reqwest::Client::new()
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(bytes);
        let swap = send(upload, &token)?;
        println!("{}", describe(&swap));
        Ok(())
    }
}

impl RollbackArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let manifest = self.host.manifest.load().ok();
        let url = format!(
            "{}/functions/{}/rollback",
            self.host.admin.trim_end_matches('/'),
            self.component
        );
        let token = self.host.token(manifest.as_ref())?;
        let swap = send(reqwest::Client::new().post(url), &token)?;
        println!("{}", describe(&swap));
        Ok(())
    }
}

impl HostArgs {
    fn token(&self, manifest: Option<&Manifest>) -> anyhow::Result<String> {
        if let Some(token) = self.token.given()? {
            return Ok(token);
        }
        let dir = manifest.map_or_else(|| PathBuf::from("."), |m| m.dir.clone());
        let path = local_token_path(&dir.join(&self.data_dir));
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_owned())
            .with_context(|| {
                format!(
                    "no admin token: set WEIR_ADMIN_TOKEN or --admin-token-file (a host on loopback writes one to `{}`)",
                    path.display()
                )
            })
    }
}

fn component<'m>(
    manifest: &'m Manifest,
    id: &str,
) -> anyhow::Result<&'m crate::manifest::ComponentConfig> {
    manifest.components.get(id).with_context(|| {
        let known: Vec<&str> = manifest.components.keys().map(String::as_str).collect();
        format!(
            "unknown component `{id}`; declared components: [{}]",
            known.join(", ")
        )
    })
}

/// Sends the request with the token; the answer's JSON, or its error.
fn send(request: reqwest::RequestBuilder, token: &str) -> anyhow::Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let response = request
            .bearer_auth(token)
            .send()
            .await
            .context("cannot reach the host's admin API (is `weir up` running?)")?;
        let status = response.status();
        let text = response.text().await?;
        let body: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({ "error": text }));
        if !status.is_success() {
            let reason = body["error"].as_str().unwrap_or(text.as_str()).trim();
            bail!("{status}: {reason}");
        }
        Ok(body)
    })
}

/// `f: sha256:… → sha256:… swapped (smoke test: …; paused … ms)`.
fn describe(swap: &serde_json::Value) -> String {
    let text = |key: &str| swap[key].as_str().unwrap_or("?").to_owned();
    let smoke = match swap["smoke_test"]["status"].as_str() {
        Some("passed") => format!(
            "smoke test passed on {} messages: {} rows, {} rejected; ",
            swap["smoke_test"]["messages"],
            swap["smoke_test"]["rows"],
            swap["smoke_test"]["rejected"]
        ),
        Some("skipped") => format!(
            "smoke test skipped: {}; ",
            swap["smoke_test"]["reason"].as_str().unwrap_or("?")
        ),
        _ => String::new(),
    };
    format!(
        "{}: {} → {} {} ({smoke}paused {:.3} ms)",
        text("function"),
        text("old"),
        text("new"),
        text("result"),
        swap["pause_ms"].as_f64().unwrap_or_default()
    )
}
