//! The nftables backend (the default): what spad does to its own
//! `table inet <table>` and nothing else in the ruleset, as a list of
//! [`NftOp`]s that become a netlink batch (`nft_wire`, in-process) or an
//! nft script ([`script`], for `nft -f -`) — the same transaction either way.
//!
//! Each door is a pair of sets, `<door>_v4` (ipv4_addr) and `<door>_v6`
//! (ipv6_addr), both `flags timeout`; a door name starting with a digit gets
//! a leading `_` (nft names cannot start with one; door names never start
//! with `_`, so no two doors share a set). Opening adds the address with
//! `timeout <seconds>s`: the KERNEL closes the door when it runs out, even if
//! spad is dead. Extending deletes and re-adds the element in one
//! transaction, so the new timeout always replaces the old one. A batch of
//! opens and closes is one transaction too, three commands per set
//! whatever its size ([`batch_script`]); single opens and closes are
//! batches of one.
//!
//! spad's base chain `input` (hook input, priority -10, policy accept):
//!
//! ```text
//! udp dport <spa_port> drop                   # stealth: no ICMP unreachable
//! ct state established,related accept         # open sessions survive a close
//! tcp dport 22 ip saddr @ssh_v4 meta mark set meta mark or 0x5350 accept
//! tcp dport 22 ip6 saddr @ssh_v6 meta mark set meta mark or 0x5350 accept
//! tcp dport 22 drop                           # everyone else
//! ```
//!
//! An `accept` in one nftables base chain does not override a `drop` in
//! another: a packet must pass every base chain on the hook. spad's chain
//! therefore drops the door ports itself, and its `accept` only means "spad
//! has no objection". A ruleset that already drops by policy (say
//! `table inet filter` with `policy drop`) must let the door's packets
//! through itself. Two ways (see `conf/nftables-example.nft`, which a test
//! loads): accept what spad marked, `meta mark & 0x5350 == 0x5350 accept`
//! (fail-closed: without spad's table nothing is marked), or accept the
//! door's ports outright, `tcp dport 22 accept` (spad's chain, at the lower
//! priority, already dropped everyone else — but with spad's table gone the
//! port is open to all). Either way keep `ct state established,related
//! accept` so sessions outlive the door.

use std::collections::hash_map::{Entry, HashMap};
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use super::spec::{DoorSpec, Proto};

/// The chain priority of spad's input chain: before the usual `filter` (0).
pub const CHAIN_PRIORITY: i32 = -10;

/// The packet mark bits spad ORs onto packets it let through an open door,
/// so a later chain with a drop policy can accept exactly those:
/// `meta mark & 0x5350 == 0x5350 accept`. Fail-closed: when spad's table is
/// gone, nothing carries the mark.
pub const DOOR_MARK: u32 = 0x5350;

/// An address family of a door's set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    /// IPv4: the `<door>_v4` set, iptables.
    V4,
    /// IPv6: the `<door>_v6` set, ip6tables.
    V6,
}

impl IpFamily {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }
}

/// The nftables set holding the addresses a door is open for.
pub fn set_name(door: &str, family: IpFamily) -> String {
    let prefix = if door.starts_with(|c: char| c.is_ascii_digit()) {
        "_"
    } else {
        ""
    };
    let suffix = match family {
        IpFamily::V4 => "v4",
        IpFamily::V6 => "v6",
    };
    format!("{prefix}{door}_{suffix}")
}

