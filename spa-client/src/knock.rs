//! Classic port knocking, as knockd's `knock` does it: one TCP SYN per TCP port
//! (crafted on a raw socket, never retransmitted) or one small UDP datagram per
//! UDP port, in order, with an optional delay between knocks. Without the right
//! to open raw sockets it falls back to a non-blocking connect() closed at once.

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, connect, sendto, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
    SockaddrIn, SockaddrIn6,
};
use ring::rand::{SecureRandom, SystemRandom};
use spa_proto::knock::{KnockStep, Transport};

use crate::route::{local_address_towards, unspecified_for, RouteError};

/// How TCP ports are knocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpMethod {
    /// A crafted SYN on a raw socket: exactly one packet per port.
    RawSyn,
    /// A non-blocking connect() closed at once (no raw-socket rights).
    Connect,
}

/// Why a knock could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KnockError {
    /// No local address towards the target.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A socket call failed.
    #[error("knocking {what}: {source}")]
    Io {
        /// The step, e.g. "7001:tcp at 127.0.0.1".
        what: String,
        /// What the kernel said.
        source: io::Error,
    },
}

/// Knocks ports on one target address.
#[derive(Debug)]
pub struct KnockSender {
    target: IpAddr,
    source: IpAddr,
    raw: Option<OwnedFd>,
    rng: SystemRandom,
}

impl KnockSender {
    /// Prepares to knock `target`. With `use_raw`, opens a raw TCP socket; if
    /// that is not permitted, returns the reason beside a knocker that uses
    /// connect() instead.
    pub fn new(target: IpAddr, use_raw: bool) -> Result<(Self, Option<String>), KnockError> {
        let source = local_address_towards(SocketAddr::new(target, 9))?;
        let (raw, fallback) = if use_raw {
            match open_raw_tcp(source) {
                Ok(fd) => (Some(fd), None),
                Err(e) => (None, Some(format!("raw sockets are not available ({e})"))),
            }
        } else {
            (None, Some("raw sockets were not asked for".to_owned()))
        };
        Ok((
            KnockSender {
                target,
                source,
                raw,
                rng: SystemRandom::new(),
            },
            fallback,
        ))
    }

    /// How TCP ports will be knocked.
    pub fn tcp_method(&self) -> TcpMethod {
        if self.raw.is_some() {
            TcpMethod::RawSyn
        } else {
            TcpMethod::Connect
        }
    }

    /// The local address knocks leave from.
    pub fn source(&self) -> IpAddr {
        self.source
    }

    /// Sends one knock.
    pub fn knock(&self, step: KnockStep) -> Result<(), KnockError> {
        let dest = SocketAddr::new(self.target, step.port);
        let io_err = |source: io::Error| KnockError::Io {
            what: format!("{step} at {}", self.target),
            source,
        };
        match (step.transport, &self.raw) {
            (Transport::Udp, _) => {
                let socket = UdpSocket::bind(unspecified_for(dest)).map_err(io_err)?;
                socket.send_to(&[0u8], dest).map_err(io_err)?;
            }
            (Transport::Tcp, Some(raw)) => {
                let src_port = 32768 + (self.random_u32().map_err(io_err)? % 28232) as u16;
                let seq = self.random_u32().map_err(io_err)?;
                let segment = tcp_syn_segment(SocketAddr::new(self.source, src_port), dest, seq);
                send_raw(raw, self.target, &segment).map_err(io_err)?;
            }
            (Transport::Tcp, None) => connect_and_close(dest).map_err(io_err)?,
        }
        Ok(())
    }

    fn random_u32(&self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.rng
            .fill(&mut b)
            .map_err(|_| io::Error::other("the system random number generator failed"))?;
        Ok(u32::from_be_bytes(b))
    }

    /// Knocks every step in order, pausing `delay` between two knocks; calls
    /// `each` after each knock went out.
    pub fn knock_all(
        &self,
        steps: &[KnockStep],
        delay: Duration,
        mut each: impl FnMut(KnockStep),
    ) -> Result<(), KnockError> {
        for (i, &step) in steps.iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                thread::sleep(delay);
            }
            self.knock(step)?;
            each(step);
        }
        Ok(())
    }
}

fn open_raw_tcp(source: IpAddr) -> Result<OwnedFd, Errno> {
    let family = match source {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Tcp,
    )?;
    // Pin the source address so it matches the one in the checksum.
    match source {
        IpAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(a, 0)))?,
        IpAddr::V6(a) => bind(
            fd.as_raw_fd(),
            &SockaddrIn6::from(SocketAddrV6::new(a, 0, 0, 0)),
        )?,
    }
    Ok(fd)
}

