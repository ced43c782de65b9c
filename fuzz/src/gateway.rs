//! The gateway the verifier targets judge against: the shared vectors' server
//! (`gw1.example.net`, doors ssh and admin) with a few keys — enabled and allowed
//! on ssh, allowed on kind 0, expired, revoked — so fuzzed packets can reach every
//! step of PROTOCOL §3.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::OnceLock;

use chacha20poly1305::{ChaCha20Poly1305, KeyInit};

use spa_proto::packet::{self, canonical_ip, Request, PACKET_LEN};
use spa_proto::replay::ReplayCache;
use spa_proto::{
    DerivedKeys, DoorName, DoorPolicy, Grant, KeyEntry, KeyId, Keyring, Reason, SecretBytes,
    ServerId, UserSecret, Verdict, Verifier, VerifierConfig,
};

/// Allowed clock skew, as in the vectors.
pub const SKEW_MS: u64 = 30_000;
/// Live replay entries per key: small, so fuzzing reaches the cap.
pub const CAP: usize = 4;
/// A `now` near the vectors' timestamps.
pub const BASE_NOW_MS: u64 = 1_764_000_000_000;
/// The expired key stops working here.
pub const EXPIRY_MS: u64 = BASE_NOW_MS + 60_000;

/// The users' secrets, in keyring order: the shared vectors' secret (so their
/// packets are seeds that open), then three more.
pub const SECRETS: [[u8; 32]; 4] = [VECTOR_SECRET, [2; 32], [3; 32], [4; 32]];

/// `secrets[0]` of ../shared/spa1-vectors.json (bytes 0, 1, …, 31).
const VECTOR_SECRET: [u8; 32] = {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = i as u8;
        i += 1;
    }
    s
};

fn name(text: &str) -> DoorName {
    text.parse()
        .unwrap_or_else(|_| unreachable!("fixed door names are valid"))
}

/// The gateway's server id.
pub fn server_id() -> ServerId {
    "gw1.example.net"
        .parse()
        .unwrap_or_else(|_| unreachable!("fixed server id is valid"))
}

/// The wire keys of user `index` of [`SECRETS`] (derived once: HKDF is slow);
/// an index past the keyring gives a key the gateway does not know.
pub fn derived(index: usize) -> &'static DerivedKeys {
    static KEYS: OnceLock<Vec<DerivedKeys>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        SECRETS
            .iter()
            .chain([&[99u8; 32]])
            .map(|s| {
                UserSecret::new(SecretBytes::new(*s))
                    .server_key(&server_id())
                    .derive()
            })
            .collect()
    });
    &keys[index.min(SECRETS.len())]
}

/// Four keys: 0 (the vectors' key) may open ssh; 1 may open ssh and admin and use
/// kind 0; 2 expires at [`EXPIRY_MS`]; 3 is revoked.
pub fn keyring() -> Keyring {
    let entry =
        |index: usize, doors: &[&str], observed: bool, expires: Option<u64>, enabled| KeyEntry {
            user: format!("user{index}"),
            key: UserSecret::new(SecretBytes::new(SECRETS[index])).server_key(&server_id()),
            doors: doors.iter().map(|d| name(d)).collect(),
            allow_observed: observed,
            expires_at_ms: expires,
            enabled,
        };
    Keyring::new([
        entry(0, &["ssh"], false, None, true),
        entry(1, &["ssh", "admin"], true, None, true),
        entry(2, &["ssh"], false, Some(EXPIRY_MS), true),
        entry(3, &["ssh"], false, None, false),
    ])
}

/// Door policies: ssh (30 s default, 300 s max) and admin (0 default, 5 s max).
pub fn config() -> VerifierConfig {
    let doors: BTreeMap<_, _> = [
        (
            name("ssh"),
            DoorPolicy {
                default_secs: 30,
                max_secs: 300,
            },
        ),
        (
            name("admin"),
            DoorPolicy {
                default_secs: 0,
                max_secs: 5,
            },
        ),
    ]
    .into_iter()
    .collect();
    VerifierConfig {
        skew_ms: SKEW_MS,
        cap: CAP,
        doors,
    }
}

/// A fresh verifier over [`keyring`] (derived once per process: HKDF is slow)
/// with an empty replay cache.
pub fn verifier() -> Verifier {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    let keyring = KEYRING.get_or_init(keyring).clone();
    Verifier::new(config(), keyring, ReplayCache::new(CAP, SKEW_MS))
}

/// The source of a datagram: a kind byte (0 IPv4, 1 IPv6, 2 IPv4-mapped IPv6,
/// else the address the packet names) and its address bytes.
pub fn read_source(input: &mut Reader<'_>, named: Option<IpAddr>) -> Option<IpAddr> {
    Some(match input.u8()? % 4 {
        0 => IpAddr::from(input.array::<4>()?),
        1 => IpAddr::from(input.array::<16>()?),
        2 => IpAddr::V6(std::net::Ipv4Addr::from(input.array::<4>()?).to_ipv6_mapped()),
        _ => named.unwrap_or(IpAddr::from([203, 0, 113, 7])),
    })
}

