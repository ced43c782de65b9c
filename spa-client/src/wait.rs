//! `--wait PORT`: after the packet went out, tries a TCP connection to the
//! door's service every ~100 ms until one succeeds or the time is up. Each
//! attempt has its own connect timeout, short at first (the first SYN often
//! arrives before the firewall opened and is dropped) and doubling up to 2 s
//! for slow links; nothing is written to the socket.

use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// The pause between two connection attempts.
pub const RETRY_EVERY: Duration = Duration::from_millis(100);
/// The first connection attempt's timeout; each later one doubles it.
pub const FIRST_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest a single connection attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(2000);

/// How waiting for the door ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// A TCP connection succeeded after this long.
    Open {
        /// Time from the start of waiting to the successful connect.
        after: Duration,
    },
    /// No attempt succeeded before the timeout.
    TimedOut {
        /// How long it waited.
        after: Duration,
    },
}

/// Tries `dest` until a TCP connect succeeds or `timeout` passes.
pub fn wait_for_tcp(dest: SocketAddr, timeout: Duration) -> WaitOutcome {
    match connect_when_open(dest, timeout) {
        Ok((_, after)) => WaitOutcome::Open { after },
        Err(after) => WaitOutcome::TimedOut { after },
    }
}

/// Tries `dest` until a TCP connect succeeds (returns the connection and the
/// time it took) or `timeout` passes (returns the time waited).
pub fn connect_when_open(
    dest: SocketAddr,
    timeout: Duration,
) -> Result<(TcpStream, Duration), Duration> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut attempt_timeout = FIRST_ATTEMPT_TIMEOUT;
    loop {
        let attempt_start = Instant::now();
        let left = deadline.saturating_duration_since(attempt_start);
        if left.is_zero() {
            return Err(start.elapsed());
        }
        let budget = left.min(attempt_timeout);
        attempt_timeout = (attempt_timeout * 2).min(ATTEMPT_TIMEOUT);
        if let Ok(stream) = TcpStream::connect_timeout(&dest, budget) {
            return Ok((stream, start.elapsed()));
        }
        // Refused connects return at once: pace the attempts.
        let next = attempt_start + RETRY_EVERY;
        let now = Instant::now();
        if next > now {
            thread::sleep((next - now).min(deadline.saturating_duration_since(now)));
        }
    }
}

/// A duration as the user reads it: "0.3 s", "10 s".
pub fn human_seconds(d: Duration) -> String {
    let tenths = (d.as_millis() + 50) / 100;
    let (whole, tenth) = (tenths / 10, tenths % 10);
    if tenth == 0 {
        format!("{whole} s")
    } else {
        format!("{whole}.{tenth} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_listening_port_is_found_at_once() -> std::io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let outcome = wait_for_tcp(listener.local_addr()?, Duration::from_secs(2));
        assert!(
            matches!(outcome, WaitOutcome::Open { after } if after < Duration::from_secs(1)),
            "{outcome:?}"
        );
        Ok(())
    }

    #[test]
    fn a_closed_port_times_out_on_time() -> std::io::Result<()> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let outcome = wait_for_tcp(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(700),
        );
        match outcome {
            WaitOutcome::TimedOut { after } => {
                assert!(
                    after >= Duration::from_millis(700) && after < Duration::from_millis(1200),
                    "{after:?}"
                )
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn durations_read_as_seconds_with_one_decimal() {
        assert_eq!(human_seconds(Duration::from_millis(312)), "0.3 s");
        assert_eq!(human_seconds(Duration::from_millis(10_020)), "10 s");
        assert_eq!(human_seconds(Duration::from_millis(1_250)), "1.3 s");
    }
}
