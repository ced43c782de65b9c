//! The replay cache (PROTOCOL §3 steps 3 and 9): which (key, nonce) pairs were
//! accepted and are still live, a per-key cap that refuses and never evicts,
//! the clock's high-water mark, and a compact binary form that spad appends
//! to a file before any door opens.

use rustc_hash::FxHashMap;

use crate::keys::KeyId;

/// The default number of live entries one key may hold.
pub const DEFAULT_CAP: usize = 32;

/// One accepted packet, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayRecord {
    /// Which key sealed it.
    pub key: KeyId,
    /// Its nonce.
    pub nonce: [u8; 12],
    /// Its timestamp (ms); the entry is live while `timestamp + skew >= now`.
    pub timestamp_ms: u64,
    /// The server's `now` when it was accepted (restores the high-water mark).
    pub now_ms: u64,
}

impl ReplayRecord {
    /// Length of one encoded record.
    pub const LEN: usize = 16 + 12 + 8 + 8;

    /// The record's fixed-size binary form.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0..16].copy_from_slice(&self.key.0);
        out[16..28].copy_from_slice(&self.nonce);
        out[28..36].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        out[36..44].copy_from_slice(&self.now_ms.to_be_bytes());
        out
    }

    /// Decodes one record.
    pub fn decode(bytes: &[u8; Self::LEN]) -> Self {
        let mut key = [0u8; 16];
        key.copy_from_slice(&bytes[0..16]);
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&bytes[16..28]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[28..36]);
        let mut now = [0u8; 8];
        now.copy_from_slice(&bytes[36..44]);
        ReplayRecord {
            key: KeyId(key),
            nonce,
            timestamp_ms: u64::from_be_bytes(ts),
            now_ms: u64::from_be_bytes(now),
        }
    }
}

/// A stored replay log that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayDecodeError {
    /// The file does not start with the spa replay-log magic.
    #[error("not a spa replay log (bad magic)")]
    Magic,
}

/// The key id of the log's state record (never a real key's id).
const STATE_MARKER: KeyId = KeyId([0; 16]);

/// Magic bytes at the start of a replay log.
pub const LOG_MAGIC: &[u8; 8] = b"spaRPL1\n";

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
}

/// Live accepted (key, nonce) pairs.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    per_key: FxHashMap<KeyId, Vec<Entry>>,
    cap: usize,
    skew_ms: u64,
    high_water_ms: u64,
    /// Whether the cache was restored from storage (or created empty on purpose).
    /// A server that starts without one refuses packets from before it started.
    refuse_until_ms: u64,
}

fn live(e: &Entry, now_ms: u64, skew_ms: u64) -> bool {
    e.timestamp_ms.saturating_add(skew_ms) >= now_ms
}

impl ReplayCache {
    /// An empty cache, as if restored from an empty but existing file.
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

    /// Restores a cache from a log (magic + records); a torn last record is ignored.
    pub fn from_log(bytes: &[u8], cap: usize, skew_ms: u64) -> Result<Self, ReplayDecodeError> {
        let body = bytes
            .strip_prefix(LOG_MAGIC.as_slice())
            .ok_or(ReplayDecodeError::Magic)?;
        let mut cache = Self::new(cap, skew_ms);
        for chunk in body.chunks_exact(ReplayRecord::LEN) {
            let mut rec = [0u8; ReplayRecord::LEN];
            rec.copy_from_slice(chunk);
            cache.restore(ReplayRecord::decode(&rec));
        }
        let high = cache.high_water_ms;
        cache.purge(high);
        Ok(cache)
    }

    /// Adds a stored record back (no cap check: it was accepted before).
    pub fn restore(&mut self, rec: ReplayRecord) {
        self.high_water_ms = self.high_water_ms.max(rec.now_ms);
        if rec.key == STATE_MARKER {
            // Not a packet: the cache's own state (see `to_log`).
            self.refuse_until_ms = self.refuse_until_ms.max(rec.timestamp_ms);
            return;
        }
        let list = self.per_key.entry(rec.key).or_default();
        if !list.iter().any(|e| e.nonce == rec.nonce) {
            list.push(Entry {
                nonce: rec.nonce,
                timestamp_ms: rec.timestamp_ms,
            });
        }
    }

