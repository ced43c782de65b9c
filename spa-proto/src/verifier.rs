//! The one entry point for a received datagram (PROTOCOL §3): takes the bytes,
//! the IP source and the wall clock, and returns either a grant (who, which
//! door, which address, how long) or the reason it was dropped. Owns the
//! keyring, the hint table, the replay cache and the door policies.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::clock_skew::{ClockSkew, SkewDiagnosis};
use crate::hint_table::HintTable;
use crate::keyring::{KeyIndex, Keyring};
use crate::names::DoorName;
use crate::packet::{canonical_ip, field, open_with_ring, window_of, Address, Request, PACKET_LEN};
use crate::replay::{ReplayCache, ReplayRecord};

/// Why a datagram was dropped: one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Reason {
    /// Payload is not 100 bytes.
    Length,
    /// No enabled key has this hint in the windows around now.
    Hint,
    /// No candidate key opens it.
    Aead,
    /// Every candidate that could open it was a live replay entry.
    Replay,
    /// A plaintext field breaks a rule.
    Field,
    /// Timestamp outside `now ± skew`, or not in the hint's window.
    Window,
    /// The named address is not the source (or kind 0 is not allowed).
    Address,
    /// The door does not exist or the key may not open it.
    Door,
    /// The key's replay entries are at the cap.
    Cap,
    /// Valid, but its records could not be made durable (a full disk, an
    /// I/O error): nothing opened. Never a verifier verdict; spad counts it.
    Storage,
    /// A `Hint` drop that [`Verifier::diagnose_clock`] found sealed by a known
    /// key whose clock is off by more than the skew. Never a verdict of
    /// `verify` (PROTOCOL §3 says `hint`); spad counts it instead of `hint`.
    Clock,
}

impl Reason {
    /// Every reason, in protocol order.
    pub const ALL: [Reason; 11] = [
        Reason::Length,
        Reason::Hint,
        Reason::Aead,
        Reason::Replay,
        Reason::Field,
        Reason::Window,
        Reason::Address,
        Reason::Door,
        Reason::Cap,
        Reason::Storage,
        Reason::Clock,
    ];

    /// The reason's name as in PROTOCOL.md and the test vectors.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Length => "length",
            Reason::Hint => "hint",
            Reason::Aead => "aead",
            Reason::Replay => "replay",
            Reason::Field => "field",
            Reason::Window => "window",
            Reason::Address => "address",
            Reason::Door => "door",
            Reason::Cap => "cap",
            Reason::Storage => "storage",
            Reason::Clock => "clock",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a door may be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorPolicy {
    /// Seconds when the packet asks for 0.
    pub default_secs: u32,
    /// The most a packet may get.
    pub max_secs: u32,
}

/// Settings of the verifier.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Allowed clock difference, ms (1000..=300000).
    pub skew_ms: u64,
    /// Live replay entries per key.
    pub cap: usize,
    /// The SPA doors and their time limits.
    pub doors: BTreeMap<DoorName, DoorPolicy>,
}

/// An authorized request: what spad must do once the replay record is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The key's user.
    pub user: String,
    /// The key's index in the keyring.
    pub key: KeyIndex,
    /// The door to open.
    pub door: DoorName,
    /// The address to open it for.
    pub addr: IpAddr,
    /// For how long.
    pub seconds: u32,
    /// The `now` used for this datagram.
    pub now_ms: u64,
    /// The replay entry to make durable BEFORE opening (PROTOCOL §3 step 9).
    pub record: ReplayRecord,
}

/// What became of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Open the door.
    Grant(Grant),
    /// Silently drop it, counting the reason.
    Drop(Reason),
}

/// Verifies datagrams against one gateway's keys, doors and replay cache.
#[derive(Debug)]
pub struct Verifier {
    config: VerifierConfig,
    keyring: Keyring,
    hints: HintTable,
    replay: ReplayCache,
    /// Built on the first diagnosis after a start or reload (a verifier
    /// that never sees a skewed clock never pays for its table).
    skewed: Option<SkewDiagnosis>,
}

impl Verifier {
    /// A verifier over `keyring` with an existing replay cache.
    pub fn new(config: VerifierConfig, keyring: Keyring, replay: ReplayCache) -> Self {
        let now = replay.high_water_ms();
        let hints = HintTable::build(&keyring, now, config.skew_ms);
        Verifier {
            config,
            keyring,
            hints,
            replay,
            skewed: None,
        }
    }

    /// Replaces keys and doors (a reload). The replay cache is kept: it names keys by id.
    /// A raised skew lengthens the live replay entries (§3 step 9).
    pub fn reload(&mut self, config: VerifierConfig, keyring: Keyring, wall_ms: u64) {
        let now = self.replay.advance(wall_ms);
        self.replay.set_skew(config.skew_ms);
        self.replay.set_cap(config.cap);
        self.hints = HintTable::build(&keyring, now, config.skew_ms);
        self.skewed = None;
        self.config = config;
        self.keyring = keyring;
    }