/// Reads fixed-layout records from a fuzz input, so seeds can be written by hand
/// (`fuzz/seeds/make.py`) from the shared vectors.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// The next `n` bytes, or `None` at the end.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.data.len() < n {
            return None;
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    /// What is left, without consuming it.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian i32.
    pub fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.array()?))
    }
}

/// Runs datagrams through one verifier and asserts, for every verdict, what any
/// accepted packet must satisfy (PROTOCOL §3): the key may be used now and may open
/// the door, the address is the source, the time is within the door's maximum, the
/// verifier's clock never goes back, a (key, nonce) is granted again only after its first use died, the
/// replay cache stays under its cap.
#[derive(Debug)]
pub struct Judge {
    verifier: Verifier,
    last_now_ms: u64,
    granted: HashMap<(KeyId, [u8; 12]), u64>,
    /// Verdicts so far, by reason (`None`: granted).
    pub verdicts: BTreeMap<Option<Reason>, usize>,
}

impl Default for Judge {
    fn default() -> Self {
        Self::new()
    }
}

impl Judge {
    /// A judge over a fresh [`verifier`].
    pub fn new() -> Self {
        Judge {
            verifier: verifier(),
            last_now_ms: 0,
            granted: HashMap::new(),
            verdicts: BTreeMap::new(),
        }
    }

    /// Verifies one datagram from `source` at `wall_ms` and checks the verdict.
    pub fn judge(&mut self, datagram: &[u8], source: IpAddr, wall_ms: u64) -> Verdict {
        let verdict = self.verifier.verify(datagram, source, wall_ms);
        match &verdict {
            Verdict::Grant(grant) => {
                self.check_grant(grant, datagram, source, wall_ms);
                *self.verdicts.entry(None).or_default() += 1;
            }
            Verdict::Drop(reason) => *self.verdicts.entry(Some(*reason)).or_default() += 1,
        }
        self.after(wall_ms);
        verdict
    }

    /// Moves the verifier's clock (`tick`) and checks it did not go back.
    pub fn tick(&mut self, wall_ms: u64) {
        self.verifier.tick(wall_ms);
        self.after(wall_ms);
    }

    fn after(&mut self, wall_ms: u64) {
        let now = self.verifier.replay().high_water_ms();
        assert!(now >= self.last_now_ms, "clock went back");
        assert!(now >= wall_ms, "clock behind the wall clock");
        self.last_now_ms = now;
        assert!(
            self.verifier.replay().live_len(now) <= CAP * self.verifier.keyring().len(),
            "replay cache above its cap"
        );
    }

    fn check_grant(&mut self, grant: &Grant, datagram: &[u8], source: IpAddr, wall_ms: u64) {
        assert_eq!(datagram.len(), PACKET_LEN);
        assert!(grant.now_ms >= wall_ms && grant.now_ms >= self.last_now_ms);
        let key = self
            .verifier
            .keyring()
            .get(grant.key)
            .unwrap_or_else(|| panic!("grant names key {} outside the keyring", grant.key));
        assert!(key.entry.usable_at(grant.now_ms), "unusable key granted");
        assert!(key.entry.doors.contains(&grant.door), "door not allowed");
        assert_eq!(
            grant.addr,
            canonical_ip(source),
            "address is not the source"
        );
        assert_eq!(grant.user, key.entry.user);
        let policy = config().doors.get(&grant.door).copied();
        let policy = policy.unwrap_or_else(|| panic!("grant for unknown door {}", grant.door));
        assert!(
            grant.seconds <= policy.max_secs,
            "longer than the door's maximum"
        );
        let ts = grant.record.timestamp_ms;
        assert!(
            ts.abs_diff(grant.now_ms) <= SKEW_MS,
            "timestamp outside the skew"
        );
        assert_eq!(grant.record.key, key.id);
        assert_eq!(&grant.record.nonce[..], &datagram[8..20]);
        // A (key, nonce) opens again only once its first use is dead: past its
        // timestamp + skew (then it is another packet: the timestamp differs).
        if let Some(first_ts) = self.granted.insert((key.id, grant.record.nonce), ts) {
            assert!(
                grant.now_ms > first_ts.saturating_add(SKEW_MS) && ts != first_ts,
                "a (key, nonce) was granted twice while live"
            );
        }
        // The plaintext a grant came from satisfies every field rule.
        let derived = &key.derived;
        let cipher = ChaCha20Poly1305::new(derived.aead.expose().into());
        let packet: &[u8; PACKET_LEN] = datagram
            .try_into()
            .unwrap_or_else(|_| unreachable!("length checked above"));
        let body = packet::open_with(&cipher, packet)
            .unwrap_or_else(|| panic!("grant of a packet that does not open"));
        let request =
            Request::decode(&body).unwrap_or_else(|e| panic!("grant of a bad plaintext: {e}"));
        assert_eq!(request.door, grant.door);
        assert_eq!(request.timestamp_ms, ts);
    }
}
