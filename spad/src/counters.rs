//! Counters of what spad saw: rejected datagrams per reason, grants, and
//! events dropped under load. Lock-free; logged as one summary line, at most
//! once a minute while packets keep being rejected, and on SIGUSR1.

use std::sync::atomic::{AtomicU64, Ordering};

use spa_proto::Reason;

/// How often a rejection summary may be logged, ms.
const SUMMARY_EVERY_MS: u64 = 60_000;

/// spad's counters.
#[derive(Debug)]
pub struct Counters {
    rejected: [AtomicU64; Reason::ALL.len()],
    granted: AtomicU64,
    overload: AtomicU64,
    door_full: AtomicU64,
    /// When the last summary was logged (ms since the epoch; 0 = never).
    last_summary_ms: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            granted: AtomicU64::new(0),
            overload: AtomicU64::new(0),
            door_full: AtomicU64::new(0),
            last_summary_ms: AtomicU64::new(0),
        }
    }
}

fn index(reason: Reason) -> usize {
    Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0)
}

impl Counters {
    /// Counts one rejected datagram at `now_ms`; says whether a summary is due
    /// (the first rejection, then at most once a minute). Lock-free: this is on
    /// the per-packet path of a flood.
    pub fn reject(&self, reason: Reason, now_ms: u64) -> bool {
        self.rejected[index(reason)].fetch_add(1, Ordering::Relaxed);
        let last = self.last_summary_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < SUMMARY_EVERY_MS {
            return false;
        }
        self.last_summary_ms
            .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Counts one grant.
    pub fn grant(&self) {
        self.granted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one refusal for `reason`, with no summary (the audit line says it).
    pub fn count(&self, reason: Reason) {
        self.rejected[index(reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one opening refused because its door was at `max_open`.
    pub fn door_full(&self) {
        self.door_full.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one knock dropped because the daemon's queue was full.
    pub fn overload(&self) {
        self.overload.fetch_add(1, Ordering::Relaxed);
    }

    /// Grants so far.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }

    /// Knocks dropped for a full queue so far.
    pub fn overloaded(&self) -> u64 {
        self.overload.load(Ordering::Relaxed)
    }

    /// Rejections for one reason so far.
    pub fn rejected(&self, reason: Reason) -> u64 {
        self.rejected[index(reason)].load(Ordering::Relaxed)
    }

    /// One line: `granted=N rejected: length=N hint=N …`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "granted={} overload={} door_full={} rejected:",
            self.granted.load(Ordering::Relaxed),
            self.overload.load(Ordering::Relaxed),
            self.door_full.load(Ordering::Relaxed)
        );
        for r in Reason::ALL {
            s.push_str(&format!(" {}={}", r.as_str(), self.rejected(r)));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_reason_and_rate_limits_the_summary() {
        let c = Counters::default();
        let t = 1_764_000_000_000;
        assert!(c.reject(Reason::Hint, t), "first rejection logs a summary");
        assert!(
            !c.reject(Reason::Hint, t + 59_999),
            "the next one within a minute does not"
        );
        assert!(
            c.reject(Reason::Replay, t + 60_000),
            "a minute later it does"
        );
        c.grant();
        assert_eq!(c.rejected(Reason::Hint), 2);
        let s = c.summary();
        assert!(
            s.contains("granted=1") && s.contains("hint=2") && s.contains("replay=1"),
            "{s}"
        );
    }
}
