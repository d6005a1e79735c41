//! `weir table <name>`: a Delta table at a glance, without installing
//! anything else — version, rows, partitions, schema, the last commits with
//! the component digests that made them, and the newest rows as JSON.

use anyhow::Context;
use deltalake::arrow::json::LineDelimitedWriter;

use super::ManifestArg;
use crate::sink::delta::{lineage, read, summary};

/// Arguments of `weir table`.
#[derive(Debug, clap::Args)]
pub(super) struct TableArgs {
    /// A table name from the manifest's Kafka triggers (or `dead_letters`),
    /// or a table path/URI.
    table: String,
    /// How many of the newest rows to print.
    #[arg(long, short = 'n', default_value_t = 10)]
    rows: usize,
    /// How many of the last commits to list.
    #[arg(long, default_value_t = 5)]
    commits: usize,
    #[command(flatten)]
    manifest: ManifestArg,
}

impl TableArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let (uri, storage) = super::table_target(&self.manifest, &self.table);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (summary, commits, rows) = runtime
            .block_on(async {
                let table = read::open_with(&uri, &storage).await?;
                let summary = summary::summary(&table)?;
                let commits = lineage::commits(&table, Some(self.commits)).await?;
                let rows = summary::newest_rows(&table, self.rows).await?;
                Ok::<_, crate::sink::delta::DeltaError>((summary, commits, rows))
            })
            .with_context(|| format!("reading table `{uri}`"))?;
        println!("table       {} ({uri})", self.table);
        println!("version     {}", summary.version);
        println!("rows        {} in {} files", summary.rows, summary.files);
        if !(summary.partitions.len() == 1 && summary.partitions.contains_key("")) {
            println!("partitions  {}", summary.partitions.len());
            for (partition, rows) in summary.partitions.iter().rev() {
                println!("  {partition:<40} {rows:>10} rows");
            }
        }
        println!("schema");
        for (name, ty, nullable) in &summary.columns {
            let null = if *nullable { "" } else { "not null" };
            println!("  {name:<28} {ty:<12} {null}");
        }
        println!("last commits");
        super::lineage::print_commits(&commits);
        println!("newest rows");
        let mut writer = LineDelimitedWriter::new(std::io::stdout());
        for batch in &rows {
            writer.write(batch)?;
        }
        writer.finish()?;
        Ok(())
    }
}
