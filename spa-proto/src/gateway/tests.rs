//! Gateway unit tests: a fake clock and a fake executor that can fail any
//! effect on demand. Everything here runs without root, in milliseconds.

use super::*;
use crate::keyring::{KeyEntry, Keyring};
use crate::keys::{SecretBytes, UserSecret};
use crate::knock::{RotatingSpec, Transport, TCP_SYN};
use crate::names::ServerId;
use crate::replay::ReplayCache;

const T0: u64 = 1_764_000_000_000;

fn name(s: &str) -> DoorName {
    s.parse().unwrap_or_else(|_| unreachable!("test door name"))
}

fn at(ms: u64) -> Now {
    Now {
        wall_ms: T0 + ms,
        mono_ms: 1_000_000 + ms,
    }
}

const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3));
const SERVER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

fn spa_door(n: &str, closing: Closing) -> DoorRules {
    DoorRules {
        name: name(n),
        opener: Opener::Spa,
        default_secs: 30,
        max_secs: 300,
        closing,
        max_open: 100,
    }
}

fn classic_door(n: &str, ports: &[u16], max_open: usize) -> DoorRules {
    DoorRules {
        name: name(n),
        opener: Opener::Classic(ClassicDoor {
            name: name(n),
            steps: ports.iter().map(|p| KnockStep::tcp(*p)).collect(),
            seq_timeout_ms: 10_000,
            tcpflags: None,
            one_time: None,
            target: Vec::new(),
        }),
        default_secs: 10,
        max_secs: 10,
        closing: Closing::Timer,
        max_open,
    }
}

fn config(doors: Vec<DoorRules>) -> GatewayConfig {
    GatewayConfig {
        doors,
        knock_events_per_minute: 50,
        ..GatewayConfig::default()
    }
}

fn keyring(entries: Vec<KeyEntry>) -> Keyring {
    Keyring::new(entries)
}

fn entry(user: &str, doors: &[&str], expires_at_ms: Option<u64>) -> KeyEntry {
    let server = "gw1".parse::<ServerId>().unwrap_or_else(|_| unreachable!());
    let secret = UserSecret::new(SecretBytes::new([7; 32]));
    KeyEntry {
        user: user.into(),
        key: secret.server_key(&server),
        doors: doors.iter().map(|d| name(d)).collect(),
        enabled: true,
        expires_at_ms,
        allow_observed: false,
    }
}

fn grant(door: &str, addr: IpAddr, seconds: u32, nonce: u8) -> Grant {
    let mut cache = ReplayCache::new(32, 30_000);
    let record = cache
        .insert(KeyId([1; 16]), [nonce; 12], T0, T0)
        .unwrap_or_else(|_| unreachable!());
    Grant {
        user: "alice".into(),
        key: 0,
        door: name(door),
        addr,
        seconds,
        now_ms: T0,
        record,
    }
}

fn syn(addr: IpAddr, port: u16, seq: u32) -> KnockPacket {
    KnockPacket {
        src: addr,
        dst: SERVER,
        transport: Transport::Tcp,
        dst_port: port,
        tcp_flags: TCP_SYN,
        src_port: 40_000,
        tcp_seq: seq,
    }
}

/// What a fake executor saw, and which effects it fails.
#[derive(Default)]
struct Fake {
    log: Vec<Action>,
    fail_persist: bool,
    fail_open: bool,
    fail_close: bool,
}

