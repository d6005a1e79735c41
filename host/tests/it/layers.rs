//! The host crate's import graph, read from its sources: every `crate::x`
//! path in `host/src` is an arrow from the top-level module it is written
//! in to `x`. Arrows only run down the layers below (or sideways inside
//! one), and no module reaches itself again through others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules, lowest layer first. A module may import modules of
/// its own layer or of lower ones, never of higher ones.
const LAYERS: [&[&str]; 6] = [
    // Leaves: no imports of the crate's own.
    &["bindings", "failpoint", "metrics", "telemetry"],
    // What a guest may call, the sandbox that runs guests, where output goes.
    &["imports", "runtime", "sink"],
    // The running versions of functions; the embedded broker; free space.
    &["versions", "broker", "disk", "memory"],
    // What wakes functions, and the manifest that configures them.
    &["trigger", "manifest"],
    // The host process: its server, status, run loop.
    &["admin", "status", "run"],
    // The command line.
    &["cli"],
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Arrows between top-level modules: from → {to}.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut arrows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap();
        let from = first.as_os_str().to_str().unwrap().trim_end_matches(".rs");
        if from == "lib" || from == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
        for line in code {
            for (at, _) in line.match_indices("crate::") {
                let to: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !to.is_empty() && to != from {
                    arrows.entry(from.to_owned()).or_default().insert(to);
                }
            }
        }
        arrows.entry(from.to_owned()).or_default();
    }
    arrows
}

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer of {LAYERS:?}"))
}

#[test]
fn imports_run_down_the_layers_and_never_in_a_circle() {
    let arrows = graph();
    let mut upward = Vec::new();
    for (from, tos) in &arrows {
        for to in tos {
            if layer(to) > layer(from) {
                upward.push(format!("{from} → {to}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports of a higher layer: {upward:?}");

    // Depth-first search for a path back to where it started.
    fn reaches(
        arrows: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        target: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in arrows.get(at).into_iter().flatten() {
            path.push(next.clone());
            if next == target
                || (seen.insert(next.clone()) && reaches(arrows, next, target, path, seen))
            {
                return true;
            }
            path.pop();
        }
        false
    }
    for module in arrows.keys() {
        let mut path = vec![module.clone()];
        let found = reaches(&arrows, module, module, &mut path, &mut BTreeSet::new());
        assert!(!found, "import circle: {}", path.join(" → "));
    }
}

#[test]
fn the_graph_is_read_from_the_sources() {
    let arrows = graph();
    // Modules every layer rule above depends on being seen at all.
    assert!(arrows["run"].contains("trigger"), "{arrows:?}");
    assert!(arrows["runtime"].contains("imports"), "{arrows:?}");
    for module in arrows.keys() {
        layer(module);
    }
}

/// The GTFS-specific crates (the feed types and the dev feed server) are a
/// leaf of the command line, not something the host depends on.
#[test]
fn only_the_command_line_knows_gtfs() {
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(host.join("Cargo.toml")).unwrap();
    let dependencies = manifest
        .split("\n[")
        .find(|section| section.starts_with("dependencies]"))
        .expect("a [dependencies] section");
    assert!(
        !dependencies.contains("gtfs-rt"),
        "weir depends on gtfs-rt: {dependencies}"
    );
    assert!(dependencies.contains("weir-devfeed"), "{dependencies}");
    let mut files = Vec::new();
    sources(&host.join("src"), &mut files);
    let mut users: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.contains("weir_devfeed") || text.contains("gtfs_rt")
        })
        .map(|f| f.strip_prefix(host).unwrap().display().to_string())
        .collect();
    users.sort();
    assert!(
        !users.is_empty(),
        "the CLI's dev feed commands use the crate"
    );
    assert!(
        users.iter().all(|f| f.starts_with("src/cli/")),
        "GTFS code outside the CLI: {users:?}"
    );
}
