//! Test helpers: client key files written in the documented TOML format with
//! mode 0600, the keys the gateway would derive from them, and a capture of
//! what crosses the loopback interface (AF_PACKET, root only).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use nix::sys::socket::{
    recvfrom, setsockopt, socket, sockopt, AddressFamily, LinkAddr, SockFlag, SockProtocol,
    SockType,
};
use nix::sys::time::{TimeVal, TimeValLike};
use spa_proto::{DerivedKeys, SecretBytes, ServerId, UserSecret};

/// The test user's secret S.
pub const SECRET: [u8; 32] = [0x42; 32];
/// The gateway in the test key files.
pub const SERVER_ID: &str = "gw.test";

/// The secret as it stands in the key file.
pub fn secret_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(SECRET)
}

/// The keys a gateway with `server_id` derives for the test user.
pub fn derived_keys(server_id: &str) -> DerivedKeys {
    let id: ServerId = server_id.parse().expect("valid server id");
    UserSecret::new(SecretBytes::new(SECRET))
        .server_key(&id)
        .derive()
}

/// Writes a client key file with `gateway_extra` appended to the one
/// `[[gateway]]` table, with the given mode.
pub fn write_key_file(dir: &Path, gateway_extra: &str, mode: u32) -> PathBuf {
    let path = dir.join("key");
    let text = format!(
        "user = \"alice\"\nsecret = \"{}\"\n\n[[gateway]]\nserver_id = \"{SERVER_ID}\"\n{gateway_extra}\n",
        secret_b64()
    );
    fs::write(&path, text).expect("write key file");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod key file");
    path
}

/// What the capture saw, incoming on lo, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A TCP segment.
    Tcp {
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        flags: u8,
        checksum_ok: bool,
    },
    /// A UDP datagram.
    Udp {
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        payload_len: usize,
    },
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;

impl Seen {
    /// A bare SYN (a connection attempt, not a SYN-ACK) to `port`.
    pub fn is_syn_to(&self, port: u16) -> bool {
        matches!(self, Seen::Tcp { dst_port, flags, .. } if *dst_port == port && flags & (SYN | ACK) == SYN)
    }
    /// A UDP datagram to `port`.
    pub fn is_udp_to(&self, port: u16) -> bool {
        matches!(self, Seen::Udp { dst_port, .. } if *dst_port == port)
    }
}

static CAPTURE_LOCK: Mutex<()> = Mutex::new(());

/// An AF_PACKET socket that sees every frame on every interface; only the
/// incoming copies on lo are kept. Holds a lock so captures don't overlap.
pub struct LoCapture {
    fd: OwnedFd,
    lo_index: usize,
    _serial: MutexGuard<'static, ()>,
}

const PACKET_HOST: u8 = 0;

impl LoCapture {
    /// Starts capturing. Needs root (CAP_NET_RAW).
    pub fn start() -> Self {
        let serial = CAPTURE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )
        .expect("an AF_PACKET socket (these capture tests must run as root)");
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::milliseconds(50)).expect("SO_RCVTIMEO");
        setsockopt(&fd, sockopt::RcvBuf, &(4 << 20)).expect("SO_RCVBUF");
        let lo_index = nix::net::if_::if_nametoindex("lo").expect("lo exists") as usize;
        LoCapture {
            fd,
            lo_index,
            _serial: serial,
        }
    }

    /// Everything seen until `quiet_for` passes without `keep` accepting a new
    /// packet, or `max` passes; returns only the packets `keep` accepts.
    pub fn collect(
        &self,
        max: Duration,
        quiet_for: Duration,
        keep: impl Fn(&Seen) -> bool,
    ) -> Vec<Seen> {
        let start = Instant::now();
        let mut last = Instant::now();
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        while start.elapsed() < max && last.elapsed() < quiet_for {
            let Ok((len, Some(from))) = recvfrom::<LinkAddr>(self.fd.as_raw_fd(), &mut buf) else {
                continue;
            };
            if from.ifindex() != self.lo_index || from.pkttype() != PACKET_HOST {
                continue;
            }
            if let Some(s) = parse_frame(&buf[..len]) {
                if keep(&s) {
                    seen.push(s);
                    last = Instant::now();
                }
            }
        }
        seen
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Parses an Ethernet frame from lo into a TCP or UDP summary.
fn parse_frame(frame: &[u8]) -> Option<Seen> {
    let ethertype = be16(frame.get(12..14)?);
    let ip = frame.get(14..)?;
    let (src, dst, proto, l4, pseudo) = match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(be16(ip.get(2..4)?));
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            let l4 = ip.get(ihl..total)?;
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&src);
            pseudo.extend_from_slice(&dst);
            pseudo.extend_from_slice(&[0, ip[9]]);
            pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            (
                IpAddr::V4(Ipv4Addr::from(src)),
                IpAddr::V4(Ipv4Addr::from(dst)),
                ip[9],
                l4,
                pseudo,
            )
        }
        0x86dd => {
            let plen = usize::from(be16(ip.get(4..6)?));
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            let l4 = ip.get(40..40 + plen)?;
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&src);
            pseudo.extend_from_slice(&dst);
            pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, ip[6]]);
            (
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                ip[6],
                l4,
                pseudo,
            )
        }
        _ => return None,
    };
    match proto {
        6 => Some(Seen::Tcp {
            src,
            dst,
            src_port: be16(l4.get(0..2)?),
            dst_port: be16(l4.get(2..4)?),
            flags: *l4.get(13)?,
            checksum_ok: ones_complement_sum(&pseudo, l4) == 0xffff,
        }),
        17 => Some(Seen::Udp {
            src,
            dst,
            src_port: be16(l4.get(0..2)?),
            dst_port: be16(l4.get(2..4)?),
            payload_len: l4.len().saturating_sub(8),
        }),
        _ => None,
    }
}

/// The folded 16-bit one's complement sum; 0xffff over a segment whose
/// checksum is right.
fn ones_complement_sum(pseudo: &[u8], segment: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut bytes = pseudo.to_vec();
    bytes.extend_from_slice(segment);
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    for w in bytes.chunks(2) {
        sum += u64::from(be16(w));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}