impl Fake {
    /// Runs every action as spad would, failing what it is told to.
    fn run(&mut self, gw: &mut Gateway, now: Now) {
        while let Some(a) = gw.poll_action() {
            let outcome = match &a {
                Action::Persist { id, .. } => Some((*id, self.fail_persist)),
                Action::Open { id, .. } => Some((*id, self.fail_open)),
                Action::Close { id, .. } => Some((*id, self.fail_close)),
                _ => None,
            };
            self.log.push(a);
            match outcome {
                Some((id, true)) => gw.effect_failed(id, "injected".into(), now),
                Some((id, false)) => gw.effect_done(id, now),
                None => {}
            }
        }
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Persist { .. } => Some("persist"),
                Action::Open { .. } => Some("open"),
                Action::Close { .. } => Some("close"),
                Action::Adopt { .. } => Some("adopt"),
                Action::ForgetReplay(_) => Some("forget"),
                _ => None,
            })
            .collect()
    }

    fn events(&self) -> Vec<&Event> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Audit(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn opens(&self) -> Vec<(DoorName, IpAddr, u32)> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Open {
                    door,
                    addr,
                    seconds,
                    ..
                } => Some((door.clone(), *addr, *seconds)),
                _ => None,
            })
            .collect()
    }

    fn closes(&self) -> Vec<(DoorName, IpAddr)> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Close { door, addr, .. } => Some((door.clone(), *addr)),
                _ => None,
            })
            .collect()
    }

    fn persisted(&self) -> Vec<Record> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Persist { records, .. } => Some(records.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

fn gateway(doors: Vec<DoorRules>, keys: &Keyring) -> Gateway {
    let mut gw = Gateway::new(config(doors), keys, at(0));
    gw.set_local_addresses(vec![SERVER]);
    gw.restore(keys, JournalState::default(), at(0));
    gw
}

#[test]
fn a_grant_is_made_durable_before_the_door_opens() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![spa_door("ssh", Closing::Kernel)], &keys);
    let mut fx = Fake::default();
    gw.handle_grant(grant("ssh", A, 30, 1), at(0));
    fx.run(&mut gw, at(0));
    assert_eq!(fx.kinds(), vec!["persist", "open"]);
    let records = fx.persisted();
    assert!(matches!(records[0], Record::Replay { .. }));
    assert!(
        matches!(&records[1], Record::DoorOpened { door, addr, until_ms, user }
            if door.as_str() == "ssh" && *addr == A && *until_ms == T0 + 30_000 && user == "alice")
    );
    assert_eq!(fx.opens(), vec![(name("ssh"), A, 30)]);
    assert!(fx.events().iter().any(|e| matches!(
        e,
        Event::Opened {
            kind: OpenKind::New,
            ..
        }
    )));
    assert_eq!(gw.open_doors().len(), 1);
}

#[test]
fn many_grants_in_one_turn_share_one_persist() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![spa_door("ssh", Closing::Kernel)], &keys);
    let mut fx = Fake::default();
    gw.handle_grant(grant("ssh", A, 30, 1), at(0));
    gw.handle_grant(grant("ssh", B, 30, 2), at(0));
    fx.run(&mut gw, at(0));
    assert_eq!(fx.kinds(), vec!["persist", "open", "open"]);
}

#[test]
fn a_persist_failure_opens_nothing_and_gives_the_nonce_back() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![spa_door("ssh", Closing::Kernel)], &keys);
    let mut fx = Fake {
        fail_persist: true,
        ..Fake::default()
    };
    gw.handle_grant(grant("ssh", A, 30, 1), at(0));
    fx.run(&mut gw, at(0));
    assert_eq!(fx.kinds(), vec!["persist", "forget"]);
    assert!(fx.opens().is_empty());
    assert!(fx.events().iter().any(|e| matches!(
        e,
        Event::Refused {
            why: Refusal::Storage(_),
            ..
        }
    )));
    assert!(gw.open_doors().is_empty());
    // The disk is back: the same user's next packet opens.
    fx.fail_persist = false;
    gw.handle_grant(grant("ssh", A, 30, 1), at(10));
    fx.run(&mut gw, at(10));
    assert_eq!(fx.opens().len(), 1);
}

#[test]
fn a_door_the_firewall_refused_is_not_recorded_as_open() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![spa_door("ssh", Closing::Timer)], &keys);
    let mut fx = Fake {
        fail_open: true,
        ..Fake::default()
    };
    gw.handle_grant(grant("ssh", A, 30, 1), at(0));
    fx.run(&mut gw, at(0));
    assert!(gw.open_doors().is_empty());
    assert_eq!(
        gw.poll_timeout(),
        None,
        "no timer for a door that never opened"
    );
    assert!(fx
        .persisted()
        .iter()
        .any(|r| matches!(r, Record::DoorClosed { addr, .. } if *addr == A)));
    assert!(fx.events().iter().any(|e| matches!(
        e,
        Event::Refused {
            why: Refusal::Firewall(_),
            ..
        }
    )));
}

#[test]
fn a_failed_extension_keeps_the_earlier_opening() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![spa_door("ssh", Closing::Timer)], &keys);
    let mut fx = Fake::default();
    gw.handle_grant(grant("ssh", A, 30, 1), at(0));
    fx.run(&mut gw, at(0));
    fx.fail_open = true;
    gw.handle_grant(grant("ssh", A, 60, 2), at(1000));
    fx.run(&mut gw, at(1000));
    let open = gw.open_doors();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].left_ms, 29_000, "still the first grant's time");
}

#[test]
fn doors_close_on_the_monotonic_clock_whatever_the_wall_clock_does() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![spa_door("ssh", Closing::Timer)], &keys);
    let mut fx = Fake::default();
    gw.handle_grant(grant("ssh", A, 30, 1), at(0));
    fx.run(&mut gw, at(0));
    assert_eq!(gw.poll_timeout(), Some(at(30_000).mono_ms));
    // The wall clock is stepped back an hour; the door still closes 30 s after it opened.
    let stepped = Now {
        wall_ms: T0 - 3_600_000,
        mono_ms: at(30_000).mono_ms,
    };
    gw.handle_timeout(stepped);
    fx.run(&mut gw, stepped);
    assert_eq!(fx.closes(), vec![(name("ssh"), A)]);
    assert!(gw.open_doors().is_empty());
}

