//! Capture as spad sees it: a fuzzed frame (Ethernet, 802.1Q, IPv4 with options,
//! IPv6 with extension headers, fragments, truncations) goes through spad's frame
//! parser and through the kernel filter program (link-type guard + compiled filter
//! for a fuzzed port set) run in a cBPF interpreter. They must agree on what
//! reaches user space:
//! - a frame the parser reads as a packet spad wants (UDP to the SPA port or a UDP
//!   knock port, TCP to a TCP knock port with SYN and not ACK unless any flags go)
//!   is let through by the filter, whole;
//! - a frame the filter lets through and the parser reads is one spad wants.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use spa_fuzz::cbpf::{self, Meta};
use spad::capture::filter::{compile_filter, link_type_guard, FilterSpec, SNAP_LEN};
use spad::capture::{parse_frame, Transport};

#[derive(Debug, Arbitrary)]
struct Input {
    spa_port: Option<u16>,
    tcp_ports: Vec<u16>,
    /// Runs of TCP knock ports: (first, length).
    tcp_runs: Vec<(u16, u8)>,
    udp_ports: Vec<u16>,
    tcp_any_flags: bool,
    outgoing: bool,
    loopback: bool,
    frame: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let mut tcp_ports: Vec<u16> = input.tcp_ports.iter().copied().take(64).collect();
    for &(first, len) in input.tcp_runs.iter().take(8) {
        tcp_ports.extend((0..=u16::from(len)).map_while(|i| first.checked_add(i)));
    }
    let spec = FilterSpec {
        spa_udp_port: input.spa_port,
        knock_tcp_ports: tcp_ports,
        knock_udp_ports: input.udp_ports.iter().copied().take(64).collect(),
        knock_tcp_any_flags: input.tcp_any_flags,
    };
    let mut program = link_type_guard();
    program.extend(compile_filter(&spec));
    let meta = Meta {
        pkttype: if input.outgoing {
            libc::PACKET_OUTGOING as u32
        } else {
            libc::PACKET_HOST as u32
        },
        hatype: if input.loopback {
            u32::from(libc::ARPHRD_LOOPBACK)
        } else {
            u32::from(libc::ARPHRD_ETHER)
        },
    };
    let frame = &input.frame;
    let kept = match cbpf::run(&program, frame, meta) {
        Ok(kept) => kept,
        Err(e) => {
            panic!("the capture program does something the interpreter does not model: {e:?}")
        }
    };
    assert!(kept == 0 || kept == SNAP_LEN, "filter returned {kept}");
    let Some(captured) = parse_frame(frame) else {
        return; // user space drops what it cannot parse, whatever the filter says
    };
    let wanted = !input.outgoing
        && match captured.transport {
            Transport::Udp {
                dst_port,
                payload_len,
                ..
            } => {
                assert_eq!(payload_len, captured.payload.len());
                spec.spa_udp_port == Some(dst_port) || spec.knock_udp_ports.contains(&dst_port)
            }
            Transport::Tcp {
                dst_port, flags, ..
            } => {
                (spec.knock_tcp_any_flags || flags & 0x12 == 0x02)
                    && spec.knock_tcp_ports.contains(&dst_port)
            }
        };
    assert_eq!(
        kept != 0,
        wanted,
        "filter {} a frame the parser reads as {:?} (spec {:?})",
        if kept != 0 { "keeps" } else { "drops" },
        captured,
        spec
    );
});
