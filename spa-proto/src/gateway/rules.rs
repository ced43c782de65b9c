//! What the gateway is told about the doors it guards: for each door, what
//! opens it (an SPA packet, a classic sequence, a rotating sequence), for how
//! long, how its firewall backend closes, and how many addresses may hold it
//! open at once. Plain data, built by spad from its config.

use std::collections::BTreeMap;

use crate::knock::{ClassicDoor, RotatingSpec, Transport};
use crate::names::DoorName;

/// What opens a door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opener {
    /// A valid spa/1 packet naming it.
    Spa,
    /// A knockd-style sequence (fixed, or one-time list).
    Classic(ClassicDoor),
    /// The per-user rotating sequences of PROTOCOL §4.
    Rotating {
        /// Ports and range.
        spec: RotatingSpec,
        /// TCP or UDP knocks.
        transport: Transport,
        /// Time allowed from the first knock to the last.
        seq_timeout_ms: u64,
    },
}

/// How the door's firewall backend closes an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// The kernel closes it on time by itself (nftables element timeouts);
    /// re-opening after a restart is idempotent.
    Kernel,
    /// Only spad's timer closes it (an iptables rule); re-opening is idempotent.
    Timer,
    /// The operator's commands: the open command is never re-run to restore
    /// a door after a restart (it is adopted); only spad's timer closes it.
    Command {
        /// knockd's plain `command` without a stop command: it runs on every
        /// completed sequence, even while the door is open.
        every_time: bool,
    },
}

/// One door as the gateway enforces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorRules {
    /// Its name.
    pub name: DoorName,
    /// What opens it.
    pub opener: Opener,
    /// Seconds when the packet asks for 0, and for every knock.
    pub default_secs: u32,
    /// The most a packet may get.
    pub max_secs: u32,
    /// How its backend closes.
    pub closing: Closing,
    /// At most this many addresses may hold it open at once (further
    /// openings are refused and counted).
    pub max_open: usize,
}

/// Everything the gateway enforces.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    /// The doors.
    pub doors: Vec<DoorRules>,
    /// Knock progress events (stage, reset, timeout) and cap refusals logged
    /// per minute at most; the rest are counted and summarised.
    pub knock_events_per_minute: u32,
    /// For grants that name ports (fwknop): the door each port opens. Each
    /// such door opens exactly that one port, so a grant opens no more
    /// than it asked for.
    pub port_doors: BTreeMap<(Transport, u16), DoorName>,
}

impl GatewayConfig {
    /// The door named `name`.
    pub fn door(&self, name: &DoorName) -> Option<&DoorRules> {
        self.doors.iter().find(|d| &d.name == name)
    }
}