#[test]
fn a_failed_close_is_tried_again_until_it_works() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![spa_door("ssh", Closing::Timer)], &keys);
    let mut fx = Fake::default();
    gw.handle_grant(grant("ssh", A, 30, 1), at(0));
    fx.run(&mut gw, at(0));
    fx.fail_close = true;
    gw.handle_timeout(at(30_000));
    fx.run(&mut gw, at(30_000));
    assert_eq!(gw.poll_timeout(), Some(at(30_000 + CLOSE_RETRY_MS).mono_ms));
    assert_eq!(gw.closes_pending(), 1);
    gw.handle_timeout(at(31_000));
    fx.run(&mut gw, at(31_000));
    assert_eq!(
        gw.poll_timeout(),
        Some(at(31_000 + 2 * CLOSE_RETRY_MS).mono_ms),
        "the wait doubles"
    );
    fx.fail_close = false;
    gw.handle_timeout(at(33_000));
    fx.run(&mut gw, at(33_000));
    assert_eq!(fx.closes().len(), 3);
    assert_eq!(gw.closes_pending(), 0);
    assert!(fx.events().iter().any(|e| matches!(
        e,
        Event::Closed {
            why: CloseWhy::TimeUp,
            ..
        }
    )));
    assert_eq!(gw.poll_timeout(), None);
}

#[test]
fn restart_adopts_command_doors_reopens_others_and_closes_overdue() {
    let keys = keyring(vec![]);
    let doors = vec![
        spa_door("ssh", Closing::Kernel),
        spa_door("web", Closing::Command { every_time: false }),
        spa_door("old", Closing::Timer),
    ];
    let mut journal = JournalState::default();
    journal
        .open
        .insert((name("ssh"), A), (T0 + 20_000, "alice".into()));
    journal
        .open
        .insert((name("web"), A), (T0 + 20_000, "alice".into()));
    journal
        .open
        .insert((name("old"), B), (T0 - 1, "bob".into()));
    journal
        .open
        .insert((name("gone"), B), (T0 + 20_000, "bob".into()));
    let mut gw = Gateway::new(config(doors), &keys, at(0));
    gw.restore(&keys, journal, at(0));
    let mut fx = Fake::default();
    fx.run(&mut gw, at(0));
    assert_eq!(
        fx.opens(),
        vec![(name("ssh"), A, 20)],
        "re-armed for the time left"
    );
    assert!(fx
        .log
        .iter()
        .any(|a| matches!(a, Action::Adopt { door, .. } if door.as_str() == "web")));
    let mut closes = fx.closes();
    closes.sort();
    assert_eq!(closes, vec![(name("gone"), B), (name("old"), B)]);
    assert!(fx.events().iter().any(|e| matches!(
        e,
        Event::Closed {
            why: CloseWhy::Overdue,
            ..
        }
    )));
    assert_eq!(gw.open_doors().len(), 2);
}

#[test]
fn a_restored_door_never_outlives_its_max_secs() {
    let keys = keyring(vec![]);
    let mut journal = JournalState::default();
    // A clock stepped back before the restart would make 10 hours remain.
    journal
        .open
        .insert((name("ssh"), A), (T0 + 36_000_000, "alice".into()));
    let mut gw = Gateway::new(config(vec![spa_door("ssh", Closing::Timer)]), &keys, at(0));
    gw.restore(&keys, journal, at(0));
    let mut fx = Fake::default();
    fx.run(&mut gw, at(0));
    assert_eq!(fx.opens(), vec![(name("ssh"), A, 300)]);
}

#[test]
fn reload_keeps_open_doors_and_closes_removed_ones() {
    let keys = keyring(vec![]);
    let mut gw = gateway(
        vec![
            spa_door("ssh", Closing::Kernel),
            spa_door("web", Closing::Kernel),
        ],
        &keys,
    );
    let mut fx = Fake::default();
    gw.handle_grant(grant("ssh", A, 30, 1), at(0));
    gw.handle_grant(grant("web", A, 30, 2), at(0));
    fx.run(&mut gw, at(0));
    let before = fx.log.len();
    gw.reload(
        config(vec![spa_door("ssh", Closing::Kernel)]),
        &keys,
        at(1000),
    );
    fx.run(&mut gw, at(1000));
    let after = &fx.log[before..];
    assert!(after
        .iter()
        .any(|a| matches!(a, Action::Close { door, .. } if door.as_str() == "web")));
    assert!(!after.iter().any(|a| matches!(a, Action::Open { .. })));
    assert!(after.iter().any(|a| matches!(a, Action::Persist { records, .. }
        if records.iter().any(|r| matches!(r, Record::DoorClosed { door, .. } if door.as_str() == "web")))));
    let open = gw.open_doors();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].door.as_str(), "ssh");
}

