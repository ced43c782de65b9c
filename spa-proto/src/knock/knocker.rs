//! The knock state machine: fed every captured knock packet and the time, it
//! tracks each source's progress on every expected sequence (classic,
//! one-time and rotating) and returns decisions. knockd 0.8 semantics minus
//! its bugs; sans-IO: no clock, no socket, no file.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use super::attempts::{Attempt, AttemptTable, TcpSignature};
use super::destination::LocalAddresses;
use super::doors::{ClassicDoor, RotatingDoor};
use super::outcome::{KnockOutcome, KnockPacket};
use super::rotating::{step_of, step_start_ms};
use super::sequence::{KnockStep, Transport};
use super::tracks::{ClassicSource, DoorRef, TrackKey, TrackTable};
use crate::keys::KeyId;
use crate::names::DoorName;
use crate::packet::canonical_ip;

/// The default bound on knock attempts in progress, all sources together.
pub const MAX_ATTEMPTS: usize = 65_536;

/// A classic door and how far its one-time list is used.
#[derive(Debug)]
struct ClassicState {
    door: ClassicDoor,
    next_one_time: usize,
}

/// A (key, door, step) whose rotating sequence already opened the door.
type UsedStep = (KeyId, DoorName, u64);

/// What one packet did to one door, before it becomes outcomes.
#[derive(Default)]
struct DoorEvent {
    /// Highest (stage, of) reached.
    stage: Option<(usize, usize)>,
    /// An attempt was dropped for a wrong knock.
    reset: bool,
}

/// The knock state machine for all knock doors of a gateway.
pub struct Knocker {
    classic: Vec<ClassicState>,
    rotating: Vec<RotatingDoor>,
    step: u64,
    used: HashSet<UsedStep>,
    tracks: TrackTable,
    attempts: AttemptTable,
    local: LocalAddresses,
}

impl Knocker {
    /// A knocker for these doors at `now_ms`, holding at most
    /// [`MAX_ATTEMPTS`] attempts. Doors should have passed `validate()`; a
    /// door with an empty sequence simply never opens.
    pub fn new(doors: Vec<ClassicDoor>, rotating: Vec<RotatingDoor>, now_ms: u64) -> Self {
        let classic = doors
            .into_iter()
            .map(|door| ClassicState {
                door,
                next_one_time: 0,
            })
            .collect();
        let mut knocker = Knocker {
            classic,
            rotating,
            step: step_of(now_ms),
            used: HashSet::new(),
            tracks: TrackTable::default(),
            attempts: AttemptTable::new(MAX_ATTEMPTS),
            local: LocalAddresses::default(),
        };
        knocker.tracks = knocker.build_tracks();
        knocker
    }

    /// The same knocker holding at most `cap` attempts in progress (at least 1).
    pub fn with_max_attempts(mut self, cap: usize) -> Self {
        self.attempts = AttemptTable::new(cap);
        self
    }

    /// Tells the knocker this host's addresses (at start and whenever they
    /// change): from then on a knock counts only if it is sent to one of
    /// them, or, for a classic door with a `target`, to that target — as in
    /// knockd, traffic passing through a router or bridge is not a knock.
    /// Until this is called only doors with a `target` check the destination.
    pub fn set_local_addresses(&mut self, addrs: impl IntoIterator<Item = IpAddr>) {
        self.local.set(addrs);
    }

    /// How many of this host's addresses the knocker knows (`None`: never
    /// told, see [`Knocker::set_local_addresses`]).
    pub fn local_addresses(&self) -> Option<usize> {
        self.local.count()
    }

