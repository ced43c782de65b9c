//! A small classic-BPF interpreter with the Linux socket-filter semantics spad's
//! capture program relies on: loads past the end of the frame end the program with
//! 0 (drop), ancillary loads (`SKF_AD_OFF + …`) read the frame's metadata, division
//! by zero drops, `ret` gives the number of bytes to keep (0 = drop). Used by the
//! `capture_filter` target to run `spad::capture::filter`'s program on fuzzed frames
//! (no kernel, no root); `tests` check it against the real kernel.

use libc::sock_filter;

/// Per-frame metadata that ancillary loads read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// `SKF_AD_PKTTYPE`: `PACKET_HOST`, `PACKET_OUTGOING`, …
    pub pkttype: u32,
    /// `SKF_AD_HATYPE`: the device's `ARPHRD_*`.
    pub hatype: u32,
}

/// A program the interpreter does not model, or one the kernel's checker would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// An opcode outside the classes below.
    Opcode(u16),
    /// An ancillary field other than PKTTYPE and HATYPE.
    Ancillary(u32),
    /// A jump or fall-through past the end of the program.
    OffTheEnd,
    /// `M[k]` with k >= 16.
    Memory(u32),
}

const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;

const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;

const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;

const SRC_X: u16 = 0x08;
const RET_A: u16 = 0x10;

const SKF_AD_OFF: u32 = libc::SKF_AD_OFF as u32;

/// Runs `program` over `frame`: the `ret` value (bytes kept, 0 = dropped).
pub fn run(program: &[sock_filter], frame: &[u8], meta: Meta) -> Result<u32, Unsupported> {
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    // Every jump is forward, so a program of n instructions runs at most n steps.
    for _ in 0..=program.len() {
        let insn = program.get(pc).ok_or(Unsupported::OffTheEnd)?;
        pc += 1;
        let k = insn.k;
        let code = insn.code;
        match code & 0x07 {
            LD | LDX => {
                let value = match code & 0xe0 {
                    IMM => k,
                    LEN => frame.len() as u32,
                    MEM => *mem.get(k as usize).ok_or(Unsupported::Memory(k))?,
                    MSH if code & 0x07 == LDX && code & 0x18 == B => match load(frame, k, B) {
                        Some(byte) => 4 * (byte & 0x0f),
                        None => return Ok(0),
                    },
                    ABS if code & 0x07 == LD && k >= SKF_AD_OFF => ancillary(k, meta)?,
                    ABS if code & 0x07 == LD => match load(frame, k, code & 0x18) {
                        Some(v) => v,
                        None => return Ok(0),
                    },
                    IND if code & 0x07 == LD => {
                        match x.checked_add(k).and_then(|at| load(frame, at, code & 0x18)) {
                            Some(v) => v,
                            None => return Ok(0),
                        }
                    }
                    _ => return Err(Unsupported::Opcode(code)),
                };
                if code & 0x07 == LD {
                    a = value;
                } else {
                    x = value;
                }
            }
            ST => *mem.get_mut(k as usize).ok_or(Unsupported::Memory(k))? = a,
            STX => *mem.get_mut(k as usize).ok_or(Unsupported::Memory(k))? = x,
            ALU => {
                let operand = if code & SRC_X != 0 { x } else { k };
                a = match code & 0xf0 {
                    0x00 => a.wrapping_add(operand),
                    0x10 => a.wrapping_sub(operand),
                    0x20 => a.wrapping_mul(operand),
                    0x30 if operand == 0 => return Ok(0),
                    0x30 => a / operand,
                    0x40 => a | operand,
                    0x50 => a & operand,
                    0x60 => a.checked_shl(operand).unwrap_or(0),
                    0x70 => a.checked_shr(operand).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 if operand == 0 => return Ok(0),
                    0x90 => a % operand,
                    0xa0 => a ^ operand,
                    _ => return Err(Unsupported::Opcode(code)),
                };
            }
            JMP => {
                let operand = if code & SRC_X != 0 { x } else { k };
                let offset = match code & 0xf0 {
                    0x00 => k as usize,
                    condition => {
                        let taken = match condition {
                            0x10 => a == operand,
                            0x20 => a > operand,
                            0x30 => a >= operand,
                            0x40 => a & operand != 0,
                            _ => return Err(Unsupported::Opcode(code)),
                        };
                        usize::from(if taken { insn.jt } else { insn.jf })
                    }
                };
                pc = pc.checked_add(offset).ok_or(Unsupported::OffTheEnd)?;
            }
            RET => return Ok(if code & 0x18 == RET_A { a } else { k }),
            MISC => match code & 0xf8 {
                0x00 => x = a,
                0x80 => a = x,
                _ => return Err(Unsupported::Opcode(code)),
            },
            _ => return Err(Unsupported::Opcode(code)),
        }
    }
    Err(Unsupported::OffTheEnd)
}

