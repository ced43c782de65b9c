//! The fwknop door the fwknop fuzz targets judge against: a fixed access.conf
//! (the decoder tests' client keys on a network stanza, another key on an
//! `ANY` stanza that requires a named address, a stanza whose MAX_FW_TIMEOUT
//! caps a longer FW_ACCESS_TIMEOUT, an expired one), a few senders, and
//! [`judge`], which runs `spa_fwknop::admit` and checks every answer against
//! what the stanzas allow and against an HMAC computed here, apart from the
//! decoder.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use spa_fwknop::access_conf::{self, NoteKind, Stanza, MAX_FW_TIMEOUT_SECS};
use spa_fwknop::{admit, replay_key, Denial, FwknopGrant, DEFAULT_MAX_AGE_SECS};

/// The server's clock: the fixtures' packets (fwknop/tests/fixtures) were
/// made at 1796129212–3, so they are seeds that open.
pub const NOW_SECS: u64 = 1_796_129_212;

/// The fixtures' Rijndael key and HMAC-SHA256 key (raw bytes).
pub fn client_keys() -> &'static (Vec<u8>, Vec<u8>) {
    static KEYS: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let decode = |text: &str| {
            STANDARD
                .decode(text)
                .unwrap_or_else(|_| unreachable!("fixed base64"))
        };
        (
            decode("wHCG6pRmYWN2ipv7Ebp+D8q1lEZ8mXVLsuFXA/Fp6oY="),
            decode("Mzo0rAOxwEHxqy0d5FzwqKpxtmRqg0cx3nAwzHp5Zc1LVn5YjzFuuNQuH3GYhEx3aqQ/SZ3GECHRT+f4jhsN6w=="),
        )
    })
}

/// The `ANY` stanza's keys.
pub const OTHER_KEYS: ([u8; 32], [u8; 64]) = ([0x11; 32], [0x22; 64]);
/// Keys no stanza has: what they seal is never authentic here.
pub const UNKNOWN_KEYS: ([u8; 32], [u8; 64]) = ([0x33; 32], [0x44; 64]);

/// The access.conf: stanzas at lines 2, 10, 16 and 22.
pub fn access_conf_text() -> String {
    let (key, hmac) = client_keys();
    let (b64_key, b64_hmac) = (STANDARD.encode(key), STANDARD.encode(hmac));
    let (other_key, other_hmac) = (STANDARD.encode(OTHER_KEYS.0), STANDARD.encode(OTHER_KEYS.1));
    format!(
        "# the client's keys, from two networks\n\
         SOURCE 192.0.2.0/24, 2001:db8::/32\n\
         OPEN_PORTS tcp/22, udp/53\n\
         KEY_BASE64 {b64_key}\n\
         HMAC_KEY_BASE64 {b64_hmac}\n\
         FW_ACCESS_TIMEOUT 30\n\
         MAX_FW_TIMEOUT 120\n\
         REQUIRE_USERNAME root\n\
         \n\
         SOURCE ANY\n\
         OPEN_PORTS tcp/22, tcp/443, udp/1194\n\
         KEY_BASE64 {other_key}\n\
         HMAC_KEY_BASE64 {other_hmac}\n\
         REQUIRE_SOURCE_ADDRESS Y\n\
         \n\
         SOURCE 198.51.100.0/24\n\
         OPEN_PORTS tcp/22, tcp/8443\n\
         KEY_BASE64 {b64_key}\n\
         HMAC_KEY_BASE64 {b64_hmac}\n\
         FW_ACCESS_TIMEOUT 900\n\
         MAX_FW_TIMEOUT 60\n\
         SOURCE 203.0.113.0/24\n\
         OPEN_PORTS tcp/22\n\
         KEY_BASE64 {b64_key}\n\
         HMAC_KEY_BASE64 {b64_hmac}\n\
         ACCESS_EXPIRE_EPOCH {}\n",
        NOW_SECS - 1
    )
}

/// The stanzas, read once, each with its raw HMAC-SHA256 key (for the
/// independent check of authenticity).
pub fn stanzas() -> &'static [(Stanza, Vec<u8>)] {
    static STANZAS: OnceLock<Vec<(Stanza, Vec<u8>)>> = OnceLock::new();
    STANZAS.get_or_init(|| {
        let conf = access_conf::parse(&access_conf_text());
        assert!(
            conf.notes.iter().all(|n| n.kind != NoteKind::StanzaRefused),
            "{:?}",
            conf.notes
        );
        assert_eq!(conf.stanzas.len(), 4, "{:?}", conf.notes);
        let hmacs = [
            client_keys().1.clone(),
            OTHER_KEYS.1.to_vec(),
            client_keys().1.clone(),
            client_keys().1.clone(),
        ];
        conf.stanzas.into_iter().zip(hmacs).collect()
    })
}

/// Senders: in stanza 1's networks (v4, v6), its v4 address IPv4-mapped, in
/// stanza 3's network, in the expired stanza's, and elsewhere.
pub fn source(index: u8) -> IpAddr {
    match index % 6 {
        0 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        1 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
        2 => IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped()),
        3 => IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
        4 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
        _ => IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)),
    }
}

/// The server's clock `shift` seconds away from [`NOW_SECS`].
pub fn now(shift: i16) -> u64 {
    NOW_SECS.saturating_add_signed(i64::from(shift))
}

/// True when `packet` ends in the HMAC-SHA256 (under `hmac_key`) of its text
/// with the `U2FsdGVkX1` prefix restored: fwknop's authentication, computed
/// here without the decoder.
pub fn authentic(packet: &[u8], hmac_key: &[u8]) -> bool {
    const TAG_LEN: usize = 43;
    if packet.len() <= TAG_LEN {
        return false;
    }
    let (body, tag) = packet.split_at(packet.len() - TAG_LEN);
    let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(hmac_key) else {
        return false;
    };
    mac.update(b"U2FsdGVkX1");
    mac.update(body);
    STANDARD_NO_PAD
        .encode(mac.finalize().into_bytes())
        .as_bytes()
        == tag
}

