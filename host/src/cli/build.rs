//! `weir build`: runs each component's build commands in its `workdir`.

use std::process::Command;

use anyhow::{Context, bail};

use super::ManifestArg;
use crate::manifest::ComponentConfig;

/// Arguments of `weir build`.
#[derive(Debug, clap::Args)]
pub(super) struct BuildArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    /// Build only these components (repeatable); default: all.
    #[arg(short = 'c', long = "component")]
    components: Vec<String>,
}

impl BuildArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let manifest = self.manifest.load()?;
        for id in &self.components {
            if !manifest.components.contains_key(id) {
                let known: Vec<&str> = manifest.components.keys().map(String::as_str).collect();
                bail!(
                    "unknown component `{id}`; declared components: [{}]",
                    known.join(", ")
                );
            }
        }
        for component in manifest.components.values() {
            if !self.components.is_empty() && !self.components.contains(&component.id) {
                continue;
            }
            build_component(component)?;
        }
        eprintln!("build finished");
        Ok(())
    }
}

/// Runs `component`'s build commands in its `workdir`; a component without
/// any is skipped with a note.
pub(super) fn build_component(component: &ComponentConfig) -> anyhow::Result<()> {
    let Some(build) = &component.build else {
        eprintln!("{}: no build command, skipped", component.id);
        return Ok(());
    };
    for command in &build.commands {
        eprintln!(
            "{}: running `{command}` in {}",
            component.id,
            build.workdir.display()
        );
        let status = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&build.workdir)
            .status()
            .with_context(|| format!("cannot start the build of `{}`", component.id))?;
        if !status.success() {
            bail!(
                "build of `{}` failed: `{command}` exited with {status}",
                component.id
            );
        }
    }
    Ok(())
}
