//! Clock-skew diagnosis: tells a packet from a known key whose clock is off by
//! more than the skew apart from junk. PROTOCOL §3 drops both as `hint` (the
//! packet's hint is not in the table of windows around now); this module only
//! adds an explanation for the operator and never changes that verdict: it
//! never grants and never reads or writes the replay cache.
//!
//! How: a second [`HintTable`] holds every enabled key's hints for the windows
//! up to [`SPAN_MS`] (15 min) beyond `now ± skew`, refreshed incrementally as
//! windows pass, like the main one. On a hint miss the caller asks
//! [`SkewDiagnosis::diagnose`]: junk costs one hash lookup (the hint is
//! uniform, so a random one matches with probability ~entries/2⁶⁴). A match
//! is confirmed by opening the AEAD with that key once — a forged hint with a
//! bad tag gives no diagnosis — and the sealed timestamp gives the offset.
//!
//! Bounds. AEAD attempts: at most [`OPENS_PER_KEY`] per key and [`OPENS`] in
//! all per 30-s window of `now`, successful or not, so a flood of recorded
//! far-hint packets costs at most `OPENS` AEAD opens (~1 µs each) per 30 s;
//! past the bound the packet is plain `hint`. Memory: the table holds
//! `keys × windows` entries, windows ≤ 2·(skew + 15 min)/30 s + 2 (62 at the
//! default skew of 30 s), and never more than [`MAX_ENTRIES`] (57,344, one
//! hash table of 65,536 16-byte slots) in all: with more than ~900 keys the
//! span shrinks to fit (to ~13 min at 1,000 keys, 15 s at 10,000). Measured
//! with a counting allocator: 35 KB for 16 keys, 1.1 MB at the bound (built
//! in ~14 ms for 1,000 keys, release); plus one counter per key attempted in
//! the current window.

use rustc_hash::FxHashMap;

use crate::hint_table::HintTable;
use crate::keyring::{KeyIndex, Keyring};
use crate::packet::{field, open_with_ring, window_of, PACKET_LEN, WINDOW_MS};

/// How far beyond `now ± skew` a clock may be off and still be diagnosed, ms.
pub const SPAN_MS: u64 = 15 * 60_000;
/// Most (key, window) entries the diagnosis table holds; the span shrinks to fit.
pub const MAX_ENTRIES: usize = 57_344;
/// AEAD attempts per key per 30-s window.
pub const OPENS_PER_KEY: u32 = 4;
/// AEAD attempts in all per 30-s window.
pub const OPENS: u32 = 64;

/// A packet sealed by a known, usable key whose timestamp is more than the
/// skew away from the server's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockSkew {
    /// The key's user.
    pub user: String,
    /// The key's index in the keyring.
    pub key: KeyIndex,
    /// The sender's clock minus the server's, ms: negative when it is behind.
    pub offset_ms: i64,
}

/// The wider hint table and the AEAD attempt budget.
#[derive(Debug, Clone, Default)]
pub struct SkewDiagnosis {
    table: HintTable,
    /// How far the table reaches beyond `skew`, ms (≤ `SPAN_MS`).
    span_ms: u64,
    /// The window of `now` the attempt counters are for.
    budget_window: u64,
    opens: u32,
    opens_by_key: FxHashMap<KeyIndex, u32>,
}

/// The span that keeps `keys × windows` within `MAX_ENTRIES`.
fn span_for(keys: usize, skew_ms: u64) -> u64 {
    let keys = keys.max(1) as u64;
    let windows = MAX_ENTRIES as u64 / keys;
    // Windows over [now - skew - span, now + skew + span]: at most
    // 2·(skew + span)/W + 2.
    let reach = windows.saturating_sub(2).saturating_mul(WINDOW_MS) / 2;
    reach.saturating_sub(skew_ms).min(SPAN_MS)
}

impl SkewDiagnosis {
    /// The table for every enabled key of `keyring` at `now_ms`.
    pub fn build(keyring: &Keyring, now_ms: u64, skew_ms: u64) -> Self {
        let enabled = keyring.iter().filter(|(_, k)| k.entry.enabled).count();
        let span_ms = span_for(enabled, skew_ms);
        SkewDiagnosis {
            table: HintTable::build(keyring, now_ms, skew_ms.saturating_add(span_ms)),
            span_ms,
            ..SkewDiagnosis::default()
        }
    }

    /// Brings the table to the windows around `now_ms` (O(1) when none passed).
    pub fn refresh(&mut self, keyring: &Keyring, now_ms: u64, skew_ms: u64) {
        self.table
            .refresh(keyring, now_ms, skew_ms.saturating_add(self.span_ms));
    }

    /// How far beyond the skew a clock may be off and still be diagnosed, ms.
    pub fn span_ms(&self) -> u64 {
        self.span_ms
    }

    /// (key, window) entries held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the table is empty (no enabled key).
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Whether `packet` was sealed by a usable key of `keyring` with a clock
    /// more than `skew_ms` off `now_ms`, and by how much. Call it only for a
    /// packet the verifier dropped as `hint`; it decides nothing else.
    pub fn diagnose(
        &mut self,
        keyring: &Keyring,
        packet: &[u8; PACKET_LEN],
        now_ms: u64,
        skew_ms: u64,
    ) -> Option<ClockSkew> {
        self.refresh(keyring, now_ms, skew_ms);
        let mut hint = [0u8; 8];
        hint.copy_from_slice(&packet[field::HINT]);
        let mut candidates = self.table.lookup(&hint).peekable();
        candidates.peek()?;
        let window = window_of(now_ms);
        if window != self.budget_window {
            self.budget_window = window;
            self.opens = 0;
            self.opens_by_key.clear();
        }
        for c in candidates {
            let Some(k) = keyring.get(c.key) else {
                continue;
            };
            if !k.entry.usable_at(now_ms) {
                continue;
            }
            let by_key = self.opens_by_key.entry(c.key).or_default();
            if self.opens >= OPENS || *by_key >= OPENS_PER_KEY {
                return None;
            }
            self.opens += 1;
            *by_key += 1;
            let Some(body) = open_with_ring(&k.aead, packet) else {
                continue;
            };
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&body[field::TIMESTAMP]);
            let ts = u64::from_be_bytes(ts);
            if window_of(ts) != c.window || ts.abs_diff(now_ms) <= skew_ms {
                // Not a clock problem: sealed under another window's hint.
                return None;
            }
            let offset_ms = if ts >= now_ms {
                i64::try_from(ts - now_ms).unwrap_or(i64::MAX)
            } else {
                i64::try_from(now_ms - ts).map_or(i64::MIN, |d| -d)
            };
            return Some(ClockSkew {
                user: k.entry.user.clone(),
                key: c.key,
                offset_ms,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_span_shrinks_to_keep_the_table_bounded() {
        assert_eq!(span_for(1, 30_000), SPAN_MS);
        assert_eq!(span_for(896, 30_000), SPAN_MS);
        assert!(span_for(1000, 30_000) < SPAN_MS);
        for keys in [1usize, 10, 1000, 2000, 10_000, 100_000] {
            let span = span_for(keys, 30_000);
            let windows = 2 * (30_000 + span) / WINDOW_MS + 2;
            assert!(
                keys as u64 * windows <= MAX_ENTRIES as u64 || span == 0,
                "{keys} keys × {windows} windows"
            );
        }
        assert!(span_for(10_000, 30_000) < SPAN_MS);
        assert_eq!(span_for(1_000_000, 30_000), 0);
    }
}
