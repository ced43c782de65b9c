//! The per-source trail of refused datagrams, in the line format fail2ban
//! reads (docs/operating.md): `refused src=ADDR reason=REASON count=N`. The
//! first refusal of a source for a reason is logged at once; later ones in
//! the same minute are counted and logged as one line when the minute ends.
//! At most `MAX_SOURCES` (source, reason) pairs are tracked a minute, so a
//! flood from spoofed sources gives a bounded number of lines.

use std::collections::HashMap;
use std::net::IpAddr;

use spa_proto::Reason;

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

impl RefusalLog {
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
