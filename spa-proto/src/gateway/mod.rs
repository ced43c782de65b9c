//! The gateway: every decision spad makes after a datagram was verified or a
//! knock captured — which door opens for whom and for how long, in which
//! order its effects happen (§3 step 9: records durable → firewall), what a
//! failed effect means, when doors close, what a restart re-arms, what a
//! reload keeps, and what goes into the audit trail. Sans-IO, like
//! quinn-proto's `Endpoint`: the executor feeds it grants, knocks and the
//! time, carries out the [`Action`]s from [`Gateway::poll_action`] (call
//! again until `None`) and reports each effect back with
//! [`Gateway::effect_done`] / [`Gateway::effect_failed`].
//!
//! Door timers run on the monotonic clock of [`Now`]; the journal and the
//! knock machine see the wall clock, which for them never goes back.

mod action;
mod knock_log;
mod port_grant;
mod rules;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

pub use action::{Action, CloseWhy, EffectId, Event, KnockNote, Now, OpenKind, Refusal};
pub use port_grant::{ports_text, PortGrant, DIGEST_CAP};
pub use rules::{Closing, DoorRules, GatewayConfig, Opener};

use crate::journal::Record;
use crate::keyring::{KeyEntry, Keyring};
use crate::keys::KeyId;
use crate::knock::{
    step_of, ClassicDoor, KnockOutcome, KnockPacket, KnockStep, Knocker, RotatingDoor,
};
use crate::names::DoorName;
use crate::open_doors::{DoorChange, OpenDoors};
use crate::packet::canonical_ip;
use crate::replay::ReplayRecord;
use crate::verifier::Grant;
use knock_log::KnockLog;
use port_grant::DigestSet;

/// Journal records appended after which the journal is compacted.
pub const COMPACT_AFTER: usize = 4096;

/// A failed close is tried again after this long, ms, doubling each time.
pub const CLOSE_RETRY_MS: u64 = 1000;

/// The longest wait between two tries of a failed close, ms.
pub const CLOSE_RETRY_MAX_MS: u64 = 300_000;

/// Default per-minute budget of knock progress events in the log.
pub const KNOCK_EVENTS_PER_MINUTE: u32 = 120;

/// Who a door is open for, besides its closing time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DoorInfo {
    user: String,
    until_wall_ms: u64,
}

/// An open door, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenEntry {
    /// The door.
    pub door: DoorName,
    /// For whom.
    pub addr: IpAddr,
    /// Who asked (`-` for classic sequences).
    pub user: String,
    /// Milliseconds until it closes.
    pub left_ms: u64,
}

/// An opening waiting for its records to be durable.
#[derive(Debug, Clone)]
struct Planned {
    door: DoorName,
    addr: IpAddr,
    user: String,
    seconds: u32,
}

/// What the next `Persist` carries.
#[derive(Debug, Clone, Default)]
struct Batch {
    records: Vec<Record>,
    opens: Vec<Planned>,
    forgets: Vec<ReplayRecord>,
    /// Digests of port grants to take back if the batch is not durable.
    digests: Vec<[u8; 32]>,
    one_time_marks: Vec<(DoorName, Vec<KnockStep>)>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// An effect in flight.
#[derive(Debug, Clone)]
enum Pending {
    /// Records that gate openings.
    Persist(Batch),
    /// Records whose loss only costs a log line.
    PersistBestEffort,
    /// An open; `previous` is the door's (mono, wall) closing time before it.
    Open {
        planned: Planned,
        previous: Option<(u64, DoorInfo)>,
        kind: OpenKind,
    },
    /// A close.
    Close {
        door: DoorName,
        addr: IpAddr,
        why: CloseWhy,
    },
}

/// spad's brain after verification. See the module docs.
#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    users: HashMap<String, KeyEntry>,
    knocker: Knocker,
    doors: OpenDoors,
    info: BTreeMap<(DoorName, IpAddr), DoorInfo>,
    used_steps: BTreeSet<(KeyId, DoorName, u64)>,
    one_time_used: BTreeSet<(DoorName, String)>,
    digests: DigestSet,
    capture_ports: Option<(Vec<u16>, Vec<u16>)>,
    local_addresses: Option<Vec<IpAddr>>,
    wall_high: u64,
    now: Now,
    actions: VecDeque<Action>,
    next_id: u64,
    inflight: HashMap<EffectId, Pending>,
    batch: Batch,
    /// Failed closes to try again: when, how many tries so far, why.
    retry_closes: BTreeMap<(DoorName, IpAddr), (u64, u32, CloseWhy)>,
    knock_log: KnockLog,
    appended: usize,
}

