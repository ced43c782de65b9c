//! The per-source trail of refused datagrams, in the line format fail2ban
//! reads (docs/operating.md): `refused src=ADDR reason=REASON count=N`. The
//! first refusal of a source for a reason is logged at once; later ones in
//! the same minute are counted and logged as one line when the minute ends.
//! At most `MAX_SOURCES` (source, reason) pairs are tracked a minute, so a
//! flood from spoofed sources gives a bounded number of lines.
//!
//! A datagram the verifier diagnosed as sealed by a known key with a clock
//! off by more than the skew is not junk: it is logged apart, at warning
//! priority and in the key holder's format fail2ban does not read —
//! `not opened user=alice src=ADDR reason=clock: alice's clock is about 2 min
//! 10 s behind` — at most once per (user, source) a minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use spa_proto::gateway::Now;
use spa_proto::{ClockSkew, Reason};
use tracing::{info, warn};

use crate::counters::Counters;

/// (source, reason) pairs tracked per minute; refusals past it are summed.
pub const MAX_SOURCES: usize = 4096;

/// How long one window lasts, ms.
pub const WINDOW_MS: u64 = 60_000;

/// Refusals waiting to be logged.
#[derive(Debug, Default)]
pub struct RefusalLog {
    window_start_ms: Option<u64>,
    /// Refusals since the pair's last line.
    pending: HashMap<(IpAddr, Reason), u64>,
    overflow: u64,
    /// When each (user, source) last had a clock line (monotonic ms).
    clock_logged: HashMap<(String, IpAddr), u64>,
}

/// What recording one refusal asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// A line to log now (the pair's first refusal this minute).
    pub line: Option<String>,
    /// This refusal started a window: the main loop must wake at its end.
    pub window_started: bool,
}

/// The line for `count` refusals of `src` for `reason`.
pub fn line(src: IpAddr, reason: Reason, count: u64) -> String {
    format!("refused src={src} reason={} count={count}", reason.as_str())
}

/// `ms` in words, rounded as a person would say it: "40 s", "2 min 10 s", "3 h".
pub fn rough_duration(ms: u64) -> String {
    const S: u64 = 1000;
    const MIN: u64 = 60 * S;
    const H: u64 = 60 * MIN;
    const D: u64 = 24 * H;
    let round = |unit: u64| ms.saturating_add(unit / 2) / unit * unit;
    // `big` and what is left in `unit`, after rounding to `step`.
    let two = |big: u64, big_name: &str, step: u64, unit: u64, unit_name: &str| {
        let t = round(step);
        match (t / big, t % big / unit) {
            (b, 0) => format!("{b} {big_name}"),
            (b, u) => format!("{b} {big_name} {u} {unit_name}"),
        }
    };
    if round(S) < MIN {
        format!("{} s", round(S) / S)
    } else if round(10 * S) < H {
        two(MIN, "min", 10 * S, S, "s")
    } else if round(MIN) < D {
        two(H, "h", MIN, MIN, "min")
    } else {
        two(D, "d", H, H, "h")
    }
}

/// The clock line for `skew` from `src`.
pub fn clock_line(src: IpAddr, skew: &ClockSkew) -> String {
    let user = &skew.user;
    let way = if skew.offset_ms < 0 {
        "behind"
    } else {
        "ahead"
    };
    format!(
        "not opened user={user} src={src} reason=clock: {user}'s clock is about {} {way}",
        rough_duration(skew.offset_ms.unsigned_abs())
    )
}

/// Counts and logs a datagram diagnosed as sealed with a skewed clock (in
/// place of its `hint` refusal: the sender holds a key, it is no one to ban).
pub fn clock_refused(
    log: &Mutex<RefusalLog>,
    counters: &Counters,
    src: IpAddr,
    skew: &ClockSkew,
    now: Now,
) {
    if counters.reject(Reason::Clock, now.wall_ms) {
        info!("rejected datagrams so far: {}", counters.summary());
    }
    let line = log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record_clock(src, skew, now.mono_ms);
    if let Some(line) = line {
        warn!("{line}");
    }
}

impl RefusalLog {
    /// Records one clock-skewed datagram at `now_ms` (monotonic): its line when
    /// (user, source) had none in the last minute. At most `MAX_SOURCES` pairs
    /// are remembered; past that, lines wait until old pairs expire.
    pub fn record_clock(&mut self, src: IpAddr, skew: &ClockSkew, now_ms: u64) -> Option<String> {
        let fresh = |t: &u64| now_ms.saturating_sub(*t) < WINDOW_MS;
        let pair = (skew.user.clone(), src);
        if self.clock_logged.get(&pair).is_some_and(fresh) {
            return None;
        }
        if self.clock_logged.len() >= MAX_SOURCES {
            self.clock_logged.retain(|_, t| fresh(t));
            if self.clock_logged.len() >= MAX_SOURCES {
                return None;
            }
        }
        self.clock_logged.insert(pair, now_ms);
        Some(clock_line(src, skew))
    }

    /// Records one refused datagram at `now_ms` (monotonic).
    pub fn record(&mut self, src: IpAddr, reason: Reason, now_ms: u64) -> Recorded {
        let window_started = self.window_start_ms.is_none();
        if window_started {
            self.window_start_ms = Some(now_ms);
        }
        let room = self.pending.len() < MAX_SOURCES;
        let line = match self.pending.get_mut(&(src, reason)) {
            Some(n) => {
                *n += 1;
                None
            }
            None if room => {
                self.pending.insert((src, reason), 0);
                Some(line(src, reason, 1))
            }
            None => {
                self.overflow += 1;
                None
            }
        };
        Recorded {
            line,
            window_started,
        }
    }

