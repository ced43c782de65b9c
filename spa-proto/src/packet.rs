//! The 100-byte spa/1 packet (PROTOCOL §2): field offsets in one place, the
//! 64-byte plaintext's encode/decode with every field rule, and sealing and
//! opening with ChaCha20-Poly1305.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::keys::DerivedKeys;
use crate::names::DoorName;

/// Every spa/1 datagram payload is exactly this long.
pub const PACKET_LEN: usize = 100;
/// Plaintext length.
pub const PLAINTEXT_LEN: usize = 64;
/// One hint window, in milliseconds.
pub const WINDOW_MS: u64 = 30_000;
/// The default UDP port spad listens on.
pub const DEFAULT_PORT: u16 = 62210;

/// Byte ranges of the packet and of its plaintext.
pub mod field {
    use std::ops::Range;
    /// Packet: the key hint.
    pub const HINT: Range<usize> = 0..8;
    /// Packet: the AEAD nonce.
    pub const NONCE: Range<usize> = 8..20;
    /// Packet: associated data (hint || nonce).
    pub const AAD: Range<usize> = 0..20;
    /// Packet: the ciphertext.
    pub const CIPHERTEXT: Range<usize> = 20..84;
    /// Packet: the Poly1305 tag.
    pub const TAG: Range<usize> = 84..100;

    /// Plaintext: version.
    pub const VERSION: usize = 0;
    /// Plaintext: flags.
    pub const FLAGS: usize = 1;
    /// Plaintext: timestamp in ms, u64 big-endian.
    pub const TIMESTAMP: Range<usize> = 2..10;
    /// Plaintext: address kind.
    pub const KIND: usize = 10;
    /// Plaintext: address (16 bytes).
    pub const ADDRESS: Range<usize> = 11..27;
    /// Plaintext: IPv4 address bytes within ADDRESS.
    pub const ADDRESS_V4: Range<usize> = 11..15;
    /// Plaintext: requested seconds, u16 big-endian.
    pub const SECONDS: Range<usize> = 27..29;
    /// Plaintext: door name length.
    pub const DOOR_LEN: usize = 29;
    /// Plaintext: door name start.
    pub const DOOR: usize = 30;
}

/// The only version of the format.
pub const VERSION: u8 = 1;

/// The address a packet names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Address {
    /// Kind 4: this IPv4 address.
    V4(Ipv4Addr),
    /// Kind 6: this IPv6 address (never IPv4-mapped).
    V6(Ipv6Addr),
    /// Kind 0: the source address the server sees.
    Observed,
}

