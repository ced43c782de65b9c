//! nf_tables message layouts: how each [`NftOp`] becomes netlink messages
//! in a batch, with the attribute numbers of linux/netfilter/nf_tables.h in
//! field tables below, and the rule expressions `nft` itself sends for the
//! same rule text (as `nft --debug=netlink` prints them; the tests compare
//! bytes with `nft --debug=mnl`). Pure encoding: no socket here.

use std::net::IpAddr;

use super::netlink::{nfnl, nlmsg, MsgWriter};
use super::nftables::{IpFamily, NftOp, Rule, CHAIN_PRIORITY, DOOR_MARK};
use super::spec::Proto;

/// `NFPROTO_INET`: the family of spad's table.
pub(crate) const NFPROTO_INET: u8 = 1;
/// The name of spad's base chain.
pub(crate) const CHAIN_NAME: &str = "input";

/// nf_tables message types (`NFT_MSG_*`), below the subsystem byte.
pub(crate) mod msg {
    pub const NEWTABLE: u16 = 0;
    pub const DELTABLE: u16 = 2;
    pub const NEWCHAIN: u16 = 3;
    pub const GETCHAIN: u16 = 4;
    pub const DELCHAIN: u16 = 5;
    pub const NEWRULE: u16 = 6;
    pub const GETRULE: u16 = 7;
    pub const DELRULE: u16 = 8;
    pub const NEWSET: u16 = 9;
    pub const GETSET: u16 = 10;
    pub const DELSET: u16 = 11;
    pub const NEWSETELEM: u16 = 12;
    pub const DELSETELEM: u16 = 14;
}

/// The full netlink message type of nf_tables command `cmd`.
pub(crate) fn nft_type(cmd: u16) -> u16 {
    (nfnl::SUBSYS_NFTABLES << 8) | cmd
}

/// `NFTA_TABLE_*`.
mod table {
    pub const NAME: u16 = 1;
    pub const FLAGS: u16 = 2;
}

/// `NFTA_CHAIN_*`.
pub(crate) mod chain {
    pub const TABLE: u16 = 1;
    pub const NAME: u16 = 3;
    pub const HOOK: u16 = 4;
    pub const POLICY: u16 = 5;
    pub const TYPE: u16 = 7;
    /// `NFTA_HOOK_*`, nested in HOOK.
    pub const HOOK_HOOKNUM: u16 = 1;
    pub const HOOK_PRIORITY: u16 = 2;
    /// `NF_INET_LOCAL_IN`.
    pub const HOOK_INPUT: u32 = 1;
}

/// `NFTA_RULE_*`.
pub(crate) mod rule {
    pub const TABLE: u16 = 1;
    pub const CHAIN: u16 = 2;
    pub const EXPRESSIONS: u16 = 4;
}

/// `NFTA_LIST_ELEM` and `NFTA_EXPR_*`.
mod expr {
    pub const LIST_ELEM: u16 = 1;
    pub const NAME: u16 = 1;
    pub const DATA: u16 = 2;
}

/// `NFTA_SET_*` and set flags.
pub(crate) mod set {
    pub const TABLE: u16 = 1;
    pub const NAME: u16 = 2;
    pub const FLAGS: u16 = 3;
    pub const KEY_TYPE: u16 = 4;
    pub const KEY_LEN: u16 = 5;
    pub const DESC: u16 = 9;
    pub const ID: u16 = 10;
    pub const USERDATA: u16 = 13;
    pub const DESC_SIZE: u16 = 1;
    pub const F_ANONYMOUS: u32 = 0x1;
    pub const F_CONSTANT: u32 = 0x2;
    pub const F_TIMEOUT: u32 = 0x10;
}

/// `NFTA_SET_ELEM_LIST_*` and `NFTA_SET_ELEM_*`.
pub(crate) mod elem {
    pub const LIST_TABLE: u16 = 1;
    pub const LIST_SET: u16 = 2;
    pub const LIST_ELEMENTS: u16 = 3;
    pub const LIST_SET_ID: u16 = 4;
    pub const KEY: u16 = 1;
    pub const TIMEOUT: u16 = 4;
}

