//! The budget for knock log events: unauthenticated knock traffic is cheap to
//! send, so progress events (stage, reset, timeout) and cap refusals are
//! logged up to a number per minute; the rest are counted and summarised once.

/// One minute, ms.
const MINUTE_MS: u64 = 60_000;

/// A per-minute budget of audit events.
#[derive(Debug, Clone)]
pub(crate) struct KnockLog {
    per_minute: u32,
    window_start_ms: u64,
    used: u32,
    suppressed: u64,
}

impl KnockLog {
    pub(crate) fn new(per_minute: u32, now_mono_ms: u64) -> Self {
        KnockLog {
            per_minute,
            window_start_ms: now_mono_ms,
            used: 0,
            suppressed: 0,
        }
    }

    /// Whether one more event may be logged at `now`; counts it either way.
    pub(crate) fn allow(&mut self, now_mono_ms: u64) -> bool {
        if now_mono_ms.saturating_sub(self.window_start_ms) >= MINUTE_MS {
            // The summary of the old window is taken by `roll`; a new window starts.
            if self.suppressed == 0 {
                self.window_start_ms = now_mono_ms;
                self.used = 0;
            }
        }
        if self.used < self.per_minute {
            self.used += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// When the window ends and a summary is due (only while events were suppressed).
    pub(crate) fn deadline(&self) -> Option<u64> {
        (self.suppressed > 0).then(|| self.window_start_ms.saturating_add(MINUTE_MS))
    }

    /// At the end of a window with suppressed events: their count, and a new window.
    pub(crate) fn roll(&mut self, now_mono_ms: u64) -> Option<u64> {
        if self.suppressed == 0 || now_mono_ms.saturating_sub(self.window_start_ms) < MINUTE_MS {
            return None;
        }
        let count = std::mem::take(&mut self.suppressed);
        self.window_start_ms = now_mono_ms;
        self.used = 0;
        Some(count)
    }

    pub(crate) fn set_per_minute(&mut self, per_minute: u32) {
        self.per_minute = per_minute;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gives_the_budget_then_one_summary_per_minute() {
        let mut log = KnockLog::new(3, 0);
        let logged = (0..1000).filter(|i| log.allow(*i)).count();
        assert_eq!(logged, 3);
        assert_eq!(log.deadline(), Some(MINUTE_MS));
        assert_eq!(log.roll(MINUTE_MS - 1), None);
        assert_eq!(log.roll(MINUTE_MS), Some(997));
        assert!(log.allow(MINUTE_MS + 1), "a new minute has a new budget");
        assert_eq!(log.deadline(), None);
    }
}
