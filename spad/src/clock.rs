//! The one place spad reads the clock: the wall clock (timestamps, the
//! journal) and a monotonic one that counts through suspend (door timers),
//! read together once per wake-up and handed to the gateway.

use std::time::{SystemTime, UNIX_EPOCH};

use nix::time::{clock_gettime, ClockId};
use spa_proto::gateway::Now;

/// Reads both clocks.
pub fn now() -> Now {
    let wall_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // CLOCK_BOOTTIME never goes back and keeps counting while suspended, so a
    // door's time passes even if the machine sleeps.
    let mono_ms = clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(|t| (t.tv_sec() as u64) * 1000 + (t.tv_nsec() as u64) / 1_000_000)
        .unwrap_or(0);
    Now { wall_ms, mono_ms }
}
