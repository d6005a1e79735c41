//! Builds the guest fixtures for wasm32-wasip2, once per process, into a
//! target dir of their own (the host's is locked by the running cargo).
//! Included by the integration tests and the benchmarks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Path of the built guest `name`.
pub fn guest(name: &str) -> PathBuf {
    build_guests().join(format!("guest_{name}.wasm"))
}

fn build_guests() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        // This binary lives in `<target>/<profile>/deps/`.
        let exe = std::env::current_exe().expect("path of the running binary");
        let target = exe
            .ancestors()
            .nth(3)
            .expect("target dir above the binary")
            .join("guests");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--target-dir",
            ])
            .arg(&target)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests"))
            .output()
            .expect("cannot run cargo to build the guest fixtures");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("wasm32-wasip2") && stderr.contains("not installed") {
            " (hint: `rustup target add wasm32-wasip2`)"
        } else {
            ""
        };
        assert!(
            output.status.success(),
            "building the guest fixtures failed{hint}:\n{stderr}"
        );
        target.join("wasm32-wasip2/release")
    })
}

/// Path of the built function `package` from `functions/` (e.g. `gtfs-fetch`),
/// built once per process into its own target dir.
pub fn function(package: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("path of the running binary");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target dir above the binary")
        .join("functions");
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !built.iter().any(|p| p == package) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                package,
                "--target-dir",
            ])
            .arg(&target)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .output()
            .expect("cannot run cargo to build a function");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "building function `{package}` failed:\n{stderr}"
        );
        built.push(package.to_owned());
    }
    target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}