/// A one-time sequence as its journal record and the file name it.
pub fn sequence_text(steps: &[KnockStep]) -> String {
    steps
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// What a journal says was open, used and marked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalState {
    /// Open doors: closing time (wall ms) and user.
    pub open: BTreeMap<(DoorName, IpAddr), (u64, String)>,
    /// Used rotating (key, door, step).
    pub used_steps: BTreeSet<(KeyId, DoorName, u64)>,
    /// Used one-time sequences (door, text).
    pub one_time_used: BTreeSet<(DoorName, String)>,
    /// Digests of accepted port-grant packets, until when (wall ms).
    pub digests: BTreeMap<[u8; 32], u64>,
}

impl JournalState {
    /// Folds journal records, in order (replay and state records are the
    /// verifier's and are skipped).
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut s = JournalState::default();
        for r in records {
            match r {
                Record::DoorOpened {
                    door,
                    addr,
                    until_ms,
                    user,
                } => {
                    let e = s
                        .open
                        .entry((door.clone(), canonical_ip(*addr)))
                        .or_insert((0, user.clone()));
                    if *until_ms >= e.0 {
                        *e = (*until_ms, user.clone());
                    }
                }
                Record::DoorClosed { door, addr } => {
                    s.open.remove(&(door.clone(), canonical_ip(*addr)));
                }
                Record::UsedStep { key, door, step } => {
                    s.used_steps.insert((*key, door.clone(), *step));
                }
                Record::OneTimeUsed { door, sequence } => {
                    s.one_time_used.insert((door.clone(), sequence.clone()));
                }
                Record::DigestSeen { digest, expires_ms } => {
                    let e = s.digests.entry(*digest).or_insert(*expires_ms);
                    *e = (*e).max(*expires_ms);
                }
                Record::State { .. } | Record::Replay { .. } => {}
            }
        }
        s
    }
}

/// Builds the knock machine for `config`: classic doors without their used
/// one-time sequences, rotating doors with every key allowed on them (whether
/// a key is usable is decided when its sequence completes).
fn build_knocker(
    config: &GatewayConfig,
    keyring: &Keyring,
    one_time_used: &BTreeSet<(DoorName, String)>,
    used_steps: &BTreeSet<(KeyId, DoorName, u64)>,
    wall_ms: u64,
) -> Knocker {
    let mut classic = Vec::new();
    let mut rotating = Vec::new();
    for d in &config.doors {
        match &d.opener {
            Opener::Spa => {}
            Opener::Classic(door) => {
                let mut door: ClassicDoor = door.clone();
                if let Some(list) = door.one_time.as_mut() {
                    list.retain(|seq| {
                        !one_time_used.contains(&(d.name.clone(), sequence_text(seq)))
                    });
                }
                classic.push(door);
            }
            Opener::Rotating {
                spec,
                transport,
                seq_timeout_ms,
            } => {
                let users = keyring
                    .iter()
                    .map(|(_, k)| k)
                    .filter(|k| k.entry.doors.contains(&d.name))
                    .map(|k| (k.entry.user.clone(), k.id, k.derived.knock.clone()))
                    .collect();
                rotating.push(RotatingDoor {
                    name: d.name.clone(),
                    spec: *spec,
                    transport: *transport,
                    seq_timeout_ms: *seq_timeout_ms,
                    users,
                });
            }
        }
    }
    let mut knocker = Knocker::new(classic, rotating, wall_ms);
    for (key, door, step) in used_steps {
        knocker.mark_used(*key, door, *step);
    }
    knocker
}

fn users_of(keyring: &Keyring) -> HashMap<String, KeyEntry> {
    keyring
        .iter()
        .map(|(_, k)| (k.entry.user.clone(), k.entry.clone()))
        .collect()
}

