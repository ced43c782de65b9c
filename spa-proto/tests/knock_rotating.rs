//! Conformance of rotating knock doors (PROTOCOL §4) in the knock state
//! machine, with a fake clock: steps s-1, s, s+1 accepted and each (key,
//! door, step) opening once, s-2 refused, users not on the door refused,
//! rotation and persistence of used steps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use spa_proto::knock::{
    derive_sequence, step_start_ms, KnockOutcome, KnockPacket, Knocker, RotatingDoor, RotatingSpec,
    Transport, TCP_ACK, TCP_SYN,
};
use spa_proto::{DoorName, KeyId, SecretBytes, ServerId, UserSecret};

const STEP: u64 = 58_800_000;
const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
/// 10 s into step STEP.
const NOW: u64 = STEP * 30_000 + 10_000;

fn name(s: &str) -> DoorName {
    s.parse().expect("valid door name")
}

struct User {
    name: &'static str,
    key: KeyId,
    knock: SecretBytes,
}

fn user(name: &'static str, byte: u8) -> User {
    let gw: ServerId = "gw1.example.net".parse().expect("server id");
    let k_srv = UserSecret::new(SecretBytes::new([byte; 32])).server_key(&gw);
    User {
        name,
        key: k_srv.key_id(),
        knock: k_srv.derive().knock,
    }
}

fn spec() -> RotatingSpec {
    RotatingSpec::new(3, 40_000, 42_047).expect("valid spec")
}

fn rotating(door: &str, transport: Transport, users: &[&User]) -> RotatingDoor {
    let d = RotatingDoor {
        name: name(door),
        spec: spec(),
        transport,
        seq_timeout_ms: 10_000,
        users: users
            .iter()
            .map(|u| (u.name.to_string(), u.key, u.knock.clone()))
            .collect(),
    };
    d.validate().expect("valid door");
    d
}

fn sequence(u: &User, door: &str, step: u64) -> Vec<u16> {
    derive_sequence(&u.knock, &name(door), &spec(), step).expect("a sequence")
}

/// Knocks `ports` from `addr`, 100 ms apart from `start`, each with a new SYN
/// (or a UDP datagram); returns every outcome.
fn knock(
    k: &mut Knocker,
    addr: &str,
    transport: Transport,
    flags: u8,
    ports: &[u16],
    start: u64,
) -> Vec<KnockOutcome> {
    let src: IpAddr = addr.parse().expect("address");
    let mut out = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let pkt = KnockPacket {
            src,
            dst: HOST,
            transport,
            dst_port: port,
            tcp_flags: flags,
            src_port: 30_000 + (start / 100 % 20_000) as u16 + i as u16,
            tcp_seq: (start as u32).wrapping_add(i as u32 * 1_000_003),
        };
        out.extend(k.on_packet(&pkt, start + 100 * i as u64));
    }
    out
}

fn syn(k: &mut Knocker, addr: &str, ports: &[u16], start: u64) -> Vec<KnockOutcome> {
    knock(k, addr, Transport::Tcp, TCP_SYN, ports, start)
}

