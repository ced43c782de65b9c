//! The classic BPF program that decides, in the kernel, which frames spad's capture
//! socket may queue. Pure: it only builds instructions; attaching them to a socket is
//! `socket.rs`'s job. The accepted traffic is described in the `capture` module doc.
//!
//! Layout of the program (all jumps forward, every conditional jump under 256):
//! outgoing check, link-type check, ethertype dispatch (plain or one 802.1Q tag),
//! per-L3 sections that leave the absolute L4 offset in X and jump to the shared UDP or
//! TCP block, then the port blocks. Ports are sorted, deduplicated and merged into runs,
//! so a knock range `lo..=hi` costs two instructions, not `hi - lo + 1`.

use libc::sock_filter;

/// What spad wants to see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// The UDP port SPA packets are sent to (`None`: no SPA port, knocks only).
    pub spa_udp_port: Option<u16>,
    /// Destination ports of classic TCP knocks (only SYNs without ACK are
    /// accepted, unless `knock_tcp_any_flags`).
    pub knock_tcp_ports: Vec<u16>,
    /// Let TCP packets to knock ports through whatever their flags: for doors
    /// whose `tcpflags` rule accepts packets other than a SYN without ACK
    /// (knockd's `syn` accepts a SYN+ACK, `fin` a FIN, …): see
    /// `Config::knock_tcp_any_flags`, the one place that decides it.
    pub knock_tcp_any_flags: bool,
    /// Destination ports of classic UDP knocks.
    pub knock_udp_ports: Vec<u16>,
}

impl FilterSpec {
    /// A filter for the SPA port only.
    pub fn spa_only(port: u16) -> Self {
        FilterSpec {
            spa_udp_port: Some(port),
            ..FilterSpec::default()
        }
    }
}

/// Bytes of an accepted frame the kernel keeps ("snap length"): more than any frame.
pub const SNAP_LEN: u32 = 262_144;

/// The kernel refuses longer programs (`BPF_MAXINSNS`).
pub const MAX_PROGRAM_LEN: usize = libc::BPF_MAXINSNS as usize;

/// Classic BPF opcodes, named as in `<linux/bpf_common.h>` / `<linux/filter.h>`.
mod op {
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;

    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;

    pub const IMM: u16 = 0x00;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MSH: u16 = 0xa0;

    pub const ADD: u16 = 0x00;
    pub const AND: u16 = 0x50;

    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
    pub const JGE: u16 = 0x30;
    pub const JSET: u16 = 0x40;

    pub const K: u16 = 0x00;
    pub const TAX: u16 = 0x00;
    pub const TXA: u16 = 0x80;
}

/// Header fields the program reads, as offsets from the start of their header.
mod field {
    /// Ethernet: the ethertype (and, after one 802.1Q tag, the inner ethertype).
    pub const ETHERTYPE: u32 = 12;
    pub const ETHERNET_LEN: u32 = 14;
    pub const VLAN_TAG_LEN: u32 = 4;
    /// IPv4: flags + fragment offset (16 bits), protocol (8 bits).
    pub const IPV4_FLAGS_FRAGMENT: u32 = 6;
    pub const IPV4_PROTOCOL: u32 = 9;
    pub const IPV4_MIN_HEADER_LEN: u32 = 20;
    /// MF flag and the 13-bit fragment offset.
    pub const IPV4_FRAGMENT_MASK: u32 = 0x3fff;
    /// IPv6: next header (8 bits); fixed header length.
    pub const IPV6_NEXT_HEADER: u32 = 6;
    pub const IPV6_HEADER_LEN: u32 = 40;
    /// UDP and TCP: destination port (16 bits).
    pub const L4_DST_PORT: u32 = 2;
    /// TCP: the flags byte.
    pub const TCP_FLAGS: u32 = 13;
}

const ETHERTYPE_IPV4: u32 = 0x0800;
const ETHERTYPE_IPV6: u32 = 0x86dd;
const ETHERTYPE_VLAN: u32 = 0x8100;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const TCP_SYN: u32 = 0x02;
const TCP_ACK: u32 = 0x10;
const ARPHRD_ETHER: u32 = libc::ARPHRD_ETHER as u32;
const ARPHRD_LOOPBACK: u32 = libc::ARPHRD_LOOPBACK as u32;
const ACCEPT: u32 = SNAP_LEN;
const DROP: u32 = 0;
/// Port-range tests per chunk: each chunk has its own accept, keeping jumps short.
const RANGES_PER_CHUNK: usize = 100;