/// A big-endian load of `size` (W, H or B) at `at`, or `None` past the end.
fn load(frame: &[u8], at: u32, size: u16) -> Option<u32> {
    let at = at as usize;
    let bytes = match size {
        W => frame.get(at..at.checked_add(4)?)?,
        H => frame.get(at..at.checked_add(2)?)?,
        B => frame.get(at..at.checked_add(1)?)?,
        _ => return None,
    };
    Some(bytes.iter().fold(0u32, |v, &b| v << 8 | u32::from(b)))
}

fn ancillary(k: u32, meta: Meta) -> Result<u32, Unsupported> {
    match k.wrapping_sub(SKF_AD_OFF) as i32 {
        libc::SKF_AD_PKTTYPE => Ok(meta.pkttype),
        libc::SKF_AD_HATYPE => Ok(meta.hatype),
        _ => Err(Unsupported::Ancillary(k)),
    }
}

#[cfg(test)]
mod tests {
    //! The interpreter against the kernel: the same program attached to a Unix
    //! datagram socket (the kernel runs socket filters on every socket type; no root
    //! needed) must keep and drop exactly the same frames.
    use super::*;
    use spad::capture::filter::{compile_filter, FilterSpec};
    use std::os::unix::net::UnixDatagram;

    /// A Unix socket's skb has pkt_type PACKET_HOST and no device type (0).
    const UNIX: Meta = Meta {
        pkttype: libc::PACKET_HOST as u32,
        hatype: 0,
    };

    fn kernel_keeps(receiver: &UnixDatagram, sender: &UnixDatagram, frame: &[u8]) -> bool {
        sender.send(frame).expect("send");
        let mut buffer = vec![0u8; 4096];
        receiver.recv(&mut buffer).is_ok()
    }

    /// A tiny xorshift: reproducible frames without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn agrees_with_the_kernel_on_mutated_frames() {
        let spec = FilterSpec {
            spa_udp_port: Some(62210),
            knock_tcp_ports: vec![7000, 20000, 20001, 20002],
            knock_udp_ports: vec![7100],
            knock_tcp_any_flags: false,
        };
        let program = compile_filter(&spec);
        let (sender, receiver) = UnixDatagram::pair().expect("socketpair");
        receiver.set_nonblocking(true).expect("nonblocking");
        spad::capture::attach_filter(&receiver, &program).expect("kernel accepts the filter");

        // A UDP/IPv4 frame to the SPA port and a TCP SYN/IPv6 frame to a knock port.
        let mut v4 = vec![0u8; 12];
        v4.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 30, 0, 0, 0, 0, 64, 17, 0, 0]);
        v4.extend_from_slice(&[192, 0, 2, 7, 198, 51, 100, 1]);
        v4.extend_from_slice(&[0x9c, 0x40, 0xf3, 0x02, 0, 10, 0, 0, b'h', b'i']);
        let mut v6 = vec![0u8; 12];
        v6.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, 6, 64]);
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend_from_slice(&[0x15, 0xb3, 0x1b, 0x58, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02]);
        v6.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);

        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let (mut kept, mut dropped) = (0, 0);
        for base in [&v4, &v6] {
            for round in 0..3000 {
                let mut frame = base.clone();
                let edits = 1 + round % 3;
                for _ in 0..edits {
                    let at = (next(&mut state) as usize) % frame.len();
                    // Bias towards header-relevant values.
                    let values = [0u8, 0x02, 0x06, 0x11, 0x12, 0x40, 0x46, 0x81, 0xff];
                    frame[at] = values[(next(&mut state) as usize) % values.len()];
                }
                if round % 7 == 0 {
                    let len = (next(&mut state) as usize) % (frame.len() + 1);
                    frame.truncate(len.max(1));
                }
                let ours = run(&program, &frame, UNIX).expect("program is modelled") != 0;
                assert_eq!(
                    ours,
                    kernel_keeps(&receiver, &sender, &frame),
                    "frame {frame:02x?}"
                );
                if ours {
                    kept += 1;
                } else {
                    dropped += 1;
                }
            }
        }
        assert!(
            kept > 100 && dropped > 100,
            "kept {kept}, dropped {dropped}"
        );
    }
}
