//! What the daemon feeds the knock state machine (one captured packet) and
//! what it gets back (decisions to log, act on or persist). Plain data.

use std::net::IpAddr;

use super::sequence::{KnockStep, Transport};
use crate::keys::KeyId;
use crate::names::DoorName;

/// One captured packet on a knock port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnockPacket {
    /// Source address (IPv4-mapped IPv6 counts as the IPv4 address).
    pub src: IpAddr,
    /// Destination address: a knock counts only if it is one of this host's
    /// addresses (`Knocker::set_local_addresses`) or, for a classic door
    /// with a `target`, one of the target's addresses.
    pub dst: IpAddr,
    /// TCP or UDP.
    pub transport: Transport,
    /// Destination port: the port knocked.
    pub dst_port: u16,
    /// TCP flag bits (`TCP_SYN` …); ignored for UDP.
    pub tcp_flags: u8,
    /// Source port; with `tcp_seq`, recognises a retransmitted SYN.
    pub src_port: u16,
    /// TCP sequence number; ignored for UDP.
    pub tcp_seq: u32,
}

/// A decision of the knock state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KnockOutcome {
    /// `addr` has knocked `stage` of the `of` ports of `door` so far.
    Stage {
        /// The door.
        door: DoorName,
        /// The knocking source.
        addr: IpAddr,
        /// Ports knocked correctly so far (1 ≤ stage < of).
        stage: usize,
        /// Ports in the sequence.
        of: usize,
    },
    /// Open `door` for `addr`: the sequence is complete. `user` is set for
    /// rotating doors.
    Opened {
        /// The door to open.
        door: DoorName,
        /// The address to open it for.
        addr: IpAddr,
        /// Whose rotating sequence it was.
        user: Option<String>,
    },
    /// Persist that `key` opened `door` with the sequence of `step` (kept
    /// until the current step is `step + 2`; restore with `Knocker::mark_used`).
    UsedStep {
        /// The key's public id.
        key: KeyId,
        /// The door.
        door: DoorName,
        /// The rotation step whose sequence was used.
        step: u64,
    },
    /// A rotating sequence that already opened the door was knocked again:
    /// nothing opens (a replay, or the user knocking twice in one step).
    Replayed {
        /// The door.
        door: DoorName,
        /// The knocking source.
        addr: IpAddr,
        /// Whose sequence it was.
        user: String,
        /// The step of the sequence.
        step: u64,
    },
    /// `addr` did not finish `door` within its seq_timeout (or the rotation
    /// step of the sequence it was knocking passed); the attempt is dropped.
    TimedOut {
        /// The door.
        door: DoorName,
        /// The knocking source.
        addr: IpAddr,
    },
    /// `addr` knocked a port out of order (or its one-time sequence was
    /// used meanwhile); its attempt at `door` starts over.
    Reset {
        /// The door.
        door: DoorName,
        /// The knocking source.
        addr: IpAddr,
    },
    /// The one-time sequence `steps` of `door` (its `index` in the list the
    /// door was built with) is used: comment it out in the file
    /// (see `comment_out_one_time`).
    OneTimeUsed {
        /// The door.
        door: DoorName,
        /// Position in `ClassicDoor::one_time`.
        index: usize,
        /// The sequence used.
        steps: Vec<KnockStep>,
    },
    /// Every one-time sequence of `door` is used: the door is disabled.
    OneTimeExhausted {
        /// The door.
        door: DoorName,
    },
    /// The set of knock ports changed (rotation step, one-time sequence
    /// used): rebuild the capture filter from `Knocker::ports`.
    PortsChanged,
}