fn opened(out: &[KnockOutcome]) -> Vec<(String, Option<String>)> {
    out.iter()
        .filter_map(|o| match o {
            KnockOutcome::Opened { door, user, .. } => Some((door.to_string(), user.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_current_sequence_opens_once_for_its_user() {
    let alice = user("alice", 1);
    let mut k = Knocker::new(
        vec![],
        vec![rotating("ssh", Transport::Tcp, &[&alice])],
        NOW,
    );
    let seq = sequence(&alice, "ssh", STEP);
    let out = syn(&mut k, "192.0.2.10", &seq, NOW);
    let addr: IpAddr = "192.0.2.10".parse().expect("address");
    assert_eq!(
        out[out.len() - 2..],
        [
            KnockOutcome::Opened {
                door: name("ssh"),
                addr,
                user: Some("alice".into())
            },
            KnockOutcome::UsedStep {
                key: alice.key,
                door: name("ssh"),
                step: STEP
            },
        ]
    );
    assert!(k.is_used(alice.key, &name("ssh"), STEP));

    // Knocking it again in the same step (a replay from anywhere) opens nothing.
    let out = syn(&mut k, "198.51.100.66", &seq, NOW + 2_000);
    assert_eq!(opened(&out), vec![]);
    assert_eq!(
        out.last(),
        Some(&KnockOutcome::Replayed {
            door: name("ssh"),
            addr: "198.51.100.66".parse().expect("address"),
            user: "alice".into(),
            step: STEP
        })
    );
}

#[test]
fn the_previous_and_next_steps_are_accepted_but_not_s_minus_2() {
    let alice = user("alice", 1);
    let mut k = Knocker::new(
        vec![],
        vec![rotating("ssh", Transport::Tcp, &[&alice])],
        NOW,
    );
    let out = syn(
        &mut k,
        "192.0.2.10",
        &sequence(&alice, "ssh", STEP - 2),
        NOW,
    );
    assert_eq!(opened(&out), vec![], "s-2 is too old");
    let out = syn(
        &mut k,
        "192.0.2.10",
        &sequence(&alice, "ssh", STEP - 1),
        NOW + 1000,
    );
    assert_eq!(opened(&out), vec![("ssh".into(), Some("alice".into()))]);
    assert!(out.contains(&KnockOutcome::UsedStep {
        key: alice.key,
        door: name("ssh"),
        step: STEP - 1
    }));
    let out = syn(
        &mut k,
        "192.0.2.10",
        &sequence(&alice, "ssh", STEP + 1),
        NOW + 2000,
    );
    assert_eq!(opened(&out), vec![("ssh".into(), Some("alice".into()))]);
    let out = syn(
        &mut k,
        "192.0.2.10",
        &sequence(&alice, "ssh", STEP + 2),
        NOW + 3000,
    );
    assert_eq!(opened(&out), vec![], "s+2 is too early");
}

#[test]
fn a_user_not_on_the_door_cannot_open_it() {
    let alice = user("alice", 1);
    let bob = user("bob", 2);
    let doors = vec![
        rotating("ssh", Transport::Tcp, &[&alice]),
        rotating("db", Transport::Tcp, &[&bob]),
    ];
    let mut k = Knocker::new(vec![], doors, NOW);
    let out = syn(&mut k, "192.0.2.20", &sequence(&bob, "ssh", STEP), NOW);
    assert_eq!(opened(&out), vec![], "bob's sequence for ssh");
    let out = syn(
        &mut k,
        "192.0.2.20",
        &sequence(&alice, "db", STEP),
        NOW + 1000,
    );
    assert_eq!(opened(&out), vec![], "alice's sequence for db");
    let out = syn(
        &mut k,
        "192.0.2.20",
        &sequence(&bob, "db", STEP),
        NOW + 2000,
    );
    assert_eq!(opened(&out), vec![("db".into(), Some("bob".into()))]);
}

#[test]
fn used_steps_restored_with_mark_used_do_not_open_again() {
    let alice = user("alice", 1);
    let mut k = Knocker::new(
        vec![],
        vec![rotating("ssh", Transport::Tcp, &[&alice])],
        NOW,
    );
    k.mark_used(alice.key, &name("ssh"), STEP);
    let out = syn(&mut k, "192.0.2.10", &sequence(&alice, "ssh", STEP), NOW);
    assert_eq!(opened(&out), vec![]);
    assert!(
        matches!(out.last(), Some(KnockOutcome::Replayed { .. })),
        "{out:?}"
    );
    // Another door or step of the same key is unaffected.
    let out = syn(
        &mut k,
        "192.0.2.10",
        &sequence(&alice, "ssh", STEP + 1),
        NOW + 1000,
    );
    assert_eq!(opened(&out), vec![("ssh".into(), Some("alice".into()))]);
}

#[test]
fn the_step_rotates_at_its_boundary_and_old_uses_are_forgotten() {
    let alice = user("alice", 1);
    let mut k = Knocker::new(
        vec![],
        vec![rotating("ssh", Transport::Tcp, &[&alice])],
        NOW,
    );
    let boundary = step_start_ms(STEP + 1);
    assert_eq!(k.poll_timeout(), Some(boundary), "the next step is due");
    let before = k.ports();
    assert_eq!(before.0.len(), 9, "3 ports for each of s-1, s, s+1");
    let out = syn(&mut k, "192.0.2.10", &sequence(&alice, "ssh", STEP), NOW);
    assert_eq!(opened(&out), vec![("ssh".into(), Some("alice".into()))]);

    // An attempt on s-1 in progress when the step passes is dropped.
    let old = sequence(&alice, "ssh", STEP - 1);
    syn(&mut k, "192.0.2.30", &old[..2], boundary - 500);
    assert_eq!(k.poll_timeout(), Some(boundary));
    let out = k.handle_timeout(boundary);
    assert!(out.contains(&KnockOutcome::PortsChanged), "{out:?}");
    assert!(out.contains(&KnockOutcome::TimedOut {
        door: name("ssh"),
        addr: "192.0.2.30".parse().expect("address")
    }));
    assert_ne!(k.ports(), before);
    assert_eq!(k.poll_timeout(), Some(step_start_ms(STEP + 2)));
    let out = syn(&mut k, "192.0.2.10", &old, boundary + 10);
    assert_eq!(opened(&out), vec![], "s-1 became s-2");

    // Used at STEP: still refused during STEP+1, forgotten from STEP+2 on.
    assert!(k.is_used(alice.key, &name("ssh"), STEP));
    k.handle_timeout(step_start_ms(STEP + 2));
    assert!(!k.is_used(alice.key, &name("ssh"), STEP));
    k.mark_used(alice.key, &name("ssh"), STEP);
    assert!(
        !k.is_used(alice.key, &name("ssh"), STEP),
        "a past step is not restored"
    );
}

#[test]
fn tcp_rotating_knocks_are_syns_without_ack() {
    let alice = user("alice", 1);
    let mut k = Knocker::new(
        vec![],
        vec![rotating("ssh", Transport::Tcp, &[&alice])],
        NOW,
    );
    let seq = sequence(&alice, "ssh", STEP);
    let out = knock(
        &mut k,
        "192.0.2.10",
        Transport::Tcp,
        TCP_SYN | TCP_ACK,
        &seq,
        NOW,
    );
    assert_eq!(out, vec![]);
    let out = knock(&mut k, "192.0.2.10", Transport::Tcp, TCP_ACK, &seq, NOW);
    assert_eq!(out, vec![]);
    let out = knock(&mut k, "192.0.2.10", Transport::Udp, 0, &seq, NOW);
    assert_eq!(out, vec![], "the door is TCP");
    let out = syn(&mut k, "192.0.2.10", &seq, NOW + 1000);
    assert_eq!(opened(&out), vec![("ssh".into(), Some("alice".into()))]);
}

#[test]
fn udp_rotating_doors_open() {
    let alice = user("alice", 1);
    let mut k = Knocker::new(
        vec![],
        vec![rotating("vpn", Transport::Udp, &[&alice])],
        NOW,
    );
    let seq = sequence(&alice, "vpn", STEP);
    assert_eq!(k.ports().0, Vec::<u16>::new());
    assert_eq!(k.ports().1.len(), 9);
    let out = syn(&mut k, "192.0.2.10", &seq, NOW);
    assert_eq!(out, vec![], "TCP knocks are not UDP knocks");
    let out = knock(&mut k, "192.0.2.10", Transport::Udp, 0, &seq, NOW);
    assert_eq!(opened(&out), vec![("vpn".into(), Some("alice".into()))]);
}

#[test]
fn a_rotating_sequence_times_out() {
    let alice = user("alice", 1);
    let mut k = Knocker::new(
        vec![],
        vec![rotating("ssh", Transport::Tcp, &[&alice])],
        NOW,
    );
    let seq = sequence(&alice, "ssh", STEP);
    syn(&mut k, "192.0.2.10", &seq[..2], NOW);
    assert_eq!(k.poll_timeout(), Some(NOW + 10_000));
    let out = syn(&mut k, "192.0.2.10", &seq[2..], NOW + 10_000);
    assert_eq!(opened(&out), vec![]);
    assert_eq!(
        out.first(),
        Some(&KnockOutcome::TimedOut {
            door: name("ssh"),
            addr: "192.0.2.10".parse().expect("address")
        })
    );
}

#[test]
fn debug_shows_no_sequence_nor_key() {
    let alice = user("alice", 1);
    let k = Knocker::new(
        vec![],
        vec![rotating("ssh", Transport::Tcp, &[&alice])],
        NOW,
    );
    let shown = format!("{k:?}");
    for port in sequence(&alice, "ssh", STEP) {
        assert!(!shown.contains(&port.to_string()), "{shown}");
    }
    assert!(
        !shown.contains(&format!("{:?}", alice.knock.expose())),
        "{shown}"
    );
}