    /// The keyring in use.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The replay cache (for compaction and persistence).
    pub fn replay(&self) -> &ReplayCache {
        &self.replay
    }

    /// Takes back the replay entry of a grant whose record could not be made
    /// durable: nothing opened, so the sender may try the same packet again.
    pub fn forget(&mut self, record: &ReplayRecord) {
        self.replay.forget(&record.key, &record.nonce);
    }

    /// Brings the hint table to `wall_ms` and forgets dead replay entries; spad may
    /// call this when a window passes so that no datagram pays for the rebuild.
    pub fn tick(&mut self, wall_ms: u64) {
        let now = self.replay.advance(wall_ms);
        self.hints.refresh(&self.keyring, now, self.config.skew_ms);
        if let Some(skewed) = &mut self.skewed {
            skewed.refresh(&self.keyring, now, self.config.skew_ms);
        }
        self.replay.purge(now);
    }

    /// For a datagram [`verify`](Self::verify) dropped as [`Reason::Hint`]:
    /// whether a known key sealed it with a clock more than the skew off, and
    /// by how much (see `clock_skew`). One hash lookup for junk; never grants,
    /// never touches the replay cache (its clock is read, not advanced).
    pub fn diagnose_clock(&mut self, datagram: &[u8], wall_ms: u64) -> Option<ClockSkew> {
        let packet: &[u8; PACKET_LEN] = datagram.try_into().ok()?;
        let now = self.replay.high_water_ms().max(wall_ms);
        let (keyring, skew_ms) = (&self.keyring, self.config.skew_ms);
        self.skewed
            .get_or_insert_with(|| SkewDiagnosis::build(keyring, now, skew_ms))
            .diagnose(keyring, packet, now, skew_ms)
    }

    /// Judges one datagram (PROTOCOL §3, in order).
    pub fn verify(&mut self, datagram: &[u8], source: IpAddr, wall_ms: u64) -> Verdict {
        let now = self.replay.advance(wall_ms);
        match self.judge(datagram, source, now) {
            Ok(grant) => Verdict::Grant(grant),
            Err(reason) => Verdict::Drop(reason),
        }
    }

    fn judge(&mut self, datagram: &[u8], source: IpAddr, now: u64) -> Result<Grant, Reason> {
        // 1. Length.
        let packet: &[u8; PACKET_LEN] = datagram.try_into().map_err(|_| Reason::Length)?;
        // 2. Hint.
        self.hints.refresh(&self.keyring, now, self.config.skew_ms);
        let mut hint = [0u8; 8];
        hint.copy_from_slice(&packet[field::HINT]);
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&packet[field::NONCE]);
        let candidates = self.hints.lookup(&hint);
        // 3–4. Replay check (read only), then the AEAD, first success wins.
        let mut skipped = false;
        let mut usable = false;
        let mut opened = None;
        for c in candidates {
            let Some(k) = self.keyring.get(c.key) else {
                continue;
            };
            if !k.entry.usable_at(now) {
                continue;
            }
            usable = true;
            if self.replay.contains(&k.id, &nonce, now) {
                skipped = true;
                continue;
            }
            if let Some(body) = open_with_ring(&k.aead, packet) {
                opened = Some((c, body));
                break;
            }
        }
        let Some((cand, body)) = opened else {
            return Err(match (usable, skipped) {
                (false, _) => Reason::Hint,
                (true, true) => Reason::Replay,
                (true, false) => Reason::Aead,
            });
        };
        let Some(key) = self.keyring.get(cand.key) else {
            return Err(Reason::Hint);
        };
        // 5. Fields.
        let request = Request::decode(&body).map_err(|_| Reason::Field)?;
        // 6. Window and skew, without overflow.
        let ts = request.timestamp_ms;
        let skew = self.config.skew_ms;
        if window_of(ts) != cand.window
            || ts < now.saturating_sub(skew)
            || ts > now.saturating_add(skew)
            || ts <= self.replay.refuse_until_ms()
        {
            return Err(Reason::Window);
        }
        // 7. Address.
        let source = canonical_ip(source);
        let addr = match request.address {
            Address::V4(a) if source == IpAddr::V4(a) => source,
            Address::V6(a) if source == IpAddr::V6(a) => source,
            Address::Observed if key.entry.allow_observed => source,
            _ => return Err(Reason::Address),
        };
        // 8. Door.
        let policy = self.config.doors.get(&request.door).ok_or(Reason::Door)?;
        if !key.entry.doors.contains(&request.door) {
            return Err(Reason::Door);
        }
        let asked = match request.seconds {
            0 => policy.default_secs,
            s => u32::from(s),
        };
        let seconds = asked.min(policy.max_secs);
        // 9. Replay insert; the caller makes `record` durable before any effect.
        let user = key.entry.user.clone();
        let key_id = key.id;
        let record = self
            .replay
            .insert(key_id, nonce, ts, now)
            .map_err(|_| Reason::Cap)?;
        Ok(Grant {
            user,
            key: cand.key,
            door: request.door,
            addr,
            seconds,
            now_ms: now,
            record,
        })
    }
}
