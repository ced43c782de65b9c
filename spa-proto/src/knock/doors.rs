//! What a knock door asks for: a classic door (a fixed knockd sequence or a
//! list of one-time sequences) or a rotating door (per-user sequences of
//! PROTOCOL §4). Owns their validation; holds no per-client state.

use std::net::IpAddr;

use super::error::KnockConfigError;
use super::rotating::RotatingSpec;
use super::sequence::{KnockStep, Transport};
use super::tcpflags::TcpFlagsRule;
use crate::keys::{KeyId, SecretBytes};
use crate::names::DoorName;

/// A knockd-style door: knocking `steps` in order (or, with `one_time`, the
/// first unused one-time sequence) within `seq_timeout_ms` opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicDoor {
    /// The door this sequence opens.
    pub name: DoorName,
    /// The sequence; ignored when `one_time` is set.
    pub steps: Vec<KnockStep>,
    /// Time allowed from the first knock to the last.
    pub seq_timeout_ms: u64,
    /// TCP packets that fail this rule are ignored by the door; `None`
    /// counts every TCP packet (knockd's default). UDP knocks never check it.
    pub tcpflags: Option<TcpFlagsRule>,
    /// knockd's One_Time_Sequences: used in order, each at most once, as
    /// [`parse_one_time_file`](super::parse_one_time_file) returns them.
    pub one_time: Option<Vec<Vec<KnockStep>>>,
    /// knockd's `Target`: when not empty, only knocks sent to one of these
    /// addresses count (and knocks to this host's own addresses do not);
    /// when empty, only knocks sent to one of this host's addresses count.
    pub target: Vec<IpAddr>,
}

impl ClassicDoor {
    /// Refuses a door that could never open: no sequence (an empty one-time
    /// list is allowed: the door is simply used up) or a zero timeout.
    pub fn validate(&self) -> Result<(), KnockConfigError> {
        let name = || self.name.to_string();
        let empty = match &self.one_time {
            None => self.steps.is_empty(),
            Some(list) => list.iter().any(Vec::is_empty),
        };
        if empty {
            return Err(KnockConfigError::EmptySequence(name()));
        }
        if self.seq_timeout_ms == 0 {
            return Err(KnockConfigError::ZeroTimeout(name()));
        }
        Ok(())
    }
}

/// One user allowed on a rotating door: their name (for logs and the
/// `Opened` decision), the public id of their key, and their `K_knock`.
pub type RotatingUser = (String, KeyId, SecretBytes);

/// A door opened by the rotating sequences of PROTOCOL §4: each allowed user
/// knocks the `spec.n` ports derived from their `K_knock` for the current
/// 30-s step (s-1 and s+1 are accepted too), each once.
#[derive(Debug, Clone)]
pub struct RotatingDoor {
    /// The door (its name is part of the derivation).
    pub name: DoorName,
    /// How many ports, from which range.
    pub spec: RotatingSpec,
    /// Every port is knocked with this transport. TCP knocks must be SYNs
    /// without ACK ([`TcpFlagsRule::SYN_NOT_ACK`]).
    pub transport: Transport,
    /// Time allowed from the first knock to the last.
    pub seq_timeout_ms: u64,
    /// Only these users' sequences open the door.
    pub users: Vec<RotatingUser>,
}

impl RotatingDoor {
    /// Checks the spec's bounds (§4) and the timeout.
    pub fn validate(&self) -> Result<(), KnockConfigError> {
        self.spec.validate()?;
        if self.seq_timeout_ms == 0 {
            return Err(KnockConfigError::ZeroTimeout(self.name.to_string()));
        }
        Ok(())
    }
}
