//! The replay cache (PROTOCOL §3 steps 3 and 9): which (key, nonce) pairs were
//! accepted and are still live, a per-key cap that refuses and never evicts,
//! the clock's high-water mark, and the journal records (see `journal`)
//! that spad makes durable before any door opens.

use rustc_hash::FxHashMap;

use crate::journal::Record;
use crate::keys::KeyId;

/// The default number of live entries one key may hold.
pub const DEFAULT_CAP: usize = 32;

/// One accepted packet, as the journal stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayRecord {
    /// Which key sealed it.
    pub key: KeyId,
    /// Its nonce.
    pub nonce: [u8; 12],
    /// Its timestamp (ms).
    pub timestamp_ms: u64,
    /// Live while `expires_ms >= now`: timestamp + the largest skew in force
    /// since it was accepted (§3 step 9).
    pub expires_ms: u64,
}

impl ReplayRecord {
    /// The journal record for this entry.
    pub fn to_record(&self) -> Record {
        Record::Replay {
            key: self.key,
            nonce: self.nonce,
            timestamp_ms: self.timestamp_ms,
            expires_ms: self.expires_ms,
        }
    }
}

/// Why an entry could not be inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the key already holds {cap} live replay entries")]
pub struct CapFull {
    /// The cap in force.
    pub cap: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    nonce: [u8; 12],
    timestamp_ms: u64,
    expires_ms: u64,
}

impl Entry {
    fn live(&self, now_ms: u64) -> bool {
        self.expires_ms >= now_ms
    }
}

/// How a cache was restored from the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// From records whose clock is plausible.
    Readable,
    /// The journal's newest time lies beyond now + skew: not readable (§3
    /// step 9), so history is unknown and old packets are refused.
    ImplausibleClock {
        /// The newest time found.
        newest_ms: u64,
    },
}

/// Live accepted (key, nonce) pairs.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    per_key: FxHashMap<KeyId, Vec<Entry>>,
    cap: usize,
    skew_ms: u64,
    high_water_ms: u64,
    /// Timestamps at or below this are refused: the history before it is unknown.
    refuse_until_ms: u64,
}

impl ReplayCache {
    /// An empty cache, as if restored from an empty but existing journal.
    pub fn new(cap: usize, skew_ms: u64) -> Self {
        ReplayCache {
            per_key: FxHashMap::default(),
            cap,
            skew_ms,
            high_water_ms: 0,
            refuse_until_ms: 0,
        }
    }

    /// An empty cache for a server that found no readable cache at `start_ms`:
    /// packets with a timestamp up to `start + skew` are refused (§3 step 9),
    /// since one of them may have been accepted before.
    pub fn new_without_history(cap: usize, skew_ms: u64, start_ms: u64) -> Self {
        let mut cache = Self::new(cap, skew_ms);
        cache.refuse_until_ms = start_ms.saturating_add(skew_ms);
        cache.high_water_ms = start_ms;
        cache
    }

