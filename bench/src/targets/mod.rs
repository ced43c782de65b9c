//! The daemons under test and how each is set up in the server namespace,
//! started fresh, asked for its capture counters, and stopped leaving the
//! namespace's firewall as it found it. One file per daemon.

pub mod fwknopd;
pub mod knockd;
pub mod spad;
pub mod spad_fwknop;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{io, BenchError, Result};
use crate::netns::{Guarded, Netns};

/// Which daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// spa's own daemon (nftables backend).
    Spad,
    /// Debian's fwknop-server (iptables backend, its default).
    Fwknopd,
    /// knockd (classic port knocking; runs an `nft` command per open).
    Knockd,
    /// spad serving fwknop's clients (an fwknop door imported from
    /// fwknopd's access.conf), knocked with fwknopd's packets.
    SpadFwknop,
}

impl Kind {
    /// Every daemon, in the order of a full run.
    pub const ALL: [Kind; 4] = [Kind::Spad, Kind::Fwknopd, Kind::SpadFwknop, Kind::Knockd];

    /// Its name in progress lines, errors and `--only`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Spad => "spad",
            Kind::Fwknopd => "fwknopd",
            Kind::Knockd => "knockd",
            Kind::SpadFwknop => "spad-fwknop",
        }
    }

    /// The daemon called `name` (as [`Kind::name`] spells it).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether its knocks are fwknop SPA packets (made by `fwknop -T -B`, sent to fwknop's port).
    pub fn takes_fwknop_packets(self) -> bool {
        matches!(self, Kind::Fwknopd | Kind::SpadFwknop)
    }
}

/// Kernel packet-socket counters a daemon reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureCounters {
    /// Frames that passed the filter.
    pub received: u64,
    /// Frames the kernel dropped because the socket buffer was full.
    pub dropped: u64,
}

/// A daemon running in the server namespace.
#[derive(Debug)]
pub struct Running {
    /// Which daemon.
    pub kind: Kind,
    /// The process (its pid is the daemon's: `ip netns exec` execs it).
    pub process: Guarded,
    /// Where its output goes.
    pub log: PathBuf,
    /// Commands run in the server namespace after it stops (firewall clean-up).
    cleanup: Vec<Vec<String>>,
    server: String,
}

impl Running {
    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    /// The capture counters so far, where the daemon reports them (spad: on SIGUSR1).
    pub fn capture_counters(&mut self) -> Result<Option<CaptureCounters>> {
        match self.kind {
            Kind::Spad | Kind::SpadFwknop => spad::capture_counters(self).map(Some),
            Kind::Fwknopd | Kind::Knockd => Ok(None),
        }
    }

    /// The daemon's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the daemon and undoes the firewall set-up.
    pub fn stop(&mut self) {
        self.process.stop();
        for cmd in std::mem::take(&mut self.cleanup) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "exec", &self.server])
                .args(&cmd)
                .output();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `cmd` in `ns` with stdout and stderr into `log`, then waits until
/// `log` contains `ready` (or the process dies, or 10 s pass).
pub(crate) fn start_logged(
    kind: Kind,
    ns: &Netns,
    mut cmd: std::process::Command,
    log: &Path,
    ready: &str,
    cleanup: Vec<Vec<String>>,
) -> Result<Running> {
    let out = std::fs::File::create(log).map_err(io(format!("creating {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(io(format!("opening {}", log.display())))?;
    cmd.stdout(out).stderr(err);
    let process = Guarded::spawn(kind.name(), cmd)?;
    let mut running = Running {
        kind,
        process,
        log: log.to_path_buf(),
        cleanup,
        server: ns.name().to_owned(),
    };
    let timeout = Duration::from_secs(10);
    let deadline = Instant::now() + timeout;
    loop {
        if running.log_text().contains(ready) {
            return Ok(running);
        }
        if !running.process.running() {
            return Err(BenchError::Invalid(format!(
                "{} exited before it was ready; its output:\n{}",
                kind.name(),
                running.log_text()
            )));
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                what: format!(
                    "{} to log {ready:?}; its output:\n{}",
                    kind.name(),
                    running.log_text()
                ),
                after: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Turns `&["nft", "delete", ...]` into an owned clean-up command.
pub(crate) fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_daemon_is_found_by_its_name_and_nothing_else_is() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()), Some(k));
        }
        assert_eq!(Kind::from_name("spad-fwknop"), Some(Kind::SpadFwknop));
        assert_eq!(Kind::from_name("fwknop"), None);
        assert_eq!(Kind::from_name("Spad"), None);
    }

    #[test]
    fn fwknopd_and_spad_fwknop_take_the_same_packets() {
        let fwknop: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| k.takes_fwknop_packets())
            .collect();
        assert_eq!(fwknop, [Kind::Fwknopd, Kind::SpadFwknop]);
    }
}
