//! spad under test: a key issued with the real `spa-keygen`, a config with one
//! door (`ssh` → tcp/2222) in its own nftables table, a fresh state directory
//! per start (initialised with `--init-state`), logs at info level. Capture
//! counters come from the line spad logs on SIGUSR1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{owned, start_logged, CaptureCounters, Kind, Running};
use crate::error::{io, BenchError, Result};
use crate::lab::{Lab, SERVER_IF, SERVICE_PORT, SPA_PORT};
use spa_e2e::netns::run_checked;

/// The gateway's server id in the bench.
pub const SERVER_ID: &str = "benchgw";
/// The door every knock opens.
pub const DOOR: &str = "ssh";
/// spad's nftables table in the bench.
pub const TABLE: &str = "spadbench";

/// spad's binaries and the bench user's key.
#[derive(Debug, Clone)]
pub struct SpadInstall {
    /// The `spad` binary.
    pub spad: PathBuf,
    /// The client key file of user `bench`.
    pub key_file: PathBuf,
    /// The keys directory spad reads.
    pub keys_dir: PathBuf,
    /// The `capture_ring` line of spad's config; `None`: left out (spad's default).
    pub capture_ring: Option<bool>,
}

impl SpadInstall {
    /// Finds `spad` and `spa-keygen` in `bin_dir` and issues the bench key.
    pub fn new(lab: &Lab, bin_dir: &Path) -> Result<SpadInstall> {
        let bin = |name: &str| {
            let p = bin_dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(BenchError::MissingBinary(format!(
                    "{} is missing: build it with `cargo build --release -p spad -p spa-keygen` (or pass --bin-dir)",
                    p.display()
                )))
            }
        };
        let spad = bin("spad")?;
        let keygen = bin("spa-keygen")?;
        let keys_dir = lab.path("keys.d");
        std::fs::create_dir_all(&keys_dir).map_err(io("creating the keys dir"))?;
        let key_file = lab.path("bench.key");
        run_checked(
            Command::new(&keygen)
                .args([
                    "issue",
                    "--user",
                    "bench",
                    "--server-id",
                    SERVER_ID,
                    "--doors",
                    DOOR,
                ])
                .arg("--keys-dir")
                .arg(&keys_dir)
                .arg("--out")
                .arg(&key_file),
        )?;
        Ok(SpadInstall {
            spad,
            key_file,
            keys_dir,
            capture_ring: None,
        })
    }
}

/// Starts spad with door `ssh` open for `door_secs` by default (max `max_secs`).
/// `replay_cap` (live replay entries per key, default 32) must exceed the
/// grants one key makes within 2·skew: the grants scenario sends all its
/// packets with the one bench key.
pub fn start(
    lab: &Lab,
    install: &SpadInstall,
    door_secs: u32,
    max_secs: u32,
    replay_cap: usize,
) -> Result<Running> {
    static STARTS: AtomicUsize = AtomicUsize::new(0);
    let n = STARTS.fetch_add(1, Ordering::Relaxed);
    let state_dir = lab.path(&format!("spad-state-{n}"));
    let config = lab.path(&format!("spad-{n}.toml"));
    let text = format!(
        "server_id = \"{SERVER_ID}\"\nkeys_dir = \"{}\"\nstate_dir = \"{}\"\ninterfaces = [\"{SERVER_IF}\"]\nport = {SPA_PORT}\nnft_table = \"{TABLE}\"\nreplay_cap = {replay_cap}\n\n[doors.{DOOR}]\nopen = [\"tcp/{SERVICE_PORT}\"]\ndefault_secs = {door_secs}\nmax_secs = {}\n",
        install.keys_dir.display(),
        state_dir.display(),
        max_secs.max(door_secs),
    );
    let text = with_capture_line(install, text);
    std::fs::write(&config, text).map_err(io(format!("writing {}", config.display())))?;
    start_spad(
        lab,
        install,
        &config,
        Kind::Spad,
        &lab.path(&format!("spad-{n}.log")),
    )
}

const STATS_LINE: &str = "capture: PacketStats";

/// Sends SIGUSR1 and reads the capture counters spad logs in answer.
pub(super) fn capture_counters(running: &mut Running) -> Result<CaptureCounters> {
    let before = running.log_text().matches(STATS_LINE).count();
    running.process.signal(Signal::SIGUSR1)?;
    let timeout = Duration::from_secs(5);
    let deadline = Instant::now() + timeout;
    loop {
        let text = running.log_text();
        if text.matches(STATS_LINE).count() > before {
            if let Some(line) = text.lines().rev().find(|l| l.contains(STATS_LINE)) {
                return parse_stats(line).ok_or_else(|| {
                    BenchError::Invalid(format!("cannot read spad's capture counters in {line:?}"))
                });
            }
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                what: "spad to log its capture counters after SIGUSR1".into(),
                after: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `... capture: PacketStats { received: 5, dropped: 0, delivered: 5, skipped: 0 }`.
fn parse_stats(line: &str) -> Option<CaptureCounters> {
    let field = |name: &str| -> Option<u64> {
        let rest = line.split_once(&format!("{name}: "))?.1;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some(CaptureCounters {
        received: field("received")?,
        dropped: field("dropped")?,
    })
}

/// Starts spad (as `kind`) on `config` with a fresh journal (`--init-state`),
/// logging to `log`; its table is deleted when it stops.
pub(crate) fn start_spad(
    lab: &Lab,
    install: &SpadInstall,
    config: &Path,
    kind: Kind,
    log: &Path,
) -> Result<Running> {
    run_checked(
        Command::new(&install.spad)
            .arg("--init-state")
            .arg("--config")
            .arg(config),
    )?;
    let mut cmd = lab.server.command(&install.spad);
    cmd.arg("--config").arg(config).env("SPAD_LOG", "info");
    start_logged(
        kind,
        &lab.server,
        cmd,
        log,
        "spad ready",
        vec![owned(&["nft", "delete", "table", "inet", TABLE])],
    )
}

/// `text` with the install's `capture_ring` line first (top-level keys come
/// before any table), or as it is when the install leaves it to spad.
pub(crate) fn with_capture_line(install: &SpadInstall, text: String) -> String {
    match install.capture_ring {
        Some(ring) => format!("capture_ring = {ring}\n{text}"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counters_spad_logs() {
        let line = "2026-11-30T17:00:00Z  INFO capture: PacketStats { received: 120, dropped: 7, delivered: 113, skipped: 0 }";
        assert_eq!(
            parse_stats(line),
            Some(CaptureCounters {
                received: 120,
                dropped: 7
            })
        );
        assert_eq!(parse_stats("capture: nothing"), None);
    }
}
