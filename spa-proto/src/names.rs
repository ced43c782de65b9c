//! Validated names of the protocol: door names (PROTOCOL §2) and gateway
//! server ids (PROTOCOL §1). A value of these types can only hold a valid name.

use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// A door name must be 1..=32 bytes.
    #[error("door name must be 1 to 32 characters long, got {0}")]
    DoorLength(usize),
    /// A door name starts with `[a-z0-9]` and continues with `[a-z0-9_-]`.
    #[error("door name {0:?} must start with a-z or 0-9 and use only a-z, 0-9, '_' and '-'")]
    DoorChars(String),
    /// A server id must be 1..=64 bytes.
    #[error("server_id must be 1 to 64 characters long, got {0}")]
    ServerIdLength(usize),
    /// A server id uses `[a-z0-9.-]`.
    #[error("server_id {0:?} may use only a-z, 0-9, '.' and '-'")]
    ServerIdChars(String),
}

/// The name of a door: 1..=32 bytes, first `[a-z0-9]`, then `[a-z0-9_-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DoorName(String);

impl DoorName {
    /// The longest door name the wire format carries.
    pub const MAX_LEN: usize = 32;

    /// Checks `bytes` against the door-name rule.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, NameError> {
        if bytes.is_empty() || bytes.len() > Self::MAX_LEN {
            return Err(NameError::DoorLength(bytes.len()));
        }
        let first_ok = bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit();
        let rest_ok = bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !(first_ok && rest_ok) {
            return Err(NameError::DoorChars(
                String::from_utf8_lossy(bytes).into_owned(),
            ));
        }
        // Only ASCII passed the checks above, so this is valid UTF-8.
        Ok(DoorName(bytes.iter().map(|&b| b as char).collect()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for DoorName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_bytes(s.as_bytes())
    }
}

impl fmt::Display for DoorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DoorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DoorName({})", self.0)
    }
}

/// A gateway's server id: 1..=64 bytes of `[a-z0-9.-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(String);

impl ServerId {
    /// The longest server id.
    pub const MAX_LEN: usize = 64;

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ServerId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(NameError::ServerIdLength(s.len()));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return Err(NameError::ServerIdChars(s.to_owned()));
        }
        Ok(ServerId(s.to_owned()))
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn door_names_follow_the_rule() {
        for ok in ["ssh", "0_db-replica", "a", &"x".repeat(32)] {
            assert_eq!(
                ok.parse::<DoorName>().map(|d| d.to_string()),
                Ok(ok.to_string())
            );
        }
        assert_eq!("".parse::<DoorName>(), Err(NameError::DoorLength(0)));
        assert_eq!(
            "x".repeat(33).parse::<DoorName>(),
            Err(NameError::DoorLength(33))
        );
        for bad in ["SSH", "-ssh", "_a", "a.b", "a b", "é"] {
            assert!(
                matches!(bad.parse::<DoorName>(), Err(NameError::DoorChars(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn server_ids_follow_the_rule() {
        assert!("gw1.example.net".parse::<ServerId>().is_ok());
        assert!("a".parse::<ServerId>().is_ok());
        assert_eq!("".parse::<ServerId>(), Err(NameError::ServerIdLength(0)));
        assert!(matches!(
            "GW".parse::<ServerId>(),
            Err(NameError::ServerIdChars(_))
        ));
        assert!(matches!(
            "gw_1".parse::<ServerId>(),
            Err(NameError::ServerIdChars(_))
        ));
        assert_eq!(
            "a".repeat(65).parse::<ServerId>(),
            Err(NameError::ServerIdLength(65))
        );
    }
}
