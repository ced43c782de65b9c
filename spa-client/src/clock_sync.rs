//! Whether this machine's clock is synchronised, and the warning when it is
//! not: spad refuses a packet stamped more than its skew away from its own
//! clock (PROTOCOL §3), silently. The kernel's NTP state is read by `main`
//! (adjtimex(2), the crate's one system call that needs `unsafe`); this module
//! only judges what it read and when to say it.

use crate::cli::Command;

/// What adjtimex(2) (modes = 0) reported: its return value (the clock state,
/// `TIME_OK`..`TIME_ERROR`) and the status flags (`STA_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelClock {
    /// The return value: `TIME_ERROR` (5) when the clock is not synchronised.
    pub state: i32,
    /// `timex.status`: `STA_UNSYNC` (0x40) set while no NTP daemon disciplines it.
    pub status: i32,
}

/// adjtimex's return value for an unsynchronised clock.
pub const TIME_ERROR: i32 = 5;
/// The status flag of a clock no NTP daemon has synchronised.
pub const STA_UNSYNC: i32 = 0x0040;

impl KernelClock {
    /// Whether an NTP daemon keeps the clock synchronised.
    pub fn synchronised(&self) -> bool {
        self.state != TIME_ERROR && self.status & STA_UNSYNC == 0
    }
}

/// When to warn about an unsynchronised clock, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarnWhen {
    /// Before sending: the command stamps what it sends with this clock (an
    /// SPA packet, or a rotating knock sequence, which depends on the time).
    Before,
    /// Only if the door does not answer: ssh-proxy's success stays silent, as
    /// its stderr is the ssh user's terminal.
    OnNoAnswer,
    /// Never: the command does not use the clock.
    Never,
}

/// When `command` should warn about an unsynchronised clock.
pub fn warn_when(command: &Command) -> WarnWhen {
    match command {
        Command::Open(_) | Command::Alias(_) => WarnWhen::Before,
        Command::Knock(args) if args.door.is_some() => WarnWhen::Before,
        Command::SshProxy(_) => WarnWhen::OnNoAnswer,
        _ => WarnWhen::Never,
    }
}

/// The warning to print once, if the clock (when it could be read) is not synchronised.
pub fn warning(clock: Option<KernelClock>) -> Option<String> {
    match clock {
        Some(c) if !c.synchronised() => Some(
            "spa-client: warning: this machine's clock is not synchronised (NTP); spad refuses \
             packets stamped more than its skew (30 s unless skew_secs says otherwise) away from \
             its own clock. Check with `timedatectl` (System clock synchronized: yes)."
                .to_owned(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn an_unsynchronised_clock_gets_one_warning() {
        let synced = KernelClock {
            state: 0,
            status: 0x2001,
        };
        assert_eq!(warning(Some(synced)), None);
        assert_eq!(warning(None), None, "unknown: no warning");
        for unsynced in [
            KernelClock {
                state: TIME_ERROR,
                status: 0,
            },
            KernelClock {
                state: 0,
                status: STA_UNSYNC | 0x1,
            },
            KernelClock {
                state: TIME_ERROR,
                status: STA_UNSYNC,
            },
        ] {
            let w = warning(Some(unsynced)).unwrap_or_default();
            assert!(
                w.starts_with("spa-client: warning: this machine's clock is not synchronised"),
                "{unsynced:?}: {w}"
            );
            assert!(w.contains("30 s"), "{w}");
        }
    }

    #[test]
    fn commands_that_stamp_the_time_warn_and_ssh_proxy_only_on_no_answer() {
        let when = |args: &[&str]| {
            Cli::try_parse_from(args)
                .map(|c| warn_when(&c.command))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        };
        let open = when(&["spa-client", "open", "ssh", "gw.example.net"]);
        assert_eq!(open, WarnWhen::Before);
        let rotating = when(&["spa-client", "knock", "--door", "web", "gw.example.net"]);
        assert_eq!(rotating, WarnWhen::Before);
        let proxy = when(&["spa-client", "ssh-proxy", "gw.example.net", "22"]);
        assert_eq!(proxy, WarnWhen::OnNoAnswer);
        let classic = when(&["spa-client", "knock", "gw.example.net", "7000", "8000"]);
        assert_eq!(classic, WarnWhen::Never);
        assert_eq!(
            when(&["spa-client", "config", "gw.example.net"]),
            WarnWhen::Never
        );
    }
}