    /// Restores a cache from journal records at `start_ms` (other kinds are
    /// skipped). A newest time beyond `start + skew` makes the records
    /// unreadable: the cache starts without history instead.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a Record>,
        cap: usize,
        skew_ms: u64,
        start_ms: u64,
    ) -> (Self, Restored) {
        let mut cache = Self::new(cap, skew_ms);
        for rec in records {
            match rec {
                Record::State {
                    high_water_ms,
                    refuse_until_ms,
                } => {
                    cache.high_water_ms = cache.high_water_ms.max(*high_water_ms);
                    cache.refuse_until_ms = cache.refuse_until_ms.max(*refuse_until_ms);
                }
                Record::Replay {
                    key,
                    nonce,
                    timestamp_ms,
                    expires_ms,
                } => {
                    // An accepted timestamp was within skew of the `now` then.
                    let seen = timestamp_ms.saturating_sub(skew_ms);
                    cache.high_water_ms = cache.high_water_ms.max(seen);
                    cache.restore_entry(*key, *nonce, *timestamp_ms, *expires_ms);
                }
                _ => {}
            }
        }
        let newest = cache.high_water_ms;
        if newest > start_ms.saturating_add(skew_ms) {
            let fresh = Self::new_without_history(cap, skew_ms, start_ms);
            return (fresh, Restored::ImplausibleClock { newest_ms: newest });
        }
        let now = cache.advance(start_ms);
        cache.purge(now);
        (cache, Restored::Readable)
    }

    fn restore_entry(&mut self, key: KeyId, nonce: [u8; 12], timestamp_ms: u64, expires_ms: u64) {
        let list = self.per_key.entry(key).or_default();
        match list.iter_mut().find(|e| e.nonce == nonce) {
            Some(e) => e.expires_ms = e.expires_ms.max(expires_ms),
            None => list.push(Entry {
                nonce,
                timestamp_ms,
                expires_ms,
            }),
        }
    }

    /// The whole live cache as journal records (for compaction): the state
    /// record first, so a restart soon after a start without history keeps
    /// refusing old packets.
    pub fn to_records(&self, now_ms: u64) -> Vec<Record> {
        let mut out = vec![Record::State {
            high_water_ms: self.high_water_ms,
            refuse_until_ms: self.refuse_until_ms,
        }];
        for (key, list) in &self.per_key {
            for e in list.iter().filter(|e| e.live(now_ms)) {
                out.push(Record::Replay {
                    key: *key,
                    nonce: e.nonce,
                    timestamp_ms: e.timestamp_ms,
                    expires_ms: e.expires_ms,
                });
            }
        }
        out
    }

    /// The state record alone (written when a journal is started).
    pub fn state_record(&self) -> Record {
        Record::State {
            high_water_ms: self.high_water_ms,
            refuse_until_ms: self.refuse_until_ms,
        }
    }

    /// Changes the skew (a reload). Raising it lengthens every live entry to
    /// its timestamp + the new skew; lowering it shortens none: an entry
    /// lives for the largest skew in force since it was inserted, so a packet
    /// accepted under one skew cannot be accepted again under another.
    pub fn set_skew(&mut self, skew_ms: u64) {
        if skew_ms > self.skew_ms {
            for list in self.per_key.values_mut() {
                for e in list.iter_mut() {
                    e.expires_ms = e.expires_ms.max(e.timestamp_ms.saturating_add(skew_ms));
                }
            }
        }
        self.skew_ms = skew_ms;
    }

    /// Changes the per-key cap (a reload).
    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }

    /// Advances the clock: `max(wall, high-water)`. Every datagram calls this once.
    pub fn advance(&mut self, wall_ms: u64) -> u64 {
        self.high_water_ms = self.high_water_ms.max(wall_ms);
        self.high_water_ms
    }

    /// The largest `now` used so far.
    pub fn high_water_ms(&self) -> u64 {
        self.high_water_ms
    }

    /// Timestamps at or below this are refused because the cache's history is unknown.
    pub fn refuse_until_ms(&self) -> u64 {
        self.refuse_until_ms
    }

    /// Whether (key, nonce) is a live entry at `now_ms`.
    pub fn contains(&self, key: &KeyId, nonce: &[u8; 12], now_ms: u64) -> bool {
        self.per_key
            .get(key)
            .is_some_and(|l| l.iter().any(|e| e.nonce == *nonce && e.live(now_ms)))
    }

    /// Inserts an accepted (key, nonce); refuses when the key's live entries reach the cap.
    pub fn insert(
        &mut self,
        key: KeyId,
        nonce: [u8; 12],
        timestamp_ms: u64,
        now_ms: u64,
    ) -> Result<ReplayRecord, CapFull> {
        let expires_ms = timestamp_ms.saturating_add(self.skew_ms);
        let list = self.per_key.entry(key).or_default();
        list.retain(|e| e.live(now_ms));
        if list.len() >= self.cap {
            return Err(CapFull { cap: self.cap });
        }
        list.push(Entry {
            nonce,
            timestamp_ms,
            expires_ms,
        });
        Ok(ReplayRecord {
            key,
            nonce,
            timestamp_ms,
            expires_ms,
        })
    }

    /// Takes back an insert whose record could not be made durable, so the
    /// packet's sender may try again (nothing was opened for it).
    pub fn forget(&mut self, key: &KeyId, nonce: &[u8; 12]) {
        if let Some(list) = self.per_key.get_mut(key) {
            list.retain(|e| e.nonce != *nonce);
        }
    }

    /// Forgets every entry that can no longer be accepted.
    pub fn purge(&mut self, now_ms: u64) {
        self.per_key.retain(|_, l| {
            l.retain(|e| e.live(now_ms));
            !l.is_empty()
        });
    }

    /// Live entries at `now_ms`.
    pub fn live_len(&self, now_ms: u64) -> usize {
        self.per_key
            .values()
            .map(|l| l.iter().filter(|e| e.live(now_ms)).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: KeyId = KeyId([1; 16]);
    const SKEW: u64 = 30_000;

    #[test]
    fn entry_is_forgotten_once_timestamp_plus_skew_passes() {
        let mut c = ReplayCache::new(2, SKEW);
        let ts = 1_000_000;
        assert!(c.insert(K, [1; 12], ts, ts).is_ok());
        assert!(c.contains(&K, &[1; 12], ts + SKEW));
        assert!(!c.contains(&K, &[1; 12], ts + SKEW + 1));
        c.purge(ts + SKEW + 1);
        assert_eq!(c.live_len(ts), 0);
    }

    #[test]
    fn cap_refuses_and_never_evicts() {
        let mut c = ReplayCache::new(2, SKEW);
        let ts = 1_000_000;
        assert!(c.insert(K, [1; 12], ts, ts).is_ok());
        assert!(c.insert(K, [2; 12], ts, ts).is_ok());
        assert_eq!(c.insert(K, [3; 12], ts, ts), Err(CapFull { cap: 2 }));
        assert!(c.contains(&K, &[1; 12], ts) && c.contains(&K, &[2; 12], ts));
        // Another key is not affected.
        assert!(c.insert(KeyId([2; 16]), [3; 12], ts, ts).is_ok());
        // Once the first two die, there is room again.
        assert!(c.insert(K, [3; 12], ts, ts + SKEW + 1).is_ok());
    }

    #[test]
    fn records_round_trip_keeps_live_entries_and_high_water() {
        let mut c = ReplayCache::new(4, SKEW);
        let ts = 5_000_000;
        c.advance(ts + 10);
        let mut records = vec![];
        for n in 0..3u8 {
            let rec = c.insert(K, [n; 12], ts + u64::from(n), ts + 10);
            records.extend(rec.ok().map(|r| r.to_record()));
        }
        records.push(c.state_record());
        let (back, how) = ReplayCache::from_records(&records, 4, SKEW, ts + 10);
        assert_eq!(how, Restored::Readable);
        assert_eq!(back.high_water_ms(), ts + 10);
        for n in 0..3u8 {
            assert!(back.contains(&K, &[n; 12], ts + 10));
        }
        let (compact, _) = ReplayCache::from_records(&back.to_records(ts + 10), 4, SKEW, ts + 10);
        assert_eq!(compact.live_len(ts + 10), 3);
        assert_eq!(compact.high_water_ms(), ts + 10);
    }

    #[test]
    fn unknown_history_survives_a_restart_within_skew() {
        let start = 9_000_000;
        let fresh = ReplayCache::new_without_history(4, SKEW, start);
        let (again, _) = ReplayCache::from_records(&fresh.to_records(start), 4, SKEW, start + 5);
        assert_eq!(again.refuse_until_ms(), start + SKEW);
        assert_eq!(again.live_len(start), 0, "the state record is not an entry");
    }

    #[test]
    fn a_restored_clock_beyond_now_plus_skew_is_not_readable() {
        let start = 9_000_000;
        let future = Record::State {
            high_water_ms: start + SKEW + 1,
            refuse_until_ms: 0,
        };
        let (c, how) = ReplayCache::from_records(&[future], 4, SKEW, start);
        assert_eq!(
            how,
            Restored::ImplausibleClock {
                newest_ms: start + SKEW + 1
            }
        );
        assert_eq!(
            c.refuse_until_ms(),
            start + SKEW,
            "history unknown, never truth"
        );
        assert_eq!(c.high_water_ms(), start);
    }

    #[test]
    fn raising_skew_keeps_an_accepted_packet_refused_for_the_new_skew() {
        let mut c = ReplayCache::new(4, SKEW);
        let ts = 1_000_000;
        assert!(c.insert(K, [1; 12], ts, ts).is_ok());
        c.set_skew(2 * SKEW);
        // The window now accepts ts until ts + 2*SKEW: the entry must live as long.
        assert!(c.contains(&K, &[1; 12], ts + 2 * SKEW));
        c.set_skew(SKEW);
        assert!(
            c.contains(&K, &[1; 12], ts + 2 * SKEW),
            "lowering never shortens"
        );
    }

    #[test]
    fn a_forgotten_insert_can_be_accepted_again() {
        let mut c = ReplayCache::new(1, SKEW);
        assert!(c.insert(K, [1; 12], 5, 5).is_ok());
        c.forget(&K, &[1; 12]);
        assert!(!c.contains(&K, &[1; 12], 5));
        assert!(
            c.insert(K, [1; 12], 5, 5).is_ok(),
            "and the cap slot is free"
        );
    }
}
