//! Who applies spad's nftables transactions: netlink batches sent from
//! spad itself (the default: no process, no library, also in another
//! network namespace, whose socket is opened there) or an `nft -f -`
//! process per transaction (kept to cross-check the netlink encoding and
//! for operators who ask for it). Both apply the very same [`NftOp`] list.
//! The netlink socket also answers what spad's table holds now
//! ([`NftTransport::table_state`]), for the reconciliation check.

use std::fmt;
use std::time::Duration;

use super::error::FirewallError;
use super::netlink::{messages, nlmsg, Attrs, MsgWriter, NetlinkSocket};
use super::nft_wire::{self, msg, nft_type, NFPROTO_INET};
use super::nftables::{script, NftOp};
use super::runner::Runner;

/// Time limit for one `nft` process.
const NFT_TIMEOUT: Duration = Duration::from_secs(20);

/// How spad talks to nftables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftEngine {
    /// nf_tables netlink batches sent by spad itself (no process spawned).
    Netlink,
    /// One `nft -f -` process per transaction (through `ip netns exec`
    /// when the firewall works in another namespace).
    Process,
}

impl fmt::Display for NftEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NftEngine::Netlink => "in-process nf_tables netlink",
            NftEngine::Process => "`nft -f -` processes",
        })
    }
}

/// What spad's table holds now, as far as reconciliation checks it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TableState {
    /// The base chain `input` exists.
    pub chain: bool,
    /// Rules in it.
    pub rules: usize,
    /// Names of the named sets in the table.
    pub sets: Vec<String>,
}

/// The engine in use, with its netlink socket (it answers queries and its
/// port id tells spad's own events apart).
#[derive(Debug)]
pub(crate) struct NftTransport {
    engine: NftEngine,
    /// `Err` (why) only when no door needed nftables at setup: a door set of
    /// command doors must not need nf_tables in the kernel.
    socket: Result<NetlinkSocket, String>,
    /// Where the socket lives (to retry opening it).
    netns: Option<String>,
    seq: u32,
}

impl NftTransport {
    /// Opens the netlink socket (in `netns` when set) and picks `wanted`,
    /// netlink by default. Failing to open the socket is an error only when
    /// `required` (some door or the stealth rule uses nftables).
    pub fn open(
        wanted: Option<NftEngine>,
        netns: Option<&str>,
        required: bool,
    ) -> Result<Self, FirewallError> {
        let socket = NetlinkSocket::open(netns, 0)
            .map_err(|err| format!("cannot open a NETLINK_NETFILTER socket: {err}"));
        if let (Err(why), true) = (&socket, required) {
            return Err(FirewallError::NftNetlink(why.clone()));
        }
        let engine = wanted.unwrap_or(NftEngine::Netlink);
        tracing::info!(netns = netns.unwrap_or("(own)"), "nftables: using {engine}");
        Ok(NftTransport {
            engine,
            socket,
            netns: netns.map(str::to_owned),
            // Start somewhere the kernel never saw from this port.
            seq: 1,
        })
    }

    /// Which engine this is.
    pub fn engine(&self) -> NftEngine {
        self.engine
    }

    /// The netlink port id of spad's requests (events they cause carry
    /// it); 0 (no filtering) without a socket.
    pub fn portid(&self) -> u32 {
        self.socket.as_ref().map_or(0, NetlinkSocket::portid)
    }

    /// The socket, opened again if it could not be at setup (a reload may
    /// have brought the first nftables door).
    fn socket(&mut self) -> Result<&mut NetlinkSocket, FirewallError> {
        if self.socket.is_err() {
            self.socket = NetlinkSocket::open(self.netns.as_deref(), 0)
                .map_err(|err| format!("cannot open a NETLINK_NETFILTER socket: {err}"));
        }
        self.socket
            .as_mut()
            .map_err(|why| FirewallError::NftNetlink(why.clone()))
    }

    /// Applies `ops` on `table inet <table>` as one transaction: all of it
    /// or nothing.
    pub fn run(
        &mut self,
        runner: &Runner,
        table: &str,
        ops: &[NftOp],
    ) -> Result<(), FirewallError> {
        if ops.is_empty() {
            return Ok(());
        }
        match self.engine {
            NftEngine::Netlink => self.send_batch(table, ops),
            NftEngine::Process => {
                let argv = ["nft", "-f", "-"].map(str::to_owned);
                runner.run_ok(&argv, Some(&script(table, ops)), NFT_TIMEOUT)?;
                Ok(())
            }
        }
    }

    fn next_seqs(&mut self, count: usize) -> u32 {
        let first = self.seq;
        self.seq = self
            .seq
            .wrapping_add(u32::try_from(count).unwrap_or(u32::MAX));
        first
    }

