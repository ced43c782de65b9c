//! Watches the server namespace's firewall with `nft -a monitor` and stamps
//! every change with the harness's monotonic clock: "the element or rule for
//! this address is present" is the moment the kernel reported it, whichever
//! daemon (spad's nftables sets, fwknopd's iptables-nft rules, knockd's
//! command) made it. Rules deleted by handle are mapped back to the address
//! their `add` named.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};
use crate::netns::{Guarded, Netns};

/// Whether an address was let in or shut out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// An element or rule naming the address appeared.
    Added,
    /// It went away (deleted by the daemon).
    Deleted,
}

/// One firewall change seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FwEvent {
    /// When the harness read it.
    pub at: Instant,
    /// Added or deleted.
    pub change: Change,
    /// The address it names.
    pub addr: Ipv4Addr,
}

#[derive(Debug, Default)]
struct Seen {
    events: Vec<FwEvent>,
    lines: usize,
    marker: bool,
    pending: Vec<(Change, Ipv4Addr)>,
    handles: HashMap<u64, Ipv4Addr>,
}

/// A running `nft -a monitor` in a namespace.
#[derive(Debug)]
pub struct FirewallMonitor {
    _child: Guarded,
    seen: Arc<(Mutex<Seen>, Condvar)>,
}

/// The table the monitor adds and deletes once to know it is listening.
const MARKER_TABLE: &str = "spabenchmarker";

impl FirewallMonitor {
    /// Starts the monitor in `ns` and returns once it reports changes.
    pub fn start(ns: &Netns) -> Result<FirewallMonitor> {
        let mut cmd = ns.command("nft");
        cmd.args(["-a", "monitor"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = Guarded::spawn("nft monitor", cmd)?;
        let stdout = child
            .child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Invalid("nft monitor has no stdout".into()))?;
        let seen: Arc<(Mutex<Seen>, Condvar)> = Arc::default();
        let shared = Arc::clone(&seen);
        std::thread::Builder::new()
            .name("nft-monitor".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let at = Instant::now();
                    let (lock, cv) = &*shared;
                    let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    s.lines += 1;
                    if line.contains(MARKER_TABLE) {
                        s.marker = true;
                    }
                    let parsed = parse_line(&line, &mut s.handles);
                    s.pending.extend(parsed);
                    // A transaction ends with "# new generation N by process P (...)":
                    // only its net effect counts (spad adds, deletes and re-adds an
                    // element in one transaction to replace its timeout).
                    if line.starts_with("# new generation") {
                        let pending = std::mem::take(&mut s.pending);
                        for (change, addr) in net_changes(pending) {
                            s.events.push(FwEvent { at, change, addr });
                        }
                    }
                    cv.notify_all();
                }
            })
            .map_err(crate::error::io("starting the monitor thread"))?;
        let monitor = FirewallMonitor {
            _child: child,
            seen,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !monitor.with(|s| s.marker) {
            ns.run("nft", ["add", "table", "inet", MARKER_TABLE])?;
            ns.run("nft", ["delete", "table", "inet", MARKER_TABLE])?;
            std::thread::sleep(Duration::from_millis(50));
            if Instant::now() > deadline {
                return Err(BenchError::Timeout {
                    what: "nft monitor to report changes".into(),
                    after: Duration::from_secs(5),
                });
            }
        }
        Ok(monitor)
    }

    fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        let s = self.seen.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&s)
    }

    /// Waits for `change` of `addr` seen at or after `since`; its time, or `None` at `deadline`.
    pub fn wait_for(
        &self,
        addr: Ipv4Addr,
        change: Change,
        since: Instant,
        deadline: Instant,
    ) -> Option<Instant> {
        let (lock, cv) = &*self.seen;
        let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(e) = s
                .events
                .iter()
                .rev()
                .take_while(|e| e.at >= since)
                .filter(|e| e.addr == addr && e.change == change)
                .last()
            {
                return Some(e.at);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            s = cv
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Every change seen at or after `since`, in order.
    pub fn events_since(&self, since: Instant) -> Vec<FwEvent> {
        self.with(|s| s.events.iter().filter(|e| e.at >= since).copied().collect())
    }

    /// How many changes of kind `change` were seen at or after `since`.
    pub fn count_since(&self, change: Change, since: Instant) -> usize {
        self.with(|s| {
            s.events
                .iter()
                .filter(|e| e.at >= since && e.change == change)
                .count()
        })
    }
}

/// The changes a monitor line reports: every address of an element line, the
/// source address of a rule (or, for a rule deleted by handle, the address its
/// `add` named). Nothing for other lines.
fn parse_line(line: &str, handles: &mut HashMap<u64, Ipv4Addr>) -> Vec<(Change, Ipv4Addr)> {
    let (change, is_rule) = if line.starts_with("add element") {
        (Change::Added, false)
    } else if line.starts_with("add rule") {
        (Change::Added, true)
    } else if line.starts_with("delete element") {
        (Change::Deleted, false)
    } else if line.starts_with("delete rule") {
        (Change::Deleted, true)
    } else {
        return Vec::new();
    };
    let addrs: Vec<Ipv4Addr> = line
        .split(|c: char| c.is_whitespace() || matches!(c, '{' | '}' | ','))
        .filter_map(|t| t.parse::<Ipv4Addr>().ok())
        .collect();
    if !is_rule {
        return addrs.into_iter().map(|a| (change, a)).collect();
    }
    let handle = line
        .rsplit_once("# handle ")
        .and_then(|(_, h)| h.trim().parse::<u64>().ok())
        .or_else(|| {
            line.split_once(" handle ")
                .and_then(|(_, h)| h.split_whitespace().next()?.parse::<u64>().ok())
        });
    match (change, addrs.first(), handle) {
        (Change::Added, Some(a), Some(h)) => {
            handles.insert(h, *a);
            vec![(change, *a)]
        }
        (_, Some(a), _) => vec![(change, *a)],
        (Change::Deleted, None, Some(h)) => handles
            .remove(&h)
            .map(|a| (change, a))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// The net effect of one transaction: per address, its last change.
fn net_changes(pending: Vec<(Change, Ipv4Addr)>) -> Vec<(Change, Ipv4Addr)> {
    let mut out: Vec<(Change, Ipv4Addr)> = Vec::new();
    for (change, addr) in pending {
        match out.iter_mut().find(|(_, a)| *a == addr) {
            Some(slot) => slot.0 = change,
            None => out.push((change, addr)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_and_rules_name_their_addresses() {
        let mut h = HashMap::new();
        let a = |x| Ipv4Addr::new(198, 18, 0, x);
        assert_eq!(
            parse_line(
                "add element inet spadbench ssh_v4 { 198.18.0.1 timeout 3s, 198.18.0.2 timeout 3s }",
                &mut h
            ),
            vec![(Change::Added, a(1)), (Change::Added, a(2))]
        );
        assert_eq!(
            parse_line(
                "add rule ip filter FWKNOP_INPUT ip saddr 10.211.2.10 ip daddr 10.211.0.1 tcp dport 2222 counter packets 0 bytes 0 accept # handle 7",
                &mut h
            ),
            vec![(Change::Added, Ipv4Addr::new(10, 211, 2, 10))]
        );
        assert_eq!(
            parse_line("delete rule ip filter FWKNOP_INPUT handle 7", &mut h),
            vec![(Change::Deleted, Ipv4Addr::new(10, 211, 2, 10))]
        );
        assert!(parse_line("delete rule ip filter FWKNOP_INPUT handle 7", &mut h).is_empty());
        assert!(parse_line("# new generation 22 by process 31765 (nft)", &mut h).is_empty());
        assert!(parse_line("add table inet spabenchmarker", &mut h).is_empty());
    }

    #[test]
    fn a_transaction_counts_by_its_net_effect() {
        let a = Ipv4Addr::new(10, 211, 2, 1);
        let b = Ipv4Addr::new(10, 211, 2, 2);
        // spad's open of a, close of b: add {a, b}; delete {a, b}; add {a}.
        let pending = vec![
            (Change::Added, a),
            (Change::Added, b),
            (Change::Deleted, a),
            (Change::Deleted, b),
            (Change::Added, a),
        ];
        assert_eq!(
            net_changes(pending),
            vec![(Change::Added, a), (Change::Deleted, b)]
        );
    }
}