impl Gateway {
    /// A gateway for `config` and `keyring` at `now`, with no door open.
    /// Call [`Gateway::restore`] next with what the journal holds.
    pub fn new(config: GatewayConfig, keyring: &Keyring, now: Now) -> Self {
        let knocker = build_knocker(
            &config,
            keyring,
            &BTreeSet::new(),
            &BTreeSet::new(),
            now.wall_ms,
        );
        let per_minute = config.knock_events_per_minute;
        let mut gw = Gateway {
            users: users_of(keyring),
            config,
            knocker,
            doors: OpenDoors::new(),
            info: BTreeMap::new(),
            used_steps: BTreeSet::new(),
            one_time_used: BTreeSet::new(),
            digests: DigestSet::default(),
            capture_ports: None,
            local_addresses: None,
            wall_high: now.wall_ms,
            now,
            actions: VecDeque::new(),
            next_id: 0,
            inflight: HashMap::new(),
            batch: Batch::default(),
            retry_closes: BTreeMap::new(),
            knock_log: KnockLog::new(per_minute, now.mono_ms),
            appended: 0,
        };
        gw.announce_ports();
        gw
    }

    fn tick(&mut self, now: Now) {
        // The monotonic clock never goes back; the wall clock may.
        self.now = Now {
            wall_ms: now.wall_ms,
            mono_ms: now.mono_ms.max(self.now.mono_ms),
        };
        self.wall_high = self.wall_high.max(now.wall_ms);
    }

    fn id(&mut self) -> EffectId {
        self.next_id += 1;
        EffectId(self.next_id)
    }

    fn audit(&mut self, event: Event) {
        self.actions.push_back(Action::Audit(event));
    }

    /// Logs a knock-side event within the per-minute budget.
    fn audit_budgeted(&mut self, event: Event) {
        if self.knock_log.allow(self.now.mono_ms) {
            self.audit(event);
        }
    }

    fn announce_ports(&mut self) {
        let ports = self.knocker.ports();
        if self.capture_ports.as_ref() != Some(&ports) {
            self.capture_ports = Some(ports.clone());
            self.actions.push_back(Action::SetCapturePorts {
                tcp: ports.0,
                udp: ports.1,
            });
        }
    }

    /// This host's own addresses: classic doors ignore knocks sent to any
    /// other address unless the door's target names it (knockd's rule).
    pub fn set_local_addresses(&mut self, addrs: Vec<IpAddr>) {
        self.local_addresses = Some(addrs);
        self.apply_local_addresses();
    }

    /// A new knock machine for the doors and keys in force, keeping what
    /// must survive it: used steps, used one-time sequences, host addresses.
    fn rebuild_knocker(&mut self, keyring: &Keyring) {
        self.knocker = build_knocker(
            &self.config,
            keyring,
            &self.one_time_used,
            &self.used_steps,
            self.wall_high,
        );
        self.apply_local_addresses();
        self.announce_ports();
    }

    fn apply_local_addresses(&mut self) {
        if let Some(addrs) = &self.local_addresses {
            self.knocker.set_local_addresses(addrs.iter().copied());
        }
    }

    /// After a restart: what the journal says was open, used and marked.
    /// Overdue doors close, doors the config no longer has close, the rest
    /// are re-armed for their remaining time (at most the door's `max_secs`,
    /// so a clock stepped back cannot stretch them): re-opened where that is
    /// idempotent, adopted where it is not (command doors).
    pub fn restore(&mut self, keyring: &Keyring, journal: JournalState, now: Now) {
        self.tick(now);
        self.used_steps = journal.used_steps;
        self.one_time_used = journal.one_time_used;
        for (digest, until) in journal.digests {
            self.digests.insert(digest, until);
        }
        self.digests.purge(now.wall_ms);
        self.rebuild_knocker(keyring);
        for ((door, addr), (until_wall_ms, user)) in journal.open {
            let rules = self.config.door(&door).cloned();
            let command = matches!(
                rules.as_ref().map(|r| r.closing),
                Some(Closing::Command { .. })
            );
            if command {
                // Its open command ran; only the close command must run.
                self.actions.push_back(Action::Adopt {
                    door: door.clone(),
                    addr,
                });
            }
            let Some(rules) = rules else {
                self.start_close(door, addr, CloseWhy::Removed);
                continue;
            };
            if until_wall_ms <= now.wall_ms {
                if rules.closing == Closing::Kernel {
                    // The kernel's timeout closed it while spad was away.
                    self.audit(Event::Closed {
                        door,
                        addr,
                        why: CloseWhy::Overdue,
                    });
                } else {
                    self.start_close(door, addr, CloseWhy::Overdue);
                }
                continue;
            }
            let left_ms = (until_wall_ms - now.wall_ms).min(u64::from(rules.max_secs) * 1000);
            let seconds = left_ms.div_ceil(1000) as u32;
            let info = DoorInfo {
                user: user.clone(),
                until_wall_ms: now.wall_ms + left_ms,
            };
            self.set_until(&door, addr, now.mono_ms + left_ms, info);
            if command {
                self.audit(Event::Opened {
                    door,
                    addr,
                    user,
                    seconds,
                    kind: OpenKind::Restored,
                });
            } else {
                let planned = Planned {
                    door,
                    addr,
                    user,
                    seconds,
                };
                self.start_open(planned, None, OpenKind::Restored);
            }
        }
    }

