//! Network namespaces and veth pairs for the tests (and the benchmark, which
//! names its own `spa-bench-`). A [`Netns`] has a unique name
//! (`spa-e2e-<pid>-<n>-<role>`), its `lo` is up, and it is deleted (with any
//! process still inside) when dropped. Namespaces under the same prefix whose
//! creating process is gone (a crashed or killed run) are swept before the
//! first new one.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::child::NsChild;
use crate::error::{io, E2eError, Result};

/// Prefix of every namespace the harness creates.
pub const NETNS_PREFIX: &str = "spa-e2e-";

/// A network namespace owned by the test; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace for `role` (e.g. "server") with `lo` up.
    pub fn new(role: &str) -> Result<Netns> {
        Netns::with_prefix(NETNS_PREFIX, role)
    }

    /// Creates `<prefix><pid>-<n>-<role>` with `lo` up, for a harness that
    /// keeps its namespaces apart from the tests' (`spa-bench-`). Stale
    /// namespaces under `prefix` are swept first, once per process.
    pub fn with_prefix(prefix: &str, role: &str) -> Result<Netns> {
        sweep_once(prefix);
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}{}-{n}-{role}", std::process::id());
        run_checked(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.run("ip", ["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `program args` in the namespace; its output whatever the exit status.
    pub fn output<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        cmd.output().map_err(io(format!("running {cmd:?}")))
    }

    /// Runs `program args` in the namespace; fails unless it exits 0. Returns stdout.
    pub fn run<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        run_checked(&mut cmd)
    }

    /// Starts a long-running `program args` in the namespace; killed when the handle drops.
    pub fn spawn<I, S>(&self, label: &str, program: impl AsRef<OsStr>, args: I) -> Result<NsChild>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        NsChild::spawn(label, cmd)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_namespace(&self.name);
    }
}

/// A veth pair joining two namespaces, each end up and addressed.
#[derive(Debug, Clone)]
pub struct VethPair {
    /// Interface name in the first namespace.
    pub a_if: String,
    /// Interface name in the second namespace.
    pub b_if: String,
}

impl VethPair {
    /// Creates `a_if` in `a` and `b_if` in `b`, linked, with the given
    /// addresses in CIDR form (`10.77.1.1/24`, `fd77:1::1/64`). IPv6
    /// addresses skip duplicate address detection so they work at once.
    pub fn new(
        a: &Netns,
        a_if: &str,
        a_addrs: &[&str],
        b: &Netns,
        b_if: &str,
        b_addrs: &[&str],
    ) -> Result<VethPair> {
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
        for (ns, ifname, addrs) in [(a, a_if, a_addrs), (b, b_if, b_addrs)] {
            for addr in addrs {
                let mut args = vec!["addr", "add", addr, "dev", ifname];
                if addr.contains(':') {
                    args.push("nodad");
                }
                ns.run("ip", &args)?;
            }
            ns.run("ip", ["link", "set", ifname, "up"])?;
        }
        for (ns, ifname) in [(a, a_if), (b, b_if)] {
            wait_link_up(ns, ifname)?;
        }
        Ok(VethPair {
            a_if: a_if.to_owned(),
            b_if: b_if.to_owned(),
        })
    }
}

/// Waits until `ifname` in `ns` is operationally up (a packet sent earlier may be lost).
fn wait_link_up(ns: &Netns, ifname: &str) -> Result<()> {
    let timeout = Duration::from_secs(5);
    let deadline = Instant::now() + timeout;
    loop {
        let state = ns.run("ip", ["-o", "link", "show", "dev", ifname])?;
        if state.contains("state UP") && state.contains("LOWER_UP") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(E2eError::Timeout {
                what: format!("{ifname} in {} to come up ({state})", ns.name()),
                after: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sweeps the stale namespaces under `prefix` unless this process already did.
fn sweep_once(prefix: &str) {
    static SWEPT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // A poisoned lock only means another sweep panicked: skip, sweeping is best effort.
    let Ok(mut swept) = SWEPT.lock() else {
        return;
    };
    if !swept.iter().any(|p| p == prefix) {
        swept.push(prefix.to_owned());
        sweep_stale_namespaces(prefix);
    }
}

/// Deletes `<prefix>*` namespaces whose creating process no longer exists.
pub fn sweep_stale_namespaces(prefix: &str) {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else {
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

/// Deletes every `<prefix>` namespace this process created (for a signal
/// handler: the `Drop` guards do not run when the process is killed).
pub fn delete_own_namespaces(prefix: &str) {
    let own = format!("{prefix}{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&own) {
            delete_namespace(&name);
        }
    }
}

/// Kills what still runs inside namespace `name` (only test processes run there) and deletes it.
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

/// Runs a command and fails with its stderr unless it exits 0; returns stdout.
pub fn run_checked(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(io(format!("running {cmd:?}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(E2eError::CommandFailed {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs root"]
    fn namespace_exists_while_held_and_is_gone_after_drop() -> Result<()> {
        let ns = Netns::new("unit")?;
        let path = format!("/run/netns/{}", ns.name());
        assert!(Path::new(&path).exists());
        assert!(ns.run("ip", ["link", "show", "lo"])?.contains("UP"));
        drop(ns);
        assert!(!Path::new(&path).exists());
        Ok(())
    }

    #[test]
    #[ignore = "needs root"]
    fn sweep_removes_namespaces_of_dead_processes_only() -> Result<()> {
        // pid 0 never names a live test process; our own pid does.
        let stale = format!("{NETNS_PREFIX}0-0-stale");
        run_checked(Command::new("ip").args(["netns", "add", &stale]))?;
        let live = Netns::new("unit-live")?;
        sweep_stale_namespaces(NETNS_PREFIX);
        assert!(!Path::new(&format!("/run/netns/{stale}")).exists());
        assert!(Path::new(&format!("/run/netns/{}", live.name())).exists());
        Ok(())
    }

    #[test]
    #[ignore = "needs root"]
    fn own_namespaces_under_a_prefix_are_deleted_and_no_others() -> Result<()> {
        let other = Netns::with_prefix("spa-unit-a-", "other")?;
        let own = Netns::with_prefix("spa-unit-b-", "bench")?;
        let tests_own = Netns::new("unit-kept")?;
        let own_prefix = format!("spa-unit-b-{}-", std::process::id());
        assert!(own.name().starts_with(&own_prefix), "{}", own.name());
        delete_own_namespaces("spa-unit-b-");
        assert!(!Path::new(&format!("/run/netns/{}", own.name())).exists());
        for kept in [&other, &tests_own] {
            assert!(Path::new(&format!("/run/netns/{}", kept.name())).exists());
        }
        Ok(())
    }
}
