//! Replay behaviour through the verifier, with a fake clock.
mod support;

use spa_proto::{Reason, Verdict};
use support::*;

fn src() -> std::net::IpAddr {
    "203.0.113.7".parse().unwrap_or_else(|_| unreachable!())
}

#[test]
fn the_same_packet_twice_opens_once() {
    let mut gw = gateway(32, &[1]);
    let pkt = sealed(1, &request(NOW, "203.0.113.7", "ssh", 0), 1);
    assert!(matches!(gw.verify(&pkt, src(), NOW), Verdict::Grant(g) if g.seconds == 30));
    assert_eq!(
        gw.verify(&pkt, src(), NOW + 1),
        Verdict::Drop(Reason::Replay)
    );
}

#[test]
fn after_timestamp_plus_skew_the_entry_is_gone_and_age_rejects_it() {
    let mut gw = gateway(32, &[1]);
    let pkt = sealed(1, &request(NOW, "203.0.113.7", "ssh", 0), 1);
    assert!(matches!(gw.verify(&pkt, src(), NOW), Verdict::Grant(_)));
    assert_eq!(
        gw.verify(&pkt, src(), NOW + SKEW),
        Verdict::Drop(Reason::Replay)
    );
    assert_eq!(gw.replay().live_len(NOW + SKEW), 1);
    gw.tick(NOW + SKEW + 1);
    assert_eq!(gw.replay().live_len(NOW + SKEW + 1), 0, "entry forgotten");
    assert_eq!(
        gw.verify(&pkt, src(), NOW + SKEW + 1),
        Verdict::Drop(Reason::Window)
    );
}

#[test]
fn the_cap_refuses_a_key_and_only_that_key() {
    let mut gw = gateway(3, &[1, 2]);
    for n in 0..3 {
        let pkt = sealed(1, &request(NOW, "203.0.113.7", "ssh", 0), n);
        assert!(
            matches!(gw.verify(&pkt, src(), NOW), Verdict::Grant(_)),
            "packet {n}"
        );
    }
    let fourth = sealed(1, &request(NOW, "203.0.113.7", "ssh", 0), 9);
    assert_eq!(gw.verify(&fourth, src(), NOW), Verdict::Drop(Reason::Cap));
    let other = sealed(2, &request(NOW, "203.0.113.7", "ssh", 0), 9);
    assert!(matches!(gw.verify(&other, src(), NOW), Verdict::Grant(g) if g.user == "user2"));
}

#[test]
fn the_clock_never_goes_back() {
    let mut gw = gateway(32, &[1]);
    let early = sealed(1, &request(NOW, "203.0.113.7", "ssh", 0), 1);
    // A datagram at NOW + 2 min moves the high-water mark; a wall clock that then
    // steps back does not make an old packet young again.
    let _ = gw.verify(&[0u8; 3], src(), NOW + 120_000);
    assert_eq!(gw.verify(&early, src(), NOW), Verdict::Drop(Reason::Hint));
}

#[test]
fn a_server_without_a_replay_history_refuses_packets_from_before_it_started() {
    use spa_proto::replay::ReplayCache;
    let mut gw = gateway(32, &[1]);
    let cfg = spa_proto::VerifierConfig {
        skew_ms: SKEW,
        cap: 32,
        doors: [(
            "ssh".parse().unwrap_or_else(|_| unreachable!()),
            spa_proto::DoorPolicy {
                default_secs: 30,
                max_secs: 300,
            },
        )]
        .into_iter()
        .collect(),
    };
    let keyring = gw.keyring().clone();
    gw = spa_proto::Verifier::new(
        cfg,
        keyring,
        ReplayCache::new_without_history(32, SKEW, NOW),
    );
    let old = sealed(1, &request(NOW - 1000, "203.0.113.7", "ssh", 0), 1);
    assert_eq!(gw.verify(&old, src(), NOW), Verdict::Drop(Reason::Window));
    let fresh = sealed(1, &request(NOW + SKEW + 1, "203.0.113.7", "ssh", 0), 2);
    assert!(matches!(
        gw.verify(&fresh, src(), NOW + SKEW + 1),
        Verdict::Grant(_)
    ));
}
