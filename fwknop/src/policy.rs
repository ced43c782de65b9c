//! fwknopd's decision for one packet against an access.conf, made the spa
//! way: the first stanza whose SOURCE admits the sender and whose keys
//! authenticate the packet decides; its OPEN_PORTS, REQUIRE_USERNAME,
//! REQUIRE_SOURCE_ADDRESS, expiry and timeouts are then applied, and the
//! address named in the packet must be the sender's own (stricter than
//! fwknopd, which opens any address a packet names). Returns a grant or a
//! denial; the caller still checks the grant's replay key against its log.

use std::net::IpAddr;

use crate::access_conf::Stanza;
use crate::fields::{AccessPort, MessageKind};
use crate::refusal::Refusal;

/// What to open, for whom and how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwknopGrant {
    /// The line of the deciding stanza's SOURCE (names it in logs).
    pub stanza_line: usize,
    /// The address to open for: always the packet's source.
    pub addr: IpAddr,
    /// The ports to open, each one allowed by the stanza.
    pub ports: Vec<AccessPort>,
    /// How long to keep them open.
    pub open_secs: u32,
    /// The client's user name, for the audit trail.
    pub username: String,
    /// Record this in the durable replay log; refuse if already there.
    pub replay_key: [u8; 32],
    /// The client's clock when it made the packet, Unix seconds (a server
    /// that lost its replay log refuses packets made before it restarted).
    pub timestamp: u64,
}

/// Why a packet opened nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denial {
    /// No stanza's SOURCE admits the sender.
    #[error("no access stanza admits source {0}")]
    NoStanzaForSource(IpAddr),
    /// No admitting stanza's keys authenticate it (junk or another key);
    /// carries the last stanza's reason.
    #[error("not authentic for any stanza: {0}")]
    NotAuthentic(Refusal),
    /// A stanza's keys authenticate it but it is malformed, old or a command.
    #[error("stanza at line {stanza_line}: {reason}")]
    Refused { stanza_line: usize, reason: Refusal },
    /// The stanza has expired (ACCESS_EXPIRE).
    #[error("stanza at line {0} has expired")]
    Expired(usize),
    /// NAT access asked; spa does no NAT.
    #[error("NAT access is not supported")]
    NatNotSupported,
    /// The packet names an address other than its source.
    #[error("packet names {named}, not its source {sender}")]
    AddressNotSource { named: IpAddr, sender: IpAddr },
    /// The packet names 0.0.0.0 under REQUIRE_SOURCE_ADDRESS.
    #[error("packet names no address (0.0.0.0) and the stanza requires one")]
    UnnamedAddress,
    /// The packet asks for a port outside OPEN_PORTS.
    #[error("port {}/{} is not in the stanza's OPEN_PORTS", .0.transport, .0.port)]
    PortNotAllowed(AccessPort),
    /// REQUIRE_USERNAME does not match.
    #[error("user {0:?} is not the stanza's REQUIRE_USERNAME")]
    WrongUser(String),
}

/// Decides one fwknop packet from `source` at `now_secs`.
pub fn admit(
    packet: &[u8],
    stanzas: &[Stanza],
    source: IpAddr,
    now_secs: u64,
    max_age_secs: u64,
) -> Result<FwknopGrant, Denial> {
    let mut last = None;
    for stanza in stanzas.iter().filter(|s| s.sources.allows(source)) {
        match crate::decode_with_max_age(packet, &stanza.keys, now_secs, max_age_secs) {
            Ok(request) => return grant(stanza, request, source, now_secs),
            Err(reason) if reason.authenticated() => {
                return Err(Denial::Refused {
                    stanza_line: stanza.line,
                    reason,
                })
            }
            Err(reason) => last = Some(reason),
        }
    }
    match last {
        Some(reason) => Err(Denial::NotAuthentic(reason)),
        None => Err(Denial::NoStanzaForSource(source)),
    }
}

fn grant(
    stanza: &Stanza,
    request: crate::FwknopRequest,
    source: IpAddr,
    now_secs: u64,
) -> Result<FwknopGrant, Denial> {
    if stanza.expires_at.is_some_and(|at| now_secs >= at) {
        return Err(Denial::Expired(stanza.line));
    }
    if request.kind != MessageKind::Access {
        return Err(Denial::NatNotSupported);
    }
    if request.allow_addr.is_unspecified() {
        if stanza.require_source_address {
            return Err(Denial::UnnamedAddress);
        }
    } else if request.allow_addr != source {
        return Err(Denial::AddressNotSource {
            named: request.allow_addr,
            sender: source,
        });
    }
    if let Some(port) = request
        .access
        .iter()
        .find(|p| !stanza.open_ports.contains(p))
    {
        return Err(Denial::PortNotAllowed(*port));
    }
    if let Some(user) = &stanza.require_username {
        if *user != request.username {
            return Err(Denial::WrongUser(request.username));
        }
    }
    let asked = request
        .client_timeout
        .filter(|t| *t > 0)
        .unwrap_or(stanza.access_timeout_secs);
    Ok(FwknopGrant {
        stanza_line: stanza.line,
        addr: source,
        ports: request.access,
        open_secs: asked.min(stanza.max_timeout_secs),
        username: request.username,
        replay_key: request.replay_key,
        timestamp: request.timestamp,
    })
}