    /// Sends one batch and reads an ack for every message in it; the
    /// first refusal names the op (as its nft script line) and the errno.
    fn send_batch(&mut self, table: &str, ops: &[NftOp]) -> Result<(), FirewallError> {
        // Messages per op are at most 3 (anonymous set, elements, rule).
        let seq = self.next_seqs(ops.len() * 3 + 2);
        let batch = nft_wire::encode(table, ops, seq);
        let socket = self.socket()?;
        socket
            .send(batch.writer.bytes())
            .map_err(|err| FirewallError::NftNetlink(format!("cannot send a batch: {err}")))?;
        let Some(&(last_seq, _)) = batch.seqs.last() else {
            return Ok(());
        };
        let mut first_refusal: Option<(usize, i32)> = None;
        loop {
            let datagram = socket
                .recv(false)
                .map_err(|err| FirewallError::NftNetlink(format!("no answer to a batch: {err}")))?
                .ok_or_else(|| FirewallError::NftNetlink("no answer to a batch".into()))?;
            let mut done = false;
            for reply in messages(datagram) {
                let Some((errno, acked)) = reply.error() else {
                    continue;
                };
                if acked == batch.begin_seq && errno != 0 {
                    // The kernel refused the batch as a whole (ENOMEM…).
                    first_refusal.get_or_insert((0, errno));
                    done = true;
                }
                if errno != 0 {
                    if let Some(&(_, op)) = batch.seqs.iter().find(|(s, _)| *s == acked) {
                        first_refusal.get_or_insert((op, errno));
                    }
                }
                if acked == last_seq {
                    done = true;
                }
            }
            if done {
                break;
            }
        }
        match first_refusal {
            None => Ok(()),
            Some((op, errno)) => Err(FirewallError::NftRefused {
                op: script(table, &ops[op..=op]).trim().to_owned(),
                message: std::io::Error::from_raw_os_error(errno).to_string(),
            }),
        }
    }

    /// Sends one request (a dump or a get with ack) and returns every
    /// reply message's type and attributes, up to NLMSG_DONE or the ack.
    fn request(
        &mut self,
        cmd: u16,
        dump: bool,
        attrs: &[(u16, &str)],
    ) -> Result<Vec<(u16, Vec<u8>)>, FirewallError> {
        let seq = self.next_seqs(1);
        let mut w = MsgWriter::new();
        let flags = nlmsg::F_REQUEST | if dump { nlmsg::F_DUMP } else { nlmsg::F_ACK };
        w.begin_msg(nft_type(cmd), flags, seq, NFPROTO_INET, 0);
        for (ty, value) in attrs {
            w.attr_str(*ty, value);
        }
        w.end_msg();
        let fail = |what: &str, err: String| FirewallError::NftNetlink(format!("{what}: {err}"));
        let socket = self.socket()?;
        socket
            .send(w.bytes())
            .map_err(|err| fail("cannot ask nftables", err.to_string()))?;
        let mut replies = Vec::new();
        loop {
            let datagram = socket
                .recv(false)
                .map_err(|err| fail("no answer from nftables", err.to_string()))?
                .ok_or_else(|| fail("no answer from nftables", "timed out".into()))?;
            for reply in messages(datagram) {
                if reply.seq != seq {
                    continue;
                }
                if reply.msg_type == nlmsg::DONE {
                    return Ok(replies);
                }
                if let Some((errno, _)) = reply.error() {
                    return match errno {
                        0 => Ok(replies),
                        libc::ENOENT => Ok(Vec::new()),
                        _ => Err(fail(
                            "nftables refused a query",
                            std::io::Error::from_raw_os_error(errno).to_string(),
                        )),
                    };
                }
                if reply.msg_type == nlmsg::OVERRUN {
                    return Err(fail("nftables query", "overrun".into()));
                }
                replies.push((reply.msg_type, reply.payload.to_vec()));
            }
        }
    }

    /// What `table inet <table>` holds now: its chain, rule count, sets.
    pub fn table_state(&mut self, table: &str) -> Result<TableState, FirewallError> {
        use nft_wire::{chain, rule, set, CHAIN_NAME};
        let chains = self.request(
            msg::GETCHAIN,
            false,
            &[(chain::TABLE, table), (chain::NAME, CHAIN_NAME)],
        )?;
        let rules = self.request(
            msg::GETRULE,
            true,
            &[(rule::TABLE, table), (rule::CHAIN, CHAIN_NAME)],
        )?;
        let sets = self.request(msg::GETSET, true, &[(set::TABLE, table)])?;
        let of_table = |payload: &[u8], attr: u16| {
            let attrs = Attrs::of_payload(payload);
            attrs.string(attr) == Some(table)
        };
        Ok(TableState {
            chain: chains
                .iter()
                .any(|(t, p)| *t == nft_type(msg::NEWCHAIN) && of_table(p, chain::TABLE)),
            rules: rules
                .iter()
                .filter(|(t, p)| {
                    *t == nft_type(msg::NEWRULE)
                        && of_table(p, rule::TABLE)
                        && Attrs::of_payload(p).string(rule::CHAIN) == Some(CHAIN_NAME)
                })
                .count(),
            sets: sets
                .iter()
                .filter(|(t, p)| *t == nft_type(msg::NEWSET) && of_table(p, set::TABLE))
                .filter_map(|(_, p)| Attrs::of_payload(p).string(set::NAME).map(str::to_owned))
                .filter(|name| !name.starts_with("__"))
                .collect(),
        })
    }
}