/// Ancillary load offsets (`SKF_AD_OFF + SKF_AD_*`), as the unsigned `k` the kernel reads.
fn ancillary(field: libc::c_int) -> u32 {
    (libc::SKF_AD_OFF + field) as u32
}

/// Compiles the filter for `spec`. The program assumes an Ethernet header at offset 0;
/// [`link_type_guard`] is prepended by the capture socket to enforce that.
pub fn compile_filter(spec: &FilterSpec) -> Vec<sock_filter> {
    let mut udp_ports = spec.knock_udp_ports.clone();
    udp_ports.extend(spec.spa_udp_port);

    let mut asm = Assembler::default();
    let drop = asm.label();
    let go_udp = asm.label();
    let go_tcp = asm.label();
    let (v4_plain, v6_plain, vlan) = (asm.label(), asm.label(), asm.label());
    let (v4_tagged, v6_tagged) = (asm.label(), asm.label());

    // Our own transmissions (spad sends none) and the outgoing copy seen on `lo`.
    asm.stmt(op::LD | op::W | op::ABS, ancillary(libc::SKF_AD_PKTTYPE));
    asm.jump(op::JEQ, u32::from(libc::PACKET_OUTGOING), To(drop), Next);

    asm.stmt(op::LD | op::H | op::ABS, field::ETHERTYPE);
    asm.jump(op::JEQ, ETHERTYPE_IPV4, To(v4_plain), Next);
    asm.jump(op::JEQ, ETHERTYPE_IPV6, To(v6_plain), Next);
    asm.jump(op::JEQ, ETHERTYPE_VLAN, To(vlan), To(drop));

    asm.mark(vlan);
    asm.stmt(
        op::LD | op::H | op::ABS,
        field::ETHERTYPE + field::VLAN_TAG_LEN,
    );
    asm.jump(op::JEQ, ETHERTYPE_IPV4, To(v4_tagged), Next);
    asm.jump(op::JEQ, ETHERTYPE_IPV6, To(v6_tagged), To(drop));

    let plain = field::ETHERNET_LEN;
    let tagged = field::ETHERNET_LEN + field::VLAN_TAG_LEN;
    for (l3, v4, v6) in [(plain, v4_plain, v6_plain), (tagged, v4_tagged, v6_tagged)] {
        asm.mark(v4);
        emit_ipv4(&mut asm, l3, go_udp, go_tcp, drop);
        asm.mark(v6);
        emit_ipv6(&mut asm, l3, go_udp, go_tcp, drop);
    }

    asm.mark(drop);
    asm.stmt(op::RET | op::K, DROP);

    // Trampolines: the port blocks may be long, `ja` reaches any distance.
    let (udp, tcp) = (asm.label(), asm.label());
    asm.mark(go_udp);
    asm.always(udp);
    asm.mark(go_tcp);
    asm.always(tcp);

    asm.mark(udp);
    emit_port_tests(&mut asm, &udp_ports);

    asm.mark(tcp);
    if !spec.knock_tcp_any_flags {
        let syn_without_ack = asm.label();
        asm.stmt(op::LD | op::B | op::IND, field::TCP_FLAGS);
        asm.stmt(op::ALU | op::AND | op::K, TCP_SYN | TCP_ACK);
        asm.jump(op::JEQ, TCP_SYN, To(syn_without_ack), Next);
        asm.stmt(op::RET | op::K, DROP);
        asm.mark(syn_without_ack);
    }
    emit_port_tests(&mut asm, &spec.knock_tcp_ports);

    asm.finish()
}

/// Four instructions that drop frames from links whose frames do not start with an
/// Ethernet header. Prepend to [`compile_filter`]'s output (jumps are relative).
/// Not part of `compile_filter` because the check needs a device, and the unit tests
/// run the program on sockets that have none.
pub fn link_type_guard() -> Vec<sock_filter> {
    let mut asm = Assembler::default();
    let ethernet = asm.label();
    asm.stmt(op::LD | op::W | op::ABS, ancillary(libc::SKF_AD_HATYPE));
    asm.jump(op::JEQ, ARPHRD_ETHER, To(ethernet), Next);
    asm.jump(op::JEQ, ARPHRD_LOOPBACK, To(ethernet), Next);
    asm.stmt(op::RET | op::K, DROP);
    asm.mark(ethernet);
    asm.finish()
}

