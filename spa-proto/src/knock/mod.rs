//! Knock sequences, sans-IO: classic knockd sequences (fixed, with TCP-flag
//! rules, one-time lists) and the rotating per-user sequences of PROTOCOL §4.
//!
//! The daemon tells the knocker this host's addresses
//! ([`Knocker::set_local_addresses`]: knocks sent elsewhere do not count),
//! feeds [`Knocker::on_packet`] every captured packet on a port of
//! [`Knocker::ports`], calls [`Knocker::handle_timeout`] at
//! [`Knocker::poll_timeout`], and carries out the [`KnockOutcome`]s: opening
//! doors, persisting used rotating steps, commenting out used one-time
//! sequences, rebuilding its capture filter. Nothing here reads a clock,
//! opens a socket or touches a file.

mod attempts;
mod destination;
mod doors;
mod error;
mod knocker;
mod outcome;
mod rotating;
mod sequence;
mod tcpflags;
mod tracks;

pub use doors::{ClassicDoor, RotatingDoor, RotatingUser};
pub use error::{FlagName, KnockConfigError, KnockSyntaxError, KnockSyntaxErrorKind};
pub use knocker::{Knocker, MAX_ATTEMPTS};
pub use outcome::{KnockOutcome, KnockPacket};
pub use rotating::{derive_sequence, step_of, step_start_ms, RotatingSpec, MAX_PORTS, STEP_MS};
pub use sequence::{
    comment_out_one_time, parse_one_time_file, parse_sequence, KnockStep, Transport,
};
pub use tcpflags::{TcpFlagsRule, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG};
