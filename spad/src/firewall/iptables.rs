//! The iptables backend: a chain of spad's own (the table name in
//! uppercase, `SPAD` by default) in the `filter` table of both iptables and
//! ip6tables, jumped to from the top of `INPUT`. The chain returns
//! established traffic, then drops the door ports for everyone (and the SPA
//! port when stealthy); opening inserts
//! `-s ADDR -p tcp --dport 22 -m comment --comment spad:DOOR -j ACCEPT` at
//! the top, closing deletes it. Nothing here closes by itself: spad's
//! timers must call close (kernel_closes is false).
//!
//! The chain's fixed rules are written with `iptables-restore --noflush`,
//! which replaces the chain's contents in one step; single rules use
//! `iptables -w`/`ip6tables -w` (the `-w` waits for the xtables lock).

use std::net::IpAddr;
use std::time::Duration;

use super::error::FirewallError;
use super::nftables::IpFamily;
use super::runner::Runner;
use super::spec::{DoorSpec, PortSpec};

/// Time limit for one iptables process.
const IPTABLES_TIMEOUT: Duration = Duration::from_secs(20);
/// At most this many copies of one rule are deleted by a close.
const MAX_DUPLICATES: usize = 16;

fn program(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "iptables",
        IpFamily::V6 => "ip6tables",
    }
}

fn restore_program(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "iptables-restore",
        IpFamily::V6 => "ip6tables-restore",
    }
}

/// The comment that tags a door's accept rules (and keeps two doors on the
/// same port from sharing a rule).
fn comment(door: &str) -> String {
    format!("spad:{door}")
}

