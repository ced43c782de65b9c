//! knockd under test: one classic sequence (three UDP ports, see
//! [`crate::packets::KNOCKD_SEQUENCE`]) whose command adds the knocker's
//! address, with a timeout, to an nftables set guarding tcp/2222 — the same
//! kind of firewall change spad makes, so the two latencies compare the
//! daemons, not the firewalls.

use super::{owned, start_logged, Kind, Running};
use crate::error::{io, Result};
use crate::lab::{Lab, SERVER_IF, SERVICE_PORT};
use crate::packets::KNOCKD_SEQUENCE;

/// knockd's nftables table in the bench.
pub const TABLE: &str = "knockbench";

/// Starts knockd; a completed sequence opens tcp/2222 for `door_secs`.
pub fn start(lab: &Lab, door_secs: u32) -> Result<Running> {
    let ports: Vec<String> = KNOCKD_SEQUENCE.iter().map(u16::to_string).collect();
    let script = format!(
        "add table inet {TABLE}\nadd set inet {TABLE} ssh_v4 {{ type ipv4_addr; flags timeout; }}\nadd chain inet {TABLE} input {{ type filter hook input priority -10; policy accept; }}\nadd rule inet {TABLE} input udp dport {{ {} }} drop\nadd rule inet {TABLE} input tcp dport {SERVICE_PORT} ip saddr @ssh_v4 accept\nadd rule inet {TABLE} input tcp dport {SERVICE_PORT} drop\n",
        ports.join(", ")
    );
    let rules = lab.path("knockd.nft");
    std::fs::write(&rules, script).map_err(io("writing knockd.nft"))?;
    lab.server.run("nft", ["-f".as_ref(), rules.as_os_str()])?;
    let conf = lab.path("knockd.conf");
    let sequence: Vec<String> = ports.iter().map(|p| format!("{p}:udp")).collect();
    let text = format!(
        "[options]\n    Interface = {SERVER_IF}\n    LogFile = {}\n\n[opendoor]\n    sequence = {}\n    seq_timeout = 5\n    command = /usr/sbin/nft add element inet {TABLE} ssh_v4 {{ %IP% timeout {door_secs}s }}\n",
        lab.path("knockd-events.log").display(),
        sequence.join(",")
    );
    std::fs::write(&conf, text).map_err(io("writing knockd.conf"))?;
    let mut cmd = lab.server.command("knockd");
    cmd.arg("-v").arg("-c").arg(&conf).args(["-i", SERVER_IF]);
    start_logged(
        Kind::Knockd,
        &lab.server,
        cmd,
        &lab.path("knockd.out"),
        "listening on",
        vec![owned(&["nft", "delete", "table", "inet", TABLE])],
    )
}