/// `NFTA_DATA_*` and `NFTA_VERDICT_*`.
mod data {
    pub const VALUE: u16 = 1;
    pub const VERDICT: u16 = 2;
    pub const VERDICT_CODE: u16 = 1;
    pub const NF_DROP: u32 = 0;
    pub const NF_ACCEPT: u32 = 1;
}

/// Registers: the verdict register and the first 16-byte data register.
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;

/// nft's data types (`TYPE_*` in nft's datatype.h), as the set key type.
mod datatype {
    pub const IPADDR: u32 = 7;
    pub const IP6ADDR: u32 = 8;
    pub const INET_SERVICE: u32 = 13;
}

/// A set's user data as nft writes it: the key is big-endian
/// (`NFTNL_UDATA_SET_KEYBYTEORDER` = `BYTEORDER_BIG_ENDIAN`).
const SET_USERDATA: [u8; 6] = [0, 4, 2, 0, 0, 0];

/// The name nft gives anonymous sets; the kernel numbers them.
const ANON_SET_NAME: &str = "__set%d";

/// A batch being written: its messages and which op each one came from.
/// Only the last message asks for an ack.
#[derive(Debug)]
pub(crate) struct Batch {
    pub writer: MsgWriter,
    /// Sequence number of BATCH_BEGIN.
    pub begin_seq: u32,
    /// (sequence number, index of the op) of every message inside the batch.
    pub seqs: Vec<(u32, usize)>,
    next_seq: u32,
    next_set_id: u32,
}

impl Batch {
    fn message(&mut self, cmd: u16, flags: u16, op: usize) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.seqs.push((seq, op));
        self.writer.begin_msg(
            nft_type(cmd),
            nlmsg::F_REQUEST | flags,
            seq,
            NFPROTO_INET,
            0,
        );
    }

    fn set_id(&mut self) -> u32 {
        self.next_set_id += 1;
        self.next_set_id
    }
}

/// Encodes `ops` on `table inet <table>` as one batch (one transaction)
/// whose sequence numbers start at `seq`.
pub(crate) fn encode(table: &str, ops: &[NftOp], seq: u32) -> Batch {
    let mut batch = Batch {
        writer: MsgWriter::new(),
        begin_seq: seq,
        seqs: Vec::new(),
        next_seq: seq.wrapping_add(1),
        next_set_id: 0,
    };
    batch_marker(&mut batch.writer, nfnl::MSG_BATCH_BEGIN, seq);
    for (index, op) in ops.iter().enumerate() {
        encode_op(&mut batch, table, index, op);
    }
    // The kernel reports every refused message; the last one also acks
    // success, so the reader knows the whole batch was answered (nfnetlink
    // answers in message order) without an ack per message filling its
    // receive buffer.
    batch.writer.add_flags_to_last(nlmsg::F_ACK);
    let end_seq = batch.next_seq;
    batch_marker(&mut batch.writer, nfnl::MSG_BATCH_END, end_seq);
    batch.next_seq = end_seq.wrapping_add(1);
    batch
}

fn batch_marker(w: &mut MsgWriter, msg_type: u16, seq: u32) {
    w.begin_msg(msg_type, nlmsg::F_REQUEST, seq, 0, nfnl::SUBSYS_NFTABLES);
    w.end_msg();
}