/// The rule spec (after `-C/-I/-D CHAIN`) that lets `ip` reach one port.
fn accept_spec(door: &str, ip: IpAddr, port: PortSpec) -> Vec<String> {
    [
        "-s",
        &ip.to_string(),
        "-p",
        port.proto.as_str(),
        "--dport",
        &port.port.to_string(),
        "-m",
        "comment",
        "--comment",
        &comment(door),
        "-j",
        "ACCEPT",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The `iptables-restore --noflush` input that (re)writes spad's chain for
/// one family: declaring the chain creates it or empties it.
pub(crate) fn restore_input(
    chain: &str,
    doors: &[&DoorSpec],
    open: &[(&str, IpAddr)],
    stealth_ports: &[u16],
) -> String {
    let mut lines = vec!["*filter".to_owned(), format!(":{chain} - [0:0]")];
    for (door, ip) in open {
        if let Some(spec) = doors.iter().find(|d| d.name == *door) {
            for port in &spec.ports {
                lines.push(format!(
                    "-A {chain} {}",
                    accept_spec(door, *ip, *port).join(" ")
                ));
            }
        }
    }
    if !doors.is_empty() {
        lines.push(format!(
            "-A {chain} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"
        ));
    }
    let mut ports: Vec<PortSpec> = doors.iter().flat_map(|d| d.ports.iter().copied()).collect();
    ports.sort_unstable();
    ports.dedup();
    for port in ports {
        lines.push(format!(
            "-A {chain} -p {} --dport {} -j DROP",
            port.proto, port.port
        ));
    }
    for port in stealth_ports {
        lines.push(format!("-A {chain} -p udp --dport {port} -j DROP"));
    }
    lines.push("COMMIT".to_owned());
    lines.join("\n") + "\n"
}

/// spad's chain in iptables and ip6tables.
#[derive(Debug, Clone)]
pub(crate) struct Iptables {
    chain: String,
}

impl Iptables {
    pub fn new(table: &str) -> Iptables {
        Iptables {
            chain: table.to_ascii_uppercase(),
        }
    }

    fn argv(&self, family: IpFamily, args: &[&str], rule: &[String]) -> Vec<String> {
        let mut argv = vec![program(family).to_owned(), "-w".to_owned()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv.extend(rule.iter().cloned());
        argv
    }

    /// True when the rule exists (`-C` exits 0).
    fn has(
        &self,
        runner: &Runner,
        family: IpFamily,
        chain: &str,
        rule: &[String],
    ) -> Result<bool, FirewallError> {
        let done = runner.run(
            &self.argv(family, &["-C", chain], rule),
            None,
            IPTABLES_TIMEOUT,
        )?;
        Ok(done.status.success())
    }

    /// Runs `iptables -w ARGS RULE` (ip6tables for V6); fails unless it exits 0.
    fn run_ok(
        &self,
        runner: &Runner,
        family: IpFamily,
        args: &[&str],
        rule: &[String],
    ) -> Result<(), FirewallError> {
        runner.run_ok(&self.argv(family, args, rule), None, IPTABLES_TIMEOUT)?;
        Ok(())
    }

    /// Inserts `rule` at the top of `chain` unless it is there already.
    fn insert_once(
        &self,
        runner: &Runner,
        family: IpFamily,
        chain: &str,
        rule: &[String],
    ) -> Result<(), FirewallError> {
        if !self.has(runner, family, chain, rule)? {
            self.run_ok(runner, family, &["-I", chain, "1"], rule)?;
        }
        Ok(())
    }

    /// Deletes every copy of `rule` from `chain` (up to [`MAX_DUPLICATES`]);
    /// fine if there is none.
    fn delete_every(
        &self,
        runner: &Runner,
        family: IpFamily,
        chain: &str,
        rule: &[String],
    ) -> Result<(), FirewallError> {
        for _ in 0..MAX_DUPLICATES {
            if !self.has(runner, family, chain, rule)? {
                break;
            }
            self.run_ok(runner, family, &["-D", chain], rule)?;
        }
        Ok(())
    }

    /// Writes spad's chain (fixed rules plus the accepts in `open`) and makes
    /// sure INPUT jumps to it, for both families.
    pub fn install(
        &self,
        runner: &Runner,
        doors: &[&DoorSpec],
        open: &[(&str, IpAddr)],
        stealth_ports: &[u16],
    ) -> Result<(), FirewallError> {
        for family in [IpFamily::V4, IpFamily::V6] {
            let open_here: Vec<(&str, IpAddr)> = open
                .iter()
                .copied()
                .filter(|(_, ip)| IpFamily::of(*ip) == family)
                .collect();
            let input = restore_input(&self.chain, doors, &open_here, stealth_ports);
            let argv = [restore_program(family), "-w", "--noflush"].map(str::to_owned);
            runner.run_ok(&argv, Some(&input), IPTABLES_TIMEOUT)?;
            let jump = ["-j".to_owned(), self.chain.clone()];
            self.insert_once(runner, family, "INPUT", &jump)?;
        }
        Ok(())
    }

    /// Whether spad's chain still holds its fixed rules and the accepts in
    /// `open`, and INPUT still jumps to it, in both families (`-C` per rule:
    /// a handful of processes, run only when something changed).
    pub fn intact(
        &self,
        runner: &Runner,
        doors: &[&DoorSpec],
        open: &[(&str, IpAddr)],
        stealth_ports: &[u16],
    ) -> Result<bool, FirewallError> {
        let words = |text: String| text.split(' ').map(str::to_owned).collect::<Vec<_>>();
        for family in [IpFamily::V4, IpFamily::V6] {
            let mut expected: Vec<(&str, Vec<String>)> =
                vec![("INPUT", vec!["-j".to_owned(), self.chain.clone()])];
            for line in restore_input(&self.chain, doors, &[], stealth_ports).lines() {
                if let Some(rule) = line.strip_prefix(&format!("-A {} ", self.chain)) {
                    expected.push((&self.chain, words(rule.to_owned())));
                }
            }
            for (door, ip) in open.iter().filter(|(_, ip)| IpFamily::of(*ip) == family) {
                if let Some(spec) = doors.iter().find(|d| d.name == *door) {
                    for port in &spec.ports {
                        expected.push((&self.chain, accept_spec(door, *ip, *port)));
                    }
                }
            }
            for (chain, rule) in &expected {
                if !self.has(runner, family, chain, rule)? {
                    tracing::warn!(chain, rule = %rule.join(" "), "iptables rule missing");
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Lets `ip` through the door's ports; never adds a rule twice.
    pub fn open(&self, runner: &Runner, door: &DoorSpec, ip: IpAddr) -> Result<(), FirewallError> {
        let family = IpFamily::of(ip);
        for port in &door.ports {
            let spec = accept_spec(&door.name, ip, *port);
            self.insert_once(runner, family, &self.chain, &spec)?;
        }
        Ok(())
    }

    /// Removes the door's accept rules for `ip`; fine if there are none.
    pub fn close(&self, runner: &Runner, door: &DoorSpec, ip: IpAddr) -> Result<(), FirewallError> {
        let family = IpFamily::of(ip);
        for port in &door.ports {
            let spec = accept_spec(&door.name, ip, *port);
            self.delete_every(runner, family, &self.chain, &spec)?;
        }
        Ok(())
    }

    /// Removes the jump and spad's chain from both families; fine if absent.
    pub fn teardown(&self, runner: &Runner) -> Result<(), FirewallError> {
        let jump = ["-j".to_owned(), self.chain.clone()];
        for family in [IpFamily::V4, IpFamily::V6] {
            self.delete_every(runner, family, "INPUT", &jump)?;
            let exists = runner
                .run(
                    &self.argv(family, &["-S", &self.chain], &[]),
                    None,
                    IPTABLES_TIMEOUT,
                )?
                .status
                .success();
            if exists {
                self.run_ok(runner, family, &["-F", &self.chain], &[])?;
                self.run_ok(runner, family, &["-X", &self.chain], &[])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::firewall::spec::BackendKind;

    #[test]
    fn the_chain_returns_established_then_drops_door_ports() {
        let ssh = DoorSpec {
            name: "ssh".into(),
            ports: vec!["tcp/22".parse().unwrap(), "udp/60001".parse().unwrap()],
            backend: BackendKind::Iptables,
        };
        let input = restore_input(
            "SPAD",
            &[&ssh],
            &[("ssh", "192.0.2.9".parse().unwrap())],
            &[62210],
        );
        assert_eq!(
            input,
            "*filter\n:SPAD - [0:0]\n\
             -A SPAD -s 192.0.2.9 -p tcp --dport 22 -m comment --comment spad:ssh -j ACCEPT\n\
             -A SPAD -s 192.0.2.9 -p udp --dport 60001 -m comment --comment spad:ssh -j ACCEPT\n\
             -A SPAD -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN\n\
             -A SPAD -p tcp --dport 22 -j DROP\n\
             -A SPAD -p udp --dport 60001 -j DROP\n\
             -A SPAD -p udp --dport 62210 -j DROP\nCOMMIT\n"
        );
    }
}
