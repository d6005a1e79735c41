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

/// Why `component` needs a build before it can run: its source is missing,
/// or a file its `watch` patterns match is newer than the source. `None`
/// when it is up to date or has no build command.
pub(super) fn outdated(component: &ComponentConfig) -> Option<String> {
    let build = component.build.as_ref()?;
    let Ok(built) = std::fs::metadata(&component.source).and_then(|m| m.modified()) else {
        return Some(format!("`{}` is missing", component.source.display()));
    };
    build.watch.iter().find_map(|pattern| {
        let pattern = build.workdir.join(pattern);
        let paths = glob::glob(&pattern.to_string_lossy()).ok()?;
        paths.flatten().find_map(|path| {
            let changed = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
            (changed > built).then(|| format!("`{}` changed since the last build", path.display()))
        })
    })
}

/// Builds every component that is [`outdated`], saying why.
pub(super) fn build_outdated(manifest: &crate::manifest::Manifest) -> anyhow::Result<()> {
    for component in manifest.components.values() {
        if let Some(reason) = outdated(component) {
            eprintln!("{}: {reason}; building it", component.id);
            build_component(component)?;
            if !component.source.is_file() {
                let hint = if std::env::var_os("CARGO_TARGET_DIR").is_some() {
                    " (CARGO_TARGET_DIR is set, so cargo put the build there)"
                } else {
                    ""
                };
                bail!(
                    "the build of `{}` did not produce `{}`{hint}",
                    component.id,
                    component.source.display()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use super::outdated;
    use crate::manifest::{BuildConfig, ComponentConfig, Limits, Location};

    fn component(dir: &Path) -> ComponentConfig {
        ComponentConfig {
            id: "f".to_owned(),
            source: dir.join("out/f.wasm"),
            source_location: Location {
                file: dir.join("spin.toml"),
                line: 1,
                column: 1,
            },
            allowed_outbound_hosts: Vec::new(),
            variables: std::collections::BTreeMap::new(),
            environment: std::collections::BTreeMap::new(),
            build: Some(BuildConfig {
                commands: vec!["true".to_owned()],
                workdir: dir.to_owned(),
                watch: vec!["src/**/*.rs".to_owned()],
            }),
            limits: Limits::default(),
        }
    }

    fn touch(path: &Path, at: SystemTime) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }

    #[test]
    fn missing_or_older_than_a_watched_file_needs_a_build() {
        let dir = tempfile::tempdir().unwrap();
        let c = component(dir.path());
        let reason = outdated(&c).unwrap();
        assert!(reason.ends_with("f.wasm` is missing"), "{reason}");

        let now = SystemTime::now();
        touch(
            &dir.path().join("src/deep/lib.rs"),
            now - Duration::from_secs(60),
        );
        touch(&c.source, now - Duration::from_secs(30));
        assert_eq!(outdated(&c), None);

        touch(&dir.path().join("src/deep/lib.rs"), now);
        let reason = outdated(&c).unwrap();
        assert!(reason.contains("src/deep/lib.rs` changed"), "{reason}");

        let mut plain = c.clone();
        plain.build = None;
        std::fs::remove_file(&c.source).unwrap();
        assert_eq!(outdated(&plain), None, "nothing to build with");
    }
}