    /// When the current window ends, if one is open.
    pub fn deadline(&self) -> Option<u64> {
        self.window_start_ms.map(|t| t.saturating_add(WINDOW_MS))
    }

    /// At the end of the window: one line per pair refused again since its
    /// first line, and one for the refusals past the pair limit.
    pub fn take_due(&mut self, now_ms: u64) -> Vec<String> {
        if self.deadline().is_none_or(|d| d > now_ms) {
            return Vec::new();
        }
        let mut lines: Vec<String> = self
            .pending
            .drain()
            .filter(|(_, n)| *n > 0)
            .map(|((src, reason), n)| line(src, reason, n))
            .collect();
        lines.sort();
        let overflow = std::mem::take(&mut self.overflow);
        if overflow > 0 {
            lines.push(format!(
                "{overflow} more refused datagrams from sources past the first {MAX_SOURCES} this minute"
            ));
        }
        self.window_start_ms = None;
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn first_refusal_at_once_the_rest_once_a_minute() {
        let mut log = RefusalLog::default();
        let first = log.record(A, Reason::Hint, 1000);
        assert_eq!(
            first.line.as_deref(),
            Some("refused src=198.51.100.7 reason=hint count=1")
        );
        assert!(first.window_started);
        for t in 0..56 {
            let r = log.record(A, Reason::Hint, 1001 + t);
            assert_eq!(
                r,
                Recorded {
                    line: None,
                    window_started: false
                }
            );
        }
        assert_eq!(log.deadline(), Some(61_000));
        assert!(log.take_due(60_999).is_empty());
        assert_eq!(
            log.take_due(61_000),
            vec!["refused src=198.51.100.7 reason=hint count=56".to_owned()]
        );
        assert_eq!(log.deadline(), None, "no wake-up while nothing is refused");
    }

    fn skew(user: &str, offset_ms: i64) -> ClockSkew {
        ClockSkew {
            user: user.into(),
            key: 0,
            offset_ms,
        }
    }

    #[test]
    fn durations_are_rounded_as_a_person_would_say_them() {
        for (ms, words) in [
            (1_400, "1 s"),
            (40_200, "40 s"),
            (59_499, "59 s"),
            (59_600, "1 min"),
            (130_000, "2 min 10 s"),
            (127_000, "2 min 10 s"),
            (124_900, "2 min"),
            (3_594_000, "59 min 50 s"),
            (3_599_000, "1 h"),
            (10_800_000, "3 h"),
            (11_130_000, "3 h 6 min"),
            (2 * 86_400_000 + 3_600_000, "2 d 1 h"),
        ] {
            assert_eq!(rough_duration(ms), words, "{ms} ms");
        }
    }

    #[test]
    fn a_skewed_clock_is_logged_with_the_user_and_offset_once_a_minute() {
        let mut log = RefusalLog::default();
        let behind = skew("alice", -130_000);
        assert_eq!(
            log.record_clock(A, &behind, 1000).as_deref(),
            Some("not opened user=alice src=198.51.100.7 reason=clock: alice's clock is about 2 min 10 s behind")
        );
        assert_eq!(log.record_clock(A, &behind, 60_999), None, "same minute");
        let b = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 8));
        assert!(log.record_clock(b, &behind, 2000).is_some(), "other source");
        assert_eq!(
            log.record_clock(A, &skew("bob", 40_000), 2000).as_deref(),
            Some("not opened user=bob src=198.51.100.7 reason=clock: bob's clock is about 40 s ahead")
        );
        assert!(
            log.record_clock(A, &behind, 61_000).is_some(),
            "a minute later"
        );
        assert_eq!(log.deadline(), None, "no wake-up for clock lines");
    }

    #[test]
    fn clock_lines_stay_bounded_under_a_flood() {
        let mut log = RefusalLog::default();
        let lines = (0..10_000u32)
            .filter(|i| {
                let src = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                log.record_clock(src, &skew("alice", -130_000), 5).is_some()
            })
            .count();
        assert_eq!(lines, MAX_SOURCES);
        assert_eq!(log.clock_logged.len(), MAX_SOURCES);
        let src = IpAddr::V4(std::net::Ipv4Addr::new(10, 9, 9, 9));
        assert!(log
            .record_clock(src, &skew("alice", -130_000), 5 + WINDOW_MS)
            .is_some());
        assert_eq!(log.clock_logged.len(), 1, "expired pairs forgotten");
    }

    #[test]
    fn a_spoofed_flood_gives_a_bounded_number_of_lines() {
        let mut log = RefusalLog::default();
        let mut immediate = 0;
        for i in 0..100_000u32 {
            let src = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            immediate += usize::from(log.record(src, Reason::Hint, 5).line.is_some());
        }
        assert_eq!(immediate, MAX_SOURCES);
        let later = log.take_due(5 + WINDOW_MS);
        assert_eq!(later.len(), 1, "{later:?}");
        assert!(
            later[0].starts_with("95904 more refused datagrams"),
            "{later:?}"
        );
    }
}