/// `22` or `{ 22, 80 }`.
fn port_list(ports: &[u16]) -> String {
    match ports {
        [one] => one.to_string(),
        many => format!(
            "{{ {} }}",
            many.iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The ports of `doors` for `proto`, sorted, without duplicates.
fn ports_of<'a>(doors: impl IntoIterator<Item = &'a DoorSpec>, proto: Proto) -> Vec<u16> {
    let mut ports: Vec<u16> = doors
        .into_iter()
        .flat_map(|door| door.ports.iter())
        .filter(|p| p.proto == proto)
        .map(|p| p.port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// One rule of spad's input chain. Its text ([`fmt::Display`]) is what
/// `nft -f` reads and `nft list` prints back; `nft_wire` encodes the same
/// rule as netlink expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rule {
    /// `udp dport <port> drop`: the stealthy SPA port.
    StealthDrop(u16),
    /// `ct state established,related accept`.
    Established,
    /// `<proto> dport <ports> ip[6] saddr @<set> meta mark set meta mark or 0x5350 accept`.
    DoorAccept {
        proto: Proto,
        ports: Vec<u16>,
        family: IpFamily,
        set: String,
    },
    /// `<proto> dport <ports> drop`: everyone not let in before.
    Drop { proto: Proto, ports: Vec<u16> },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::StealthDrop(port) => write!(f, "udp dport {port} drop"),
            Rule::Established => f.write_str("ct state established,related accept"),
            Rule::DoorAccept {
                proto,
                ports,
                family,
                set,
            } => {
                let ip = match family {
                    IpFamily::V4 => "ip",
                    IpFamily::V6 => "ip6",
                };
                write!(
                    f,
                    "{proto} dport {} {ip} saddr @{set} meta mark set meta mark or {DOOR_MARK:#x} accept",
                    port_list(ports)
                )
            }
            Rule::Drop { proto, ports } => write!(f, "{proto} dport {} drop", port_list(ports)),
        }
    }
}

/// The rules of spad's input chain, in order.
pub(crate) fn chain_rules(doors: &[&DoorSpec], stealth_ports: &[u16]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for &port in stealth_ports {
        rules.push(Rule::StealthDrop(port));
    }
    if !doors.is_empty() {
        rules.push(Rule::Established);
    }
    for door in doors {
        for proto in [Proto::Tcp, Proto::Udp] {
            let ports = ports_of([*door], proto);
            if ports.is_empty() {
                continue;
            }
            for family in [IpFamily::V4, IpFamily::V6] {
                rules.push(Rule::DoorAccept {
                    proto,
                    ports: ports.clone(),
                    family,
                    set: set_name(&door.name, family),
                });
            }
        }
    }
    for proto in [Proto::Tcp, Proto::Udp] {
        let ports = ports_of(doors.iter().copied(), proto);
        if !ports.is_empty() {
            rules.push(Rule::Drop { proto, ports });
        }
    }
    rules
}

/// One step of an nftables transaction on spad's table. The same list
/// becomes an nft script ([`script`]) or a netlink batch (`nft_wire`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NftOp {
    /// `add table inet T` (no error if it exists).
    AddTable,
    /// `delete table inet T` (fails if absent).
    DeleteTable,
    /// `add set inet T <name> { type ipvX_addr; flags timeout; }`.
    AddSet { name: String, family: IpFamily },
    /// `delete set inet T <name>`.
    DeleteSet { name: String, family: IpFamily },
    /// `add chain inet T input { type filter hook input priority -10; policy accept; }`.
    AddChain,
    /// `flush chain inet T input`.
    FlushChain,
    /// `add rule inet T input <rule>`.
    AddRule(Rule),
    /// `add element inet T <set> { ip timeout Ns, ... }`.
    AddElements {
        set: String,
        elements: Vec<(IpAddr, u32)>,
    },
    /// `delete element inet T <set> { ip, ... }`.
    DeleteElements { set: String, elements: Vec<IpAddr> },
}

/// The nft script text of `ops` on `table inet <table>`.
pub(crate) fn script(table: &str, ops: &[NftOp]) -> String {
    let mut s = String::new();
    for op in ops {
        let _ = match op {
            NftOp::AddTable => writeln!(s, "add table inet {table}"),
            NftOp::DeleteTable => writeln!(s, "delete table inet {table}"),
            NftOp::AddSet { name, family } => {
                writeln!(s, "add set inet {table} {name} {}", set_body(*family))
            }
            NftOp::DeleteSet { name, .. } => writeln!(s, "delete set inet {table} {name}"),
            NftOp::AddChain => writeln!(s, "add chain inet {table} input {}", chain_body()),
            NftOp::FlushChain => writeln!(s, "flush chain inet {table} input"),
            NftOp::AddRule(rule) => writeln!(s, "add rule inet {table} input {rule}"),
            NftOp::AddElements { set, elements } => {
                let list = elements
                    .iter()
                    .map(|(ip, seconds)| format!("{ip} timeout {seconds}s"))
                    .collect::<Vec<_>>()
                    .join(", ");
                writeln!(s, "add element inet {table} {set} {{ {list} }}")
            }
            NftOp::DeleteElements { set, elements } => {
                let list = elements
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                writeln!(s, "delete element inet {table} {set} {{ {list} }}")
            }
        };
    }
    s
}

fn set_body(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "{ type ipv4_addr; flags timeout; }",
        IpFamily::V6 => "{ type ipv6_addr; flags timeout; }",
    }
}

fn chain_body() -> String {
    format!("{{ type filter hook input priority {CHAIN_PRIORITY}; policy accept; }}")
}

/// Replaces spad's table with a fresh one (no door open), atomically.
pub(crate) fn setup_ops(doors: &[&DoorSpec], stealth_ports: &[u16]) -> Vec<NftOp> {
    // `add` first so `delete` cannot fail when the table does not exist yet.
    let mut ops = vec![NftOp::AddTable, NftOp::DeleteTable, NftOp::AddTable];
    add_door_sets(&mut ops, doors);
    ops.push(NftOp::AddChain);
    ops.extend(
        chain_rules(doors, stealth_ports)
            .into_iter()
            .map(NftOp::AddRule),
    );
    ops
}