#[test]
fn a_door_moved_to_another_backend_is_opened_there_for_its_time_left() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![spa_door("ssh", Closing::Kernel)], &keys);
    let mut fx = Fake::default();
    gw.handle_grant(grant("ssh", A, 30, 1), at(0));
    fx.run(&mut gw, at(0));
    gw.reload(
        config(vec![spa_door("ssh", Closing::Timer)]),
        &keys,
        at(10_000),
    );
    fx.run(&mut gw, at(10_000));
    assert_eq!(fx.opens().last(), Some(&(name("ssh"), A, 20)));
}

fn rotating_rules() -> DoorRules {
    DoorRules {
        name: name("legacy"),
        opener: Opener::Rotating {
            spec: RotatingSpec {
                n: 4,
                lo: 20_000,
                hi: 20_999,
            },
            transport: Transport::Tcp,
            seq_timeout_ms: 10_000,
        },
        default_secs: 30,
        max_secs: 30,
        closing: Closing::Timer,
        max_open: 100,
    }
}

/// Knocks `entry`'s rotating sequence for the current step at `t`.
fn knock_rotating(gw: &mut Gateway, keys: &Keyring, t: u64) {
    let k = keys
        .iter()
        .next()
        .map(|(_, k)| k.clone())
        .unwrap_or_else(|| unreachable!());
    let spec = RotatingSpec {
        n: 4,
        lo: 20_000,
        hi: 20_999,
    };
    let ports =
        crate::knock::derive_sequence(&k.derived.knock, &name("legacy"), &spec, step_of(T0 + t))
            .unwrap_or_default();
    assert_eq!(ports.len(), 4);
    for (i, port) in ports.iter().enumerate() {
        gw.handle_knock(
            &syn(A, *port, t as u32 * 10 + i as u32 + 1),
            at(t + i as u64),
        );
    }
}

#[test]
fn a_key_that_expires_while_spad_runs_no_longer_opens_its_rotating_door() {
    // Expiry at start + 60 s, knock at start + 10 min → refused (it used to open).
    let keys = keyring(vec![entry("alice", &["legacy"], Some(T0 + 60_000))]);
    let mut gw = gateway(vec![rotating_rules()], &keys);
    let mut fx = Fake::default();
    knock_rotating(&mut gw, &keys, 600_000);
    fx.run(&mut gw, at(600_010));
    assert!(fx.opens().is_empty());
    assert!(fx.events().iter().any(|e| matches!(
        e,
        Event::Refused { why: Refusal::KeyUnusable, user, .. } if user == "alice"
    )));
}

#[test]
fn a_valid_rotating_sequence_opens_and_its_step_is_durable_first() {
    let keys = keyring(vec![entry("alice", &["legacy"], None)]);
    let mut gw = gateway(vec![rotating_rules()], &keys);
    let mut fx = Fake::default();
    knock_rotating(&mut gw, &keys, 1000);
    fx.run(&mut gw, at(1010));
    assert_eq!(fx.kinds(), vec!["persist", "open"]);
    assert!(fx
        .persisted()
        .iter()
        .any(|r| matches!(r, Record::UsedStep { .. })));
    // The same sequence again in the same step: refused, nothing opens.
    knock_rotating(&mut gw, &keys, 2000);
    fx.run(&mut gw, at(2010));
    assert_eq!(fx.opens().len(), 1);
}

#[test]
fn a_used_step_restored_from_the_journal_never_opens_again() {
    let keys = keyring(vec![entry("alice", &["legacy"], None)]);
    let mut gw = gateway(vec![rotating_rules()], &keys);
    let mut fx = Fake::default();
    knock_rotating(&mut gw, &keys, 1000);
    fx.run(&mut gw, at(1010));
    let journal = JournalState::from_records(&fx.persisted());
    // Restart, and the wall clock was stepped back a minute meanwhile.
    let mut again = Gateway::new(config(vec![rotating_rules()]), &keys, at(1500));
    again.restore(&keys, journal, at(1500));
    let mut fx2 = Fake::default();
    fx2.run(&mut again, at(1500));
    let opens_before = fx2.opens().len();
    knock_rotating(&mut again, &keys, 2000);
    fx2.run(&mut again, at(2010));
    assert_eq!(fx2.opens().len(), opens_before, "the used step stays used");
}

