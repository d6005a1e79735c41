//! Builds the guest fixtures and the functions for wasm32-wasip2, once per
//! process, into target dirs of their own (the host's is locked by the
//! running cargo). Included by the integration tests and the benchmarks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};

/// `<target>/<name>`, beside the profile dir of this binary
/// (`<target>/<profile>/deps/<binary>`).
fn target_dir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("path of the running binary");
    exe.ancestors()
        .nth(3)
        .expect("target dir above the binary")
        .join(name)
}

/// Runs `cargo build --release --target wasm32-wasip2 <args> --target-dir <target>` in `dir`.
fn cargo_build(dir: &Path, args: &[&str], target: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(args)
        .arg("--target-dir")
        .arg(target)
        .current_dir(dir)
        // The test command lints the workspace through clippy-driver; these
        // builds are for another target, in target dirs of their own.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .expect("cannot run cargo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hint = if stderr.contains("wasm32-wasip2") && stderr.contains("not installed") {
        " (hint: `rustup target add wasm32-wasip2`)"
    } else {
        ""
    };
    assert!(
        output.status.success(),
        "building {} {args:?} failed{hint}:\n{stderr}",
        dir.display()
    );
}

/// Path of the built guest fixture `name` (`host/tests/guests/<name>`).
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let target = target_dir("guests");
        cargo_build(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests"),
            &[],
            &target,
        );
        target.join("wasm32-wasip2/release")
    });
    dir.join(format!("guest_{name}.wasm"))
}

/// Path of the built function `package` from `functions/` (e.g. `gtfs-fetch`).
pub fn function(package: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let target = target_dir("functions");
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if !built.iter().any(|p| p == package) {
        cargo_build(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
            &["-p", package],
            &target,
        );
        built.push(package.to_owned());
    }
    target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}