    /// Sets a door's closing time exactly (the table never shortens by itself).
    fn set_until(&mut self, door: &DoorName, addr: IpAddr, until_mono: u64, info: DoorInfo) {
        self.doors.set(door, addr, until_mono);
        self.info.insert((door.clone(), addr), info);
    }

    fn start_open(&mut self, planned: Planned, previous: Option<(u64, DoorInfo)>, kind: OpenKind) {
        // A close still being retried must not take down the new opening.
        self.retry_closes
            .remove(&(planned.door.clone(), planned.addr));
        let id = self.id();
        self.actions.push_back(Action::Open {
            id,
            door: planned.door.clone(),
            addr: planned.addr,
            seconds: planned.seconds,
        });
        self.inflight.insert(
            id,
            Pending::Open {
                planned,
                previous,
                kind,
            },
        );
    }

    fn start_close(&mut self, door: DoorName, addr: IpAddr, why: CloseWhy) {
        let id = self.id();
        self.actions.push_back(Action::Close {
            id,
            door: door.clone(),
            addr,
        });
        self.inflight.insert(id, Pending::Close { door, addr, why });
    }

    fn persist_best_effort(&mut self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let id = self.id();
        self.appended += records.len();
        self.actions.push_back(Action::Persist { id, records });
        self.inflight.insert(id, Pending::PersistBestEffort);
    }

    /// Addresses holding `door` open, plus those planned in this batch.
    fn holders(&self, door: &DoorName) -> usize {
        let open = self.info.keys().filter(|(d, _)| d == door).count();
        let planned = self.batch.opens.iter().filter(|p| &p.door == door).count();
        open + planned
    }

    fn is_open_or_planned(&self, door: &DoorName, addr: IpAddr) -> bool {
        self.info.contains_key(&(door.clone(), addr))
            || self
                .batch
                .opens
                .iter()
                .any(|p| &p.door == door && p.addr == addr)
    }

    /// Plans an opening: refused when the door is full, else its
    /// `DoorOpened` record joins the next `Persist`.
    fn plan_open(&mut self, planned: Planned) -> bool {
        let Some(rules) = self.config.door(&planned.door) else {
            self.audit(Event::Refused {
                door: planned.door,
                addr: planned.addr,
                user: planned.user,
                why: Refusal::UnknownDoor,
            });
            return false;
        };
        let max = rules.max_open;
        if !self.is_open_or_planned(&planned.door, planned.addr)
            && self.holders(&planned.door) >= max
        {
            self.audit_budgeted(Event::Refused {
                door: planned.door,
                addr: planned.addr,
                user: planned.user,
                why: Refusal::DoorFull { max },
            });
            return false;
        }
        self.batch.records.push(Record::DoorOpened {
            door: planned.door.clone(),
            addr: planned.addr,
            until_ms: self
                .now
                .wall_ms
                .saturating_add(u64::from(planned.seconds) * 1000),
            user: planned.user.clone(),
        });
        self.batch.opens.push(planned);
        true
    }

    /// A datagram the verifier granted (its replay entry is in the
    /// verifier's cache). Its record and the door's are made durable first;
    /// the door opens once they are.
    pub fn handle_grant(&mut self, grant: Grant, now: Now) {
        self.tick(now);
        // The replay record is kept even if no door opens: the packet was seen.
        self.batch.records.push(grant.record.to_record());
        let planned = Planned {
            door: grant.door,
            addr: canonical_ip(grant.addr),
            user: grant.user,
            seconds: grant.seconds,
        };
        if self.plan_open(planned) {
            self.batch.forgets.push(grant.record);
        }
    }