/// Moves spad's table to a new door set, atomically, keeping the sets (and
/// so the open elements) of doors that stay; `old_doors` are the names of
/// the nftables doors currently set up.
pub(crate) fn reconfigure_ops(
    old_doors: &[&str],
    doors: &[&DoorSpec],
    stealth_ports: &[u16],
) -> Vec<NftOp> {
    let mut ops = vec![NftOp::AddTable, NftOp::AddChain, NftOp::FlushChain];
    for old in old_doors {
        if doors.iter().any(|d| d.name == *old) {
            continue;
        }
        for family in [IpFamily::V4, IpFamily::V6] {
            let name = set_name(old, family);
            // `add` first so `delete` cannot fail if someone removed it.
            ops.push(NftOp::AddSet {
                name: name.clone(),
                family,
            });
            ops.push(NftOp::DeleteSet { name, family });
        }
    }
    add_door_sets(&mut ops, doors);
    ops.extend(
        chain_rules(doors, stealth_ports)
            .into_iter()
            .map(NftOp::AddRule),
    );
    ops
}

/// Adds both address sets of every door (a no-op for a set that exists: its
/// elements stay).
fn add_door_sets(ops: &mut Vec<NftOp>, doors: &[&DoorSpec]) {
    for door in doors {
        for family in [IpFamily::V4, IpFamily::V6] {
            ops.push(NftOp::AddSet {
                name: set_name(&door.name, family),
                family,
            });
        }
    }
}

/// One element change of a batch: open `door` for `ip` for `seconds` (or
/// extend it: the new timeout replaces the old), or close it when
/// `seconds` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElementChange<'a> {
    pub door: &'a str,
    pub ip: IpAddr,
    pub seconds: u32,
}

