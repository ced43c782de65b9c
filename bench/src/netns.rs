//! The benchmark's namespaces: spa-e2e's [`Netns`] and [`VethPair`] under the
//! prefix `spa-bench-` (so `spa-bench-<pid>-<n>-<role>`; another prefix from
//! `SPA_BENCH_NETNS_PREFIX`, for runs beside other users of the machine; deleted with every
//! process still inside when dropped, stale ones swept), plus what only the
//! benchmark needs: many addresses at once, threads running inside a
//! namespace, deleting this run's namespaces from a signal handler, and a
//! guard that stops a child process. Nothing here touches the host's stack.

use std::fs::File;
use std::process::{Child, Command, Stdio};

use nix::sched::CloneFlags;
pub use spa_e2e::netns::{Netns, VethPair};
use spa_e2e::E2eError;

use crate::error::{io, sys, BenchError, Result};

/// Prefix of every namespace the harness creates, unless `SPA_BENCH_NETNS_PREFIX`
/// names another.
pub const NETNS_PREFIX: &str = "spa-bench-";

/// The prefix in use: `SPA_BENCH_NETNS_PREFIX` if set (and non-empty), else
/// [`NETNS_PREFIX`].
pub fn netns_prefix() -> &'static str {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| {
        std::env::var("SPA_BENCH_NETNS_PREFIX")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| NETNS_PREFIX.to_owned())
    })
}

/// Creates `<prefix><pid>-<n>-<role>` with `lo` up.
pub fn bench_netns(role: &str) -> Result<Netns> {
    Ok(Netns::with_prefix(netns_prefix(), role)?)
}

/// Deletes every namespace this process created (for a signal handler: the
/// `Drop` guards do not run when the process is killed).
pub fn delete_own_namespaces() {
    spa_e2e::netns::delete_own_namespaces(netns_prefix());
}

/// What the benchmark does with a namespace beyond running commands in it.
pub trait NetnsExt {
    /// Runs `ip -batch -` inside with `lines` on stdin (many addresses at once).
    fn ip_batch(&self, lines: &str) -> Result<()>;

    /// Runs `f` on a new thread inside the namespace and returns its result.
    fn run_inside<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static;

    /// Starts `f` on a new thread inside the namespace.
    fn spawn_inside<T, F>(&self, f: F) -> Result<std::thread::JoinHandle<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static;
}

impl NetnsExt for Netns {
    fn ip_batch(&self, lines: &str) -> Result<()> {
        use std::io::Write as _;
        let mut child = self
            .command("ip")
            .args(["-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("running ip -batch"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(lines.as_bytes())
                .map_err(io("writing to ip -batch"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(io("waiting for ip -batch"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(E2eError::CommandFailed {
                command: format!("ip netns exec {} ip -batch -", self.name()),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
            .into())
        }
    }

    fn run_inside<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        self.spawn_inside(f)?
            .join()
            .map_err(|_| BenchError::Invalid("a namespace thread panicked".into()))?
    }

    fn spawn_inside<T, F>(&self, f: F) -> Result<std::thread::JoinHandle<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let name = self.name().to_owned();
        std::thread::Builder::new()
            .name(format!("in-{name}"))
            .spawn(move || {
                enter_this_thread(&name)?;
                f()
            })
            .map_err(io("starting a namespace thread"))
    }
}

/// Moves the calling thread into namespace `name`: sockets it opens afterwards
/// live there. Call it only on a thread made for that purpose.
fn enter_this_thread(name: &str) -> Result<()> {
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).map_err(io(format!("opening {path}")))?;
    nix::sched::setns(file, CloneFlags::CLONE_NEWNET)
        .map_err(sys(format!("entering namespace {name}")))
}

/// A child process that is killed (SIGTERM, then SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Guarded {
    /// The child.
    pub child: Child,
    label: String,
}

impl Guarded {
    /// Spawns `cmd` under a guard labelled `label`.
    pub fn spawn(label: &str, mut cmd: Command) -> Result<Guarded> {
        let child = cmd
            .spawn()
            .map_err(io(format!("starting {label}: {cmd:?}")))?;
        Ok(Guarded {
            child,
            label: label.to_owned(),
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .map_err(sys(format!("signalling {}", self.label)))
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, up to 5 s to exit, then SIGKILL.
    pub fn stop(&mut self) {
        if !self.running() {
            return;
        }
        let _ = self.signal(nix::sys::signal::Signal::SIGTERM);
        for _ in 0..250 {
            if !self.running() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}
