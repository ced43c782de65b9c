//! The knock state machine and the open-door timers driven together, as spad
//! drives them (knock outcome `Opened` -> `OpenDoors::open`; `UsedStep` persisted
//! and restored with `mark_used` on restart; `handle_timeout` and `expire` at their
//! poll times), with a model that checks the invariants of issue 10: bounded
//! memory, no door open past its time, a used rotating step never opens twice,
//! time never goes back. Kept apart from the target so it can be pointed at
//! spa-proto's composed gateway when that lands: only [`Gate`] knows the APIs.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use spa_proto::knock::{
    derive_sequence, step_of, ClassicDoor, KnockOutcome, KnockPacket, KnockStep, Knocker,
    RotatingDoor, RotatingSpec, TcpFlagsRule, Transport, TCP_SYN,
};
use spa_proto::{DoorChange, DoorName, KeyId, OpenDoors, SecretBytes};

use crate::gateway::{keyring, BASE_NOW_MS};

/// Attempts the fuzzed knocker may hold: small, so eviction is exercised.
pub const MAX_ATTEMPTS: usize = 8;
/// Restarts a script may make; later ones are skipped.
pub const MAX_RESTARTS: usize = 4;
/// Knock ports of classic doors are drawn from `PORT_BASE..PORT_BASE + 16`.
pub const PORT_BASE: u16 = 7000;
/// Where every knock is sent (the knocker is given no host addresses, so every
/// destination counts, as on a host that listens on all of them).
pub const DESTINATION: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

/// Sources: two IPv4, the IPv4-mapped form of the first (the same source), one IPv6.
pub fn source(index: u8) -> IpAddr {
    let v4 = Ipv4Addr::new(192, 0, 2, 7);
    match index % 4 {
        0 => IpAddr::V4(v4),
        1 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8)),
        2 => IpAddr::V6(v4.to_ipv6_mapped()),
        _ => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
    }
}

/// The gateway's users as a rotating door lists them (user, key id, knock
/// key), derived once per process: building the keyring (HKDF per key) on
/// every input was a sixth of the target's time.
fn gateway_users() -> &'static [(String, KeyId, SecretBytes)] {
    static USERS: OnceLock<Vec<(String, KeyId, SecretBytes)>> = OnceLock::new();
    USERS.get_or_init(|| {
        keyring()
            .iter()
            .map(|(_, k)| (k.entry.user.clone(), k.id, k.derived.knock.clone()))
            .collect()
    })
}

/// Rotating specs that pass PROTOCOL §4's bounds.
const SPECS: [(u8, u16, u16); 3] = [(4, 20000, 29999), (3, 40000, 45000), (6, 1024, 1100)];

/// One knock of a fuzzed classic sequence.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Step {
    port: u8,
    udp: bool,
}

impl Step {
    fn knock(self) -> KnockStep {
        let port = PORT_BASE + u16::from(self.port % 16);
        if self.udp {
            KnockStep::udp(port)
        } else {
            KnockStep::tcp(port)
        }
    }
}

/// A fuzzed door.
#[derive(Debug, Clone, Arbitrary)]
pub enum DoorSpec {
    /// A classic knockd door.
    Classic {
        steps: Vec<Step>,
        seq_timeout_s: u8,
        tcpflags: Option<(u8, u8)>,
        one_time: Option<Vec<Vec<Step>>>,
        open_s: u16,
    },
    /// A rotating door for some of the gateway's users.
    Rotating {
        spec: u8,
        udp: bool,
        seq_timeout_s: u8,
        users: u8,
        open_s: u16,
    },
}

/// What happens next.
#[derive(Debug, Clone, Arbitrary)]
pub enum Event {
    /// A captured packet on a classic knock port (or next to one).
    Packet {
        src: u8,
        port: u8,
        udp: bool,
        flags: u8,
        src_port: u16,
        seq: u32,
    },
    /// Knocks of ports `from..=from + count` of a user's rotating sequence for
    /// the step `shift` away from now (a whole sequence when from = 0 and count
    /// is large enough).
    Rotating {
        src: u8,
        door: u8,
        user: u8,
        shift: i8,
        from: u8,
        count: u8,
    },
    /// The wall clock moves forward.
    Forward(u16),
    /// The wall clock jumps far forward (seconds).
    Leap(u16),
    /// The wall clock goes BACK (an NTP step): ms.
    Back(u32),
    /// Sleep until the next timer (knock or door) and handle it.
    Wait,
    /// spad restarts: a new knocker with the persisted used steps, doors restored.
    Restart,
}