/// All `changes` as one transaction. Per set: add every element (closes
/// with a 1 s timeout, so the delete cannot fail on an absent element),
/// delete them all, re-add the opened ones with their new timeouts. When
/// the same door and address appear more than once, the last change wins,
/// as if they had run one after another.
pub(crate) fn batch_ops(changes: &[ElementChange<'_>]) -> Vec<NftOp> {
    // Per set, in order of first appearance: (address, seconds), deduplicated.
    let mut sets: Vec<(String, Vec<(IpAddr, u32)>)> = Vec::new();
    let mut set_index: HashMap<String, usize> = HashMap::new();
    let mut element_index: HashMap<(usize, IpAddr), usize> = HashMap::new();
    for change in changes {
        let set = set_name(change.door, IpFamily::of(change.ip));
        let set_at = *set_index.entry(set.clone()).or_insert_with(|| {
            sets.push((set, Vec::new()));
            sets.len() - 1
        });
        let elements = &mut sets[set_at].1;
        match element_index.entry((set_at, change.ip)) {
            Entry::Occupied(at) => elements[*at.get()].1 = change.seconds,
            Entry::Vacant(slot) => {
                slot.insert(elements.len());
                elements.push((change.ip, change.seconds));
            }
        }
    }
    let mut ops = Vec::new();
    for (set, elements) in sets {
        ops.push(NftOp::AddElements {
            set: set.clone(),
            elements: elements
                .iter()
                .map(|(ip, seconds)| (*ip, (*seconds).max(1)))
                .collect(),
        });
        ops.push(NftOp::DeleteElements {
            set: set.clone(),
            elements: elements.iter().map(|(ip, _)| *ip).collect(),
        });
        let opened: Vec<(IpAddr, u32)> = elements.into_iter().filter(|(_, s)| *s > 0).collect();
        if !opened.is_empty() {
            ops.push(NftOp::AddElements {
                set,
                elements: opened,
            });
        }
    }
    ops
}

/// [`batch_ops`] as an nft script.
#[cfg(test)]
pub(crate) fn batch_script(table: &str, changes: &[ElementChange<'_>]) -> String {
    script(table, &batch_ops(changes))
}

/// Opens (or extends: the new timeout replaces the old) `door` for `ip`.
#[cfg(test)]
pub(crate) fn open_script(table: &str, door: &str, ip: IpAddr, seconds: u32) -> String {
    batch_script(table, &[ElementChange { door, ip, seconds }])
}

/// Closes `door` for `ip`; fine if it was not open.
#[cfg(test)]
pub(crate) fn close_script(table: &str, door: &str, ip: IpAddr) -> String {
    batch_script(
        table,
        &[ElementChange {
            door,
            ip,
            seconds: 0,
        }],
    )
}

/// Removes spad's table; fine if it is not there.
pub(crate) fn teardown_ops() -> Vec<NftOp> {
    vec![NftOp::AddTable, NftOp::DeleteTable]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::firewall::spec::{BackendKind, PortSpec};

    fn door(name: &str, ports: &[&str]) -> DoorSpec {
        DoorSpec {
            name: name.into(),
            ports: ports
                .iter()
                .map(|p| p.parse::<PortSpec>().unwrap())
                .collect(),
            backend: BackendKind::Nftables,
        }
    }

    #[test]
    fn set_names_are_valid_nft_names_and_distinct() {
        assert_eq!(set_name("ssh", IpFamily::V4), "ssh_v4");
        assert_eq!(set_name("web-1", IpFamily::V6), "web-1_v6");
        assert_eq!(set_name("22", IpFamily::V4), "_22_v4");
    }

    #[test]
    fn the_chain_drops_door_ports_for_everyone_not_in_the_set() {
        let ssh = door("ssh", &["tcp/22"]);
        let multi = door("multi", &["tcp/80", "tcp/443", "udp/53", "tcp/22"]);
        assert_eq!(
            chain_rules(&[&ssh, &multi], &[62210])
                .iter()
                .map(Rule::to_string)
                .collect::<Vec<_>>(),
            [
                "udp dport 62210 drop",
                "ct state established,related accept",
                "tcp dport 22 ip saddr @ssh_v4 meta mark set meta mark or 0x5350 accept",
                "tcp dport 22 ip6 saddr @ssh_v6 meta mark set meta mark or 0x5350 accept",
                "tcp dport { 22, 80, 443 } ip saddr @multi_v4 meta mark set meta mark or 0x5350 accept",
                "tcp dport { 22, 80, 443 } ip6 saddr @multi_v6 meta mark set meta mark or 0x5350 accept",
                "udp dport 53 ip saddr @multi_v4 meta mark set meta mark or 0x5350 accept",
                "udp dport 53 ip6 saddr @multi_v6 meta mark set meta mark or 0x5350 accept",
                "tcp dport { 22, 80, 443 } drop",
                "udp dport 53 drop",
            ]
        );
        assert_eq!(chain_rules(&[], &[]), Vec::<Rule>::new());
        // fwknop's port is as silent as the SPA port.
        let silent: Vec<String> = chain_rules(&[], &[62201, 62210])
            .iter()
            .map(Rule::to_string)
            .collect();
        assert_eq!(silent, ["udp dport 62201 drop", "udp dport 62210 drop"]);
    }

    #[test]
    fn open_extends_by_replacing_the_element() {
        let script = open_script("spad", "ssh", "2001:db8::1".parse().unwrap(), 30);
        assert_eq!(
            script,
            "add element inet spad ssh_v6 { 2001:db8::1 timeout 30s }\n\
             delete element inet spad ssh_v6 { 2001:db8::1 }\n\
             add element inet spad ssh_v6 { 2001:db8::1 timeout 30s }\n"
        );
    }

    #[test]
    fn closing_adds_then_deletes_so_an_absent_element_is_no_error() {
        let script = close_script("spad", "ssh", "192.0.2.2".parse().unwrap());
        assert_eq!(
            script,
            "add element inet spad ssh_v4 { 192.0.2.2 timeout 1s }\n\
             delete element inet spad ssh_v4 { 192.0.2.2 }\n"
        );
    }

    #[test]
    fn a_batch_is_three_commands_per_set_and_the_last_change_wins() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let change = |door, text, seconds| ElementChange {
            door,
            ip: ip(text),
            seconds,
        };
        let script = batch_script(
            "spad",
            &[
                change("ssh", "192.0.2.2", 30),
                change("ssh", "2001:db8::1", 60),
                change("ssh", "192.0.2.3", 30),
                change("ssh", "192.0.2.2", 0),
                change("web", "192.0.2.2", 10),
                change("ssh", "192.0.2.4", 0),
                change("ssh", "192.0.2.3", 45),
            ],
        );
        assert_eq!(
            script,
            "add element inet spad ssh_v4 { 192.0.2.2 timeout 1s, 192.0.2.3 timeout 45s, 192.0.2.4 timeout 1s }\n\
             delete element inet spad ssh_v4 { 192.0.2.2, 192.0.2.3, 192.0.2.4 }\n\
             add element inet spad ssh_v4 { 192.0.2.3 timeout 45s }\n\
             add element inet spad ssh_v6 { 2001:db8::1 timeout 60s }\n\
             delete element inet spad ssh_v6 { 2001:db8::1 }\n\
             add element inet spad ssh_v6 { 2001:db8::1 timeout 60s }\n\
             add element inet spad web_v4 { 192.0.2.2 timeout 10s }\n\
             delete element inet spad web_v4 { 192.0.2.2 }\n\
             add element inet spad web_v4 { 192.0.2.2 timeout 10s }\n"
        );
        assert_eq!(batch_script("spad", &[]), "");
    }
}
