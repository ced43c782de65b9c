//! Driving the real `spad` binary: writing its TOML config, starting it in a
//! namespace and waiting for "spad ready", reading its log lines, sending it
//! SIGHUP / SIGTERM / SIGKILL, and `spad --check`.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::bins::workspace_bin;
use crate::child::NsChild;
use crate::error::{io, Result};
use crate::netns::Netns;

/// How long spad may take from start to "spad ready".
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A firewall backend of spad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `backend = "nftables"`: sets with element timeouts; the kernel closes doors.
    Nftables,
    /// `backend = "iptables"`: a chain of spad's own; spad's timers close doors.
    Iptables,
    /// `backend = "command"`: the door's open/close command templates.
    Command,
}

impl Backend {
    /// The config value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Backend::Nftables => "nftables",
            Backend::Iptables => "iptables",
            Backend::Command => "command",
        }
    }
}

/// One `[doors.NAME]` table.
#[derive(Debug, Clone)]
pub struct DoorConfig {
    /// The door's name.
    pub name: String,
    /// What it opens: "tcp/22", ...
    pub open: Vec<String>,
    /// Open time when the packet asks for 0 seconds.
    pub default_secs: u32,
    /// The longest open time granted.
    pub max_secs: u32,
    /// `open_command` (command backend).
    pub open_command: Option<String>,
    /// `close_command` (command backend).
    pub close_command: Option<String>,
}

/// A spad config file's contents.
#[derive(Debug, Clone)]
pub struct SpadConfig {
    /// `server_id`.
    pub server_id: String,
    /// `keys_dir`.
    pub keys_dir: PathBuf,
    /// `state_dir`.
    pub state_dir: PathBuf,
    /// `port`.
    pub port: u16,
    /// `skew_secs`.
    pub skew_secs: u32,
    /// `backend`.
    pub backend: Backend,
    /// `nft_table`.
    pub nft_table: String,
    /// The doors.
    pub doors: Vec<DoorConfig>,
}

impl SpadConfig {
    /// The config as TOML text, in the documented format.
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        s += &format!("server_id = {}\n", quote(&self.server_id));
        s += &format!("keys_dir = {}\n", quote(&self.keys_dir.to_string_lossy()));
        s += &format!("state_dir = {}\n", quote(&self.state_dir.to_string_lossy()));
        let socket = self.state_dir.with_file_name("control.sock");
        s += &format!("control_socket = {}\n", quote(&socket.to_string_lossy()));
        s += &format!("port = {}\n", self.port);
        s += &format!("skew_secs = {}\n", self.skew_secs);
        s += "stealth = true\n";
        s += &format!("backend = {}\n", quote(self.backend.as_str()));
        s += &format!("nft_table = {}\n", quote(&self.nft_table));
        for door in &self.doors {
            s += &format!("\n[doors.{}]\n", door.name);
            let open: Vec<String> = door.open.iter().map(|o| quote(o)).collect();
            s += &format!("open = [{}]\n", open.join(", "));
            s += &format!("default_secs = {}\n", door.default_secs);
            s += &format!("max_secs = {}\n", door.max_secs);
            if let Some(cmd) = &door.open_command {
                s += &format!("open_command = {}\n", quote(cmd));
            }
            if let Some(cmd) = &door.close_command {
                s += &format!("close_command = {}\n", quote(cmd));
            }
            if door.open_command.is_some() {
                s += "command_timeout_secs = 5\n";
            }
        }
        s
    }

    /// Writes the config to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_toml()).map_err(io(format!("writing {}", path.display())))
    }
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A running spad; SIGKILLed when dropped.
#[derive(Debug)]
pub struct Spad {
    child: NsChild,
}

impl Spad {
    /// Starts `spad --config CONFIG` in `ns` and waits for its "spad ready" line.
    pub fn start(ns: &Netns, config: &Path) -> Result<Spad> {
        Spad::start_with_env(ns, config, &[])
    }

    /// [`Spad::start`] with extra environment variables (e.g. `JOURNAL_STREAM`
    /// for the journald line format); the caller's `JOURNAL_STREAM` is never
    /// inherited, so the line format is the terminal one unless asked.
    pub fn start_with_env(ns: &Netns, config: &Path, env: &[(&str, &str)]) -> Result<Spad> {
        let mut cmd = ns.command(workspace_bin("spad")?);
        cmd.arg("--config")
            .arg(config)
            .env("NO_COLOR", "1")
            .env_remove("JOURNAL_STREAM");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = NsChild::spawn(&format!("spad in {}", ns.name()), cmd)?;
        child.wait_for_line("\"spad ready\"", READY_TIMEOUT, |l| {
            l.contains("spad ready")
        })?;
        Ok(Spad { child })
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.child.lines()
    }

    /// The event lines announcing a door opened for a user
    /// (`door opened door=ssh addr=10.0.0.2 user=alice seconds=30`).
    pub fn doors_opened(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.contains("door opened") && l.contains(" user="))
            .collect()
    }

    /// Waits for a log line matching `pred`.
    pub fn wait_for_log(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        self.child.wait_for_line(what, timeout, pred)
    }

    /// SIGHUP: reload config and keys.
    pub fn reload(&self) -> Result<()> {
        self.child.signal(Signal::SIGHUP)
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        self.child.signal(Signal::SIGTERM)?;
        self.child.wait_exit(timeout)
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(&mut self) -> Result<()> {
        self.child.kill9().map(|_| ())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

/// Runs `spad --check --config CONFIG` (outside any namespace: it must not touch the network).
pub fn check_config(config: &Path) -> Result<Output> {
    let mut cmd = std::process::Command::new(workspace_bin("spad")?);
    cmd.arg("--check")
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1");
    cmd.output().map_err(io(format!("running {cmd:?}")))
}
