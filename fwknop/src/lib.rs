//! fwknop compatibility for spa, sans-IO: decodes fwknop 2.x/3.0.0 SPA
//! packets (base64 text, Rijndael/AES-256-CBC with fwknop's MD5 key
//! derivation, HMAC encrypt-then-MAC) and reads fwknopd's access.conf.
//! It reads no clock and touches no file or socket: the caller passes the
//! packet text, the stanza's keys and the time, and gets back a request or a
//! reason.
//!
//! Only what is safe carries over: HMAC is always required and checked
//! first, in constant time, before anything is decrypted; GPG packets and
//! command-execution messages are refused.
//!
//! For a daemon: read access.conf once with [`access_conf::parse`] (keep
//! `stanzas`, report `notes`), then for each UDP payload on fwknop's port
//! call [`admit`]`(payload, &stanzas, source_ip, now_secs, max_age_secs)`.
//! An `Ok(`[`FwknopGrant`]`)` says which ports to open for which address
//! and how long; before opening, record `grant.replay_key` in the durable
//! replay log and refuse if it was already there. A [`Denial`] says why
//! nothing opened. [`decode`] is the lower layer: one packet, one stanza's
//! keys.

pub mod access_conf;
mod envelope;
mod fields;
pub mod keys;
mod policy;
mod refusal;
#[cfg(feature = "seal")]
pub mod seal;

use sha2::{Digest, Sha256};

pub use fields::{AccessPort, DigestKind, FwknopRequest, MessageKind};
pub use keys::{FwknopKeys, HmacDigest, KeyError};
pub use policy::{admit, Denial, FwknopGrant};
pub use refusal::Refusal;

/// fwknopd's default `MAX_SPA_PACKET_AGE` (fwknopd_common.h): a packet whose
/// timestamp is further than this from the server's clock is refused.
pub const DEFAULT_MAX_AGE_SECS: u64 = 120;

/// The UDP port fwknop sends to by default.
pub const DEFAULT_FWKNOP_PORT: u16 = 62201;

/// Decodes one fwknop SPA packet (the UDP payload, as text) with one access
/// stanza's keys, at `now_secs` (Unix seconds), refusing packets older or
/// newer than [`DEFAULT_MAX_AGE_SECS`].
///
/// Order of checks: length and alphabet, then the HMAC (constant time), and
/// only then decryption and the fields. A [`Refusal`] for which
/// [`Refusal::authenticated`] is false means "not for these keys": a caller
/// holding several stanzas tries the next one.
pub fn decode(packet: &[u8], keys: &FwknopKeys, now_secs: u64) -> Result<FwknopRequest, Refusal> {
    decode_with_max_age(packet, keys, now_secs, DEFAULT_MAX_AGE_SECS)
}

/// [`decode`] with fwknopd's `MAX_SPA_PACKET_AGE` set to `max_age_secs`.
pub fn decode_with_max_age(
    packet: &[u8],
    keys: &FwknopKeys,
    now_secs: u64,
    max_age_secs: u64,
) -> Result<FwknopRequest, Refusal> {
    let plaintext = envelope::open(packet, keys)?;
    fields::parse(&plaintext, now_secs, max_age_secs, replay_key(packet))
}

/// The replay-log key of a packet: SHA-256 of its text, as fwknopd keys its
/// digest cache. Unambiguous because the HMAC covers every byte of the text
/// and its own base64 must be canonical.
pub fn replay_key(packet: &[u8]) -> [u8; 32] {
    Sha256::digest(packet).into()
}
