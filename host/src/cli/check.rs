//! `weir check`: validates the manifest, then loads every triggered
//! component and type-checks it against the world its trigger needs.

use std::sync::Arc;

use anyhow::bail;

use super::ManifestArg;
use crate::metrics::Metrics;
use crate::runtime::{Runtime, RuntimeConfig};

/// Arguments of `weir check`.
#[derive(Debug, clap::Args)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    manifest: ManifestArg,
}

impl CheckArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let manifest = self.manifest.load()?;
        manifest.check_sources()?;
        let runtime = Arc::new(Runtime::new(
            RuntimeConfig::default(),
            Arc::new(Metrics::new()),
        )?);
        let mut failures = 0;
        for trigger in &manifest.triggers {
            let component = &manifest.components[trigger.component()];
            match runtime.load_file(
                &component.id,
                &component.source,
                trigger.world(),
                component.into(),
            ) {
                Ok(loaded) => println!(
                    "ok: trigger `{}`: component `{}` ({}) fits the `{}` world",
                    trigger.id(),
                    loaded.id,
                    loaded.digest,
                    loaded.world.name()
                ),
                Err(e) => {
                    failures += 1;
                    println!("error: trigger `{}`: {e}", trigger.id());
                }
            }
        }
        for id in manifest.components.keys() {
            if !manifest.triggers.iter().any(|t| t.component() == id) {
                println!("note: component `{id}` is not used by any trigger");
            }
        }
        if failures > 0 {
            bail!("{failures} component(s) do not fit their trigger");
        }
        Ok(())
    }
}