    /// Feeds one captured packet; returns what it decided, in order.
    ///
    /// knockd's rules: the expected next knock advances an attempt; any other
    /// knock (a packet to a port of some sequence, sent to the door's
    /// destination, passing its flags rule) ends it. A knock that advanced,
    /// completed or ended an attempt of its source starts no new attempt:
    /// sequences start only from a source with none in progress. So a new
    /// connection on the first port while the second is expected
    /// invalidates the attempt, and the last knock of "7000,8000,9000" does
    /// not also start a door whose sequence begins with 9000. A retransmitted
    /// TCP segment (same addresses, ports, sequence number and flags) is not a
    /// second knock: it neither advances nor ends anything.
    pub fn on_packet(&mut self, pkt: &KnockPacket, now_ms: u64) -> Vec<KnockOutcome> {
        let mut out = self.handle_timeout(now_ms);
        let knock = KnockStep {
            port: pkt.dst_port,
            transport: pkt.transport,
        };
        if !self.tracks.knows(knock) {
            return out; // a port of no sequence is never a knock
        }
        let addr = canonical_ip(pkt.src);
        let tcp_sig = (pkt.transport == Transport::Tcp).then_some(TcpSignature {
            dst: canonical_ip(pkt.dst),
            dst_port: pkt.dst_port,
            src_port: pkt.src_port,
            seq: pkt.tcp_seq,
            flags: pkt.tcp_flags,
        });
        if let Some(sig) = tcp_sig {
            if self.attempts.is_repeat(&addr, sig) {
                return out; // a retransmitted segment is not a second knock
            }
        }

        let mut events: BTreeMap<DoorRef, DoorEvent> = BTreeMap::new();
        // Whether this knock advanced, completed or ended an attempt of `addr`.
        let mut touched = false;
        let mut completed: Vec<TrackKey> = Vec::new();

        // Attempts in progress: advance on the expected knock, drop otherwise.
        for id in self.attempts.ids_of(&addr) {
            let Some(&Attempt {
                track: key, stage, ..
            }) = self.attempts.get(id)
            else {
                continue;
            };
            let Some(track) = self.tracks.get(&key) else {
                self.attempts.remove(id);
                continue;
            };
            if !track.counts(pkt, &self.local) {
                continue;
            }
            touched = true;
            let event = events.entry(key.door()).or_default();
            if track.steps.get(stage) == Some(&knock) {
                let of = track.steps.len();
                if stage + 1 == of {
                    self.attempts.remove(id);
                    completed.push(key);
                } else {
                    self.attempts.set_stage(id, stage + 1);
                    event.stage = event.stage.max(Some((stage + 1, of)));
                }
            } else {
                self.attempts.remove(id);
                event.reset = true;
            }
        }

        // Sequences this knock starts: only from a source with none in progress.
        let mut starts = Vec::new();
        for track in self.tracks.starting_with(knock).filter(|_| !touched) {
            if !track.counts(pkt, &self.local) {
                continue;
            }
            if track.steps.len() == 1 {
                completed.push(track.key);
            } else {
                starts.push((track.key, track.steps.len()));
            }
        }
        for (key, of) in starts {
            let deadline_ms = now_ms.saturating_add(self.seq_timeout_ms(key.door()));
            self.attempts.insert(Attempt {
                addr,
                track: key,
                stage: 1,
                deadline_ms,
            });
            let event = events.entry(key.door()).or_default();
            event.stage = event.stage.max(Some((1, of)));
        }

        let mut finished = Vec::new();
        let opened = self.complete(addr, completed, &mut finished);
        for (door, event) in events {
            if opened.contains(&door) {
                continue;
            }
            let Some(name) = self.door_name(door) else {
                continue;
            };
            match event.stage {
                Some((stage, of)) => out.push(KnockOutcome::Stage {
                    door: name,
                    addr,
                    stage,
                    of,
                }),
                None if event.reset => out.push(KnockOutcome::Reset { door: name, addr }),
                None => {}
            }
        }
        out.append(&mut finished);
        if let Some(sig) = tcp_sig {
            self.attempts.remember(&addr, sig);
        }
        out
    }

    /// Handles the completed tracks of `addr`, at most one opening per door;
    /// returns the doors that opened.
    fn complete(
        &mut self,
        addr: IpAddr,
        completed: Vec<TrackKey>,
        out: &mut Vec<KnockOutcome>,
    ) -> HashSet<DoorRef> {
        let mut by_door: BTreeMap<DoorRef, Vec<TrackKey>> = BTreeMap::new();
        for key in completed {
            by_door.entry(key.door()).or_default().push(key);
        }
        let mut opened = HashSet::new();
        let mut one_time_used = false;
        for (door, keys) in by_door {
            match door {
                DoorRef::Classic(i) => {
                    let Some(state) = self.classic.get_mut(i) else {
                        continue;
                    };
                    let name = state.door.name.clone();
                    out.push(KnockOutcome::Opened {
                        door: name.clone(),
                        addr,
                        user: None,
                    });
                    if let (Some(list), Some(TrackKey::Classic { seq, .. })) =
                        (&state.door.one_time, keys.first())
                    {
                        let steps = list.get(*seq).cloned().unwrap_or_default();
                        state.next_one_time = seq + 1;
                        out.push(KnockOutcome::OneTimeUsed {
                            door: name.clone(),
                            index: *seq,
                            steps,
                        });
                        if state.next_one_time >= list.len() {
                            out.push(KnockOutcome::OneTimeExhausted { door: name });
                        }
                        one_time_used = true;
                    }
                    opened.insert(door);
                }
                DoorRef::Rotating(d) => {
                    if self.open_rotating(addr, d, &keys, out) {
                        opened.insert(door);
                    }
                }
            }
        }
        // The door is open for this source: its other attempts there are moot.
        for id in self.attempts.ids_of(&addr) {
            let door = self.attempts.get(id).map(|a| a.track.door());
            if door.is_some_and(|d| opened.contains(&d)) {
                self.attempts.remove(id);
            }
        }
        if one_time_used {
            self.rebuild_tracks(out);
        }
        opened
    }

