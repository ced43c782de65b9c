//! Where the binaries under test live: the workspace's `spad`, `spa-client`
//! and `spa-keygen`, and this crate's helper bins (`e2e-listen`,
//! `e2e-connect`, `e2e-udp-send`). All sit in the cargo target directory of
//! the running test executable (`target/<profile>/`).
//!
//! `cargo test -p spa-e2e` builds only this package's own bins, so the first
//! call to [`workspace_bin`] runs `cargo build --bins -p spad -p spa-client
//! -p spa-keygen` once per process (same profile, same target dir) so the tests
//! never run stale daemons. Set `SPA_E2E_NO_BUILD=1` to skip that step.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{io, E2eError, Result};

/// The profile directory holding the binaries (`target/debug` or `target/release`).
pub fn target_profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(io("finding the test executable"))?;
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|p| p.to_path_buf())
        .ok_or_else(|| {
            E2eError::MissingBinary(format!("cannot find the target dir from {}", exe.display()))
        })
}

/// Path of one of this crate's helper bins; cargo builds them before the tests.
pub fn helper_bin(name: &str) -> Result<PathBuf> {
    let path = target_profile_dir()?.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(E2eError::MissingBinary(format!(
            "{} is missing: run the tests with `cargo test -p spa-e2e` so cargo builds it",
            path.display()
        )))
    }
}

/// Path of a workspace binary (`spad`, `spa-client`, `spa-keygen`), built fresh once per process.
pub fn workspace_bin(name: &str) -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(build_workspace_bins)
        .clone()
        .map_err(E2eError::MissingBinary)?;
    let path = target_profile_dir()?.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(E2eError::MissingBinary(format!(
            "{} is missing: build it with `cargo build --workspace --bins`",
            path.display()
        )))
    }
}

fn build_workspace_bins() -> std::result::Result<(), String> {
    if std::env::var_os("SPA_E2E_NO_BUILD").is_some() {
        return Ok(());
    }
    let profile_dir = target_profile_dir().map_err(|e| e.to_string())?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "--bins",
        "-p",
        "spad",
        "-p",
        "spa-client",
        "-p",
        "spa-keygen",
    ])
    .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    if let Some(target) = profile_dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("running cargo build for the workspace bins: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first_lines: Vec<&str> = stderr.lines().take(40).collect();
        Err(format!(
            "`cargo build --bins -p spad -p spa-client -p spa-keygen` failed ({}):\n{}",
            out.status,
            first_lines.join("\n")
        ))
    }
}