impl Address {
    /// The address kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            Address::V4(_) => 4,
            Address::V6(_) => 6,
            Address::Observed => 0,
        }
    }
}

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Self {
        match canonical_ip(ip) {
            IpAddr::V4(a) => Address::V4(a),
            IpAddr::V6(a) => Address::V6(a),
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it maps.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// What a packet asks for: the decoded plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Milliseconds since the Unix epoch when the client sealed it.
    pub timestamp_ms: u64,
    /// The address to open the door for.
    pub address: Address,
    /// Requested open time in seconds; 0 means the door's default.
    pub seconds: u16,
    /// The door to open.
    pub door: DoorName,
}

/// A plaintext that breaks a field rule of PROTOCOL §3 step 5.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// Version is not 1.
    #[error("version {0} is not 1")]
    Version(u8),
    /// Flags are not 0.
    #[error("flags {0} are not 0")]
    Flags(u8),
    /// Address kind is not 0, 4 or 6.
    #[error("address kind {0} is not 0, 4 or 6")]
    Kind(u8),
    /// Address bytes that must be zero are not.
    #[error("address bytes that must be zero are not")]
    AddressPadding,
    /// Kind 6 holds an IPv4-mapped address.
    #[error("kind 6 holds an IPv4-mapped address")]
    Ipv4Mapped,
    /// The door name breaks the rule.
    #[error("door name: {0}")]
    Door(#[from] crate::names::NameError),
    /// Bytes after the door name are not zero.
    #[error("padding after the door name is not zero")]
    Padding,
}

impl Request {
    /// The 64-byte plaintext.
    pub fn encode(&self) -> Zeroizing<[u8; PLAINTEXT_LEN]> {
        let mut p = Zeroizing::new([0u8; PLAINTEXT_LEN]);
        p[field::VERSION] = VERSION;
        p[field::FLAGS] = 0;
        p[field::TIMESTAMP].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        p[field::KIND] = self.address.kind();
        match self.address {
            Address::V4(a) => p[field::ADDRESS_V4].copy_from_slice(&a.octets()),
            Address::V6(a) => p[field::ADDRESS].copy_from_slice(&a.octets()),
            Address::Observed => {}
        }
        p[field::SECONDS].copy_from_slice(&self.seconds.to_be_bytes());
        let door = self.door.as_str().as_bytes();
        p[field::DOOR_LEN] = door.len() as u8;
        p[field::DOOR..field::DOOR + door.len()].copy_from_slice(door);
        p
    }

    /// Decodes a plaintext, checking every field rule.
    pub fn decode(p: &[u8; PLAINTEXT_LEN]) -> Result<Self, FieldError> {
        if p[field::VERSION] != VERSION {
            return Err(FieldError::Version(p[field::VERSION]));
        }
        if p[field::FLAGS] != 0 {
            return Err(FieldError::Flags(p[field::FLAGS]));
        }
        let ts = u64::from_be_bytes(array(&p[field::TIMESTAMP]));
        let addr = &p[field::ADDRESS];
        let address = match p[field::KIND] {
            0 if addr.iter().all(|&b| b == 0) => Address::Observed,
            4 if addr[4..].iter().all(|&b| b == 0) => {
                Address::V4(Ipv4Addr::from(array::<4>(&p[field::ADDRESS_V4])))
            }
            6 => {
                let a = Ipv6Addr::from(array::<16>(addr));
                if a.to_ipv4_mapped().is_some() {
                    return Err(FieldError::Ipv4Mapped);
                }
                Address::V6(a)
            }
            0 | 4 => return Err(FieldError::AddressPadding),
            k => return Err(FieldError::Kind(k)),
        };
        let seconds = u16::from_be_bytes(array(&p[field::SECONDS]));
        let len = p[field::DOOR_LEN] as usize;
        if len == 0 || len > DoorName::MAX_LEN {
            return Err(FieldError::Door(crate::names::NameError::DoorLength(len)));
        }
        let door = DoorName::from_bytes(&p[field::DOOR..field::DOOR + len])?;
        if p[field::DOOR + len..].iter().any(|&b| b != 0) {
            return Err(FieldError::Padding);
        }
        Ok(Request {
            timestamp_ms: ts,
            address,
            seconds,
            door,
        })
    }
}

fn array<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    a
}

/// The window a timestamp falls in.
pub fn window_of(timestamp_ms: u64) -> u64 {
    timestamp_ms / WINDOW_MS
}

/// The hint of window `w` for a key: first 8 bytes of HMAC-SHA256(K_hint, u64be(w)).
pub fn hint(keys: &DerivedKeys, window: u64) -> [u8; 8] {
    let mac = <Hmac<Sha256> as Mac>::new_from_slice(keys.hint.expose())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    hint_with(&mac, window)
}

/// The hint of window `w` from a prepared HMAC state.
pub(crate) fn hint_with(mac: &Hmac<Sha256>, window: u64) -> [u8; 8] {
    let mut m = mac.clone();
    m.update(&window.to_be_bytes());
    array(&m.finalize().into_bytes()[..8])
}

/// Seals a request into the 100-byte packet. `nonce` must be 12 fresh bytes
/// from the OS CSPRNG (the caller draws them: this crate does no I/O).
pub fn seal(keys: &DerivedKeys, request: &Request, nonce: [u8; 12]) -> [u8; PACKET_LEN] {
    seal_body(
        keys,
        window_of(request.timestamp_ms),
        request.encode(),
        nonce,
    )
}

