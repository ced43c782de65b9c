//! The bounded traffic generator: junk datagrams of the right length, replays
//! of one captured packet, or distinct valid packets from many source
//! addresses, at a chosen rate (or as fast as it can) for at most a chosen
//! time and count. It sends through one raw IPv4 socket (IPPROTO_RAW, headers
//! built in [`crate::wire`]) with `sendmmsg`, so any source address in the
//! namespace's own ranges can be used. It must only ever be run inside a
//! namespace the harness created: it sends where it is told, nowhere else.

use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    sendmmsg, socket, AddressFamily, MsgFlags, MultiHeaders, SockFlag, SockProtocol, SockType,
    SockaddrIn,
};

use crate::error::{sys, BenchError, Result};
use crate::wire::udp_datagram;

/// Hard ceiling on any flood's length, whatever the caller asks.
pub const MAX_DURATION: Duration = Duration::from_secs(120);
/// Hard ceiling on any flood's packet count.
pub const MAX_PACKETS: u64 = 50_000_000;
/// Datagrams per `sendmmsg` call at full speed.
const BATCH: usize = 64;
/// Distinct junk payloads cycled through.
const JUNK_VARIANTS: usize = 256;

/// What the junk bytes look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JunkAlphabet {
    /// Uniformly random bytes (spa/1 junk: it fails at the hint lookup).
    Bytes,
    /// Random base64 characters (fwknop junk: it gets as far as decryption).
    Base64,
}

/// What a flood sends.
#[derive(Debug, Clone)]
pub enum Payloads {
    /// Random datagrams of `len` bytes from `src`.
    Junk {
        /// Payload length.
        len: usize,
        /// Byte alphabet.
        alphabet: JunkAlphabet,
        /// Source address.
        src: Ipv4Addr,
    },
    /// The same payload again and again from `src`.
    Replay {
        /// The captured payload.
        payload: Vec<u8>,
        /// Source address.
        src: Ipv4Addr,
    },
    /// One payload per source address, each sent once, in order.
    PerSource(Vec<(Ipv4Addr, Vec<u8>)>),
}

/// A bounded flood.
#[derive(Debug, Clone)]
pub struct FloodSpec {
    /// Where the datagrams go.
    pub dst: SocketAddrV4,
    /// What they carry.
    pub payloads: Payloads,
    /// Datagrams per second; `None` = as fast as the sender can.
    pub rate_pps: Option<u64>,
    /// Stop after this long (capped at [`MAX_DURATION`]).
    pub duration: Duration,
    /// Stop after this many datagrams (capped at [`MAX_PACKETS`]).
    pub max_packets: u64,
}

/// What a flood did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FloodReport {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Send calls that failed (ENOBUFS and the like); retried.
    pub send_errors: u64,
    /// How long it ran.
    pub elapsed: Duration,
}