    /// An authenticated request for ports from another protocol (fwknop):
    /// each port opens the one door configured for it, for the grant's time
    /// (at most the door's `max_secs`). The packet's digest is the replay
    /// check: durable, with the doors' records, before anything opens. A
    /// port without a door refuses the whole grant (nothing opens that was
    /// not asked for, and nothing asked for is silently left shut).
    pub fn handle_port_grant(&mut self, grant: PortGrant, now: Now) {
        self.tick(now);
        let addr = canonical_ip(grant.addr);
        let ports = ports_text(&grant.ports);
        let refuse = |gw: &mut Self, why: Refusal| {
            gw.audit(Event::PortsRefused {
                ports: ports.clone(),
                addr,
                user: grant.user.clone(),
                why,
            })
        };
        let mut doors = Vec::with_capacity(grant.ports.len());
        for &(transport, port) in &grant.ports {
            match self.config.port_doors.get(&(transport, port)) {
                Some(door) if !doors.contains(door) => doors.push(door.clone()),
                Some(_) => {}
                None => return refuse(self, Refusal::NoDoorForPort { transport, port }),
            }
        }
        self.digests.purge(self.now.wall_ms);
        if self.digests.contains(&grant.digest, self.now.wall_ms) {
            return refuse(self, Refusal::Replay);
        }
        if self.digests.is_full() {
            return refuse(self, Refusal::ReplayFull);
        }
        self.digests.insert(grant.digest, grant.replay_until_ms);
        // The digest is kept even if no door opens: the packet was seen.
        self.batch.records.push(Record::DigestSeen {
            digest: grant.digest,
            expires_ms: grant.replay_until_ms,
        });
        let mut planned_any = false;
        for door in doors {
            let Some(rules) = self.config.door(&door) else {
                continue;
            };
            let seconds = match grant.seconds {
                0 => rules.default_secs,
                s => s.min(rules.max_secs),
            };
            planned_any |= self.plan_open(Planned {
                door,
                addr,
                user: grant.user.clone(),
                seconds,
            });
        }
        if planned_any {
            self.batch.digests.push(grant.digest);
        }
    }

    /// A captured packet on a knock port.
    pub fn handle_knock(&mut self, packet: &KnockPacket, now: Now) {
        self.tick(now);
        let outcomes = self.knocker.on_packet(packet, self.wall_high);
        self.apply_knock_outcomes(outcomes);
    }

    fn apply_knock_outcomes(&mut self, outcomes: Vec<KnockOutcome>) {
        for o in outcomes {
            match o {
                KnockOutcome::Stage {
                    door,
                    addr,
                    stage,
                    of,
                } => self.audit_budgeted(Event::Knock {
                    door,
                    addr,
                    note: KnockNote::Stage { stage, of },
                }),
                KnockOutcome::Reset { door, addr } => self.audit_budgeted(Event::Knock {
                    door,
                    addr,
                    note: KnockNote::Reset,
                }),
                KnockOutcome::TimedOut { door, addr } => self.audit_budgeted(Event::Knock {
                    door,
                    addr,
                    note: KnockNote::TimedOut,
                }),
                KnockOutcome::Opened { door, addr, user } => self.knock_complete(door, addr, user),
                KnockOutcome::UsedStep { key, door, step } => {
                    self.used_steps.insert((key, door.clone(), step));
                    self.batch
                        .records
                        .push(Record::UsedStep { key, door, step });
                }
                KnockOutcome::Replayed {
                    door,
                    addr,
                    user,
                    step,
                } => self.audit_budgeted(Event::Refused {
                    door,
                    addr,
                    user,
                    why: Refusal::StepUsed { step },
                }),
                KnockOutcome::OneTimeUsed { door, steps, .. } => {
                    let sequence = sequence_text(&steps);
                    self.one_time_used.insert((door.clone(), sequence.clone()));
                    self.batch.records.push(Record::OneTimeUsed {
                        door: door.clone(),
                        sequence,
                    });
                    self.batch.one_time_marks.push((door, steps));
                }
                KnockOutcome::OneTimeExhausted { door } => {
                    self.audit(Event::OneTimeExhausted { door })
                }
                KnockOutcome::PortsChanged => self.announce_ports(),
            }
        }
    }

