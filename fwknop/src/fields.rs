//! The decrypted fwknop message, `random:user:time:version:type:message
//! [:nat][:server_auth][:client_timeout]:digest`, parsed as libfko's
//! fko_decode.c does: every field checked, the inner digest verified, the
//! access message read as `IP,proto/port[,proto/port…]`. Owns the request
//! type the daemon sees and the time-window check (time passed in).

use std::net::IpAddr;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use sha2::{Digest, Sha256, Sha384, Sha512};
use spa_proto::knock::Transport;

use crate::refusal::Refusal;

const RANDOM_LEN: usize = 16;
const MAX_USERNAME_LEN: usize = 64;
const MAX_TIMESTAMP_LEN: usize = 12;
const MAX_VERSION_LEN: usize = 8;
const MAX_MESSAGE_LEN: usize = 256;
const MAX_NAT_ACCESS_LEN: usize = 128;
const MAX_SERVER_AUTH_LEN: usize = 64;
/// libfko's bound on a client timeout (`2 << 15`).
const MAX_CLIENT_TIMEOUT: u32 = 2 << 15;
/// Fields in a message, digest included (fko_limits.h MIN/MAX_SPA_FIELDS).
const MIN_FIELDS: usize = 6;
const MAX_FIELDS: usize = 9;

/// libfko encodes inner fields as unpadded base64 but decodes leniently.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Which kind of access the client asked for (fko.h message types; the
/// command type is refused during decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Type 1, or 3 with a client timeout: open ports for an address.
    Access,
    /// Types 2 and 4: forward through NAT to an internal host.
    NatAccess,
    /// Types 5 and 6: NAT to a port on the server itself.
    LocalNatAccess,
}

/// The inner digest algorithm the client chose (`fwknop -m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    Sha256,
    Sha384,
    Sha512,
}

/// One `proto/port` the packet asks to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessPort {
    pub transport: Transport,
    pub port: u16,
}

/// An authentic, well-formed, timely fwknop access request. The daemon
/// still decides: the address against the source (REQUIRE_SOURCE_ADDRESS),
/// the ports against the stanza's OPEN_PORTS, the replay key against its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwknopRequest {
    /// The 16-digit random value.
    pub random: String,
    /// The client's user name (`--spoof-user` or the login).
    pub username: String,
    /// The client's clock, Unix seconds.
    pub timestamp: u64,
    /// The client's protocol version, e.g. `3.0.0`.
    pub version: String,
    pub kind: MessageKind,
    /// The address to open for (`fwknop -a`/`-R`; `0.0.0.0` means "the source").
    pub allow_addr: IpAddr,
    /// The ports asked for (`fwknop -A`), in packet order.
    pub access: Vec<AccessPort>,
    /// The NAT target, `host,port`, for NAT kinds.
    pub nat_access: Option<String>,
    /// fwknop's optional server-auth string (unused by spa).
    pub server_auth: Option<String>,
    /// Seconds the client asks the door to stay open (`fwknop -f`).
    pub client_timeout: Option<u32>,
    pub digest: DigestKind,
    /// SHA-256 of the packet text: the key for the durable replay log.
    pub replay_key: [u8; 32],
}

/// Parses and checks a decrypted message at `now_secs`.
pub(crate) fn parse(
    plaintext: &[u8],
    now_secs: u64,
    max_age_secs: u64,
    replay_key: [u8; 32],
) -> Result<FwknopRequest, Refusal> {
    // libfko refuses anything but printable ASCII before splitting.
    if !plaintext.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(bad("message"));
    }
    let text = std::str::from_utf8(plaintext).map_err(|_| bad("message"))?;
    let (body, digest_text) = text.rsplit_once(':').ok_or(bad("field count"))?;
    let digest = verify_digest(body, digest_text)?;

    let fields: Vec<&str> = body.split(':').collect();
    if fields.len() + 1 < MIN_FIELDS || fields.len() + 1 > MAX_FIELDS {
        return Err(bad("field count"));
    }
    let random = fields[0];
    if random.len() != RANDOM_LEN || !random.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("random"));
    }
    let username = decode_text(fields[1], MAX_USERNAME_LEN, "username")?;
    if !valid_username(&username) {
        return Err(bad("username"));
    }
    let timestamp = parse_decimal(fields[2], MAX_TIMESTAMP_LEN).ok_or(bad("timestamp"))?;
    let version = fields[3];
    if version.is_empty() || version.len() > MAX_VERSION_LEN {
        return Err(bad("version"));
    }
    let message_type = parse_decimal(fields[4], 2).ok_or(bad("message type"))?;
    let rest = &fields[5..];

    // (kind, has NAT field, has client timeout), per fko.h's numbering.
    let (kind, has_nat, has_timeout) = match message_type {
        0 => return Err(Refusal::CommandMessage),
        1 => (MessageKind::Access, false, false),
        2 => (MessageKind::NatAccess, true, false),
        3 => (MessageKind::Access, false, true),
        4 => (MessageKind::NatAccess, true, true),
        5 => (MessageKind::LocalNatAccess, true, false),
        6 => (MessageKind::LocalNatAccess, true, true),
        _ => return Err(bad("message type")),
    };
    let required = 1 + usize::from(has_nat) + usize::from(has_timeout);
    if rest.len() != required && rest.len() != required + 1 {
        return Err(bad("field count"));
    }
    let has_server_auth = rest.len() == required + 1;
    let mut rest = rest.iter();
    let mut next = || rest.next().copied().ok_or(bad("field count"));

    let message = decode_text(next()?, MAX_MESSAGE_LEN, "access message")?;
    let (allow_addr, access) = parse_access_message(&message)?;
    let nat_access = if has_nat {
        let nat = decode_text(next()?, MAX_NAT_ACCESS_LEN, "NAT access")?;
        if !nat.contains(',') {
            return Err(bad("NAT access"));
        }
        Some(nat)
    } else {
        None
    };
    let server_auth = if has_server_auth {
        Some(decode_text(next()?, MAX_SERVER_AUTH_LEN, "server auth")?)
    } else {
        None
    };
    let client_timeout = if has_timeout {
        let value = parse_decimal(next()?, 5).ok_or(bad("client timeout"))?;
        match u32::try_from(value) {
            Ok(t) if t <= MAX_CLIENT_TIMEOUT => Some(t),
            _ => return Err(bad("client timeout")),
        }
    } else {
        None
    };

    check_age(timestamp, now_secs, max_age_secs)?;
    Ok(FwknopRequest {
        random: random.to_owned(),
        username,
        timestamp,
        version: version.to_owned(),
        kind,
        allow_addr,
        access,
        nat_access,
        server_auth,
        client_timeout,
        digest,
        replay_key,
    })
}