/// The fuzz input: doors, then events.
#[derive(Debug, Clone, Arbitrary)]
pub struct Script {
    /// At most four doors are used.
    pub doors: Vec<DoorSpec>,
    /// At most 64 events are used.
    pub events: Vec<Event>,
}

/// The machines under test, wired as spad wires them.
struct Gate {
    classic: Vec<ClassicDoor>,
    rotating: Vec<RotatingDoor>,
    open_secs: BTreeMap<DoorName, u32>,
    knocker: Knocker,
    doors: OpenDoors,
    /// The persisted used-step log.
    used_log: Vec<(KeyId, DoorName, u64)>,
}

impl Gate {
    fn new(
        classic: Vec<ClassicDoor>,
        rotating: Vec<RotatingDoor>,
        open_secs: BTreeMap<DoorName, u32>,
        now: u64,
    ) -> Self {
        let knocker =
            Knocker::new(classic.clone(), rotating.clone(), now).with_max_attempts(MAX_ATTEMPTS);
        Gate {
            classic,
            rotating,
            open_secs,
            knocker,
            doors: OpenDoors::new(),
            used_log: Vec::new(),
        }
    }

    /// What spad's loop does when the clock moved: the knocker's timer, if due.
    fn due_timers(&mut self, now: u64) -> Vec<KnockOutcome> {
        match self.knocker.poll_timeout() {
            Some(t) if t <= now => self.knocker.handle_timeout(now),
            _ => Vec::new(),
        }
    }

    /// Restart: a fresh knocker with the used steps restored as spad does (steps
    /// from s-2 on), the open doors saved to and read from their state file.
    fn restart(&mut self, now: u64) {
        let mut knocker = Knocker::new(self.classic.clone(), self.rotating.clone(), now)
            .with_max_attempts(MAX_ATTEMPTS);
        let oldest = step_of(now).saturating_sub(2);
        for (key, door, step) in &self.used_log {
            if *step >= oldest {
                knocker.mark_used(*key, door, *step);
            }
        }
        self.knocker = knocker;
        // As the gateway restores from the journal: overdue doors stay closed,
        // the rest keep their closing time.
        let mut doors = OpenDoors::new();
        for d in self.doors.iter() {
            if d.until_ms > now {
                doors.set(&d.door, d.addr, d.until_ms);
            }
        }
        self.doors = doors;
    }
}

/// The model's view: what must hold whatever the input.
#[derive(Default)]
struct Model {
    /// Every (key, door, step) that opened a rotating door, ever.
    used: HashSet<(KeyId, DoorName, u64)>,
    /// Closing time of each open (door, address), as spad asked for it.
    until: BTreeMap<(DoorName, IpAddr), u64>,
}