    /// The whole live cache as a log (for compaction: written to a new file
    /// and renamed). It starts with a state record (key id all zero, which no
    /// SHA-256-derived id is) holding the high-water mark and, while it still
    /// matters, the time up to which the history is unknown — so a restart
    /// soon after a start without history keeps refusing old packets.
    pub fn to_log(&self, now_ms: u64) -> Vec<u8> {
        let mut out = LOG_MAGIC.to_vec();
        let state = ReplayRecord {
            key: STATE_MARKER,
            nonce: [0; 12],
            timestamp_ms: self.refuse_until_ms,
            now_ms: self.high_water_ms,
        };
        out.extend_from_slice(&state.encode());
        for (key, list) in &self.per_key {
            for e in list.iter().filter(|e| live(e, now_ms, self.skew_ms)) {
                let rec = ReplayRecord {
                    key: *key,
                    nonce: e.nonce,
                    timestamp_ms: e.timestamp_ms,
                    now_ms: 0,
                };
                out.extend_from_slice(&rec.encode());
            }
        }
        out
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
        self.per_key.get(key).is_some_and(|l| {
            l.iter()
                .any(|e| e.nonce == *nonce && live(e, now_ms, self.skew_ms))
        })
    }

    /// Inserts an accepted (key, nonce); refuses when the key's live entries reach the cap.
    pub fn insert(
        &mut self,
        key: KeyId,
        nonce: [u8; 12],
        timestamp_ms: u64,
        now_ms: u64,
    ) -> Result<ReplayRecord, CapFull> {
        let skew = self.skew_ms;
        let list = self.per_key.entry(key).or_default();
        list.retain(|e| live(e, now_ms, skew));
        if list.len() >= self.cap {
            return Err(CapFull { cap: self.cap });
        }
        list.push(Entry {
            nonce,
            timestamp_ms,
        });
        Ok(ReplayRecord {
            key,
            nonce,
            timestamp_ms,
            now_ms,
        })
    }

    /// Forgets every entry that can no longer be accepted.
    pub fn purge(&mut self, now_ms: u64) {
        let skew = self.skew_ms;
        self.per_key.retain(|_, l| {
            l.retain(|e| live(e, now_ms, skew));
            !l.is_empty()
        });
    }

    /// Live entries at `now_ms`.
    pub fn live_len(&self, now_ms: u64) -> usize {
        self.per_key
            .values()
            .map(|l| l.iter().filter(|e| live(e, now_ms, self.skew_ms)).count())
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
    fn log_round_trip_keeps_live_entries_and_high_water() -> Result<(), ReplayDecodeError> {
        let mut c = ReplayCache::new(4, SKEW);
        let ts = 5_000_000;
        c.advance(ts + 10);
        let mut log = LOG_MAGIC.to_vec();
        for n in 0..3u8 {
            let rec = c
                .insert(K, [n; 12], ts + u64::from(n), ts + 10)
                .map_err(|_| ReplayDecodeError::Magic)?;
            log.extend_from_slice(&rec.encode());
        }
        log.extend_from_slice(&[0xff; 7]); // a torn write at the end
        let back = ReplayCache::from_log(&log, 4, SKEW)?;
        assert_eq!(back.high_water_ms(), ts + 10);
        for n in 0..3u8 {
            assert!(back.contains(&K, &[n; 12], ts + 10));
        }
        let compact = ReplayCache::from_log(&back.to_log(ts + 10), 4, SKEW)?;
        assert_eq!(compact.live_len(ts + 10), 3);
        assert_eq!(compact.high_water_ms(), ts + 10);
        assert_eq!(
            ReplayCache::from_log(b"garbage!", 4, SKEW).err(),
            Some(ReplayDecodeError::Magic)
        );
        Ok(())
    }

    #[test]
    fn unknown_history_survives_a_restart_within_skew() -> Result<(), ReplayDecodeError> {
        let start = 9_000_000;
        let fresh = ReplayCache::new_without_history(4, SKEW, start);
        let again = ReplayCache::from_log(&fresh.to_log(start), 4, SKEW)?;
        assert_eq!(again.refuse_until_ms(), start + SKEW);
        assert_eq!(again.high_water_ms(), start);
        assert_eq!(again.live_len(start), 0, "the state record is not an entry");
        Ok(())
    }
}