fn bad(field: &'static str) -> Refusal {
    Refusal::BadField { field }
}

/// The digest's length names its algorithm (fko_decode.c `is_valid_digest_len`).
fn verify_digest(body: &str, digest_text: &str) -> Result<DigestKind, Refusal> {
    let (kind, computed): (DigestKind, Vec<u8>) = match digest_text.len() {
        22 => return Err(Refusal::UnsupportedDigest("MD5")),
        27 => return Err(Refusal::UnsupportedDigest("SHA1")),
        43 => (DigestKind::Sha256, Sha256::digest(body).to_vec()),
        64 => (DigestKind::Sha384, Sha384::digest(body).to_vec()),
        86 => (DigestKind::Sha512, Sha512::digest(body).to_vec()),
        _ => return Err(bad("digest")),
    };
    let expected = base64::engine::general_purpose::STANDARD_NO_PAD.encode(computed);
    if expected.as_bytes() == digest_text.as_bytes() {
        Ok(kind)
    } else {
        Err(Refusal::DigestMismatch)
    }
}

/// A base64 field decoded to printable text of at most `max` characters.
fn decode_text(field: &str, max: usize, name: &'static str) -> Result<String, Refusal> {
    if field.is_empty() || field.len() > max {
        return Err(bad(name));
    }
    let bytes = LENIENT_B64.decode(field).map_err(|_| bad(name))?;
    if bytes.is_empty() || !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(bad(name));
    }
    String::from_utf8(bytes).map_err(|_| bad(name))
}

/// libfko's `validate_username`: printable, none of `"/\[]:;|=,+*?<>`.
fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USERNAME_LEN
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || ((0x20..=0x7e).contains(&b) && !b"\"/\\[]:;|=,+*?<>".contains(&b))
        })
}

fn parse_decimal(text: &str, max_len: usize) -> Option<u64> {
    if text.is_empty() || text.len() > max_len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `IP,proto/port[,proto/port…]` (fko_message.c `validate_access_msg`).
fn parse_access_message(message: &str) -> Result<(IpAddr, Vec<AccessPort>), Refusal> {
    let mut parts = message.split(',');
    let addr: IpAddr = parts
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or(bad("access message address"))?;
    let mut access = Vec::new();
    for spec in parts {
        let (proto, port) = spec.split_once('/').ok_or(bad("access message port"))?;
        let transport: Transport = proto.parse().map_err(|_| bad("access message protocol"))?;
        let port = parse_decimal(port, 5)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or(bad("access message port"))?;
        access.push(AccessPort { transport, port });
    }
    if access.is_empty() {
        return Err(bad("access message port"));
    }
    Ok((addr, access))
}

/// fwknopd's MAX_SPA_PACKET_AGE, applied both ways.
fn check_age(timestamp: u64, now_secs: u64, max_secs: u64) -> Result<(), Refusal> {
    if now_secs >= timestamp {
        let age_secs = now_secs - timestamp;
        if age_secs > max_secs {
            return Err(Refusal::TooOld { age_secs, max_secs });
        }
    } else {
        let ahead_secs = timestamp - now_secs;
        if ahead_secs > max_secs {
            return Err(Refusal::FromFuture {
                ahead_secs,
                max_secs,
            });
        }
    }
    Ok(())
}
