//! Inputs the fuzz targets (fuzz/, docs/fuzzing.md) found breaking an invariant,
//! kept here so the normal suite guards the fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use spa_proto::knock::{
    derive_sequence, step_of, KnockOutcome, KnockPacket, Knocker, RotatingDoor, RotatingSpec,
    Transport, TCP_SYN,
};
use spa_proto::{DoorName, SecretBytes, ServerId, UserSecret};

/// 10 s into a rotation step.
const NOW: u64 = 58_800_000 * 30_000 + 10_000;

fn knock_all(knocker: &mut Knocker, door: &RotatingDoor, step: u64, now: u64) -> Vec<KnockOutcome> {
    let (_, _, k_knock) = &door.users[0];
    let ports = derive_sequence(k_knock, &door.name, &door.spec, step).expect("a sequence");
    let src: IpAddr = "192.0.2.7".parse().expect("address");
    let mut out = Vec::new();
    for (i, port) in ports.into_iter().enumerate() {
        let pkt = KnockPacket {
            src,
            dst: "10.0.0.1".parse().expect("address"),
            transport: Transport::Tcp,
            dst_port: port,
            tcp_flags: TCP_SYN,
            src_port: 40_000,
            tcp_seq: i as u32,
        };
        out.extend(knocker.on_packet(&pkt, now));
    }
    out
}

/// fuzz target knock_timers: a clock stepped back (an NTP correction of a minute
/// or more) made the knocker go back to an earlier rotation step after it had
/// forgotten the steps used there, so a sniffed sequence of that step opened the
/// door a second time. PROTOCOL §4: the notion of now for steps never goes back.
#[test]
fn a_clock_stepped_back_never_reopens_a_used_rotating_step() {
    let gw: ServerId = "gw1.example.net".parse().expect("server id");
    let k_srv = UserSecret::new(SecretBytes::new([1; 32])).server_key(&gw);
    let door = RotatingDoor {
        name: "ssh".parse::<DoorName>().expect("door name"),
        spec: RotatingSpec::new(3, 40_000, 42_047).expect("valid spec"),
        transport: Transport::Tcp,
        seq_timeout_ms: 10_000,
        users: vec![("alice".into(), k_srv.key_id(), k_srv.derive().knock)],
    };
    let mut knocker = Knocker::new(vec![], vec![door.clone()], NOW);
    let step = step_of(NOW);
    let opened =
        |out: &[KnockOutcome]| out.iter().any(|o| matches!(o, KnockOutcome::Opened { .. }));
    assert!(opened(&knock_all(&mut knocker, &door, step, NOW)));

    // Three steps later the used step is forgotten; then the clock goes back.
    knocker.handle_timeout(NOW + 90_000);
    let replay = knock_all(&mut knocker, &door, step, NOW + 1_000);
    assert!(!opened(&replay), "a used step opened again: {replay:?}");
    // The sequence of the step the knocker holds (the latest seen) still opens.
    assert!(opened(&knock_all(
        &mut knocker,
        &door,
        step + 3,
        NOW + 1_000
    )));
}
