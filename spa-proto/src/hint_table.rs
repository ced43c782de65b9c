//! The hint table (PROTOCOL §3 step 2): maps each enabled key's hint for every
//! window around `now` to (key, window), so a datagram finds its candidate
//! keys in O(1) without any clear-text id. Rebuilt incrementally as windows pass.

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use crate::keyring::{KeyIndex, Keyring};
use crate::packet::{hint_with, window_of};

/// One candidate for a hint: the key and the window its hint was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the key in the keyring.
    pub key: KeyIndex,
    /// The window whose hint matched.
    pub window: u64,
}

/// Hint → candidates, for the windows `[lo, hi]`.
#[derive(Debug, Clone, Default)]
pub struct HintTable {
    /// Hint → one candidate, packed (key << 32 | window): 16 bytes a slot and
    /// no allocation per entry. Hints are HMAC outputs, uniform even when an
    /// attacker chooses the looked-up value, so a fast non-keyed hash is safe here.
    map: FxHashMap<u64, u64>,
    /// Further candidates of a hint already in `map` (two (key, window) pairs
    /// with one 64-bit hint: a forced collision, or about never by chance).
    more: FxHashMap<u64, Vec<Candidate>>,
    /// The windows held, inclusive; `None` when empty.
    range: Option<(u64, u64)>,
}

/// A candidate in one `u64`; `None` for a window past 2³² (year ~6000): no hint.
fn pack(c: Candidate) -> Option<u64> {
    u32::try_from(c.window)
        .ok()
        .map(|w| (u64::from(c.key) << 32) | u64::from(w))
}

fn unpack(v: u64) -> Candidate {
    Candidate {
        key: (v >> 32) as KeyIndex,
        window: v & 0xffff_ffff,
    }
}

/// The windows that overlap `[now - skew, now + skew]`.
pub fn windows_around(now_ms: u64, skew_ms: u64) -> (u64, u64) {
    (
        window_of(now_ms.saturating_sub(skew_ms)),
        window_of(now_ms.saturating_add(skew_ms)),
    )
}

impl HintTable {
    /// Builds the table for every enabled key at `now_ms`.
    pub fn build(keyring: &Keyring, now_ms: u64, skew_ms: u64) -> Self {
        let mut table = HintTable::default();
        table.refresh(keyring, now_ms, skew_ms);
        table
    }

    /// Brings the table to the windows around `now_ms`: adds the windows that
    /// came into range and removes those that left it. O(1) when nothing changed.
    pub fn refresh(&mut self, keyring: &Keyring, now_ms: u64, skew_ms: u64) {
        let (lo, hi) = windows_around(now_ms, skew_ms);
        match self.range {
            Some(range) if range == (lo, hi) => return,
            Some((old_lo, old_hi)) if old_hi >= lo && old_lo <= hi => {
                for w in old_lo..lo {
                    self.remove_window(keyring, w);
                }
                for w in (hi + 1)..=old_hi {
                    self.remove_window(keyring, w);
                }
                for w in lo..old_lo {
                    self.add_window(keyring, w);
                }
                for w in (old_hi + 1)..=hi {
                    self.add_window(keyring, w);
                }
            }
            _ => {
                self.map.clear();
                self.more.clear();
                for w in lo..=hi {
                    self.add_window(keyring, w);
                }
            }
        }
        self.range = Some((lo, hi));
    }

