//! The clock-skew diagnosis through the verifier: a packet from a known key
//! sealed minutes off is still dropped as `hint` by `verify`, and
//! `diagnose_clock` names the user and the offset; junk and forgeries get no
//! diagnosis; nothing is granted or recorded; the AEAD attempts are bounded.
mod support;

use spa_proto::clock_skew::{OPENS, OPENS_PER_KEY, SPAN_MS};
use spa_proto::packet::WINDOW_MS;
use spa_proto::{ClockSkew, Reason, Verdict};
use support::*;

fn src() -> std::net::IpAddr {
    "203.0.113.7".parse().unwrap_or_else(|_| unreachable!())
}

/// A packet from `user` whose clock reads `offset_ms` from NOW.
fn skewed(user: u8, offset_ms: i64, nonce: u8) -> [u8; 100] {
    let ts = NOW.saturating_add_signed(offset_ms);
    sealed(user, &request(ts, "203.0.113.7", "ssh", 0), nonce)
}

#[test]
fn a_packet_two_minutes_behind_names_the_user_and_the_offset() {
    let mut gw = gateway(32, &[1, 2]);
    let pkt = skewed(2, -130_000, 1);
    assert_eq!(gw.verify(&pkt, src(), NOW), Verdict::Drop(Reason::Hint));
    let high_water = gw.replay().high_water_ms();
    assert_eq!(
        gw.diagnose_clock(&pkt, NOW),
        Some(ClockSkew {
            user: "user2".into(),
            key: 1,
            offset_ms: -130_000,
        })
    );
    assert_eq!(gw.replay().live_len(NOW), 0, "no replay entry");
    assert_eq!(
        gw.replay().high_water_ms(),
        high_water,
        "clock not advanced"
    );
}

#[test]
fn a_packet_two_minutes_ahead_names_the_user_and_the_offset() {
    let mut gw = gateway(32, &[1]);
    let pkt = skewed(1, 120_000, 1);
    assert_eq!(gw.verify(&pkt, src(), NOW), Verdict::Drop(Reason::Hint));
    let got = gw.diagnose_clock(&pkt, NOW);
    assert_eq!(
        got.map(|s| (s.user, s.offset_ms)),
        Some(("user1".into(), 120_000))
    );
    assert_eq!(gw.replay().live_len(NOW), 0);
    // Diagnosed again (a retry) it is still only a diagnosis.
    assert_eq!(gw.verify(&pkt, src(), NOW), Verdict::Drop(Reason::Hint));
    assert!(gw.diagnose_clock(&pkt, NOW).is_some());
    assert_eq!(gw.replay().live_len(NOW), 0);
}

#[test]
fn junk_with_a_random_hint_is_plain_hint() {
    let mut gw = gateway(32, &[1, 2, 3]);
    for i in 0..200u32 {
        let mut junk = [0u8; 100];
        for (j, b) in junk.iter_mut().enumerate() {
            *b = (i as usize * 131 + j * 31) as u8 ^ 0x5a;
        }
        assert_eq!(gw.verify(&junk, src(), NOW), Verdict::Drop(Reason::Hint));
        assert_eq!(gw.diagnose_clock(&junk, NOW), None);
    }
    assert_eq!(gw.diagnose_clock(&[0u8; 3], NOW), None, "short datagram");
}

#[test]
fn a_forged_far_hint_with_a_bad_tag_is_not_a_clock_problem() {
    let mut gw = gateway(32, &[1]);
    let mut forged = skewed(1, -130_000, 1);
    forged[50] ^= 1;
    assert_eq!(gw.verify(&forged, src(), NOW), Verdict::Drop(Reason::Hint));
    assert_eq!(gw.diagnose_clock(&forged, NOW), None);
    assert_eq!(gw.replay().live_len(NOW), 0);
}

#[test]
fn within_the_skew_or_beyond_the_span_there_is_no_diagnosis() {
    let mut gw = gateway(32, &[1]);
    // In time: granted by verify; diagnose (wrongly called) says nothing.
    let ok = skewed(1, -1_000, 1);
    assert_eq!(gw.diagnose_clock(&ok, NOW), None);
    assert!(matches!(gw.verify(&ok, src(), NOW), Verdict::Grant(_)));
    // Further off than skew + 15 min: plain hint.
    let far = skewed(1, -((SKEW + SPAN_MS + 2 * WINDOW_MS) as i64), 2);
    assert_eq!(gw.verify(&far, src(), NOW), Verdict::Drop(Reason::Hint));
    assert_eq!(gw.diagnose_clock(&far, NOW), None);
    // Just inside the span: diagnosed.
    let edge = skewed(1, (SKEW + SPAN_MS - WINDOW_MS) as i64, 3);
    assert_eq!(gw.verify(&edge, src(), NOW), Verdict::Drop(Reason::Hint));
    assert!(gw.diagnose_clock(&edge, NOW).is_some());
}

#[test]
fn the_diagnosis_follows_the_clock_as_windows_pass() {
    let mut gw = gateway(32, &[1]);
    // Sealed at NOW - 3 min: in the table's range whatever now is within 10 min.
    let pkt = skewed(1, -180_000, 1);
    for minutes in [0u64, 1, 5, 10] {
        let now = NOW + minutes * 60_000;
        gw.tick(now);
        let got = gw.diagnose_clock(&pkt, now).map(|s| s.offset_ms);
        assert_eq!(
            got,
            Some(-180_000 - (minutes * 60_000) as i64),
            "{minutes} min"
        );
    }
}

#[test]
fn aead_attempts_are_bounded_per_key_and_in_all_per_window() {
    // Per key: a flood of forged far hints of user1 spends user1's budget only.
    let mut gw = gateway(32, &[1, 2]);
    let mut forged = skewed(1, -130_000, 1);
    forged[60] ^= 1;
    for _ in 0..1000 {
        assert_eq!(gw.diagnose_clock(&forged, NOW), None);
    }
    let real1 = skewed(1, -130_000, 2);
    let real2 = skewed(2, -130_000, 3);
    assert_eq!(
        gw.diagnose_clock(&real1, NOW),
        None,
        "user1's budget is spent"
    );
    assert!(gw.diagnose_clock(&real2, NOW).is_some(), "user2's is not");
    // The next window has a fresh budget.
    let later = NOW + WINDOW_MS;
    assert!(gw.diagnose_clock(&real1, later).is_some());

    // In all: OPENS attempts per window whatever the number of keys.
    let users: Vec<u8> = (1..=(OPENS / OPENS_PER_KEY + 1) as u8).collect();
    let mut gw = gateway(32, &users);
    let mut attempts = 0;
    for &u in &users[..users.len() - 1] {
        for n in 0..OPENS_PER_KEY {
            let got = gw.diagnose_clock(&skewed(u, -130_000, n as u8), NOW);
            assert!(got.is_some(), "user{u} attempt {n}");
            attempts += 1;
        }
    }
    assert_eq!(attempts, OPENS);
    let last = *users.last().unwrap_or(&0);
    assert_eq!(
        gw.diagnose_clock(&skewed(last, -130_000, 9), NOW),
        None,
        "the budget in all is spent"
    );
}