/// Runs a script; panics on a broken invariant.
pub fn run(script: &Script) {
    let mut now = BASE_NOW_MS;
    let mut classic = Vec::new();
    let mut rotating = Vec::new();
    let mut open_secs = BTreeMap::new();
    for (i, d) in script.doors.iter().take(4).enumerate() {
        let name: DoorName = match format!("door{i}").parse() {
            Ok(n) => n,
            Err(_) => unreachable!("door0..door3 are valid names"),
        };
        match d {
            DoorSpec::Classic {
                steps,
                seq_timeout_s,
                tcpflags,
                one_time,
                open_s,
            } => {
                let knocks = |s: &[Step]| s.iter().take(6).map(|s| s.knock()).collect();
                let door = ClassicDoor {
                    name: name.clone(),
                    steps: knocks(steps),
                    seq_timeout_ms: u64::from(*seq_timeout_s) * 1000,
                    tcpflags: tcpflags.and_then(|(r, e)| TcpFlagsRule::new(r, e)),
                    one_time: one_time
                        .as_ref()
                        .map(|l| l.iter().take(4).map(|s| knocks(s)).collect()),
                    target: Vec::new(),
                };
                if door.validate().is_ok() {
                    open_secs.insert(name, u32::from(*open_s).max(1));
                    classic.push(door);
                }
            }
            DoorSpec::Rotating {
                spec,
                udp,
                seq_timeout_s,
                users,
                open_s,
            } => {
                let (n, lo, hi) = SPECS[usize::from(*spec) % SPECS.len()];
                let Ok(spec) = RotatingSpec::new(n, lo, hi) else {
                    unreachable!("SPECS are within bounds")
                };
                let door = RotatingDoor {
                    name: name.clone(),
                    spec,
                    transport: if *udp { Transport::Udp } else { Transport::Tcp },
                    seq_timeout_ms: u64::from(*seq_timeout_s) * 1000,
                    users: gateway_users()
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| users & (1 << (i % 8)) != 0)
                        .map(|(_, user)| user.clone())
                        .collect(),
                };
                if door.validate().is_ok() {
                    open_secs.insert(name, u32::from(*open_s).max(1));
                    rotating.push(door);
                }
            }
        }
    }

    let mut gate = Gate::new(classic, rotating, open_secs, now);
    let mut model = Model::default();
    let mut restarts = 0;
    for event in script.events.iter().take(64) {
        let outcomes = match *event {
            Event::Packet {
                src,
                port,
                udp,
                flags,
                src_port,
                seq,
            } => {
                let pkt = KnockPacket {
                    src: source(src),
                    dst: DESTINATION,
                    transport: if udp { Transport::Udp } else { Transport::Tcp },
                    dst_port: PORT_BASE + u16::from(port % 20),
                    tcp_flags: flags,
                    src_port,
                    tcp_seq: seq,
                };
                gate.knocker.on_packet(&pkt, now)
            }
            Event::Rotating {
                src,
                door,
                user,
                shift,
                from,
                count,
            } => {
                let Some(d) = gate
                    .rotating
                    .get(usize::from(door) % gate.rotating.len().max(1))
                else {
                    continue;
                };
                let Some((_, _, k_knock)) = d.users.get(usize::from(user) % d.users.len().max(1))
                else {
                    continue;
                };
                let step = step_of(now).saturating_add_signed(i64::from(shift % 3));
                let Some(ports) = derive_sequence(k_knock, &d.name, &d.spec, step) else {
                    continue;
                };
                let (transport, from) = (d.transport, usize::from(from) % ports.len());
                let to = ports.len().min(from + 1 + usize::from(count % 16));
                let mut out = Vec::new();
                for (i, &port) in ports[from..to].iter().enumerate() {
                    let pkt = KnockPacket {
                        src: source(src),
                        dst: DESTINATION,
                        transport,
                        dst_port: port,
                        tcp_flags: TCP_SYN,
                        src_port: 40000,
                        tcp_seq: (from + i) as u32 * 7919,
                    };
                    out.extend(gate.knocker.on_packet(&pkt, now));
                }
                out
            }
            Event::Forward(ms) => {
                now = now.saturating_add(u64::from(ms));
                gate.due_timers(now)
            }
            Event::Leap(s) => {
                now = now.saturating_add(u64::from(s) * 1000);
                gate.due_timers(now)
            }
            Event::Back(ms) => {
                now = now.saturating_sub(u64::from(ms % 600_000));
                gate.due_timers(now)
            }
            Event::Wait => {
                let next = [gate.knocker.poll_timeout(), gate.doors.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                if let Some(t) = next {
                    now = now.max(t);
                }
                gate.knocker.handle_timeout(now)
            }
            Event::Restart => {
                restarts += 1;
                if restarts > MAX_RESTARTS {
                    continue;
                }
                gate.restart(now);
                Vec::new()
            }
        };
        apply(&mut gate, &mut model, outcomes, now);
        // Doors whose time has come are closed, exactly those.
        for closed in gate.doors.expire(now) {
            assert!(closed.until_ms <= now);
            let expected = model.until.remove(&(closed.door.clone(), closed.addr));
            assert_eq!(
                expected,
                Some(closed.until_ms),
                "closed at another time than opened for"
            );
        }
        check(&gate, &model, now);
    }
}

