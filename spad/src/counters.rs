//! Counters of what spad saw: rejected datagrams per reason, grants, and
//! events dropped under load. Lock-free; logged as one summary line, at most
//! once a minute while packets keep being rejected, and on SIGUSR1.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use spa_proto::Reason;

/// How often a rejection summary may be logged.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// spad's counters.
#[derive(Debug)]
pub struct Counters {
    rejected: [AtomicU64; Reason::ALL.len()],
    granted: AtomicU64,
    overload: AtomicU64,
    last_summary: Mutex<Option<Instant>>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            granted: AtomicU64::new(0),
            overload: AtomicU64::new(0),
            last_summary: Mutex::new(None),
        }
    }
}

fn index(reason: Reason) -> usize {
    Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0)
}

impl Counters {
    /// Counts one rejected datagram; says whether a summary is due.
    pub fn reject(&self, reason: Reason) -> bool {
        self.rejected[index(reason)].fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_summary.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(t) if t.elapsed() < SUMMARY_EVERY => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }

    /// Counts one grant.
    pub fn grant(&self) {
        self.granted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one event dropped because the daemon's queue was full.
    pub fn overload(&self) {
        self.overload.fetch_add(1, Ordering::Relaxed);
    }

    /// Rejections for one reason so far.
    pub fn rejected(&self, reason: Reason) -> u64 {
        self.rejected[index(reason)].load(Ordering::Relaxed)
    }

    /// One line: `granted=N rejected: length=N hint=N …`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "granted={} overload={} rejected:",
            self.granted.load(Ordering::Relaxed),
            self.overload.load(Ordering::Relaxed)
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
        assert!(c.reject(Reason::Hint), "first rejection logs a summary");
        assert!(
            !c.reject(Reason::Hint),
            "the next one within a minute does not"
        );
        c.reject(Reason::Replay);
        c.grant();
        assert_eq!(c.rejected(Reason::Hint), 2);
        let s = c.summary();
        assert!(
            s.contains("granted=1") && s.contains("hint=2") && s.contains("replay=1"),
            "{s}"
        );
    }
}
