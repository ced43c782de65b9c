//! Readings of a daemon's cost from /proc: CPU time (its own and its reaped
//! children's, e.g. the `nft`/`iptables` processes it runs), resident memory,
//! and context switches summed over all its threads (each wake-up of a
//! sleeping thread is one voluntary switch).

use std::time::{Duration, Instant};

use crate::error::{io, BenchError, Result};

/// Kernel clock ticks per second for /proc/<pid>/stat (USER_HZ; 100 on Linux).
pub const TICKS_PER_SEC: u64 = 100;

/// One snapshot of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// When it was taken.
    pub at: Instant,
    /// utime + stime + cutime + cstime, in ticks.
    pub cpu_ticks: u64,
    /// Voluntary + involuntary context switches over all threads.
    pub ctx_switches: u64,
}

impl ProcSample {
    /// Reads `pid` now.
    pub fn read(pid: i32) -> Result<ProcSample> {
        Ok(ProcSample {
            at: Instant::now(),
            cpu_ticks: cpu_ticks(pid)?,
            ctx_switches: ctx_switches(pid)?,
        })
    }

    /// CPU use between `self` and `later`, in percent of one core.
    pub fn cpu_percent_until(&self, later: &ProcSample) -> f64 {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        later.cpu_ticks.saturating_sub(self.cpu_ticks) as f64 / TICKS_PER_SEC as f64 / secs * 100.0
    }

    /// Context switches per second between `self` and `later`.
    pub fn switches_per_sec_until(&self, later: &ProcSample) -> f64 {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        later.ctx_switches.saturating_sub(self.ctx_switches) as f64 / secs
    }

    /// Time between two samples.
    pub fn span_until(&self, later: &ProcSample) -> Duration {
        later.at.duration_since(self.at)
    }
}

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(io(format!("reading {path}")))
}

/// utime + stime + cutime + cstime of `pid`, in ticks.
pub fn cpu_ticks(pid: i32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = read(&path)?;
    parse_stat_ticks(&text).ok_or_else(|| BenchError::Invalid(format!("{path}: unexpected format")))
}

fn parse_stat_ticks(text: &str) -> Option<u64> {
    // Fields after the ")" that closes the command name: state is field 3, utime 14.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let f = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(f(14)? + f(15)? + f(16)? + f(17)?)
}

/// Resident set size of `pid`, in KiB.
pub fn rss_kib(pid: i32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    status_field(&read(&path)?, "VmRSS:")
        .ok_or_else(|| BenchError::Invalid(format!("{path}: no VmRSS")))
}

fn status_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Context switches of every thread of `pid`.
pub fn ctx_switches(pid: i32) -> Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).map_err(io(format!("listing {dir}")))? {
        let Ok(entry) = entry else { continue };
        let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        total += status_field(&text, "voluntary_ctxt_switches:").unwrap_or(0);
        total += status_field(&text, "nonvoluntary_ctxt_switches:").unwrap_or(0);
    }
    Ok(total)
}

/// Number of threads of `pid`.
pub fn threads(pid: i32) -> Result<usize> {
    let dir = format!("/proc/{pid}/task");
    Ok(std::fs::read_dir(&dir)
        .map_err(io(format!("listing {dir}")))?
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_sum_user_system_and_children() {
        let line =
            "1234 (sp ad) S 1 1234 1234 0 -1 4194560 500 0 0 0 7 3 2 1 20 0 4 0 100 1000000 300";
        assert_eq!(parse_stat_ticks(line), Some(13));
    }

    #[test]
    fn this_process_has_memory_and_threads() -> Result<()> {
        let me = std::process::id() as i32;
        assert!(rss_kib(me)? > 0);
        assert!(threads(me)? >= 1);
        assert!(ProcSample::read(me)?.ctx_switches > 0);
        Ok(())
    }
}
