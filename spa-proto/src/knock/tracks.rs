//! The sequences the knocker expects right now, one "track" each: every
//! classic door's sequence (for one-time doors, the first unused one) and,
//! for rotating doors, every allowed user's sequences of steps s-1, s, s+1.
//! Owns the port index used on the hot path; holds no per-client state.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use super::destination::LocalAddresses;
use super::doors::{ClassicDoor, RotatingDoor};
use super::outcome::KnockPacket;
use super::rotating::derive_sequence;
use super::sequence::{KnockStep, Transport};
use super::tcpflags::TcpFlagsRule;

/// A door of the knocker, by kind and position in the list it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum DoorRef {
    Classic(usize),
    Rotating(usize),
}

/// A stable name for one expected sequence; survives a rebuild of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TrackKey {
    /// Classic door `door`, sequence `seq` (0 unless one-time).
    Classic { door: usize, seq: usize },
    /// Rotating door `door`, user `user`, rotation step `step`.
    Rotating { door: usize, user: usize, step: u64 },
}

impl TrackKey {
    pub(crate) fn door(&self) -> DoorRef {
        match *self {
            TrackKey::Classic { door, .. } => DoorRef::Classic(door),
            TrackKey::Rotating { door, .. } => DoorRef::Rotating(door),
        }
    }
}

/// One expected sequence.
pub(crate) struct Track {
    pub(crate) key: TrackKey,
    pub(crate) steps: Vec<KnockStep>,
    rule: Option<TcpFlagsRule>,
    /// The door's `target` (empty: this host's addresses).
    target: Vec<IpAddr>,
}

impl Track {
    /// Whether the packet is a knock at all for this track's door: it must
    /// be sent to the door's destination (its target, else this host), and
    /// a TCP packet must pass the door's flags rule (UDP always does).
    pub(crate) fn counts(&self, pkt: &KnockPacket, local: &LocalAddresses) -> bool {
        local.admits(pkt.dst, &self.target)
            && (pkt.transport == Transport::Udp
                || self.rule.is_none_or(|r| r.matches(pkt.tcp_flags)))
    }
}

/// The classic door state the table is built from.
pub(crate) struct ClassicSource<'a> {
    pub(crate) door: &'a ClassicDoor,
    /// Index of the first unused one-time sequence.
    pub(crate) next_one_time: usize,
}

/// Every expected sequence, indexed by key and by first port.
#[derive(Default)]
pub(crate) struct TrackTable {
    tracks: Vec<Track>,
    by_key: HashMap<TrackKey, usize>,
    by_first: HashMap<KnockStep, Vec<usize>>,
    ports: HashSet<KnockStep>,
}

impl TrackTable {
    /// The tracks of these doors at rotation `step`. Rotating sequences
    /// already in `previous` are reused rather than derived again.
    pub(crate) fn build(
        classic: &[ClassicSource<'_>],
        rotating: &[RotatingDoor],
        step: u64,
        previous: &TrackTable,
    ) -> Self {
        let mut tracks = Vec::new();
        for (door, src) in classic.iter().enumerate() {
            let (seq, steps) = match &src.door.one_time {
                None => (0, &src.door.steps),
                Some(list) => match list.get(src.next_one_time) {
                    Some(steps) => (src.next_one_time, steps),
                    None => continue,
                },
            };
            if steps.is_empty() {
                continue;
            }
            let key = TrackKey::Classic { door, seq };
            tracks.push(Track {
                key,
                steps: steps.clone(),
                rule: src.door.tcpflags,
                target: src.door.target.clone(),
            });
        }
        let steps_window = [step.checked_sub(1), Some(step), step.checked_add(1)];
        for (door, rd) in rotating.iter().enumerate() {
            let rule = (rd.transport == Transport::Tcp).then_some(TcpFlagsRule::SYN_NOT_ACK);
            for (user, (_, _, k_knock)) in rd.users.iter().enumerate() {
                for step in steps_window.into_iter().flatten() {
                    let key = TrackKey::Rotating { door, user, step };
                    let steps = match previous.get(&key) {
                        Some(old) => old.steps.clone(),
                        None => match derive_sequence(k_knock, &rd.name, &rd.spec, step) {
                            Some(ports) => ports
                                .into_iter()
                                .map(|port| KnockStep {
                                    port,
                                    transport: rd.transport,
                                })
                                .collect(),
                            None => continue,
                        },
                    };
                    tracks.push(Track {
                        key,
                        steps,
                        rule,
                        target: Vec::new(),
                    });
                }
            }
        }
        Self::index(tracks)
    }

    fn index(tracks: Vec<Track>) -> Self {
        let mut by_key = HashMap::with_capacity(tracks.len());
        let mut by_first: HashMap<KnockStep, Vec<usize>> = HashMap::new();
        let mut ports = HashSet::new();
        for (i, track) in tracks.iter().enumerate() {
            by_key.insert(track.key, i);
            if let Some(&first) = track.steps.first() {
                by_first.entry(first).or_default().push(i);
            }
            ports.extend(track.steps.iter().copied());
        }
        TrackTable {
            tracks,
            by_key,
            by_first,
            ports,
        }
    }

    pub(crate) fn get(&self, key: &TrackKey) -> Option<&Track> {
        self.by_key.get(key).and_then(|&i| self.tracks.get(i))
    }

    /// Tracks whose first knock is `step`.
    pub(crate) fn starting_with(&self, step: KnockStep) -> impl Iterator<Item = &Track> {
        self.by_first
            .get(&step)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.tracks.get(i))
    }

    /// Whether `step` is in any expected sequence.
    pub(crate) fn knows(&self, step: KnockStep) -> bool {
        self.ports.contains(&step)
    }

    /// Every port of every track: (TCP ports, UDP ports), each sorted.
    pub(crate) fn ports(&self) -> (Vec<u16>, Vec<u16>) {
        let (mut tcp, mut udp) = (Vec::new(), Vec::new());
        for step in &self.ports {
            match step.transport {
                Transport::Tcp => tcp.push(step.port),
                Transport::Udp => udp.push(step.port),
            }
        }
        tcp.sort_unstable();
        udp.sort_unstable();
        (tcp, udp)
    }

    pub(crate) fn port_set(&self) -> &HashSet<KnockStep> {
        &self.ports
    }
}

impl fmt::Debug for TrackTable {
    // Rotating sequences are valid credentials for a while: show counts only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackTable")
            .field("tracks", &self.tracks.len())
            .field("ports", &self.ports.len())
            .finish()
    }
}