fn encode_op(b: &mut Batch, table: &str, index: usize, op: &NftOp) {
    match op {
        NftOp::AddTable => {
            b.message(msg::NEWTABLE, nlmsg::F_CREATE, index);
            b.writer.attr_str(self::table::NAME, table);
            b.writer.attr_be32(self::table::FLAGS, 0);
            b.writer.end_msg();
        }
        NftOp::DeleteTable => {
            b.message(msg::DELTABLE, 0, index);
            b.writer.attr_str(self::table::NAME, table);
            b.writer.end_msg();
        }
        NftOp::AddChain => {
            b.message(msg::NEWCHAIN, nlmsg::F_CREATE, index);
            let w = &mut b.writer;
            w.attr_str(chain::TABLE, table);
            w.attr_str(chain::NAME, CHAIN_NAME);
            w.attr_str(chain::TYPE, "filter");
            w.attr_be32(chain::POLICY, data::NF_ACCEPT);
            let hook = w.nest_begin(chain::HOOK);
            w.attr_be32(chain::HOOK_HOOKNUM, chain::HOOK_INPUT);
            w.attr(chain::HOOK_PRIORITY, &CHAIN_PRIORITY.to_be_bytes());
            w.nest_end(hook);
            w.end_msg();
        }
        NftOp::FlushChain => {
            b.message(msg::DELRULE, 0, index);
            b.writer.attr_str(rule::TABLE, table);
            b.writer.attr_str(rule::CHAIN, CHAIN_NAME);
            b.writer.end_msg();
        }
        NftOp::AddSet { name, family } => {
            let id = b.set_id();
            b.message(msg::NEWSET, nlmsg::F_CREATE, index);
            let (key_type, key_len) = match family {
                IpFamily::V4 => (datatype::IPADDR, 4),
                IpFamily::V6 => (datatype::IP6ADDR, 16),
            };
            let w = &mut b.writer;
            w.attr_str(set::TABLE, table);
            w.attr_str(set::NAME, name);
            w.attr_be32(set::FLAGS, set::F_TIMEOUT);
            w.attr_be32(set::KEY_TYPE, key_type);
            w.attr_be32(set::KEY_LEN, key_len);
            w.attr_be32(set::ID, id);
            w.attr(set::USERDATA, &SET_USERDATA);
            w.end_msg();
        }
        NftOp::DeleteSet { name, .. } => {
            b.message(msg::DELSET, 0, index);
            b.writer.attr_str(set::TABLE, table);
            b.writer.attr_str(set::NAME, name);
            b.writer.end_msg();
        }
        NftOp::AddRule(r) => encode_rule(b, table, index, r),
        NftOp::AddElements { set, elements } => {
            b.message(msg::NEWSETELEM, nlmsg::F_CREATE, index);
            let keys = elements
                .iter()
                .map(|(ip, seconds)| (ip_bytes(*ip), Some(*seconds)));
            write_elements(&mut b.writer, table, set, None, keys);
            b.writer.end_msg();
        }
        NftOp::DeleteElements { set, elements } => {
            b.message(msg::DELSETELEM, 0, index);
            let keys = elements.iter().map(|ip| (ip_bytes(*ip), None));
            write_elements(&mut b.writer, table, set, None, keys);
            b.writer.end_msg();
        }
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// The attributes of a NEWSETELEM/DELSETELEM: keys with an optional
/// timeout in seconds (sent in milliseconds, as nft does).
fn write_elements(
    w: &mut MsgWriter,
    table: &str,
    set_name: &str,
    set_id: Option<u32>,
    keys: impl Iterator<Item = (Vec<u8>, Option<u32>)>,
) {
    w.attr_str(elem::LIST_TABLE, table);
    w.attr_str(elem::LIST_SET, set_name);
    if let Some(id) = set_id {
        w.attr_be32(elem::LIST_SET_ID, id);
    }
    let list = w.nest_begin(elem::LIST_ELEMENTS);
    for (key, seconds) in keys {
        let element = w.nest_begin(expr::LIST_ELEM);
        if let Some(seconds) = seconds {
            w.attr_be64(elem::TIMEOUT, u64::from(seconds) * 1000);
        }
        let k = w.nest_begin(elem::KEY);
        w.attr(data::VALUE, &key);
        w.nest_end(k);
        w.nest_end(element);
    }
    w.nest_end(list);
}

/// How a rule matches its destination ports: one port compared directly,
/// several through an anonymous constant set (as nft does for `{ 22, 80 }`).
enum PortMatch {
    One(u16),
    Set { id: u32 },
}

fn encode_rule(b: &mut Batch, table: &str, index: usize, r: &Rule) {
    let ports = match r {
        Rule::StealthDrop(port) => vec![*port],
        Rule::Established => Vec::new(),
        Rule::DoorAccept { ports, .. } | Rule::Drop { ports, .. } => ports.clone(),
    };
    let port_match = match ports.as_slice() {
        [] => None,
        [one] => Some(PortMatch::One(*one)),
        many => {
            // The anonymous set and its elements go first, in the same batch.
            let id = b.set_id();
            b.message(msg::NEWSET, nlmsg::F_CREATE, index);
            let w = &mut b.writer;
            w.attr_str(set::TABLE, table);
            w.attr_str(set::NAME, ANON_SET_NAME);
            w.attr_be32(set::FLAGS, set::F_ANONYMOUS | set::F_CONSTANT);
            w.attr_be32(set::KEY_TYPE, datatype::INET_SERVICE);
            w.attr_be32(set::KEY_LEN, 2);
            w.attr_be32(set::ID, id);
            let desc = w.nest_begin(set::DESC);
            w.attr_be32(
                set::DESC_SIZE,
                u32::try_from(many.len()).unwrap_or(u32::MAX),
            );
            w.nest_end(desc);
            w.attr(set::USERDATA, &SET_USERDATA);
            w.end_msg();
            b.message(msg::NEWSETELEM, nlmsg::F_CREATE, index);
            let keys = many.iter().map(|port| (port.to_be_bytes().to_vec(), None));
            write_elements(&mut b.writer, table, ANON_SET_NAME, Some(id), keys);
            b.writer.end_msg();
            Some(PortMatch::Set { id })
        }
    };
    b.message(msg::NEWRULE, nlmsg::F_CREATE | nlmsg::F_APPEND, index);
    let w = &mut b.writer;
    w.attr_str(rule::TABLE, table);
    w.attr_str(rule::CHAIN, CHAIN_NAME);
    let exprs = w.nest_begin(rule::EXPRESSIONS);
    match r {
        Rule::StealthDrop(_) => {
            dport(w, Proto::Udp, port_match.as_ref());
            verdict(w, data::NF_DROP);
        }
        Rule::Established => {
            // ct state established,related: bits 2 and 4, host order.
            ct_state(w);
            bitwise(w, 6u32.to_ne_bytes(), 0u32.to_ne_bytes(), false);
            cmp(w, CMP_NEQ, &0u32.to_ne_bytes());
            verdict(w, data::NF_ACCEPT);
        }
        Rule::DoorAccept {
            proto, family, set, ..
        } => {
            dport(w, *proto, port_match.as_ref());
            let (nfproto, offset, len) = match family {
                IpFamily::V4 => (2u8, 12, 4),
                IpFamily::V6 => (10u8, 8, 16),
            };
            meta_load(w, META_NFPROTO);
            cmp(w, CMP_EQ, &[nfproto]);
            payload(w, PAYLOAD_NETWORK, offset, len);
            lookup(w, set, None);
            // meta mark set meta mark or DOOR_MARK
            meta_load(w, META_MARK);
            bitwise(w, (!DOOR_MARK).to_ne_bytes(), DOOR_MARK.to_ne_bytes(), true);
            meta_set(w, META_MARK);
            verdict(w, data::NF_ACCEPT);
        }
        Rule::Drop { proto, .. } => {
            dport(w, *proto, port_match.as_ref());
            verdict(w, data::NF_DROP);
        }
    }
    w.nest_end(exprs);
    w.end_msg();
}

const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const META_MARK: u32 = 3;
const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;
const PAYLOAD_NETWORK: u32 = 1;
const PAYLOAD_TRANSPORT: u32 = 2;
const CT_STATE: u32 = 0;

/// Writes one expression: `NFTA_LIST_ELEM { NAME, DATA { … } }`.
fn expression(w: &mut MsgWriter, name: &str, body: impl FnOnce(&mut MsgWriter)) {
    let element = w.nest_begin(expr::LIST_ELEM);
    w.attr_str(expr::NAME, name);
    let data = w.nest_begin(expr::DATA);
    body(w);
    w.nest_end(data);
    w.nest_end(element);
}

/// `<proto> dport <port or set>`: l4proto, transport bytes 2-3, compare.
fn dport(w: &mut MsgWriter, proto: Proto, port: Option<&PortMatch>) {
    let number = match proto {
        Proto::Tcp => 6u8,
        Proto::Udp => 17u8,
    };
    meta_load(w, META_L4PROTO);
    cmp(w, CMP_EQ, &[number]);
    payload(w, PAYLOAD_TRANSPORT, 2, 2);
    match port {
        Some(PortMatch::One(port)) => cmp(w, CMP_EQ, &port.to_be_bytes()),
        Some(PortMatch::Set { id }) => lookup(w, ANON_SET_NAME, Some(*id)),
        None => {}
    }
}

fn meta_load(w: &mut MsgWriter, key: u32) {
    expression(w, "meta", |w| {
        w.attr_be32(2, key); // NFTA_META_KEY
        w.attr_be32(1, REG_1); // NFTA_META_DREG
    });
}

fn meta_set(w: &mut MsgWriter, key: u32) {
    expression(w, "meta", |w| {
        w.attr_be32(2, key); // NFTA_META_KEY
        w.attr_be32(3, REG_1); // NFTA_META_SREG
    });
}

fn ct_state(w: &mut MsgWriter) {
    expression(w, "ct", |w| {
        w.attr_be32(2, CT_STATE); // NFTA_CT_KEY
        w.attr_be32(1, REG_1); // NFTA_CT_DREG
    });
}

fn cmp(w: &mut MsgWriter, op: u32, value: &[u8]) {
    expression(w, "cmp", |w| {
        w.attr_be32(1, REG_1); // NFTA_CMP_SREG
        w.attr_be32(2, op); // NFTA_CMP_OP
        let d = w.nest_begin(3); // NFTA_CMP_DATA
        w.attr(data::VALUE, value);
        w.nest_end(d);
    });
}

fn payload(w: &mut MsgWriter, base: u32, offset: u32, len: u32) {
    expression(w, "payload", |w| {
        w.attr_be32(1, REG_1); // NFTA_PAYLOAD_DREG
        w.attr_be32(2, base); // NFTA_PAYLOAD_BASE
        w.attr_be32(3, offset); // NFTA_PAYLOAD_OFFSET
        w.attr_be32(4, len); // NFTA_PAYLOAD_LEN
    });
}

fn lookup(w: &mut MsgWriter, set_name: &str, set_id: Option<u32>) {
    expression(w, "lookup", |w| {
        w.attr_be32(2, REG_1); // NFTA_LOOKUP_SREG
        w.attr_str(1, set_name); // NFTA_LOOKUP_SET
        if let Some(id) = set_id {
            w.attr_be32(4, id); // NFTA_LOOKUP_SET_ID
        }
    });
}

/// `reg1 = (reg1 & mask) ^ xor` on 4 bytes; `with_op` writes the
/// operation (NFT_BITWISE_BOOL) as nft does for `meta mark set … or …`.
fn bitwise(w: &mut MsgWriter, mask: [u8; 4], xor: [u8; 4], with_op: bool) {
    expression(w, "bitwise", |w| {
        w.attr_be32(1, REG_1); // NFTA_BITWISE_SREG
        w.attr_be32(2, REG_1); // NFTA_BITWISE_DREG
        if with_op {
            w.attr_be32(6, 0); // NFTA_BITWISE_OP: NFT_BITWISE_BOOL
        }
        w.attr_be32(3, 4); // NFTA_BITWISE_LEN
        let m = w.nest_begin(4); // NFTA_BITWISE_MASK
        w.attr(data::VALUE, &mask);
        w.nest_end(m);
        let x = w.nest_begin(5); // NFTA_BITWISE_XOR
        w.attr(data::VALUE, &xor);
        w.nest_end(x);
    });
}

fn verdict(w: &mut MsgWriter, code: u32) {
    expression(w, "immediate", |w| {
        w.attr_be32(1, REG_VERDICT); // NFTA_IMMEDIATE_DREG
        let d = w.nest_begin(2); // NFTA_IMMEDIATE_DATA
        let v = w.nest_begin(data::VERDICT);
        w.attr_be32(data::VERDICT_CODE, code);
        w.nest_end(v);
        w.nest_end(d);
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::netlink::messages;
    use super::*;

    /// What `nft --debug=mnl -f` (nftables 1.0.6, Debian 12) sent for these
    /// script lines, each message without its 16-byte `nlmsghdr`, in the
    /// order of the script:
    ///
    /// ```text
    /// add chain inet spad input { type filter hook input priority -10; policy accept; }
    /// add set inet spad web_v4 { type ipv4_addr; flags timeout; }
    /// add rule inet spad input udp dport 62210 drop
    /// add rule inet spad input ct state established,related accept
    /// add rule inet spad input tcp dport 22 ip6 saddr @ssh_v6 meta mark set meta mark or 0x5350 accept
    /// add element inet spad ssh_v4 { 192.0.2.2 timeout 30s }
    /// ```
    const NFT_SENT: [(u16, &str); 6] = [
        (3, "010000000900010073706164000000000a000300696e7075740000000b00070066696c7465720000080005000000000114000480080001000000000108000200fffffff6"),
        (9, "010000000900010073706164000000000b0002007765625f7634000008000300000000100800040000000007080005000000000408000a00000000010a000d000004020000000000"),
        (6, "010000000900010073706164000000000a000200696e707574000000e400048024000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010011000000340001800c0001007061796c6f6164002400028008000100000000010800020000000002080003000000000208000400000000022c00018008000100636d700020000280080001000000000108000200000000000c00038006000100f3020000300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000000"),
        (6, "010000000900010073706164000000000a000200696e707574000000c40004802000018007000100637400001400028008000200000000000800010000000001440001800c0001006269747769736500340002800800010000000001080002000000000108000300000000040c00048008000100060000000c00058008000100000000002c00018008000100636d700020000280080001000000000108000200000000010c0003800800010000000000300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000001"),
        (6, "010000000900010073706164000000000a000200696e7075740000002c02048024000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010006000000340001800c0001007061796c6f6164002400028008000100000000010800020000000002080003000000000208000400000000022c00018008000100636d700020000280080001000000000108000200000000000c000380060001000016000024000180090001006d6574610000000014000280080002000000000f08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c000380050001000a000000340001800c0001007061796c6f616400240002800800010000000001080002000000000108000300000000080800040000000010300001800b0001006c6f6f6b757000002000028008000200000000010b0001007373685f76360000080004000000000324000180090001006d6574610000000014000280080002000000000308000100000000014c0001800c00010062697477697365003c00028008000100000000010800020000000001080006000000000008000300000000040c00048008000100afacffff0c000580080001005053000024000180090001006d657461000000001400028008000200000000030800030000000001300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000001"),
        (12, "010000000900010073706164000000000b0002007373685f763400000800040000000002200003801c0001800c00040000000000000075300c00018008000100c0000202"),
    ];

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// An attribute tree: (type with flags, value or children).
    #[derive(Debug, PartialEq)]
    enum Node {
        Leaf(u16, Vec<u8>),
        Nest(u16, Vec<Node>),
    }

    /// Parses attributes, dropping the set-id references nft adds for sets
    /// it has in its cache (`NFTA_SET_ELEM_LIST_SET_ID` at the top of an
    /// element message, `NFTA_LOOKUP_SET_ID` of a named set): the kernel
    /// finds a named set by its name first, so spad sends ids only for
    /// sets created in the same batch.
    fn tree(mut buf: &[u8], top_of_elements: bool, in_named_lookup: bool) -> Vec<Node> {
        let mut nodes = Vec::new();
        while buf.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
            let ty = u16::from_ne_bytes([buf[2], buf[3]]);
            let value = &buf[4..len];
            // An expression whose NFTA_EXPR_NAME is "lookup".
            let is_lookup = value.get(4..11) == Some(&b"lookup\0"[..]);
            if ty & 0x8000 != 0 {
                let lookup = is_lookup || in_named_lookup;
                nodes.push(Node::Nest(ty, tree(value, false, lookup)));
            } else if !(ty == 4 && (top_of_elements || in_named_lookup)) {
                nodes.push(Node::Leaf(ty, value.to_vec()));
            }
            buf = &buf[(len + 3) & !3..];
        }
        nodes
    }

    fn message_tree(msg_type: u16, payload: &[u8]) -> (u16, Vec<u8>, Vec<Node>) {
        let elements = msg_type == nft_type(msg::NEWSETELEM);
        (
            msg_type,
            payload[..4].to_vec(),
            tree(&payload[4..], elements, false),
        )
    }

    #[test]
    fn messages_carry_what_nft_sends_for_the_same_script() {
        let ops = [
            NftOp::AddChain,
            NftOp::AddSet {
                name: "web_v4".into(),
                family: IpFamily::V4,
            },
            NftOp::AddRule(Rule::StealthDrop(62210)),
            NftOp::AddRule(Rule::Established),
            NftOp::AddRule(Rule::DoorAccept {
                proto: Proto::Tcp,
                ports: vec![22],
                family: IpFamily::V6,
                set: "ssh_v6".into(),
            }),
            NftOp::AddElements {
                set: "ssh_v4".into(),
                elements: vec![("192.0.2.2".parse().unwrap(), 30)],
            },
        ];
        let batch = encode("spad", &ops, 100);
        let sent: Vec<_> = messages(batch.writer.bytes()).collect();
        // BATCH_BEGIN, six messages, BATCH_END.
        assert_eq!(sent.len(), 8);
        assert_eq!(sent[0].msg_type, nfnl::MSG_BATCH_BEGIN);
        assert_eq!(sent[7].msg_type, nfnl::MSG_BATCH_END);
        assert_eq!(
            sent[0].payload,
            [0, 0, 0, 10],
            "res_id: the nf_tables subsystem"
        );
        for ((cmd, reference), ours) in NFT_SENT.iter().zip(&sent[1..7]) {
            let reference = hex(reference);
            assert_eq!(
                message_tree(nft_type(*cmd), &reference),
                message_tree(ours.msg_type, ours.payload),
                "message {cmd}"
            );
        }
        // Only the element message's set id and the lookup's were dropped:
        // everything else is byte for byte what nft sends.
        assert_eq!(sent[1].payload, &hex(NFT_SENT[0].1)[..]);
        assert_eq!(sent[2].payload, &hex(NFT_SENT[1].1)[..]);
        assert_eq!(sent[3].payload, &hex(NFT_SENT[2].1)[..]);
        assert_eq!(sent[4].payload, &hex(NFT_SENT[3].1)[..]);
    }

    #[test]
    fn the_last_message_of_a_batch_asks_for_the_ack_and_each_maps_back_to_its_op() {
        let ops = [
            NftOp::AddTable,
            NftOp::AddRule(Rule::Drop {
                proto: Proto::Tcp,
                ports: vec![22, 80],
            }),
        ];
        let batch = encode("spad", &ops, 7);
        // The port list needs an anonymous set and its elements first.
        assert_eq!(batch.seqs, [(8, 0), (9, 1), (10, 1), (11, 1)]);
        let sent: Vec<_> = messages(batch.writer.bytes()).collect();
        assert_eq!(sent.len(), 6);
        let types: Vec<u16> = sent.iter().map(|m| m.msg_type).collect();
        assert_eq!(
            types,
            [
                nfnl::MSG_BATCH_BEGIN,
                nft_type(msg::NEWTABLE),
                nft_type(msg::NEWSET),
                nft_type(msg::NEWSETELEM),
                nft_type(msg::NEWRULE),
                nfnl::MSG_BATCH_END
            ]
        );
        let acked: Vec<bool> = sent.iter().map(|m| m.flags & nlmsg::F_ACK != 0).collect();
        assert_eq!(acked, [false, false, false, false, true, false]);
        let anon = sent[2].attrs();
        assert_eq!(anon.string(set::NAME), Some("__set%d"));
        assert_eq!(anon.get(set::FLAGS), Some(&[0, 0, 0, 3][..]));
        assert_eq!(anon.get(set::ID), Some(&[0, 0, 0, 1][..]));
        assert_eq!(
            sent[3].attrs().get(elem::LIST_SET_ID),
            Some(&[0, 0, 0, 1][..])
        );
    }
}
