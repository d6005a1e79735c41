//! compose.yaml and the Dockerfile, checked without a Docker engine (none
//! runs here): the compose structure through `check_compose.py`, and the
//! Dockerfile against `.ci/run` and `spin.toml` so the image cannot drift
//! from what CI builds and what the manifest needs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

#[test]
fn compose_mounts_what_the_repo_has_and_the_tests_run() {
    let output = Command::new("python3")
        .arg(root().join("host/tests/check_compose.py"))
        .arg(root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_dockerfile_builds_as_ci_does_and_ships_what_the_manifest_needs() {
    let dockerfile = read("Dockerfile");
    let ci = read("scripts/test");
    // One dependency script for both.
    assert!(
        dockerfile.contains("RUN .ci/install-build-deps\n"),
        "{dockerfile}"
    );
    assert!(ci.contains("\n.ci/install-build-deps "), "{ci}");
    // The toolchain CI pins.
    let toolchain = read("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    assert!(dockerfile.contains(&format!("FROM rust:{channel}-bookworm AS build")));
    assert!(dockerfile.contains("cargo build --release --locked --bin weir"));
    assert!(dockerfile.contains("./target/release/weir build"));
    // Every component file and table schema spin.toml names is copied.
    let manifest = weir::Manifest::load(&root().join("spin.toml"), Vec::new()).unwrap();
    for component in manifest.components.values() {
        let file = component.source.file_name().unwrap().to_str().unwrap();
        assert!(
            dockerfile.contains(&format!("/src/target/wasm32-wasip2/release/{file}")),
            "the image lacks `{file}`"
        );
    }
    let text = read("spin.toml");
    let schemas: Vec<&str> = text
        .split("schema = \"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(schemas.len(), 3, "one schema per transform table");
    for schema in schemas {
        let dir = Path::new(schema).parent().unwrap().display().to_string();
        assert!(
            dockerfile.contains(&format!("COPY --from=build /src/{dir} /app/{dir}")),
            "the image lacks `{dir}`"
        );
    }
    assert!(dockerfile.contains("USER weir"), "non-root");
    assert!(dockerfile.contains("HEALTHCHECK"));
}

/// docs/windows-wsl2.md promises LF for every text file, even in a clone
/// made on Windows with `core.autocrlf=true`: what git stores and what
/// `.gitattributes` asks for, for every file in the index.
#[test]
fn every_text_file_is_stored_and_checked_out_with_lf() {
    let output = Command::new("git")
        .args(["ls-files", "--eol"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let listing = String::from_utf8(output.stdout).unwrap();
    let mut scripts = 0;
    for line in listing.lines() {
        let (flags, path) = line.split_once('\t').unwrap();
        let flags: Vec<&str> = flags.split_whitespace().collect();
        if flags[0] == "i/-text" || flags[0] == "i/none" {
            continue; // binary, or empty
        }
        assert_eq!(flags[0], "i/lf", "{path} is stored with {}", flags[0]);
        assert!(
            line.contains("attr/text=auto eol=lf") || line.contains("attr/-text"),
            "{path}: not covered by `* text=auto eol=lf`: {line}"
        );
        scripts += usize::from(path.starts_with("scripts/") || path.starts_with(".ci/"));
    }
    assert!(scripts >= 4, "the shell scripts are in the listing");
}
