//! Network namespaces for the benchmark. A [`Netns`] is named
//! `spa-bench-<pid>-<role>`, has `lo` up, and is deleted — with every process
//! still inside — when dropped. Namespaces of runs whose process is gone are
//! swept before the first new one. Nothing here touches the host's own stack.

use std::ffi::OsStr;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Once;

use nix::sched::CloneFlags;

use crate::error::{io, sys, BenchError, Result};

/// Prefix of every namespace the harness creates.
pub const NETNS_PREFIX: &str = "spa-bench-";

/// A network namespace owned by the harness; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `spa-bench-<pid>-<role>` with `lo` up.
    pub fn new(role: &str) -> Result<Netns> {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale_namespaces);
        let name = format!("{NETNS_PREFIX}{}-{role}", std::process::id());
        delete_namespace(&name);
        run_checked(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.run("ip", ["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command running `program` inside the namespace (`ip netns exec` execs
    /// it, so the child's pid is the program's own).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `program args` inside; fails unless it exits 0; returns stdout.
    pub fn run<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        run_checked(&mut cmd)
    }

    /// Runs `ip -batch -` inside with `lines` on stdin (many addresses at once).
    pub fn ip_batch(&self, lines: &str) -> Result<()> {
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
            Err(BenchError::Command {
                command: format!("ip netns exec {} ip -batch -", self.name),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// Moves the calling thread into the namespace: sockets it opens afterwards
    /// live there. Call it only on a thread made for that purpose.
    pub fn enter_this_thread(&self) -> Result<()> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).map_err(io(format!("opening {path}")))?;
        nix::sched::setns(file, CloneFlags::CLONE_NEWNET)
            .map_err(sys(format!("entering namespace {}", self.name)))
    }

    /// Runs `f` on a new thread inside the namespace and returns its result.
    pub fn run_inside<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        self.spawn_inside(f)?
            .join()
            .map_err(|_| BenchError::Invalid("a namespace thread panicked".into()))?
    }

    /// Starts `f` on a new thread inside the namespace.
    pub fn spawn_inside<T, F>(&self, f: F) -> Result<std::thread::JoinHandle<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let me = Netns {
            name: self.name.clone(),
        };
        std::thread::Builder::new()
            .name(format!("in-{}", self.name))
            .spawn(move || {
                let entered = me.enter_this_thread();
                // `me` is only a name here: never delete the namespace from this clone.
                std::mem::forget(me);
                entered?;
                f()
            })
            .map_err(io("starting a namespace thread"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_namespace(&self.name);
    }
}

/// Creates a veth pair `a_if` (in `a`) — `b_if` (in `b`), addresses them (CIDR) and brings them up.
pub fn veth_pair(
    a: &Netns,
    a_if: &str,
    a_addr: &str,
    b: &Netns,
    b_if: &str,
    b_addr: &str,
) -> Result<()> {
    run_checked(Command::new("ip").args([
        "link",
        "add",
        "name",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]))?;
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        ns.run("ip", ["addr", "add", addr, "dev", ifname])?;
        ns.run("ip", ["link", "set", ifname, "up"])?;
    }
    Ok(())
}

/// Deletes `spa-bench-*` namespaces whose creating process no longer exists.
pub fn sweep_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
            continue;
        };
        let owner_alive = rest
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !owner_alive {
            delete_namespace(&name);
        }
    }
}

/// Deletes every namespace this process created (for a signal handler: the
/// `Drop` guards do not run when the process is killed).
pub fn delete_own_namespaces() {
    let prefix = format!("{NETNS_PREFIX}{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) {
            delete_namespace(&name);
        }
    }
}

/// Kills what still runs inside `name` (only harness processes run there) and deletes it.
fn delete_namespace(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let _ = Command::new("ip").args(["netns", "del", name]).output();
}

/// Runs a command; fails with its output unless it exits 0; returns stdout.
pub fn run_checked(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(io(format!("running {cmd:?}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(BenchError::Command {
            command: format!("{cmd:?}"),
            status: out.status.to_string(),
            stderr: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
        })
    }
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