#[test]
fn the_knock_machine_never_sees_time_go_back() {
    let keys = keyring(vec![entry("alice", &["legacy"], None)]);
    let mut gw = gateway(vec![rotating_rules()], &keys);
    let mut fx = Fake::default();
    knock_rotating(&mut gw, &keys, 1000);
    fx.run(&mut gw, at(1010));
    // Wall clock stepped back 2 minutes: the step the sequence used must not come round.
    let back = Now {
        wall_ms: T0 + 1000 - 120_000,
        mono_ms: at(3000).mono_ms,
    };
    let k = keys
        .iter()
        .next()
        .map(|(_, k)| k.clone())
        .unwrap_or_else(|| unreachable!());
    let spec = RotatingSpec {
        n: 4,
        lo: 20_000,
        hi: 20_999,
    };
    let old =
        crate::knock::derive_sequence(&k.derived.knock, &name("legacy"), &spec, step_of(T0 + 1000))
            .unwrap_or_default();
    for (i, port) in old.iter().enumerate() {
        gw.handle_knock(&syn(A, *port, 100 + i as u32), back);
    }
    fx.run(&mut gw, back);
    assert_eq!(fx.opens().len(), 1, "only the first knock opened");
}

#[test]
fn spoofed_sources_completing_a_classic_sequence_hit_the_door_cap() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![classic_door("knock", &[7000, 8000], 3)], &keys);
    let mut fx = Fake::default();
    for i in 0..50u32 {
        let src = IpAddr::V4(std::net::Ipv4Addr::from(0x0a01_0000 + i));
        gw.handle_knock(&syn(src, 7000, 1), at(u64::from(i)));
        gw.handle_knock(&syn(src, 8000, 2), at(u64::from(i)));
        fx.run(&mut gw, at(u64::from(i)));
    }
    assert_eq!(
        fx.opens().len(),
        3,
        "at most max_open addresses hold the door"
    );
    assert_eq!(gw.open_doors().len(), 3);
    let refusals = fx
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Refused {
                    why: Refusal::DoorFull { max: 3 },
                    ..
                }
            )
        })
        .count();
    assert!(refusals > 0);
}

#[test]
fn a_knock_flood_gives_a_bounded_number_of_log_events() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![classic_door("knock", &[7000, 8000, 9000], 10)], &keys);
    let mut fx = Fake::default();
    for i in 0..10_000u32 {
        gw.handle_knock(&syn(A, 7000, i), at(u64::from(i)));
    }
    fx.run(&mut gw, at(10_000));
    let knock_events = fx
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Knock { .. }))
        .count();
    assert_eq!(knock_events, 50, "the per-minute budget");
    gw.handle_timeout(at(60_000));
    fx.run(&mut gw, at(60_000));
    // 10,000 knocks: 50 events logged, the rest (and any time-out) in one summary.
    let summaries: Vec<u64> = fx
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Suppressed { count } => Some(*count),
            _ => None,
        })
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert!(summaries[0] >= 9_950, "{summaries:?}");
}

#[test]
fn a_command_door_without_stop_command_runs_on_every_completion() {
    let keys = keyring(vec![]);
    let mut rules = classic_door("cmd", &[7000, 8000], 10);
    rules.closing = Closing::Command { every_time: true };
    let mut gw = gateway(vec![rules], &keys);
    let mut fx = Fake::default();
    for round in 0..3u32 {
        gw.handle_knock(&syn(A, 7000, 10 * round + 1), at(u64::from(round)));
        gw.handle_knock(&syn(A, 8000, 10 * round + 2), at(u64::from(round)));
        fx.run(&mut gw, at(u64::from(round)));
    }
    assert_eq!(fx.opens().len(), 3);
}

#[test]
fn one_time_sequences_are_marked_in_the_journal_before_the_door_opens() {
    let keys = keyring(vec![]);
    let mut rules = classic_door("otp", &[], 10);
    if let Opener::Classic(d) = &mut rules.opener {
        d.one_time = Some(vec![
            vec![KnockStep::tcp(1000), KnockStep::tcp(2000)],
            vec![KnockStep::tcp(3000), KnockStep::tcp(4000)],
        ]);
    }
    let mut gw = gateway(vec![rules.clone()], &keys);
    let mut fx = Fake::default();
    gw.handle_knock(&syn(A, 1000, 1), at(0));
    gw.handle_knock(&syn(A, 2000, 2), at(1));
    fx.run(&mut gw, at(1));
    assert_eq!(fx.kinds(), vec!["persist", "open"]);
    assert!(fx.persisted().iter().any(
        |r| matches!(r, Record::OneTimeUsed { sequence, .. } if sequence == "1000:tcp,2000:tcp")
    ));
    // A restart (or a reload re-reading the file) never brings it back.
    let journal = JournalState::from_records(&fx.persisted());
    let mut again = Gateway::new(config(vec![rules]), &keys, at(100));
    again.restore(&keys, journal, at(100));
    let mut fx2 = Fake::default();
    again.handle_knock(&syn(B, 1000, 1), at(200));
    again.handle_knock(&syn(B, 2000, 2), at(201));
    fx2.run(&mut again, at(201));
    assert!(fx2.opens().iter().all(|(_, addr, _)| *addr != B));
}