/// Seals any 64-byte plaintext, valid or not, under the hint of `window`: lets a
/// fuzzer reach the field checks behind the AEAD. Never used to build real packets.
#[cfg(feature = "fuzzing")]
pub fn seal_plaintext(
    keys: &DerivedKeys,
    window: u64,
    plaintext: &[u8; PLAINTEXT_LEN],
    nonce: [u8; 12],
) -> [u8; PACKET_LEN] {
    seal_body(keys, window, Zeroizing::new(*plaintext), nonce)
}

/// Hint of `window`, nonce, `body` encrypted in place, tag.
fn seal_body(
    keys: &DerivedKeys,
    window: u64,
    mut body: Zeroizing<[u8; PLAINTEXT_LEN]>,
    nonce: [u8; 12],
) -> [u8; PACKET_LEN] {
    let mut packet = [0u8; PACKET_LEN];
    packet[field::HINT].copy_from_slice(&hint(keys, window));
    packet[field::NONCE].copy_from_slice(&nonce);
    let cipher = ChaCha20Poly1305::new(keys.aead.expose().into());
    let (aad, rest) = packet.split_at_mut(field::AAD.end);
    let tag = cipher
        .encrypt_in_place_detached((&nonce).into(), aad, &mut body[..])
        .unwrap_or_else(|_| unreachable!("64 bytes are far below the AEAD's limit"));
    rest[..PLAINTEXT_LEN].copy_from_slice(&body[..]);
    packet[field::TAG].copy_from_slice(&tag);
    packet
}

/// Opens a packet with ring's ChaCha20-Poly1305 (the server's hot path).
pub fn open_with_ring(
    key: &ring::aead::LessSafeKey,
    packet: &[u8; PACKET_LEN],
) -> Option<Zeroizing<[u8; PLAINTEXT_LEN]>> {
    let mut body = Zeroizing::new(array::<PLAINTEXT_LEN>(&packet[field::CIPHERTEXT]));
    let nonce = ring::aead::Nonce::assume_unique_for_key(array(&packet[field::NONCE]));
    let tag = ring::aead::Tag::from(array::<16>(&packet[field::TAG]));
    key.open_in_place_separate_tag(
        nonce,
        ring::aead::Aad::from(&packet[field::AAD]),
        tag,
        &mut body[..],
        0..,
    )
    .ok()?;
    Some(body)
}

/// Opens a packet with one key: the plaintext, or `None` if the tag does not verify.
pub fn open_with(
    cipher: &ChaCha20Poly1305,
    packet: &[u8; PACKET_LEN],
) -> Option<Zeroizing<[u8; PLAINTEXT_LEN]>> {
    let mut body = Zeroizing::new(array::<PLAINTEXT_LEN>(&packet[field::CIPHERTEXT]));
    let nonce: [u8; 12] = array(&packet[field::NONCE]);
    let tag: [u8; 16] = array(&packet[field::TAG]);
    cipher
        .decrypt_in_place_detached(
            (&nonce).into(),
            &packet[field::AAD],
            &mut body[..],
            (&tag).into(),
        )
        .ok()?;
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{SecretBytes, UserSecret};

    fn keys() -> DerivedKeys {
        UserSecret::new(SecretBytes::new([7; 32]))
            .server_key(&"gw".parse().unwrap_or_else(|_| unreachable!()))
            .derive()
    }

    #[test]
    fn seal_then_open_gives_back_the_request() {
        let k = keys();
        let req = Request {
            timestamp_ms: 1_764_000_000_123,
            address: Address::V4(Ipv4Addr::new(192, 0, 2, 1)),
            seconds: 60,
            door: "ssh".parse().unwrap_or_else(|_| unreachable!()),
        };
        let pkt = seal(&k, &req, [9; 12]);
        let cipher = ChaCha20Poly1305::new(k.aead.expose().into());
        let body = open_with(&cipher, &pkt).unwrap_or_else(|| unreachable!());
        assert_eq!(Request::decode(&body), Ok(req));
    }
}
