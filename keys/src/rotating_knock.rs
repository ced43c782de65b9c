//! The rotating-knock settings a client keeps per door (PROTOCOL §4): how many
//! ports, from which range, over which transport, and the `DOOR:N:LO-HI[:udp]`
//! command-line form. The §4 bounds are spa-proto's `RotatingSpec` (one owner);
//! deriving the ports is spa-proto's job too.

use std::fmt;

use serde::Deserialize;
use spa_proto::knock::{KnockConfigError, RotatingSpec};
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
    /// Outside the bounds of PROTOCOL §4 (spa-proto's check).
    #[error("{0}")]
    Bounds(#[from] KnockConfigError),
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
    /// Checks the bounds of PROTOCOL §4 (`RotatingSpec::validate`):
    /// 1 <= lo <= hi, 1 <= n <= 16, and at least 2^32 possible sequences.
    pub fn new(n: u8, lo: u16, hi: u16, udp: bool) -> Result<Self, KnockError> {
        RotatingSpec { n, lo, hi }.validate()?;
        Ok(RotatingKnock { n, lo, hi, udp })
    }

    /// The spec spa-proto derives the ports from.
    pub fn spec(&self) -> RotatingSpec {
        RotatingSpec {
            n: self.n,
            lo: self.lo,
            hi: self.hi,
        }
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
        assert!(matches!(
            RotatingKnock::new(3, 1, 1626, false),
            Err(KnockError::Bounds(KnockConfigError::TooGuessable {
                n: 3,
                ..
            }))
        ));
        assert!(RotatingKnock::new(16, 1, 16, true).is_ok()); // 16! ≈ 2^44
        assert!(RotatingKnock::new(2, 1, 65535, false).is_err()); // 65535*65534 < 2^32
        assert_eq!(
            RotatingKnock::new(0, 1, 65535, false),
            Err(KnockError::Bounds(KnockConfigError::PortCount(0)))
        );
        assert_eq!(
            RotatingKnock::new(17, 1, 65535, false),
            Err(KnockError::Bounds(KnockConfigError::PortCount(17)))
        );
        assert_eq!(
            RotatingKnock::new(4, 0, 100, false),
            Err(KnockError::Bounds(KnockConfigError::LoIsZero(0)))
        );
        assert_eq!(
            RotatingKnock::new(4, 200, 100, false),
            Err(KnockError::Bounds(KnockConfigError::LoAboveHi {
                lo: 200,
                hi: 100
            }))
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
