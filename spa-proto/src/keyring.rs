//! The gateway's keyring: one entry per user key (`K_srv`, the doors it may
//! open, whether it may use address kind 0, its expiry). Holds the derived
//! keys so the hot path never runs HKDF.

use std::collections::BTreeSet;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::keys::{DerivedKeys, KeyId, ServerKey};
use crate::names::DoorName;

/// What the server knows about one user key (the server entry spa-keygen writes).
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// Who holds the key: used in logs and decisions, never secret.
    pub user: String,
    /// `K_srv` for this gateway.
    pub key: ServerKey,
    /// The doors this key may open.
    pub doors: BTreeSet<DoorName>,
    /// Whether address kind 0 ("the source the server sees") is accepted.
    pub allow_observed: bool,
    /// After this instant (ms since the epoch) the key opens nothing.
    pub expires_at_ms: Option<u64>,
    /// A revoked (disabled) key opens nothing and has no hints in the table.
    pub enabled: bool,
}

impl KeyEntry {
    /// Whether the key may be used at `now_ms`.
    pub fn usable_at(&self, now_ms: u64) -> bool {
        self.enabled && self.expires_at_ms.is_none_or(|t| now_ms < t)
    }
}

/// Index of a key in a [`Keyring`]; stable until the keyring is replaced.
pub type KeyIndex = u32;

/// A loaded key with everything the verifier needs precomputed.
#[derive(Debug, Clone)]
pub struct LoadedKey {
    /// The server entry.
    pub entry: KeyEntry,
    /// Its public fingerprint (names it in the replay cache).
    pub id: KeyId,
    /// Its derived keys.
    pub derived: DerivedKeys,
    /// HMAC-SHA256 state keyed with `K_hint`, cloned per hint.
    pub(crate) hint_mac: Hmac<Sha256>,
    /// ring's ChaCha20-Poly1305 key schedule for `K_aead` (ring wipes nothing:
    /// it holds the key bytes only in this struct's lifetime; see docs).
    pub(crate) aead: ring::aead::LessSafeKey,
}

/// All keys of one gateway.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<LoadedKey>,
}

impl Keyring {
    /// Loads entries, deriving each key's wire keys once.
    pub fn new(entries: impl IntoIterator<Item = KeyEntry>) -> Self {
        let keys = entries
            .into_iter()
            .map(|entry| {
                let derived = entry.key.derive();
                let hint_mac = <Hmac<Sha256> as Mac>::new_from_slice(derived.hint.expose())
                    .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
                let aead = ring::aead::UnboundKey::new(
                    &ring::aead::CHACHA20_POLY1305,
                    derived.aead.expose(),
                )
                .map(ring::aead::LessSafeKey::new)
                .unwrap_or_else(|_| unreachable!("a 32-byte key fits ChaCha20-Poly1305"));
                LoadedKey {
                    id: entry.key.key_id(),
                    entry,
                    derived,
                    hint_mac,
                    aead,
                }
            })
            .collect();
        Keyring { keys }
    }

    /// The key at `index`.
    pub fn get(&self, index: KeyIndex) -> Option<&LoadedKey> {
        self.keys.get(index as usize)
    }

    /// All keys with their indices.
    pub fn iter(&self) -> impl Iterator<Item = (KeyIndex, &LoadedKey)> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| (i as KeyIndex, k))
    }

    /// Number of keys (enabled or not).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
