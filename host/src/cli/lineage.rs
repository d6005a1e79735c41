//! `weir lineage <table>`: which component version wrote each version of a
//! table (from the commits' `commitInfo`), with the files and rows it added.

use anyhow::Context;

use super::ManifestArg;
use crate::sink::delta::{lineage, read};

/// Arguments of `weir lineage`.
#[derive(Debug, clap::Args)]
pub(super) struct LineageArgs {
    /// A table name from the manifest's Kafka triggers (or `dead_letters`),
    /// or a table path/URI.
    table: String,
    /// Only the newest N commits.
    #[arg(long, short = 'n', default_value_t = 50)]
    limit: usize,
    /// One JSON object per commit instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    manifest: ManifestArg,
}

impl LineageArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let (uri, storage) = super::table_target(&self.manifest, &self.table);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let commits = runtime.block_on(async {
            let table = read::open_with(&uri, &storage).await?;
            lineage::commits(&table, Some(self.limit)).await
        });
        let commits = commits.with_context(|| format!("reading the lineage of `{uri}`"))?;
        if self.json {
            for commit in &commits {
                println!("{}", serde_json::to_string(commit)?);
            }
            return Ok(());
        }
        print_commits(&commits);
        Ok(())
    }
}

/// The commits as an aligned table, digests cut to 23 characters.
pub(super) fn print_commits(commits: &[lineage::Commit]) {
    println!(
        "{:>7}  {:<24}  {:<14}  {:<20}  {:<23}  {:>5}  {:>8}",
        "version", "time (UTC)", "operation", "function", "digest", "files", "rows"
    );
    for c in commits {
        let time = c
            .timestamp_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
            .unwrap_or_default();
        let digest = c.digest.as_deref().map_or("-", |d| &d[..d.len().min(23)]);
        println!(
            "{:>7}  {:<24}  {:<14}  {:<20}  {:<23}  {:>5}  {:>8}",
            c.version,
            time,
            c.operation.as_deref().unwrap_or("-"),
            c.function.as_deref().unwrap_or("-"),
            digest,
            c.files,
            c.rows
        );
    }
}