    /// Opens rotating door `d` with the first completed (user, step) not used
    /// yet, preferring the current step; says `Replayed` if all were used.
    fn open_rotating(
        &mut self,
        addr: IpAddr,
        d: usize,
        keys: &[TrackKey],
        out: &mut Vec<KnockOutcome>,
    ) -> bool {
        let Some(door) = self.rotating.get(d) else {
            return false;
        };
        let current = self.step;
        let mut candidates: Vec<(usize, u64)> = keys
            .iter()
            .filter_map(|k| match *k {
                TrackKey::Rotating { user, step, .. } => Some((user, step)),
                TrackKey::Classic { .. } => None,
            })
            .collect();
        candidates.sort_by_key(|&(user, step)| (step.abs_diff(current), step, user));
        let mut replayed = None;
        for (user, step) in candidates {
            let Some((name, key, _)) = door.users.get(user) else {
                continue;
            };
            let used = (*key, door.name.clone(), step);
            if self.used.contains(&used) {
                replayed.get_or_insert((name.clone(), step));
                continue;
            }
            self.used.insert(used);
            out.push(KnockOutcome::Opened {
                door: door.name.clone(),
                addr,
                user: Some(name.clone()),
            });
            out.push(KnockOutcome::UsedStep {
                key: *key,
                door: door.name.clone(),
                step,
            });
            return true;
        }
        if let Some((user, step)) = replayed {
            out.push(KnockOutcome::Replayed {
                door: door.name.clone(),
                addr,
                user,
                step,
            });
        }
        false
    }

    /// The earliest `now_ms` at which [`Knocker::handle_timeout`] has
    /// something to do: an attempt going stale or, while rotating doors
    /// exist, the next rotation step.
    pub fn poll_timeout(&self) -> Option<u64> {
        let attempt = self.attempts.earliest_deadline();
        let rotation =
            (!self.rotating.is_empty()).then(|| step_start_ms(self.step.saturating_add(1)));
        match (attempt, rotation) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }

    /// Moves to `now_ms`: rotates the expected sequences when the step
    /// moved forward (forgetting used steps older than s-1; a clock stepped
    /// back keeps the latest step) and drops attempts
    /// older than their door's seq_timeout (`TimedOut`).
    pub fn handle_timeout(&mut self, now_ms: u64) -> Vec<KnockOutcome> {
        let mut out = Vec::new();
        // The notion of now for steps never goes back (PROTOCOL §4): a clock
        // stepped back keeps the latest step seen, so a used step that was
        // already forgotten cannot come round again.
        let step = step_of(now_ms).max(self.step);
        if step != self.step {
            self.step = step;
            if !self.rotating.is_empty() {
                self.used
                    .retain(|(_, _, used)| used.saturating_add(2) > step);
                self.rebuild_tracks(&mut out);
            }
        }
        let mut seen = HashSet::new();
        for attempt in self.attempts.expire(now_ms) {
            let door = attempt.track.door();
            if !seen.insert((door, attempt.addr)) {
                continue;
            }
            if let Some(name) = self.door_name(door) {
                out.push(KnockOutcome::TimedOut {
                    door: name,
                    addr: attempt.addr,
                });
            }
        }
        out
    }

