//! The rotating-knock settings a client keeps per door (PROTOCOL §4): how many
//! ports, from which range, over which transport. Owns the bounds check and the
//! `DOOR:N:LO-HI[:udp]` command-line form; deriving the ports is spa-proto's job.

use std::fmt;

use serde::Deserialize;
use spa_proto::{DoorName, NameError};

/// A rotating knock: `n` ports in `[lo, hi]`, sent as TCP SYNs or UDP datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotatingKnock {
    /// Number of ports in the sequence, 1..=16.
    pub n: u8,
    /// Lowest port of the range.
    pub lo: u16,
    /// Highest port of the range.
    pub hi: u16,
    /// UDP datagrams if true, TCP SYNs if false.
    pub udp: bool,
}

/// Why a rotating knock was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KnockError {
    /// `n` outside 1..=16.
    #[error("a knock has 1 to 16 ports, got n = {0}")]
    Count(u8),
    /// `lo` is 0 or above `hi`.
    #[error("knock port range {lo}-{hi} must satisfy 1 <= lo <= hi <= 65535")]
    Range {
        /// Lowest port.
        lo: u16,
        /// Highest port.
        hi: u16,
    },
    /// Fewer than 2^32 possible sequences.
    #[error(
        "{n} ports from {lo}-{hi} give fewer than 2^32 sequences to guess; use more ports or a wider range (n = 3 needs at least 1627 ports)"
    )]
    TooGuessable {
        /// Ports in the sequence.
        n: u8,
        /// Lowest port.
        lo: u16,
        /// Highest port.
        hi: u16,
    },
    /// The command-line form is wrong.
    #[error(
        "knock {0:?} must look like DOOR:N:LO-HI or DOOR:N:LO-HI:udp, e.g. legacy:4:20000-40000"
    )]
    Syntax(String),
    /// The door name is invalid.
    #[error("knock door: {0}")]
    Door(#[from] NameError),
}

impl RotatingKnock {
    /// Checks the bounds of PROTOCOL §4: 1 <= lo <= hi, 1 <= n <= 16, and
    /// range!/(range-n)! >= 2^32 (which implies range >= n).
    pub fn new(n: u8, lo: u16, hi: u16, udp: bool) -> Result<Self, KnockError> {
        if !(1..=16).contains(&n) {
            return Err(KnockError::Count(n));
        }
        if lo == 0 || lo > hi {
            return Err(KnockError::Range { lo, hi });
        }
        let range = u64::from(hi - lo) + 1;
        let mut sequences: u64 = 1;
        for i in 0..u64::from(n) {
            if range <= i {
                sequences = 0;
                break;
            }
            sequences = sequences.saturating_mul(range - i);
        }
        if sequences < 1 << 32 {
            return Err(KnockError::TooGuessable { n, lo, hi });
        }
        Ok(RotatingKnock { n, lo, hi, udp })
    }

    /// The transport as written in files: `"udp"` or `"tcp"`.
    pub fn proto(&self) -> &'static str {
        if self.udp {
            "udp"
        } else {
            "tcp"
        }
    }
}

impl fmt::Display for RotatingKnock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ports in {}-{}",
            self.n,
            self.proto(),
            self.lo,
            self.hi
        )
    }
}

/// Parses the command-line form `DOOR:N:LO-HI[:udp]` (`:tcp` is also accepted).
pub fn parse_knock_spec(spec: &str) -> Result<(DoorName, RotatingKnock), KnockError> {
    let syntax = || KnockError::Syntax(spec.to_owned());
    let parts: Vec<&str> = spec.split(':').collect();
    let (door, n, range, udp) = match parts.as_slice() {
        [door, n, range] => (door, n, range, false),
        [door, n, range, "udp"] => (door, n, range, true),
        [door, n, range, "tcp"] => (door, n, range, false),
        _ => return Err(syntax()),
    };
    let door: DoorName = door.parse()?;
    let n: u8 = n.parse().map_err(|_| syntax())?;
    let (lo, hi) = range.split_once('-').ok_or_else(syntax)?;
    let lo: u16 = lo.parse().map_err(|_| syntax())?;
    let hi: u16 = hi.parse().map_err(|_| syntax())?;
    Ok((door, RotatingKnock::new(n, lo, hi, udp)?))
}

/// `[gateway.knock.<door>]` as written in a client key file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KnockTable {
    n: u8,
    lo: u16,
    hi: u16,
    #[serde(default)]
    proto: Proto,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum Proto {
    #[default]
    Tcp,
    Udp,
}

impl TryFrom<KnockTable> for RotatingKnock {
    type Error = KnockError;
    fn try_from(t: KnockTable) -> Result<Self, KnockError> {
        RotatingKnock::new(t.n, t.lo, t.hi, matches!(t.proto, Proto::Udp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_follow_protocol_section_4() {
        assert!(RotatingKnock::new(3, 1, 1627, false).is_ok());
        assert_eq!(
            RotatingKnock::new(3, 1, 1626, false),
            Err(KnockError::TooGuessable {
                n: 3,
                lo: 1,
                hi: 1626
            })
        );
        assert!(RotatingKnock::new(16, 1, 16, true).is_ok()); // 16! ≈ 2^44
        assert!(RotatingKnock::new(2, 1, 65535, false).is_err()); // 65535*65534 < 2^32
        assert_eq!(
            RotatingKnock::new(0, 1, 65535, false),
            Err(KnockError::Count(0))
        );
        assert_eq!(
            RotatingKnock::new(17, 1, 65535, false),
            Err(KnockError::Count(17))
        );
        assert_eq!(
            RotatingKnock::new(4, 0, 100, false),
            Err(KnockError::Range { lo: 0, hi: 100 })
        );
        assert_eq!(
            RotatingKnock::new(4, 200, 100, false),
            Err(KnockError::Range { lo: 200, hi: 100 })
        );
        assert!(RotatingKnock::new(5, 10, 12, false).is_err()); // range < n
    }

    #[test]
    fn command_line_form_parses() -> Result<(), KnockError> {
        let (door, k) = parse_knock_spec("legacy:4:20000-40000")?;
        assert_eq!(door.as_str(), "legacy");
        assert_eq!(
            k,
            RotatingKnock {
                n: 4,
                lo: 20000,
                hi: 40000,
                udp: false
            }
        );
        let (_, k) = parse_knock_spec("legacy:4:20000-40000:udp")?;
        assert!(k.udp);
        for bad in [
            "legacy",
            "legacy:4",
            "legacy:x:1-2",
            "legacy:4:20000",
            "legacy:4:1-2:sctp",
        ] {
            assert!(
                matches!(parse_knock_spec(bad), Err(KnockError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_knock_spec("Legacy:4:20000-40000"),
            Err(KnockError::Door(_))
        ));
        Ok(())
    }
}