    /// The candidates whose hint equals `hint` (none for junk: one hash lookup).
    pub fn lookup(&self, hint: &[u8; 8]) -> impl Iterator<Item = Candidate> + '_ {
        let h = u64::from_be_bytes(*hint);
        let first = self.map.get(&h).copied().map(unpack);
        let more = match first {
            Some(_) if !self.more.is_empty() => self.more.get(&h).map_or(&[][..], Vec::as_slice),
            _ => &[],
        };
        first.into_iter().chain(more.iter().copied())
    }

    /// Number of (key, window) entries held.
    pub fn len(&self) -> usize {
        self.map.len() + self.more.values().map(Vec::len).sum::<usize>()
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn add_window(&mut self, keyring: &Keyring, window: u64) {
        for (key, loaded) in keyring.iter() {
            let c = Candidate { key, window };
            if let (true, Some(packed)) = (loaded.entry.enabled, pack(c)) {
                let h = u64::from_be_bytes(hint_with(&loaded.hint_mac, window));
                match self.map.entry(h) {
                    Entry::Vacant(e) => {
                        e.insert(packed);
                    }
                    Entry::Occupied(_) => self.more.entry(h).or_default().push(c),
                }
            }
        }
    }

    fn remove_window(&mut self, keyring: &Keyring, window: u64) {
        for (key, loaded) in keyring.iter() {
            let c = Candidate { key, window };
            if let (true, Some(packed)) = (loaded.entry.enabled, pack(c)) {
                let h = u64::from_be_bytes(hint_with(&loaded.hint_mac, window));
                if self.map.get(&h) == Some(&packed) {
                    self.map.remove(&h);
                    // Promote a further candidate of the same hint, if any.
                    if let Some(next) = self.more.get_mut(&h).and_then(Vec::pop).and_then(pack) {
                        self.map.insert(h, next);
                    }
                } else if let Some(list) = self.more.get_mut(&h) {
                    list.retain(|x| *x != c);
                }
                if self.more.get(&h).is_some_and(Vec::is_empty) {
                    self.more.remove(&h);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::KeyEntry;
    use crate::keys::{SecretBytes, ServerKey};
    use crate::packet::{hint, WINDOW_MS};

    fn ring(n: u8, enabled: bool) -> Keyring {
        Keyring::new((0..n).map(|i| KeyEntry {
            user: format!("u{i}"),
            key: ServerKey::new(SecretBytes::new([i; 32])),
            doors: Default::default(),
            allow_observed: false,
            expires_at_ms: None,
            enabled,
        }))
    }

    #[test]
    fn holds_exactly_the_windows_around_now_as_time_passes() {
        let keyring = ring(3, true);
        let skew = 30_000;
        let mut now = 1_764_000_000_123;
        let mut table = HintTable::build(&keyring, now, skew);
        for _ in 0..5 {
            let (lo, hi) = windows_around(now, skew);
            assert_eq!(table.len(), 3 * (hi - lo + 1) as usize);
            for (i, k) in keyring.iter() {
                for w in lo..=hi {
                    let found: Vec<_> = table.lookup(&hint(&k.derived, w)).collect();
                    assert_eq!(found, [Candidate { key: i, window: w }]);
                }
                assert_eq!(table.lookup(&hint(&k.derived, lo - 1)).count(), 0);
                assert_eq!(table.lookup(&hint(&k.derived, hi + 1)).count(), 0);
            }
            now += WINDOW_MS / 2 + 1;
            table.refresh(&keyring, now, skew);
        }
        // A jump far ahead rebuilds from scratch.
        now += 100 * WINDOW_MS;
        table.refresh(&keyring, now, skew);
        let (lo, hi) = windows_around(now, skew);
        assert_eq!(table.len(), 3 * (hi - lo + 1) as usize);
    }

    #[test]
    fn disabled_keys_have_no_hints() {
        let table = HintTable::build(&ring(2, false), 1_764_000_000_000, 30_000);
        assert!(table.is_empty());
    }

    #[test]
    fn two_keys_sharing_a_hint_are_both_candidates() {
        // The same key twice has the same hints: a forced collision.
        let mut entries: Vec<KeyEntry> = Vec::new();
        for user in ["a", "b"] {
            entries.push(KeyEntry {
                user: user.into(),
                key: ServerKey::new(SecretBytes::new([1; 32])),
                doors: Default::default(),
                allow_observed: false,
                expires_at_ms: None,
                enabled: true,
            });
        }
        let keyring = Keyring::new(entries);
        let now = 1_764_000_000_000;
        let table = HintTable::build(&keyring, now, 30_000);
        let k = keyring
            .get(0)
            .map(|k| k.derived.clone())
            .unwrap_or_else(|| unreachable!());
        let found: Vec<_> = table.lookup(&hint(&k, window_of(now))).collect();
        assert_eq!(
            found,
            [
                Candidate {
                    key: 0,
                    window: window_of(now)
                },
                Candidate {
                    key: 1,
                    window: window_of(now)
                }
            ]
        );
        // Both stay found, then both go, as windows pass.
        let mut table = table;
        for step in 1..=4u64 {
            let later = now + step * crate::packet::WINDOW_MS;
            table.refresh(&keyring, later, 30_000);
            let w = window_of(later);
            assert_eq!(table.lookup(&hint(&k, w)).count(), 2, "step {step}");
            assert_eq!(table.len(), 2 * 3, "step {step}");
        }
        assert_eq!(table.lookup(&hint(&k, window_of(now))).count(), 0);
    }
}
