//! The errors of the knock module: configurations outside the protocol's
//! bounds, and knock sequences or TCP-flag rules that do not parse. Owns the
//! wording users see; never decides anything.

use std::fmt;

/// A knock door configuration that the protocol (PROTOCOL §4) or common sense
/// refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KnockConfigError {
    /// The lowest port of a rotating range must be at least 1.
    #[error("rotating knock: lo must be at least 1, got {0}")]
    LoIsZero(u16),
    /// The range is upside down.
    #[error("rotating knock: lo ({lo}) must not be above hi ({hi})")]
    LoAboveHi {
        /// Lowest port.
        lo: u16,
        /// Highest port.
        hi: u16,
    },
    /// A rotating sequence has 1 to 16 ports.
    #[error("rotating knock: n must be 1 to 16 ports, got {0}")]
    PortCount(u8),
    /// The range holds fewer ports than the sequence needs.
    #[error("rotating knock: {n} distinct ports do not fit in a range of {range}")]
    RangeTooSmall {
        /// Ports in the sequence.
        n: u8,
        /// Ports in the range.
        range: u32,
    },
    /// Fewer than 2^32 possible sequences: too easy to guess.
    #[error(
        "rotating knock: {n} ports out of {range} give only {sequences} possible sequences, \
         fewer than 2^32 (use more ports or a wider range; n = 3 needs a range of at least 1627)"
    )]
    TooGuessable {
        /// Ports in the sequence.
        n: u8,
        /// Ports in the range.
        range: u32,
        /// range!/(range-n)!, below 2^32.
        sequences: u64,
    },
    /// A classic door without any port to knock.
    #[error("door {0}: the knock sequence is empty")]
    EmptySequence(String),
    /// A door whose sequences would always time out.
    #[error("door {0}: seq_timeout must be more than 0")]
    ZeroTimeout(String),
}

/// Where and why a knock sequence, a one-time sequence file or a TCP-flags
/// rule does not parse. `line` and `column` count from 1 and are relative to
/// the text that was parsed (a single value parses as line 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct KnockSyntaxError {
    /// Line of the text, from 1.
    pub line: usize,
    /// Column (in characters) of the offending item, from 1.
    pub column: usize,
    /// What is wrong there.
    pub kind: KnockSyntaxErrorKind,
}

impl KnockSyntaxError {
    /// An error at `byte` of the single-line `text`.
    pub(crate) fn at(text: &str, byte: usize, kind: KnockSyntaxErrorKind) -> Self {
        let column = text.get(..byte).map_or(byte, |head| head.chars().count()) + 1;
        KnockSyntaxError {
            line: 1,
            column,
            kind,
        }
    }

    /// The same error, placed on `line` of a longer text.
    pub(crate) fn on_line(mut self, line: usize) -> Self {
        self.line = line;
        self
    }
}

/// What is wrong in a knock sequence or a TCP-flags rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KnockSyntaxErrorKind {
    /// No port at all.
    #[error("the sequence is empty")]
    EmptySequence,
    /// Not a number in 1..=65535.
    #[error("{0:?} is not a port number from 1 to 65535")]
    BadPort(String),
    /// An empty step between commas (knockd reads it as port 0).
    #[error("an empty step between commas (knockd would read it as port 0)")]
    EmptyStep,
    /// Ports separated only by blanks, e.g. `7000 8000`.
    #[error(
        "ports separated by blanks: knockd reads only the first one ({0}); separate ports with commas"
    )]
    BlankSeparated(String),
    /// A transport other than tcp or udp.
    #[error("unknown transport {0:?}: expected tcp or udp")]
    BadTransport(String),
    /// No flag at all.
    #[error("the TCP flags rule is empty")]
    EmptyFlags,
    /// A flag name that does not exist.
    #[error(
        "unknown TCP flag {0:?}: expected fin, syn, rst, psh, ack or urg, optionally after '!'"
    )]
    UnknownFlag(String),
    /// The same flag both required and excluded.
    #[error("TCP flag {0} is both required and excluded")]
    ContradictoryFlag(FlagName),
}

/// The name of one TCP flag, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagName(pub(crate) &'static str);

impl fmt::Display for FlagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
