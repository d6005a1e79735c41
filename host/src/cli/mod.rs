//! The command line: one file per subcommand, as Spin's `src/commands/`.

mod build;
mod check;
mod deploy;
mod dev_broker;
mod dev_feed;
mod feed;
mod lineage;
mod table;
mod token;
mod up;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::manifest::Manifest;
use crate::sink::delta::StorageOptions;

/// Runs event functions compiled to WebAssembly components, described by a Spin v2 `spin.toml`.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build every component with its `[component.<id>.build]` command, like `spin build`.
    Build(build::BuildArgs),
    /// Validate the manifest and type-check every component against its trigger's world.
    Check(check::CheckArgs),
    /// Run the application's triggers until Ctrl-C.
    Up(up::UpArgs),
    /// Swap a function's component in a running host (compiled, type-checked and smoke-tested first).
    Deploy(deploy::DeployArgs),
    /// Restore a function's previous component in a running host.
    Rollback(deploy::RollbackArgs),
    /// Show which component version wrote each version of a Delta table.
    Lineage(lineage::LineageArgs),
    /// Show a Delta table: version, rows, partitions, schema, last commits and rows.
    Table(table::TableArgs),
    /// Run the embedded Kafka-protocol broker (tansu, sqlite log) and print its address.
    DevBroker(dev_broker::DevBrokerArgs),
    /// Work with GTFS-Realtime feeds: `weir feed decode <file-or-url>`.
    Feed(feed::FeedArgs),
    /// Serve generated GTFS-Realtime feeds (vehicles, trip updates, alerts) on a local port.
    DevFeed(dev_feed::DevFeedArgs),
}

/// The manifest argument every subcommand shares.
#[derive(Debug, Clone, clap::Args)]
struct ManifestArg {
    /// Path of the application manifest.
    #[arg(
        short = 'f',
        long = "file",
        env = "WEIR_MANIFEST",
        default_value = "spin.toml"
    )]
    file: PathBuf,
}

impl ManifestArg {
    /// Loads the manifest with `SPIN_VARIABLE_*` overrides from the environment.
    fn load(&self) -> anyhow::Result<Manifest> {
        Manifest::load(&self.file, std::env::vars())
            .with_context(|| format!("invalid manifest `{}`", self.file.display()))
    }
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Build(args) => args.run(),
            Command::Check(args) => args.run(),
            Command::Up(args) => args.run(),
            Command::Deploy(args) => args.run(),
            Command::Rollback(args) => args.run(),
            Command::Lineage(args) => args.run(),
            Command::Table(args) => args.run(),
            Command::DevFeed(args) => args.run(),
            Command::Feed(args) => args.run(),
            Command::DevBroker(args) => args.run(),
        }
    }
}

/// A table's URI and storage options: a name declared by the manifest's
/// Kafka triggers (or `dead_letters`), else `table` as given (a path or URI,
/// its object store configured from the `AWS_*` environment).
fn table_target(manifest: &ManifestArg, table: &str) -> (String, StorageOptions) {
    let named = |manifest: Manifest| {
        manifest.triggers.into_iter().find_map(|t| match t {
            crate::trigger::Trigger::Kafka(mut k) => k
                .tables
                .remove(table)
                .or((table == "dead_letters").then_some(k.dead_letter))
                .map(|target| (target.uri, target.storage)),
            crate::trigger::Trigger::Cron(_) => None,
        })
    };
    manifest
        .load()
        .ok()
        .and_then(named)
        .unwrap_or_else(|| (table.to_owned(), StorageOptions::default()))
}
