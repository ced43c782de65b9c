//! Grants from another protocol (fwknop) that name ports rather than a door:
//! what such a grant carries, and the replay set that knows each accepted
//! packet by a digest of its bytes. Sans-IO like the rest of the gateway;
//! the gateway decides (`Gateway::handle_port_grant`), this module holds
//! the data.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::knock::Transport;

/// Accepted packets the digest set holds at most: reaching it takes this
/// many authentic packets within their age limit, and a full set refuses
/// new grants (fail closed) rather than forgetting a live entry.
pub const DIGEST_CAP: usize = 16_384;

/// An authenticated request for ports, from a decoder outside spa-proto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortGrant {
    /// The packet's replay identity (SHA-256 of its bytes).
    pub digest: [u8; 32],
    /// When the client made the packet (wall ms, its clock).
    pub timestamp_ms: u64,
    /// Wall-clock time after which a replay of the packet fails its own age
    /// check anyway, so the digest need not be kept (ms since the epoch).
    pub replay_until_ms: u64,
    /// The address to open for.
    pub addr: IpAddr,
    /// Who asked, for the audit trail.
    pub user: String,
    /// The ports asked for; each must be some door's one port.
    pub ports: Vec<(Transport, u16)>,
    /// For how long; 0 means each door's default.
    pub seconds: u32,
}

/// Formats ports as `tcp/22,udp/53` for logs.
pub fn ports_text(ports: &[(Transport, u16)]) -> String {
    ports
        .iter()
        .map(|(t, p)| format!("{}/{p}", t.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Digests of accepted packets, each live until its `replay_until_ms`.
#[derive(Debug, Clone, Default)]
pub(super) struct DigestSet {
    live: HashMap<[u8; 32], u64>,
}

impl DigestSet {
    /// Forgets entries whose time has passed.
    pub(super) fn purge(&mut self, wall_ms: u64) {
        self.live.retain(|_, until| *until >= wall_ms);
    }

    /// Whether `digest` was accepted and is still live.
    pub(super) fn contains(&self, digest: &[u8; 32], wall_ms: u64) -> bool {
        self.live.get(digest).is_some_and(|until| *until >= wall_ms)
    }

    /// Whether a new entry would exceed [`DIGEST_CAP`].
    pub(super) fn is_full(&self) -> bool {
        self.live.len() >= DIGEST_CAP
    }

    /// Records `digest` until `until_ms` (a later time wins).
    pub(super) fn insert(&mut self, digest: [u8; 32], until_ms: u64) {
        let e = self.live.entry(digest).or_insert(until_ms);
        *e = (*e).max(until_ms);
    }

    /// Takes an entry back (its grant's records did not become durable).
    pub(super) fn forget(&mut self, digest: &[u8; 32]) {
        self.live.remove(digest);
    }

    /// The live entries, for the journal's compaction.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8; 32], &u64)> {
        self.live.iter()
    }
}