impl FloodReport {
    /// Achieved datagrams per second.
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A small non-cryptographic generator for junk bytes (xorshift64*).
#[derive(Debug, Clone)]
pub struct JunkRng(u64);

impl JunkRng {
    /// Seeded from the OS generator.
    pub fn from_os() -> JunkRng {
        let mut seed = [0u8; 8];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed);
        JunkRng(u64::from_le_bytes(seed) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `len` junk bytes in `alphabet`.
    pub fn junk(&mut self, len: usize, alphabet: JunkAlphabet) -> Vec<u8> {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..len)
            .map(|_| {
                let r = self.next_u64();
                match alphabet {
                    JunkAlphabet::Bytes => (r >> 56) as u8,
                    JunkAlphabet::Base64 => B64[(r >> 58) as usize],
                }
            })
            .collect()
    }
}

/// The IPv4 packets a flood cycles through, and whether it stops after one pass.
fn frames(spec: &FloodSpec) -> (Vec<Vec<u8>>, bool) {
    let dst = *spec.dst.ip();
    let port = spec.dst.port();
    let mut rng = JunkRng::from_os();
    match &spec.payloads {
        Payloads::Junk { len, alphabet, src } => {
            let frames = (0..JUNK_VARIANTS)
                .map(|i| {
                    let payload = rng.junk(*len, *alphabet);
                    udp_datagram(*src, 20_000 + i as u16, dst, port, &payload)
                })
                .collect();
            (frames, false)
        }
        Payloads::Replay { payload, src } => {
            (vec![udp_datagram(*src, 40_000, dst, port, payload)], false)
        }
        Payloads::PerSource(list) => (
            list.iter()
                .map(|(src, payload)| udp_datagram(*src, 40_000, dst, port, payload))
                .collect(),
            true,
        ),
    }
}

/// Runs a flood on the calling thread (which must be inside the sending
/// namespace) until its time or count is reached or `stop` is set.
pub fn run(spec: &FloodSpec, stop: &AtomicBool) -> Result<FloodReport> {
    let (frames, one_pass) = frames(spec);
    if frames.is_empty() {
        return Err(BenchError::Invalid("a flood with nothing to send".into()));
    }
    let limit = if one_pass {
        spec.max_packets.min(frames.len() as u64)
    } else {
        spec.max_packets
    }
    .min(MAX_PACKETS);
    let duration = spec.duration.min(MAX_DURATION);
    let fd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::empty(),
        SockProtocol::Raw,
    )
    .map_err(sys("opening a raw IPv4 socket (needs root)"))?;
    let dst = SockaddrIn::from(SocketAddrV4::new(*spec.dst.ip(), 0));
    let per_call = match spec.rate_pps {
        Some(r) => ((r / 4000) as usize).clamp(1, BATCH),
        None => BATCH,
    };
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(per_call, None);
    let addrs = vec![Some(dst); per_call];
    let start = Instant::now();
    let mut report = FloodReport::default();
    let mut next = 0usize;
    while report.sent < limit && !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now - start >= duration {
            break;
        }
        if let Some(rate) = spec.rate_pps {
            let due = start + Duration::from_secs_f64(report.sent as f64 / rate.max(1) as f64);
            if due > now {
                std::thread::sleep((due - now).min(Duration::from_millis(5)));
                continue;
            }
        }
        let n = per_call.min((limit - report.sent) as usize);
        let slices: Vec<[IoSlice<'_>; 1]> = (0..n)
            .map(|i| [IoSlice::new(&frames[(next + i) % frames.len()])])
            .collect();
        match sendmmsg(
            fd.as_raw_fd(),
            &mut headers,
            &slices,
            &addrs[..n],
            [],
            MsgFlags::empty(),
        ) {
            Ok(results) => {
                let done = results.count();
                report.sent += done as u64;
                next = (next + done) % frames.len();
            }
            Err(nix::errno::Errno::ENOBUFS | nix::errno::Errno::EAGAIN) => {
                report.send_errors += 1;
                std::thread::yield_now();
            }
            Err(e) => return Err(sys("sendmmsg on the raw socket")(e)),
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_has_the_asked_length_and_alphabet() {
        let mut rng = JunkRng(12345);
        let b = rng.junk(226, JunkAlphabet::Base64);
        assert_eq!(b.len(), 226);
        assert!(b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/'));
        let r = rng.junk(100, JunkAlphabet::Bytes);
        assert_eq!(r.len(), 100);
        assert_ne!(r, rng.junk(100, JunkAlphabet::Bytes));
    }

    #[test]
    fn per_source_frames_carry_each_source_once() {
        let spec = FloodSpec {
            dst: SocketAddrV4::new(Ipv4Addr::new(10, 211, 0, 1), 62210),
            payloads: Payloads::PerSource(vec![
                (Ipv4Addr::new(198, 18, 0, 1), vec![1; 100]),
                (Ipv4Addr::new(198, 18, 0, 2), vec![2; 100]),
            ]),
            rate_pps: None,
            duration: Duration::from_secs(1),
            max_packets: 10,
        };
        let (frames, one_pass) = frames(&spec);
        assert!(one_pass);
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[1][crate::wire::field::SRC], &[198, 18, 0, 2]);
        assert_eq!(frames[1][crate::wire::field::PAYLOAD], 2);
    }
}