/// Carries out outcomes as spad does and checks each against the model.
fn apply(gate: &mut Gate, model: &mut Model, outcomes: Vec<KnockOutcome>, now: u64) {
    let mut opened_rotating: Vec<DoorName> = Vec::new();
    for outcome in outcomes {
        if report_enabled() {
            // SPA_FUZZ_REPORT=1: which decisions the inputs reached (docs/fuzzing.md).
            let kind = format!("{outcome:?}");
            let kind = kind.split([' ', '{']).next().unwrap_or("");
            let rotating = matches!(&outcome, KnockOutcome::Opened { user: Some(_), .. });
            eprintln!(
                "spa-fuzz: {kind}{}",
                if rotating { " (rotating)" } else { "" }
            );
        }
        match outcome {
            KnockOutcome::Opened { door, addr, user } => {
                assert_eq!(
                    addr,
                    spa_proto::packet::canonical_ip(addr),
                    "address not canonical"
                );
                let secs = gate
                    .open_secs
                    .get(&door)
                    .copied()
                    .unwrap_or_else(|| panic!("opened {door}, which is no configured door"));
                if user.is_some() {
                    assert!(gate.rotating.iter().any(|d| d.name == door));
                    opened_rotating.push(door.clone());
                }
                let wanted = now.saturating_add(u64::from(secs) * 1000);
                let before = model.until.get(&(door.clone(), addr)).copied();
                let change = gate.doors.open(&door, addr, now, secs);
                let until = match change {
                    DoorChange::Opened { until_ms } => {
                        assert_eq!(before, None, "opened a door that was open");
                        until_ms
                    }
                    DoorChange::Extended { until_ms } => {
                        assert!(before.is_some_and(|b| b < until_ms), "extension shortened");
                        until_ms
                    }
                    DoorChange::Unchanged { until_ms } => {
                        assert_eq!(before, Some(until_ms));
                        until_ms
                    }
                };
                assert_eq!(until, before.unwrap_or(0).max(wanted), "closing time");
                model.until.insert((door, addr), until);
            }
            KnockOutcome::UsedStep { key, door, step } => {
                assert!(
                    opened_rotating.contains(&door),
                    "UsedStep without the door opening"
                );
                assert!(
                    model.used.insert((key, door.clone(), step)),
                    "rotating step {step} of {door} opened twice"
                );
                assert!(gate.knocker.is_used(key, &door, step));
                gate.used_log.push((key, door, step));
            }
            _ => {}
        }
    }
}

/// Invariants that hold between events.
fn check(gate: &Gate, model: &Model, now: u64) {
    // Bounded memory.
    assert!(
        gate.knocker.attempts() <= MAX_ATTEMPTS,
        "attempts above the cap"
    );
    assert!(gate.knocker.sources() <= gate.knocker.attempts());
    // No door open past its time, and exactly the doors spad opened.
    assert_eq!(gate.doors.len(), model.until.len());
    for d in gate.doors.iter() {
        assert!(d.until_ms > now, "door {} open past its time", d.door);
        assert_eq!(
            model.until.get(&(d.door.clone(), d.addr)),
            Some(&d.until_ms)
        );
    }
    assert_eq!(
        gate.doors.poll_timeout(),
        model.until.values().min().copied()
    );
    // Timers ask to be woken, never for the past unless already due.
    if let Some(t) = gate.knocker.poll_timeout() {
        assert!(t > 0);
    }
    // Knock ports are only ever ports of configured sequences.
    let (tcp, udp) = gate.knocker.ports();
    for p in tcp.iter().chain(&udp) {
        let classic = (PORT_BASE..PORT_BASE + 16).contains(p);
        let rotating = gate
            .rotating
            .iter()
            .any(|d| (d.spec.lo..=d.spec.hi).contains(p));
        assert!(classic || rotating, "port {p} of no sequence");
    }
}

fn report_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SPA_FUZZ_REPORT").is_some())
}