    fn knock_complete(&mut self, door: DoorName, addr: IpAddr, user: Option<String>) {
        self.audit(Event::Knock {
            door: door.clone(),
            addr,
            note: KnockNote::Complete,
        });
        if let Some(name) = &user {
            // PROTOCOL §4: the key must be usable when the sequence completes.
            let usable = self
                .users
                .get(name)
                .is_some_and(|e| e.usable_at(self.wall_high) && e.doors.contains(&door));
            if !usable {
                self.audit(Event::Refused {
                    door,
                    addr,
                    user: name.clone(),
                    why: Refusal::KeyUnusable,
                });
                return;
            }
        }
        let Some(seconds) = self.config.door(&door).map(|r| r.default_secs) else {
            return;
        };
        self.plan_open(Planned {
            door,
            addr,
            user: user.unwrap_or_else(|| "-".to_owned()),
            seconds,
        });
    }

    /// The time has come for something ([`Gateway::poll_timeout`]): doors
    /// due close, failed closes are tried again, knock attempts time out.
    pub fn handle_timeout(&mut self, now: Now) {
        self.tick(now);
        for d in self.doors.expire(self.now.mono_ms) {
            self.info.remove(&(d.door.clone(), d.addr));
            self.start_close(d.door, d.addr, CloseWhy::TimeUp);
        }
        let due: Vec<(DoorName, IpAddr, CloseWhy)> = self
            .retry_closes
            .iter()
            .filter(|(_, (at, _, _))| *at <= self.now.mono_ms)
            .map(|((d, a), (_, _, why))| (d.clone(), *a, *why))
            .collect();
        for (door, addr, why) in due {
            self.start_close(door, addr, why);
        }
        if self
            .knocker
            .poll_timeout()
            .is_some_and(|t| t <= self.wall_high)
        {
            let outcomes = self.knocker.handle_timeout(self.wall_high);
            self.apply_knock_outcomes(outcomes);
        }
        if let Some(count) = self.knock_log.roll(self.now.mono_ms) {
            self.audit(Event::Suppressed { count });
        }
    }