/// IPv4 at `l3`: drop fragments, X = absolute L4 offset, dispatch on protocol.
fn emit_ipv4(asm: &mut Assembler, l3: u32, go_udp: Label, go_tcp: Label, drop: Label) {
    asm.stmt(op::LD | op::H | op::ABS, l3 + field::IPV4_FLAGS_FRAGMENT);
    asm.jump(op::JSET, field::IPV4_FRAGMENT_MASK, To(drop), Next);
    // X = 4 * IHL
    asm.stmt(op::LDX | op::B | op::MSH, l3);
    asm.stmt(op::MISC | op::TXA, 0);
    asm.jump(op::JGE, field::IPV4_MIN_HEADER_LEN, Next, To(drop));
    asm.stmt(op::ALU | op::ADD | op::K, l3);
    asm.stmt(op::MISC | op::TAX, 0);
    asm.stmt(op::LD | op::B | op::ABS, l3 + field::IPV4_PROTOCOL);
    asm.jump(op::JEQ, IPPROTO_UDP, To(go_udp), Next);
    asm.jump(op::JEQ, IPPROTO_TCP, To(go_tcp), To(drop));
}

/// IPv6 at `l3`: X = absolute L4 offset, dispatch on the next header (no extensions).
fn emit_ipv6(asm: &mut Assembler, l3: u32, go_udp: Label, go_tcp: Label, drop: Label) {
    asm.stmt(op::LDX | op::W | op::IMM, l3 + field::IPV6_HEADER_LEN);
    asm.stmt(op::LD | op::B | op::ABS, l3 + field::IPV6_NEXT_HEADER);
    asm.jump(op::JEQ, IPPROTO_UDP, To(go_udp), Next);
    asm.jump(op::JEQ, IPPROTO_TCP, To(go_tcp), To(drop));
}

/// With X = L4 offset: accept when the destination port is in `ports`, else drop.
/// Ends in `ret` on every path.
fn emit_port_tests(asm: &mut Assembler, ports: &[u16]) {
    let runs = port_runs(ports);
    if runs.is_empty() {
        asm.stmt(op::RET | op::K, DROP);
        return;
    }
    asm.stmt(op::LD | op::H | op::IND, field::L4_DST_PORT);
    let chunks: Vec<_> = runs.chunks(RANGES_PER_CHUNK).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let accept = asm.label();
        for &(lo, hi) in chunk.iter() {
            if lo == hi {
                asm.jump(op::JEQ, u32::from(lo), To(accept), Next);
            } else {
                let next_run = asm.label();
                asm.jump(op::JGE, u32::from(lo), Next, To(next_run));
                asm.jump(op::JGT, u32::from(hi), To(next_run), To(accept));
                asm.mark(next_run);
            }
        }
        if index + 1 == chunks.len() {
            asm.stmt(op::RET | op::K, DROP);
            asm.mark(accept);
            asm.stmt(op::RET | op::K, ACCEPT);
        } else {
            let next_chunk = asm.label();
            asm.always(next_chunk);
            asm.mark(accept);
            asm.stmt(op::RET | op::K, ACCEPT);
            asm.mark(next_chunk);
        }
    }
}

/// Sorted, deduplicated ports merged into inclusive runs of consecutive ports.
fn port_runs(ports: &[u16]) -> Vec<(u16, u16)> {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for port in sorted {
        match runs.last_mut() {
            Some((_, hi)) if u32::from(*hi) + 1 == u32::from(port) => *hi = port,
            _ => runs.push((port, port)),
        }
    }
    runs
}

/// A jump target, resolved by [`Assembler::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label(usize);

/// Where a conditional jump goes: the next instruction, or a label.
#[derive(Debug, Clone, Copy)]
enum Target {
    Next,
    To(Label),
}
use Target::{Next, To};

#[derive(Debug)]
enum Item {
    Stmt {
        code: u16,
        k: u32,
    },
    Jump {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Always(Label),
    Mark(Label),
}

/// A tiny two-pass assembler: instructions with symbolic forward jump targets.
#[derive(Debug, Default)]
struct Assembler {
    items: Vec<Item>,
    labels: usize,
}

impl Assembler {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    fn mark(&mut self, label: Label) {
        self.items.push(Item::Mark(label));
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.items.push(Item::Stmt { code, k });
    }

    /// A conditional jump comparing A with the constant `k`.
    fn jump(&mut self, condition: u16, k: u32, jt: Target, jf: Target) {
        let code = op::JMP | condition | op::K;
        self.items.push(Item::Jump { code, k, jt, jf });
    }