    /// Every port of every sequence expected now: (TCP ports, UDP ports),
    /// sorted. Changes with the rotation step and as one-time sequences are
    /// used (signalled by [`KnockOutcome::PortsChanged`]).
    pub fn ports(&self) -> (Vec<u16>, Vec<u16>) {
        self.tracks.ports()
    }

    /// Restores a persisted [`KnockOutcome::UsedStep`]: that key's sequence
    /// of `step` will not open `door` again. Ignored once `step` is past.
    pub fn mark_used(&mut self, key: KeyId, door: &DoorName, step: u64) {
        if step.saturating_add(2) > self.step {
            self.used.insert((key, door.clone(), step));
        }
    }

    /// Whether `key` already opened `door` with its sequence of `step`.
    pub fn is_used(&self, key: KeyId, door: &DoorName, step: u64) -> bool {
        self.used.contains(&(key, door.clone(), step))
    }

    /// How many one-time sequences `door` has left, or `None` if it has no
    /// one-time list (or no such classic door exists).
    pub fn one_time_remaining(&self, door: &DoorName) -> Option<usize> {
        let state = self.classic.iter().find(|s| &s.door.name == door)?;
        let list = state.door.one_time.as_ref()?;
        Some(list.len().saturating_sub(state.next_one_time))
    }

    /// Knock attempts in progress, all sources together.
    pub fn attempts(&self) -> usize {
        self.attempts.len()
    }

    /// Sources with an attempt in progress.
    pub fn sources(&self) -> usize {
        self.attempts.sources()
    }

    /// Attempts dropped so far because the table was full.
    pub fn evicted(&self) -> u64 {
        self.attempts.evicted()
    }

    fn build_tracks(&self) -> TrackTable {
        let classic: Vec<ClassicSource<'_>> = self
            .classic
            .iter()
            .map(|s| ClassicSource {
                door: &s.door,
                next_one_time: s.next_one_time,
            })
            .collect();
        TrackTable::build(&classic, &self.rotating, self.step, &self.tracks)
    }

    /// Rebuilds the expected sequences; attempts on a sequence no longer
    /// expected end (`TimedOut` for a past rotation step, `Reset` for a used
    /// one-time sequence); says `PortsChanged` if the port set changed.
    fn rebuild_tracks(&mut self, out: &mut Vec<KnockOutcome>) {
        let tracks = self.build_tracks();
        let gone = self
            .attempts
            .remove_where(|a| tracks.get(&a.track).is_none());
        let mut seen = HashSet::new();
        for attempt in gone {
            let door = attempt.track.door();
            if !seen.insert((door, attempt.addr)) {
                continue;
            }
            let Some(name) = self.door_name(door) else {
                continue;
            };
            out.push(match door {
                DoorRef::Rotating(_) => KnockOutcome::TimedOut {
                    door: name,
                    addr: attempt.addr,
                },
                DoorRef::Classic(_) => KnockOutcome::Reset {
                    door: name,
                    addr: attempt.addr,
                },
            });
        }
        let changed = tracks.port_set() != self.tracks.port_set();
        self.tracks = tracks;
        if changed {
            out.push(KnockOutcome::PortsChanged);
        }
    }

    fn seq_timeout_ms(&self, door: DoorRef) -> u64 {
        match door {
            DoorRef::Classic(i) => self.classic.get(i).map_or(0, |s| s.door.seq_timeout_ms),
            DoorRef::Rotating(i) => self.rotating.get(i).map_or(0, |d| d.seq_timeout_ms),
        }
    }

    /// The name of a door. Door refs only come from the two door lists,
    /// which never change, so this is always `Some`.
    fn door_name(&self, door: DoorRef) -> Option<DoorName> {
        match door {
            DoorRef::Classic(i) => self.classic.get(i).map(|s| s.door.name.clone()),
            DoorRef::Rotating(i) => self.rotating.get(i).map(|d| d.name.clone()),
        }
    }
}

impl fmt::Debug for Knocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let classic: Vec<&DoorName> = self.classic.iter().map(|s| &s.door.name).collect();
        let rotating: Vec<&DoorName> = self.rotating.iter().map(|d| &d.name).collect();
        f.debug_struct("Knocker")
            .field("classic", &classic)
            .field("rotating", &rotating)
            .field("step", &self.step)
            .field("used", &self.used.len())
            .field("tracks", &self.tracks)
            .field("attempts", &self.attempts)
            .field("local_addresses", &self.local.count())
            .finish()
    }
}