    /// When to call [`Gateway::handle_timeout`] next, on the monotonic clock.
    pub fn poll_timeout(&self) -> Option<u64> {
        let knock = self.knocker.poll_timeout().map(|wall| {
            self.now
                .mono_ms
                .saturating_add(wall.saturating_sub(self.wall_high))
        });
        [
            self.doors.poll_timeout(),
            self.retry_closes.values().map(|r| r.0).min(),
            knock,
            self.knock_log.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing to do, or `None` when there is nothing left for now.
    pub fn poll_action(&mut self) -> Option<Action> {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            let id = self.id();
            self.appended += batch.records.len();
            self.actions.push_back(Action::Persist {
                id,
                records: batch.records.clone(),
            });
            self.inflight.insert(id, Pending::Persist(batch));
        }
        self.actions.pop_front()
    }

    /// The effect `id` was carried out.
    pub fn effect_done(&mut self, id: EffectId, now: Now) {
        self.tick(now);
        match self.inflight.remove(&id) {
            Some(Pending::Persist(batch)) => self.persisted(batch),
            Some(Pending::Open { planned, kind, .. }) => self.audit(Event::Opened {
                door: planned.door,
                addr: planned.addr,
                user: planned.user,
                seconds: planned.seconds,
                kind,
            }),
            Some(Pending::Close { door, addr, why }) => {
                self.retry_closes.remove(&(door.clone(), addr));
                self.audit(Event::Closed { door, addr, why })
            }
            Some(Pending::PersistBestEffort) | None => {}
        }
        if self.appended >= COMPACT_AFTER {
            self.compact();
        }
    }

    /// The effect `id` failed with `error`. A failed persist opens nothing;
    /// a failed open is not recorded as open; a failed close is tried again.
    pub fn effect_failed(&mut self, id: EffectId, error: String, now: Now) {
        self.tick(now);
        match self.inflight.remove(&id) {
            Some(Pending::Persist(batch)) => {
                self.audit(Event::StorageFailed {
                    error: error.clone(),
                });
                for p in batch.opens {
                    self.audit(Event::Refused {
                        door: p.door,
                        addr: p.addr,
                        user: p.user,
                        why: Refusal::Storage(error.clone()),
                    });
                }
                for r in batch.forgets {
                    self.actions.push_back(Action::ForgetReplay(r));
                }
                for d in batch.digests {
                    self.digests.forget(&d);
                    self.actions.push_back(Action::ForgetDigest(d));
                }
            }
            Some(Pending::PersistBestEffort) => self.audit(Event::StorageFailed { error }),
            Some(Pending::Open {
                planned, previous, ..
            }) => {
                let key = (planned.door.clone(), planned.addr);
                self.doors.remove(&planned.door, planned.addr);
                self.info.remove(&key);
                match previous {
                    // An extension failed: the earlier opening still stands.
                    Some((until_mono, info)) => {
                        self.set_until(&planned.door, planned.addr, until_mono, info)
                    }
                    None => self.persist_best_effort(vec![Record::DoorClosed {
                        door: planned.door.clone(),
                        addr: planned.addr,
                    }]),
                }
                self.audit(Event::Refused {
                    door: planned.door,
                    addr: planned.addr,
                    user: planned.user,
                    why: Refusal::Firewall(error),
                });
            }
            Some(Pending::Close { door, addr, why }) => {
                let key = (door.clone(), addr);
                let tries = self.retry_closes.get(&key).map_or(0, |r| r.1);
                let wait = CLOSE_RETRY_MS
                    .saturating_mul(1 << tries.min(16))
                    .min(CLOSE_RETRY_MAX_MS);
                self.retry_closes
                    .insert(key, (self.now.mono_ms.saturating_add(wait), tries + 1, why));
                self.audit(Event::CloseFailed {
                    door,
                    addr,
                    error,
                    retry_in_ms: wait,
                });
            }
            None => {}
        }
    }

    /// The batch's records are durable: open its doors.
    fn persisted(&mut self, batch: Batch) {
        for (door, steps) in batch.one_time_marks {
            self.actions
                .push_back(Action::MarkOneTimeFile { door, steps });
        }
        for p in batch.opens {
            let Some(rules) = self.config.door(&p.door).cloned() else {
                self.audit(Event::Refused {
                    door: p.door,
                    addr: p.addr,
                    user: p.user,
                    why: Refusal::UnknownDoor,
                });
                continue;
            };
            let key = (p.door.clone(), p.addr);
            let previous = self
                .info
                .get(&key)
                .cloned()
                .and_then(|info| self.closing_mono(&p.door, p.addr).map(|m| (m, info)));
            let change = self
                .doors
                .open(&p.door, p.addr, self.now.mono_ms, p.seconds);
            let every_time = matches!(rules.closing, Closing::Command { every_time: true });
            let kind = match change {
                DoorChange::Opened { .. } => OpenKind::New,
                DoorChange::Extended { .. } => OpenKind::Extended,
                DoorChange::Unchanged { until_ms } => {
                    if !every_time {
                        self.audit(Event::AlreadyOpen {
                            door: p.door,
                            addr: p.addr,
                            user: p.user,
                            seconds_left: until_ms.saturating_sub(self.now.mono_ms) / 1000,
                        });
                        continue;
                    }
                    OpenKind::Again
                }
            };
            let until_mono = self
                .closing_mono(&p.door, p.addr)
                .unwrap_or(self.now.mono_ms);
            let left = until_mono.saturating_sub(self.now.mono_ms);
            self.info.insert(
                key,
                DoorInfo {
                    user: p.user.clone(),
                    until_wall_ms: self.now.wall_ms.saturating_add(left),
                },
            );
            let planned = Planned {
                seconds: left.div_ceil(1000) as u32,
                ..p
            };
            self.start_open(planned, previous, kind);
        }
    }

    fn closing_mono(&self, door: &DoorName, addr: IpAddr) -> Option<u64> {
        self.doors.until(door, addr)
    }

    /// A reload: new doors, rules and keys. Open doors stay open for their
    /// time; doors the config no longer has close; a door whose backend
    /// changed is opened again on the new one (the executor set it up
    /// before calling this); used steps and one-time marks are kept.
    pub fn reload(&mut self, config: GatewayConfig, keyring: &Keyring, now: Now) {
        self.tick(now);
        let old = std::mem::replace(&mut self.config, config);
        self.users = users_of(keyring);
        self.knock_log
            .set_per_minute(self.config.knock_events_per_minute);
        self.rebuild_knocker(keyring);
        let open: Vec<(DoorName, IpAddr, DoorInfo)> = self
            .info
            .iter()
            .map(|((d, a), i)| (d.clone(), *a, i.clone()))
            .collect();
        let mut closed = Vec::new();
        for (door, addr, info) in open {
            let before = old.door(&door).map(|r| r.closing);
            match self.config.door(&door).map(|r| r.closing) {
                None => {
                    self.doors.remove(&door, addr);
                    self.info.remove(&(door.clone(), addr));
                    closed.push(Record::DoorClosed {
                        door: door.clone(),
                        addr,
                    });
                    self.start_close(door, addr, CloseWhy::Removed);
                }
                Some(now_closing) if Some(now_closing) != before => {
                    let left = self
                        .closing_mono(&door, addr)
                        .unwrap_or(self.now.mono_ms)
                        .saturating_sub(self.now.mono_ms);
                    let planned = Planned {
                        door,
                        addr,
                        user: info.user,
                        seconds: left.div_ceil(1000) as u32,
                    };
                    self.start_open(planned, None, OpenKind::Restored);
                }
                Some(_) => {}
            }
        }
        self.persist_best_effort(closed);
    }

    /// An operator closes `door` for `addr`; false if it was not open.
    pub fn close(&mut self, door: &DoorName, addr: IpAddr, now: Now) -> bool {
        self.tick(now);
        let addr = canonical_ip(addr);
        if self.doors.remove(door, addr).is_none() {
            return false;
        }
        self.info.remove(&(door.clone(), addr));
        self.persist_best_effort(vec![Record::DoorClosed {
            door: door.clone(),
            addr,
        }]);
        self.start_close(door.clone(), addr, CloseWhy::Operator);
        true
    }

    /// spad is stopping: close every door (the journal says so, so a
    /// restart does not re-arm them).
    pub fn shutdown(&mut self, now: Now) {
        self.tick(now);
        let open = self.doors.drain();
        let records = open
            .iter()
            .map(|d| Record::DoorClosed {
                door: d.door.clone(),
                addr: d.addr,
            })
            .collect();
        self.persist_best_effort(records);
        self.info.clear();
        for d in open {
            self.start_close(d.door, d.addr, CloseWhy::Stopping);
        }
    }

    /// Closes the firewall refused and that wait to be tried again (spad
    /// keeps trying these for a while before it exits).
    pub fn closes_pending(&self) -> usize {
        self.retry_closes.len()
    }

    /// Asks the executor to rewrite the journal as what is live now (spad
    /// does this once at start; the gateway asks again every
    /// [`COMPACT_AFTER`] appended records).
    pub fn compact(&mut self) {
        self.appended = 0;
        let records = self.durable_records();
        self.actions.push_back(Action::Compact { records });
    }

    /// Whether effects are still in flight (the executor finishes them before it exits).
    pub fn busy(&self) -> bool {
        !self.inflight.is_empty() || !self.actions.is_empty() || !self.batch.is_empty()
    }

    /// What must survive a compaction: used steps still within reach, used
    /// one-time sequences, and the open doors.
    pub fn durable_records(&self) -> Vec<Record> {
        let oldest = step_of(self.wall_high).saturating_sub(2);
        let mut out: Vec<Record> = self
            .used_steps
            .iter()
            .filter(|(_, _, s)| *s >= oldest)
            .map(|(key, door, step)| Record::UsedStep {
                key: *key,
                door: door.clone(),
                step: *step,
            })
            .collect();
        out.extend(
            self.one_time_used
                .iter()
                .map(|(door, sequence)| Record::OneTimeUsed {
                    door: door.clone(),
                    sequence: sequence.clone(),
                }),
        );
        let wall = self.now.wall_ms;
        out.extend(
            self.digests
                .iter()
                .filter(|(_, until)| **until >= wall)
                .map(|(digest, until)| Record::DigestSeen {
                    digest: *digest,
                    expires_ms: *until,
                }),
        );
        out.extend(
            self.info
                .iter()
                .map(|((door, addr), info)| Record::DoorOpened {
                    door: door.clone(),
                    addr: *addr,
                    until_ms: info.until_wall_ms,
                    user: info.user.clone(),
                }),
        );
        out
    }

    /// The open doors, soonest to close first.
    pub fn open_doors(&self) -> Vec<OpenEntry> {
        self.doors
            .iter()
            .map(|d| OpenEntry {
                user: self
                    .info
                    .get(&(d.door.clone(), d.addr))
                    .map(|i| i.user.clone())
                    .unwrap_or_default(),
                left_ms: d.until_ms.saturating_sub(self.now.mono_ms),
                door: d.door,
                addr: d.addr,
            })
            .collect()
    }

    /// The knock ports capture needs now: (TCP, UDP).
    pub fn capture_ports(&self) -> (Vec<u16>, Vec<u16>) {
        self.knocker.ports()
    }
}

#[cfg(test)]
mod tests;