fn send_raw(fd: &OwnedFd, target: IpAddr, segment: &[u8]) -> io::Result<()> {
    // Raw sockets take port 0: the kernel writes the IP header, we the TCP one.
    let sent = match target {
        IpAddr::V4(a) => sendto(
            fd.as_raw_fd(),
            segment,
            &SockaddrIn::from(SocketAddrV4::new(a, 0)),
            MsgFlags::empty(),
        ),
        IpAddr::V6(a) => sendto(
            fd.as_raw_fd(),
            segment,
            &SockaddrIn6::from(SocketAddrV6::new(a, 0, 0, 0)),
            MsgFlags::empty(),
        ),
    }
    .map_err(io::Error::from)?;
    if sent != segment.len() {
        return Err(io::Error::other(format!(
            "only {sent} of {} bytes went out",
            segment.len()
        )));
    }
    Ok(())
}

/// What knockd's `knock` does without raw sockets: a non-blocking connect()
/// (which sends one SYN) and an immediate close (which sends nothing more).
fn connect_and_close(dest: SocketAddr) -> io::Result<()> {
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let outcome = match dest {
        SocketAddr::V4(a) => socket(AddressFamily::Inet, SockType::Stream, flags, None)
            .and_then(|fd| connect(fd.as_raw_fd(), &SockaddrIn::from(a))),
        SocketAddr::V6(a) => socket(AddressFamily::Inet6, SockType::Stream, flags, None)
            .and_then(|fd| connect(fd.as_raw_fd(), &SockaddrIn6::from(a))),
    };
    // The socket is closed as the closure returns: no retransmission follows.
    match outcome {
        Ok(()) | Err(Errno::EINPROGRESS) | Err(Errno::ECONNREFUSED) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// TCP header offsets used by [`tcp_syn_segment`].
mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
}

/// The TCP SYN flag.
pub const TCP_SYN: u8 = 0x02;
const IPPROTO_TCP: u8 = 6;
const SEGMENT_LEN: usize = 20;

/// A 20-byte TCP header with only SYN set, no options, and the checksum over
/// the IPv4 or IPv6 pseudo-header of `src` → `dst` (both of one family).
pub fn tcp_syn_segment(src: SocketAddr, dst: SocketAddr, seq: u32) -> [u8; SEGMENT_LEN] {
    let mut h = [0u8; SEGMENT_LEN];
    h[field::SRC_PORT].copy_from_slice(&src.port().to_be_bytes());
    h[field::DST_PORT].copy_from_slice(&dst.port().to_be_bytes());
    h[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    h[field::DATA_OFFSET] = (SEGMENT_LEN as u8 / 4) << 4;
    h[field::FLAGS] = TCP_SYN;
    h[field::WINDOW].copy_from_slice(&64240u16.to_be_bytes());
    let sum = tcp_checksum(src.ip(), dst.ip(), &h);
    h[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    h
}

/// The Internet checksum (RFC 1071) of a TCP segment with its pseudo-header.
/// Over a segment whose checksum field is already filled in, it gives 0.
pub fn tcp_checksum(src: IpAddr, dst: IpAddr, segment: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, IPPROTO_TCP]);
            pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
        }
        _ => {
            pseudo.extend_from_slice(&v6_octets(src));
            pseudo.extend_from_slice(&v6_octets(dst));
            pseudo.extend_from_slice(&(segment.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_TCP]);
        }
    }
    let mut sum: u32 = 0;
    for chunk in pseudo.chunks(2).chain(segment.chunks(2)) {
        let word = u16::from_be_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn v6_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn syn_header_fields() {
        let src = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40000));
        let dst = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 7001));
        let h = tcp_syn_segment(src, dst, 0x01020304);
        assert_eq!(h[0..2], 40000u16.to_be_bytes());
        assert_eq!(h[2..4], 7001u16.to_be_bytes());
        assert_eq!(h[4..8], [1, 2, 3, 4]);
        assert_eq!(h[8..12], [0; 4], "no ack number");
        assert_eq!(h[12], 0x50, "5 words, no options");
        assert_eq!(h[13], TCP_SYN);
    }

    // Worked by hand: the RFC 1071 sum of a known IPv4 SYN.
    #[test]
    fn checksum_matches_a_hand_computed_value() {
        let src = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 0x1234));
        let dst = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 2), 0x0050));
        let h = tcp_syn_segment(src, dst, 0);
        // pseudo: c000+0201+c000+0202+0006+0014 = 0x1841d
        // header: 1234+0050+5002+faf0 = 0x15d76
        // total 0x2e193 -> 0xe195 -> !0xe195 = 0x1e6a
        assert_eq!(h[16..18], [0x1e, 0x6a]);
        assert_eq!(tcp_checksum(src.ip(), dst.ip(), &h), 0);
    }

    #[test]
    fn v6_checksum_verifies_to_zero() {
        let src = SocketAddr::from((Ipv6Addr::LOCALHOST, 50000));
        let dst = SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 22));
        let h = tcp_syn_segment(src, dst, 77);
        assert_ne!(h[16..18], [0, 0]);
        assert_eq!(tcp_checksum(src.ip(), dst.ip(), &h), 0);
    }
}
