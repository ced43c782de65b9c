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

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spa_fuzz::cbpf::{self, Meta};
use spa_fuzz::gateway::Reader;
use spad::capture::filter::{compile_filter, link_type_guard, FilterSpec, SNAP_LEN};
use spad::capture::{parse_frame, Transport};

/// The port set and frame metadata at the head of an input; the frame is the rest.
struct Input<'a> {
    spec: FilterSpec,
    outgoing: bool,
    loopback: bool,
    frame: &'a [u8],
}

/// `flags u8` (bit 0 outgoing, 1 loopback link, 2 TCP knocks with any flags,
/// 3 an SPA port), `spa u16`, `n u8` TCP ports (u16 each, n % 16), `r u8` runs of
/// TCP ports (`first u16`, `len u8`; r % 4), `m u8` UDP ports (m % 16), then the
/// frame. All big-endian.
fn read(data: &[u8]) -> Option<Input<'_>> {
    let mut input = Reader::new(data);
    let flags = input.u8()?;
    let spa = input.u16()?;
    let mut tcp = Vec::new();
    for _ in 0..input.u8()? % 16 {
        tcp.push(input.u16()?);
    }
    for _ in 0..input.u8()? % 4 {
        let first = input.u16()?;
        let len = input.u8()?;
        tcp.extend((0..=u16::from(len)).map_while(|i| first.checked_add(i)));
    }
    let mut udp = Vec::new();
    for _ in 0..input.u8()? % 16 {
        udp.push(input.u16()?);
    }
    Some(Input {
        spec: FilterSpec {
            spa_udp_port: (flags & 8 != 0).then_some(spa),
            knock_tcp_ports: tcp,
            knock_udp_ports: udp,
            knock_tcp_any_flags: flags & 4 != 0,
        },
        outgoing: flags & 1 != 0,
        loopback: flags & 2 != 0,
        frame: input.rest(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = read(data) else {
        return;
    };
    let spec = input.spec;
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
    let frame = input.frame;
    let kept = match cbpf::run(&program, frame, meta) {
        Ok(kept) => kept,
        Err(e) => {
            panic!("the capture program does something the interpreter does not model: {e:?}")
        }
    };
    assert!(kept == 0 || kept == SNAP_LEN, "filter returned {kept}");
    let Some(captured) = parse_frame(frame) else {
        report(kept != 0, "unparsed");
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
    report(kept != 0, if wanted { "wanted" } else { "not wanted" });
    assert_eq!(
        kept != 0,
        wanted,
        "filter {} a frame the parser reads as {:?} (spec {:?})",
        if kept != 0 { "keeps" } else { "drops" },
        captured,
        spec
    );
});

/// SPA_FUZZ_REPORT=1: what the filter and the parser made of each input
/// (docs/fuzzing.md).
fn report(kept: bool, parsed: &str) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("SPA_FUZZ_REPORT").is_some()) {
        let filter = if kept { "kept" } else { "dropped" };
        eprintln!("spa-fuzz: filter {filter:<7} parser {parsed}");
    }
}
