//! The hint table (PROTOCOL §3 step 2): maps each enabled key's hint for every
//! window around `now` to (key, window), so a datagram finds its candidate
//! keys in O(1) without any clear-text id. Rebuilt incrementally as windows pass.

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
    /// Hints are HMAC outputs, uniform even when an attacker chooses the
    /// looked-up value, so a fast non-keyed hash is safe here.
    map: FxHashMap<u64, Vec<Candidate>>,
    /// The windows held, inclusive; `None` when empty.
    range: Option<(u64, u64)>,
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
                for w in lo..=hi {
                    self.add_window(keyring, w);
                }
            }
        }
        self.range = Some((lo, hi));
    }

    /// The candidates whose hint equals `hint` (empty when none).
    pub fn lookup(&self, hint: &[u8; 8]) -> &[Candidate] {
        self.map
            .get(&u64::from_be_bytes(*hint))
            .map_or(&[], Vec::as_slice)
    }

    /// Number of (key, window) entries held.
    pub fn len(&self) -> usize {
        self.map.values().map(Vec::len).sum()
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn add_window(&mut self, keyring: &Keyring, window: u64) {
        for (key, loaded) in keyring.iter() {
            if loaded.entry.enabled {
                let h = u64::from_be_bytes(hint_with(&loaded.hint_mac, window));
                self.map
                    .entry(h)
                    .or_default()
                    .push(Candidate { key, window });
            }
        }
    }

    fn remove_window(&mut self, keyring: &Keyring, window: u64) {
        for (key, loaded) in keyring.iter() {
            if loaded.entry.enabled {
                let h = u64::from_be_bytes(hint_with(&loaded.hint_mac, window));
                if let Some(list) = self.map.get_mut(&h) {
                    list.retain(|c| !(c.key == key && c.window == window));
                    if list.is_empty() {
                        self.map.remove(&h);
                    }
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
                    let found = table.lookup(&hint(&k.derived, w));
                    assert!(found.contains(&Candidate { key: i, window: w }));
                }
                assert!(table.lookup(&hint(&k.derived, lo - 1)).is_empty());
                assert!(table.lookup(&hint(&k.derived, hi + 1)).is_empty());
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
        let found = table.lookup(&hint(&k, window_of(now)));
        assert_eq!(found.len(), 2);
    }
}