/// Runs `admit` for `packet` from `source` at `now` over the stanzas and
/// panics if the answer breaks an invariant: a grant names the sender, only
/// ports of the deciding stanza's OPEN_PORTS, an open time within its
/// MAX_FW_TIMEOUT, its user, no expired stanza; the deciding stanza is the
/// first whose SOURCE admits the sender and whose keys authenticate the
/// packet; an answer that needs an authentic packet (a grant or any
/// denial but "not authentic" / "no stanza") comes only for a packet a
/// stanza admitting the sender authenticates. `hmacs` gives each stanza's
/// raw HMAC key when the caller knows them (for fuzzed access.conf texts it
/// does not). Returns the answer, for reports.
pub fn judge(
    packet: &[u8],
    stanzas: &[Stanza],
    hmacs: Option<&[Vec<u8>]>,
    source: IpAddr,
    now: u64,
) -> Result<FwknopGrant, Denial> {
    let answer = admit(packet, stanzas, source, now, DEFAULT_MAX_AGE_SECS);
    let admitting = || {
        stanzas
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sources.allows(source))
    };
    let authentic_at = |line: usize| -> Option<bool> {
        let hmacs = hmacs?;
        let (i, _) = stanzas.iter().enumerate().find(|(_, s)| s.line == line)?;
        Some(authentic(packet, &hmacs[i]))
    };
    // The first admitting stanza whose keys authenticate the packet.
    let first_authentic = hmacs.and_then(|h| {
        admitting()
            .find(|(i, _)| authentic(packet, &h[*i]))
            .map(|(_, s)| s.line)
    });
    let decided = |line: usize| {
        let stanza = stanzas
            .iter()
            .find(|s| s.line == line)
            .unwrap_or_else(|| panic!("decided by line {line}, which starts no stanza"));
        assert!(
            stanza.sources.allows(source),
            "stanza {line} does not admit {source}"
        );
        if hmacs.is_some() {
            assert_eq!(
                authentic_at(line),
                Some(true),
                "not authentic for stanza {line}"
            );
            assert_eq!(
                first_authentic,
                Some(line),
                "not the first authentic stanza"
            );
        }
        stanza
    };
    match &answer {
        Ok(grant) => {
            let stanza = decided(grant.stanza_line);
            assert_eq!(
                grant.addr, source,
                "grant for another address than the sender"
            );
            for port in &grant.ports {
                assert!(
                    stanza.open_ports.contains(port),
                    "{port:?} not in OPEN_PORTS {:?}",
                    stanza.open_ports
                );
            }
            assert!(grant.open_secs <= stanza.max_timeout_secs, "{grant:?}");
            assert!(grant.open_secs <= MAX_FW_TIMEOUT_SECS);
            assert!(grant.open_secs >= 1, "a grant for no time");
            assert!(
                stanza.expires_at.is_none_or(|at| now < at),
                "expired stanza granted"
            );
            if let Some(user) = &stanza.require_username {
                assert_eq!(&grant.username, user);
            }
            assert_eq!(grant.replay_key, replay_key(packet));
        }
        Err(Denial::Refused {
            stanza_line,
            reason,
        }) => {
            assert!(reason.authenticated(), "{reason}");
            decided(*stanza_line);
        }
        Err(Denial::Expired(line)) => {
            let stanza = decided(*line);
            assert!(stanza.expires_at.is_some_and(|at| now >= at));
        }
        Err(
            Denial::NatNotSupported
            | Denial::AddressNotSource { .. }
            | Denial::UnnamedAddress
            | Denial::PortNotAllowed(_)
            | Denial::WrongUser(_),
        ) => {
            if hmacs.is_some() {
                assert!(
                    first_authentic.is_some(),
                    "{answer:?} for a packet no stanza authenticates"
                );
            }
            if let Err(Denial::AddressNotSource { sender, named }) = &answer {
                assert_eq!(*sender, source);
                assert_ne!(named, sender);
            }
        }
        Err(Denial::NotAuthentic(reason)) => {
            assert!(!reason.authenticated(), "{reason}");
            assert!(admitting().next().is_some());
        }
        Err(Denial::NoStanzaForSource(ip)) => {
            assert_eq!(*ip, source);
            assert!(admitting().next().is_none());
        }
        Err(other) => panic!("a denial the harness does not know: {other:?}"),
    }
    answer
}

/// `SPA_FUZZ_REPORT=1`: print each answer's kind (docs/fuzzing.md).
pub fn report(answer: &Result<FwknopGrant, Denial>) {
    static ON: OnceLock<bool> = OnceLock::new();
    if !*ON.get_or_init(|| std::env::var_os("SPA_FUZZ_REPORT").is_some()) {
        return;
    }
    let kind = match answer {
        Ok(_) => "grant".to_owned(),
        Err(Denial::Refused { reason, .. }) => {
            let text = format!("{reason:?}");
            format!(
                "refused {}",
                text.split([' ', '{', '(']).next().unwrap_or("")
            )
        }
        Err(Denial::NotAuthentic(reason)) => {
            let text = format!("{reason:?}");
            format!(
                "not-authentic {}",
                text.split([' ', '{', '(']).next().unwrap_or("")
            )
        }
        Err(other) => {
            let text = format!("{other:?}");
            text.split([' ', '{', '(']).next().unwrap_or("").to_owned()
        }
    };
    eprintln!("spa-fuzz: {kind}");
}
