//! `weir feed decode`: runs the fetch component on a local file or a URL and
//! prints exactly the messages it would send, one JSON object per line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::routing::get;

use super::ManifestArg;
use crate::metrics::Metrics;
use crate::runtime::{ComponentSettings, CronInvocation, Runtime, RuntimeConfig, World};

/// Arguments of `weir feed`.
#[derive(Debug, clap::Args)]
pub(super) struct FeedArgs {
    #[command(subcommand)]
    command: FeedCommand,
}

#[derive(Debug, clap::Subcommand)]
enum FeedCommand {
    /// Decode a GTFS-Realtime feed with the fetch component and print its messages.
    Decode(DecodeArgs),
}

#[derive(Debug, clap::Args)]
struct DecodeArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    /// A `.pb` file, or an `http(s)://` URL.
    input: String,
    /// The fetch component to run (default: the component of the first cron trigger).
    #[arg(long)]
    component: Option<String>,
    /// Print message counts per entity type and the header timestamp instead of the messages.
    #[arg(long)]
    summary: bool,
    /// The feed's legacy text encoding, a WHATWG label such as `shift_jis`
    /// (the trigger variable `feed_encoding` of `weir up`): strings that
    /// are not UTF-8 are transcoded from it instead of holding U+FFFD.
    #[arg(long, value_name = "LABEL", value_parser = encoding_label)]
    encoding: Option<String>,
}

/// A label encoding_rs knows, checked before the component runs.
fn encoding_label(label: &str) -> Result<String, String> {
    weir_devfeed::encoding(label).map(|_| label.to_owned())
}

impl FeedArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let FeedCommand::Decode(args) = self.command;
        let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
        runtime.block_on(args.run())
    }
}

impl DecodeArgs {
    async fn run(self) -> anyhow::Result<()> {
        let manifest = self.manifest.load()?;
        let id = match &self.component {
            Some(id) => id.clone(),
            None => manifest
                .triggers
                .iter()
                .find(|t| t.world() == World::Fetcher)
                .map(|t| t.component().to_owned())
                .context(
                    "the manifest has no cron trigger; name the fetch component with --component",
                )?,
        };
        let config = manifest
            .component(&id)
            .with_context(|| format!("unknown component `{id}`"))?;
        let url = if self.input.starts_with("http://") || self.input.starts_with("https://") {
            self.input.clone()
        } else {
            serve_file(PathBuf::from(&self.input)).await?
        };
        let origin = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        let mut settings = ComponentSettings::from(config);
        settings.allowed_outbound_hosts = vec![origin];
        let runtime = Arc::new(Runtime::new(
            RuntimeConfig::default(),
            Arc::new(Metrics::new()),
        )?);
        let component = runtime.load_file(&id, &config.source, World::Fetcher, settings)?;
        let mut variables = BTreeMap::from([
            ("feed_url".to_owned(), url),
            ("topic".to_owned(), "decoded".to_owned()),
        ]);
        if let Some(label) = self.encoding {
            variables.insert("feed_encoding".to_owned(), label);
        }
        let invocation = CronInvocation {
            outputs: Arc::from(vec!["decoded".to_owned()]),
            variables,
            feed: None,
        };
        let (result, output) = component.handle_cron(0, invocation).await;
        if !output.stderr.is_empty() {
            eprint!("{}", output.stderr);
        }
        let messages = result?.messages;
        if !self.summary {
            for m in &messages {
                println!("{}", String::from_utf8_lossy(&m.value));
            }
            return Ok(());
        }
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut timestamps = std::collections::BTreeSet::new();
        for m in &messages {
            let value: serde_json::Value = serde_json::from_slice(&m.value)
                .context("the component sent a message that is not JSON")?;
            *counts
                .entry(
                    value["entity_type"]
                        .as_str()
                        .unwrap_or("unknown")
                        .to_owned(),
                )
                .or_default() += 1;
            timestamps.insert(value["feed_timestamp"].to_string());
        }
        println!("messages: {}", messages.len());
        for (entity_type, count) in counts {
            println!("{entity_type}: {count}");
        }
        match timestamps.len() {
            0 => println!("header timestamp: none (no entities)"),
            1 => println!(
                "header timestamp: {}",
                timestamps.first().map_or("", String::as_str)
            ),
            _ => bail!("messages carry different header timestamps: {timestamps:?}"),
        }
        Ok(())
    }
}

/// Serves the file at `path` on a loopback port and returns its URL.
async fn serve_file(path: PathBuf) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/feed.pb", get(move || async move { bytes }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/feed.pb"))
}
