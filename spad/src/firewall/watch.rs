//! Noticing that someone changed spad's firewall: a NETLINK_NETFILTER
//! socket subscribed to the nf_tables event group (NFNLGRP_NFTABLES), in
//! the firewall's network namespace. It blocks in `recv` — nothing is
//! polled while idle — and wakes for table, chain, rule and set changes
//! made by anyone but spad's own netlink socket to spad's `table inet
//! <table>` and, while iptables doors are in use, to the `ip`/`ip6`
//! `filter` tables (Debian's iptables is iptables-nft, so `iptables -F` or
//! removing spad's chain or jump shows up there). What to do about it is
//! [`super::Firewall::check_intact`] and [`super::Firewall::repair`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::error::FirewallError;
use super::netlink::{messages, nfnl, Msg, NetlinkSocket};
use super::nft_wire::{msg, nft_type, NFPROTO_INET};

const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// The table iptables-nft keeps its filter chains in.
const IPTABLES_TABLE: &str = "filter";

/// Waits for changes to spad's part of the ruleset made by someone else.
/// Open it with [`super::Firewall::watch`]; run [`FirewallWatch::wait`] in
/// a thread of its own.
#[derive(Debug)]
pub struct FirewallWatch {
    socket: NetlinkSocket,
    /// spad's own requests: their events are not news.
    own_portid: u32,
    table: String,
    /// Whether the iptables backend is in use (the firewall updates it on
    /// reconfigure).
    iptables: Arc<AtomicBool>,
}

impl FirewallWatch {
    pub(crate) fn open(
        netns: Option<&str>,
        own_portid: u32,
        table: &str,
        iptables: Arc<AtomicBool>,
    ) -> Result<FirewallWatch, FirewallError> {
        let groups = 1 << (nfnl::GROUP_NFTABLES - 1);
        let socket = NetlinkSocket::open(netns, groups).map_err(|err| {
            FirewallError::NftNetlink(format!("cannot subscribe to nf_tables events: {err}"))
        })?;
        Ok(FirewallWatch {
            socket,
            own_portid,
            table: table.to_owned(),
            iptables,
        })
    }

    /// Blocks until a relevant change happened, then swallows the rest of
    /// that burst (a `nft flush ruleset` is dozens of events) and returns
    /// what it saw first, for the log: e.g. "table inet spad was deleted by
    /// netlink port 4242" (the port is the changing process's, often its pid).
    /// Lost events (the socket's queue overflowed) count as a change.
    pub fn wait(&mut self) -> Result<String, FirewallError> {
        let mut seen: Option<String> = None;
        loop {
            let dont_wait = seen.is_some();
            let datagram = match self.socket.recv(dont_wait) {
                Ok(Some(datagram)) => datagram,
                Ok(None) => match seen {
                    Some(what) => return Ok(what),
                    None => continue,
                },
                Err(err) if err.raw_os_error() == Some(libc::ENOBUFS) => {
                    seen.get_or_insert_with(|| "nf_tables events were lost".to_owned());
                    continue;
                }
                Err(err) => {
                    return Err(FirewallError::NftNetlink(format!(
                        "reading nf_tables events: {err}"
                    )))
                }
            };
            let iptables = self.iptables.load(Ordering::Relaxed);
            for event in messages(datagram) {
                if seen.is_none() {
                    seen = describe(&event, self.own_portid, &self.table, iptables);
                }
            }
        }
    }
}

/// A relevant change, described; `None` for anything else.
fn describe(event: &Msg<'_>, own_portid: u32, table: &str, iptables: bool) -> Option<String> {
    if event.portid == own_portid && own_portid != 0 {
        return None;
    }
    let (object, deleted) = match event.msg_type {
        t if t == nft_type(msg::NEWTABLE) => ("table", false),
        t if t == nft_type(msg::DELTABLE) => ("table", true),
        t if t == nft_type(msg::NEWCHAIN) => ("chain", false),
        t if t == nft_type(msg::DELCHAIN) => ("chain", true),
        t if t == nft_type(msg::NEWRULE) => ("rule", false),
        t if t == nft_type(msg::DELRULE) => ("rule", true),
        t if t == nft_type(msg::NEWSET) => ("set", false),
        t if t == nft_type(msg::DELSET) => ("set", true),
        _ => return None,
    };
    // The table name is attribute 1 of all four kinds.
    let name = event.attrs().string(1)?;
    let family = match event.family()? {
        NFPROTO_INET if name == table => "inet",
        NFPROTO_IPV4 if iptables && name == IPTABLES_TABLE => "ip",
        NFPROTO_IPV6 if iptables && name == IPTABLES_TABLE => "ip6",
        _ => return None,
    };
    let verb = if deleted { "deleted" } else { "added" };
    let by = event.portid;
    Some(match object {
        "table" => format!("table {family} {name} was {verb} by netlink port {by}"),
        _ => format!("table {family} {name}: a {object} was {verb} by netlink port {by}"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::netlink::{nlmsg, MsgWriter};
    use super::*;

    fn event(cmd: u16, family: u8, table: &str, portid: u32) -> Vec<u8> {
        let mut w = MsgWriter::new();
        w.begin_msg(nft_type(cmd), nlmsg::F_REQUEST, 0, family, 0);
        w.attr_str(1, table);
        w.end_msg();
        let mut bytes = w.bytes().to_vec();
        bytes[12..16].copy_from_slice(&portid.to_ne_bytes());
        bytes
    }

    fn check(bytes: &[u8], iptables: bool) -> Option<String> {
        let event = messages(bytes).next().unwrap();
        describe(&event, 77, "spad", iptables)
    }

    #[test]
    fn only_others_changes_to_spads_tables_count() {
        let deleted = check(&event(msg::DELTABLE, NFPROTO_INET, "spad", 5), false).unwrap();
        assert_eq!(deleted, "table inet spad was deleted by netlink port 5");
        assert_eq!(
            check(&event(msg::DELRULE, NFPROTO_INET, "spad", 5), false).unwrap(),
            "table inet spad: a rule was deleted by netlink port 5"
        );
        // spad's own batches, other tables, element changes: no news.
        assert!(check(&event(msg::DELTABLE, NFPROTO_INET, "spad", 77), false).is_none());
        assert!(check(&event(msg::DELTABLE, NFPROTO_INET, "other", 5), false).is_none());
        assert!(check(&event(msg::NEWSETELEM, NFPROTO_INET, "spad", 5), false).is_none());
        assert!(check(&event(15 /* NFT_MSG_NEWGEN */, 0, "spad", 5), false).is_none());
        // iptables-nft's filter tables only while iptables doors exist.
        assert!(check(&event(msg::DELRULE, NFPROTO_IPV4, "filter", 5), false).is_none());
        assert!(check(&event(msg::DELRULE, NFPROTO_IPV4, "filter", 5), true).is_some());
        assert!(check(&event(msg::DELCHAIN, NFPROTO_IPV6, "filter", 5), true).is_some());
        assert!(check(&event(msg::DELCHAIN, NFPROTO_IPV6, "nat", 5), true).is_none());
    }
}