    fn always(&mut self, label: Label) {
        self.items.push(Item::Always(label));
    }

    /// Resolves labels. Panics only on a generator bug (a label never marked, a
    /// backward jump or a conditional jump beyond 255): the layout above rules these
    /// out for every `FilterSpec`, and the tests cover the extremes.
    fn finish(self) -> Vec<sock_filter> {
        let mut positions = vec![None; self.labels];
        let mut position = 0usize;
        for item in &self.items {
            match item {
                Item::Mark(label) => positions[label.0] = Some(position),
                _ => position += 1,
            }
        }
        let resolve = |label: Label, from: usize| -> usize {
            let target = positions[label.0].expect("filter generator: label never marked");
            target
                .checked_sub(from + 1)
                .expect("filter generator: backward jump")
        };
        let short = |target: Target, from: usize| -> u8 {
            match target {
                Next => 0,
                To(label) => u8::try_from(resolve(label, from))
                    .expect("filter generator: conditional jump beyond 255"),
            }
        };

        let mut program = Vec::with_capacity(position);
        for item in &self.items {
            let from = program.len();
            let insn = match *item {
                Item::Mark(_) => continue,
                Item::Stmt { code, k } => sock_filter {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                },
                Item::Jump { code, k, jt, jf } => sock_filter {
                    code,
                    jt: short(jt, from),
                    jf: short(jf, from),
                    k,
                },
                Item::Always(label) => sock_filter {
                    code: op::JMP | op::JA,
                    jt: 0,
                    jf: 0,
                    k: u32::try_from(resolve(label, from))
                        .expect("filter generator: program longer than 2^32"),
                },
            };
            program.push(insn);
        }
        program
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_merge_into_runs() {
        assert_eq!(
            port_runs(&[9, 7, 3, 8, 3, 65535, 1, 2]),
            vec![(1, 3), (7, 9), (65535, 65535)]
        );
        assert_eq!(port_runs(&[]), vec![]);
    }

    #[test]
    fn every_jump_stays_inside_the_program() {
        let specs = [
            FilterSpec::default(),
            FilterSpec::spa_only(62210),
            FilterSpec {
                spa_udp_port: Some(1),
                knock_tcp_ports: (1..=65535).collect(),
                knock_udp_ports: (1000..2000).step_by(2).collect(),
                knock_tcp_any_flags: false,
            },
            // 1500 separate runs: several chunks in one block.
            FilterSpec {
                spa_udp_port: None,
                knock_tcp_ports: (0..3000).step_by(2).collect(),
                knock_udp_ports: (0..3000).step_by(2).collect(),
                knock_tcp_any_flags: false,
            },
        ];
        for spec in &specs {
            let program = compile_filter(spec);
            for (index, insn) in program.iter().enumerate() {
                let class = insn.code & 0x07;
                if class == op::JMP {
                    let reach = if insn.code == op::JMP | op::JA {
                        insn.k as usize
                    } else {
                        usize::from(insn.jt.max(insn.jf))
                    };
                    assert!(index + 1 + reach < program.len(), "jump at {index} escapes");
                }
            }
            let last = program.last().map(|insn| insn.code);
            assert_eq!(last, Some(op::RET | op::K), "program must end in ret");
        }
    }

    #[test]
    fn a_knock_range_costs_two_instructions_not_one_per_port() {
        let single = compile_filter(&FilterSpec {
            spa_udp_port: Some(62210),
            knock_tcp_ports: vec![20000],
            knock_udp_ports: vec![],
            knock_tcp_any_flags: false,
        });
        let range = compile_filter(&FilterSpec {
            spa_udp_port: Some(62210),
            knock_tcp_ports: (20000..=40000).collect(),
            knock_udp_ports: vec![],
            knock_tcp_any_flags: false,
        });
        assert_eq!(range.len(), single.len() + 1);
        assert!(range.len() < 80, "{} instructions", range.len());
    }

    #[test]
    fn scattered_ports_can_exceed_the_kernel_limit() {
        let spec = FilterSpec {
            spa_udp_port: None,
            knock_tcp_ports: (0..20000).map(|p| p * 3).collect(),
            knock_udp_ports: vec![],
            knock_tcp_any_flags: false,
        };
        assert!(compile_filter(&spec).len() > MAX_PROGRAM_LEN);
    }
}