#[test]
fn a_failed_one_time_mark_opens_nothing() {
    let keys = keyring(vec![]);
    let mut rules = classic_door("otp", &[], 10);
    if let Opener::Classic(d) = &mut rules.opener {
        d.one_time = Some(vec![vec![KnockStep::tcp(1000), KnockStep::tcp(2000)]]);
    }
    let mut gw = gateway(vec![rules], &keys);
    let mut fx = Fake {
        fail_persist: true,
        ..Fake::default()
    };
    gw.handle_knock(&syn(A, 1000, 1), at(0));
    gw.handle_knock(&syn(A, 2000, 2), at(1));
    fx.run(&mut gw, at(1));
    assert!(fx.opens().is_empty());
}

#[test]
fn shutdown_closes_every_door_and_says_so_in_the_journal() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![spa_door("ssh", Closing::Timer)], &keys);
    let mut fx = Fake::default();
    gw.handle_grant(grant("ssh", A, 30, 1), at(0));
    gw.handle_grant(grant("ssh", B, 30, 2), at(0));
    fx.run(&mut gw, at(0));
    gw.shutdown(at(5));
    fx.run(&mut gw, at(5));
    assert_eq!(fx.closes().len(), 2);
    assert!(!gw.busy());
    let journal = JournalState::from_records(&fx.persisted());
    assert!(journal.open.is_empty(), "a restart re-arms nothing");
}

#[test]
fn an_operator_close_closes_now_and_is_journaled() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![spa_door("ssh", Closing::Kernel)], &keys);
    let mut fx = Fake::default();
    gw.handle_grant(grant("ssh", A, 30, 1), at(0));
    fx.run(&mut gw, at(0));
    assert!(gw.close(&name("ssh"), A, at(10)));
    assert!(!gw.close(&name("ssh"), B, at(10)));
    fx.run(&mut gw, at(10));
    assert_eq!(fx.closes(), vec![(name("ssh"), A)]);
    assert!(JournalState::from_records(&fx.persisted()).open.is_empty());
}

#[test]
fn compaction_is_asked_for_after_enough_records() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![spa_door("ssh", Closing::Kernel)], &keys);
    let mut fx = Fake::default();
    for i in 0..(COMPACT_AFTER / 2 + 1) {
        gw.handle_grant(grant("ssh", A, 30, (i % 250) as u8), at(i as u64));
        fx.run(&mut gw, at(i as u64));
    }
    let compacts: Vec<_> = fx
        .log
        .iter()
        .filter_map(|a| match a {
            Action::Compact { records } => Some(records.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(compacts.len(), 1);
    // Asked for directly (spad does at start): the open door is in it.
    gw.compact();
    let asked = std::iter::from_fn(|| gw.poll_action())
        .find_map(|a| match a {
            Action::Compact { records } => Some(records),
            _ => None,
        })
        .unwrap_or_default();
    assert!(asked
        .iter()
        .any(|r| matches!(r, Record::DoorOpened { addr, .. } if *addr == A)));
    assert!(compacts[0]
        .iter()
        .any(|r| matches!(r, Record::DoorOpened { addr, .. } if *addr == A)));
}

#[test]
fn capture_ports_are_announced_once_and_come_from_the_knock_machine() {
    let keys = keyring(vec![]);
    let mut gw = gateway(vec![classic_door("knock", &[7000, 8000], 10)], &keys);
    let mut fx = Fake::default();
    fx.run(&mut gw, at(0));
    let sets: Vec<_> = fx
        .log
        .iter()
        .filter_map(|a| match a {
            Action::SetCapturePorts { tcp, udp } => Some((tcp.clone(), udp.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(sets, vec![(vec![7000, 8000], vec![])]);
}

#[test]
fn a_close_being_retried_never_takes_down_a_new_opening() {
    let keys = keyring(vec![]);
    let mut gw = gateway(
        vec![spa_door("ssh", Closing::Command { every_time: false })],
        &keys,
    );
    let mut fx = Fake::default();
    gw.handle_grant(grant("ssh", A, 2, 1), at(0));
    fx.run(&mut gw, at(0));
    fx.fail_close = true;
    gw.handle_timeout(at(2_000));
    fx.run(&mut gw, at(2_000));
    fx.fail_close = false;
    // Granted again before the retry is due.
    gw.handle_grant(grant("ssh", A, 30, 2), at(2_500));
    fx.run(&mut gw, at(2_500));
    gw.handle_timeout(at(3_100));
    fx.run(&mut gw, at(3_100));
    assert_eq!(fx.closes().len(), 1, "no retry after the new opening");
    assert_eq!(gw.open_doors().len(), 1);
}

#[test]
fn knocks_passing_through_to_another_host_open_nothing_and_a_reload_keeps_that() {
    let keys = keyring(vec![]);
    let doors = vec![classic_door("knock", &[7000, 8000], 10)];
    let mut gw = gateway(doors.clone(), &keys);
    let mut fx = Fake::default();
    let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(10, 9, 9, 9));
    let to = |dst: IpAddr, port: u16, seq: u32| KnockPacket {
        dst,
        ..syn(A, port, seq)
    };
    gw.handle_knock(&to(elsewhere, 7000, 1), at(0));
    gw.handle_knock(&to(elsewhere, 8000, 2), at(1));
    fx.run(&mut gw, at(1));
    assert!(
        fx.opens().is_empty(),
        "a knock for another host opened this one's door"
    );
    gw.reload(config(doors), &keys, at(2));
    gw.handle_knock(&to(elsewhere, 7000, 3), at(3));
    gw.handle_knock(&to(elsewhere, 8000, 4), at(4));
    fx.run(&mut gw, at(4));
    assert!(
        fx.opens().is_empty(),
        "the reload forgot the host's addresses"
    );
    gw.handle_knock(&to(SERVER, 7000, 5), at(5));
    gw.handle_knock(&to(SERVER, 8000, 6), at(6));
    fx.run(&mut gw, at(6));
    assert_eq!(fx.opens().len(), 1);
}

// Grants that name ports (fwknop).

fn port_gateway(doors: Vec<DoorRules>) -> Gateway {
    let mut cfg = config(doors);
    cfg.port_doors.insert((Transport::Tcp, 22), name("ssh"));
    cfg.port_doors.insert((Transport::Tcp, 443), name("web"));
    let keys = keyring(vec![]);
    let mut gw = Gateway::new(cfg, &keys, at(0));
    gw.restore(&keys, JournalState::default(), at(0));
    gw
}

fn port_grant(ports: &[(Transport, u16)], digest: u8, seconds: u32) -> PortGrant {
    PortGrant {
        digest: [digest; 32],
        timestamp_ms: T0,
        replay_until_ms: T0 + 240_000,
        addr: A,
        user: "fwknop:3:alice".into(),
        ports: ports.to_vec(),
        seconds,
    }
}

#[test]
fn a_port_grant_opens_each_ports_door_after_its_digest_is_durable() {
    let mut gw = port_gateway(vec![
        spa_door("ssh", Closing::Kernel),
        spa_door("web", Closing::Kernel),
    ]);
    let mut fx = Fake::default();
    let ports = [(Transport::Tcp, 22), (Transport::Tcp, 443)];
    gw.handle_port_grant(port_grant(&ports, 1, 1000), at(0));
    fx.run(&mut gw, at(0));
    assert_eq!(fx.kinds(), vec!["persist", "open", "open"]);
    let records = fx.persisted();
    assert_eq!(
        records[0],
        Record::DigestSeen {
            digest: [1; 32],
            expires_ms: T0 + 240_000
        }
    );
    // 1000 s asked, the doors' max_secs (300) given.
    assert_eq!(
        fx.opens(),
        vec![(name("ssh"), A, 300), (name("web"), A, 300)]
    );
    // A grant asking no particular time gets the door's default.
    let mut default_time = port_grant(&ports[..1], 2, 0);
    default_time.addr = B;
    gw.handle_port_grant(default_time, at(10));
    fx.run(&mut gw, at(10));
    assert_eq!(fx.opens().last(), Some(&(name("ssh"), B, 30)));
}

#[test]
fn a_replayed_port_grant_opens_nothing_until_its_digest_expires() {
    let mut gw = port_gateway(vec![spa_door("ssh", Closing::Kernel)]);
    let mut fx = Fake::default();
    let ssh = [(Transport::Tcp, 22)];
    gw.handle_port_grant(port_grant(&ssh, 1, 30), at(0));
    gw.handle_port_grant(port_grant(&ssh, 1, 30), at(0));
    fx.run(&mut gw, at(0));
    assert_eq!(fx.opens().len(), 1, "the same batch refuses the copy");
    gw.handle_port_grant(port_grant(&ssh, 1, 30), at(200_000));
    fx.run(&mut gw, at(200_000));
    assert_eq!(fx.opens().len(), 1);
    assert!(fx.events().iter().any(|e| matches!(
        e,
        Event::PortsRefused { why: Refusal::Replay, user, .. } if user == "fwknop:3:alice"
    )));
    // After a restart the journal still knows it.
    let journal = JournalState::from_records(&fx.persisted());
    let keys = keyring(vec![]);
    let mut cfg = config(vec![spa_door("ssh", Closing::Kernel)]);
    cfg.port_doors.insert((Transport::Tcp, 22), name("ssh"));
    let mut restarted = Gateway::new(cfg, &keys, at(210_000));
    restarted.restore(&keys, journal, at(210_000));
    let mut fx2 = Fake::default();
    fx2.run(&mut restarted, at(210_000));
    restarted.handle_port_grant(port_grant(&ssh, 1, 30), at(210_000));
    fx2.run(&mut restarted, at(210_000));
    assert!(fx2.events().iter().any(|e| matches!(
        e,
        Event::PortsRefused {
            why: Refusal::Replay,
            ..
        }
    )));
    // Past replay_until the digest is gone (a replay then fails its age check).
    restarted.handle_port_grant(port_grant(&ssh, 1, 30), at(250_000));
    fx2.run(&mut restarted, at(250_000));
    assert!(fx2
        .opens()
        .iter()
        .any(|(d, a, _)| d.as_str() == "ssh" && *a == A));
    let compacted = restarted.durable_records();
    assert!(compacted.iter().all(
        |r| !matches!(r, Record::DigestSeen { expires_ms, .. } if *expires_ms < T0 + 250_000)
    ));
}

#[test]
fn a_port_without_a_door_refuses_the_whole_grant() {
    let mut gw = port_gateway(vec![spa_door("ssh", Closing::Kernel)]);
    let mut fx = Fake::default();
    gw.handle_port_grant(
        port_grant(&[(Transport::Tcp, 22), (Transport::Udp, 53)], 1, 30),
        at(0),
    );
    fx.run(&mut gw, at(0));
    assert!(fx.log.iter().all(|a| !matches!(a, Action::Persist { .. })));
    assert!(fx.opens().is_empty());
    assert!(fx.events().iter().any(|e| matches!(
        e,
        Event::PortsRefused { why: Refusal::NoDoorForPort { transport: Transport::Udp, port: 53 }, ports, .. }
            if ports == "tcp/22,udp/53"
    )));
}

#[test]
fn a_port_grant_whose_digest_is_not_durable_opens_nothing_and_may_be_retried() {
    let mut gw = port_gateway(vec![spa_door("ssh", Closing::Kernel)]);
    let mut fx = Fake {
        fail_persist: true,
        ..Fake::default()
    };
    let ssh = [(Transport::Tcp, 22)];
    gw.handle_port_grant(port_grant(&ssh, 1, 30), at(0));
    fx.run(&mut gw, at(0));
    assert!(fx.opens().is_empty());
    assert!(fx.events().iter().any(|e| matches!(
        e,
        Event::Refused {
            why: Refusal::Storage(_),
            ..
        }
    )));
    assert!(fx
        .log
        .iter()
        .any(|a| matches!(a, Action::ForgetDigest(d) if *d == [1; 32])));
    fx.fail_persist = false;
    gw.handle_port_grant(port_grant(&ssh, 1, 30), at(10));
    fx.run(&mut gw, at(10));
    assert_eq!(fx.opens(), vec![(name("ssh"), A, 30)]);
}

#[test]
fn the_digest_set_is_bounded_and_refuses_when_full() {
    let mut gw = port_gateway(vec![DoorRules {
        max_open: DIGEST_CAP + 1,
        ..spa_door("ssh", Closing::Kernel)
    }]);
    let mut fx = Fake::default();
    for i in 0..DIGEST_CAP {
        let mut g = port_grant(&[(Transport::Tcp, 22)], 0, 30);
        g.digest[..8].copy_from_slice(&(i as u64).to_be_bytes());
        gw.handle_port_grant(g, at(0));
    }
    fx.run(&mut gw, at(0));
    let mut last = port_grant(&[(Transport::Tcp, 22)], 0xff, 30);
    last.addr = B;
    gw.handle_port_grant(last, at(1));
    fx.run(&mut gw, at(1));
    assert!(fx.events().iter().any(|e| matches!(
        e,
        Event::PortsRefused {
            why: Refusal::ReplayFull,
            ..
        }
    )));
    assert!(!gw.open_doors().iter().any(|d| d.addr == B));
}
