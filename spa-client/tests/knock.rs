//! What `spa-client knock` puts on the wire, captured on lo (root only):
//! exactly one SYN per TCP port (raw, or connect() without raw-socket rights),
//! one datagram per UDP port, in order, and the key's rotating sequence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assert_cmd::Command;
use predicates::prelude::*;
use spa_proto::knock::{derive_sequence, step_of, RotatingSpec};
use tempfile::TempDir;

use common::{derived_keys, write_key_file, LoCapture, Seen, SERVER_ID};

fn client() -> Command {
    Command::cargo_bin("spa-client").expect("the spa-client binary is built")
}

/// Outgoing knocks only: bare SYNs and UDP datagrams to `ports`.
fn knocks_to(ports: &[u16]) -> impl Fn(&Seen) -> bool + '_ {
    move |s| ports.iter().any(|&p| s.is_syn_to(p) || s.is_udp_to(p))
}

#[test]
#[ignore = "needs root"]
fn classic_knock_sends_one_syn_then_one_datagram() {
    let cap = LoCapture::start();
    client()
        .args(["knock", "127.0.0.1", "7001", "7002:udp", "-v"])
        .assert()
        .success()
        .stderr(predicate::str::contains("raw SYN"))
        .stdout(predicate::str::contains(
            "knocked 127.0.0.1 (127.0.0.1): 7001:tcp 7002:udp",
        ));
    // Wait past the kernel's first SYN retransmission (1 s) to prove there is none.
    let seen = cap.collect(
        Duration::from_millis(1500),
        Duration::from_millis(1500),
        knocks_to(&[7001, 7002]),
    );
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(seen[0].is_syn_to(7001), "first a SYN to 7001: {seen:#?}");
    assert!(
        seen[1].is_udp_to(7002),
        "then a datagram to 7002: {seen:#?}"
    );
    let Seen::Tcp {
        src,
        dst,
        checksum_ok,
        ..
    } = &seen[0]
    else {
        unreachable!()
    };
    assert!(checksum_ok, "the crafted SYN has a correct TCP checksum");
    assert_eq!(
        (*src, *dst),
        (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 1]))
    );
}

#[test]
#[ignore = "needs root"]
fn classic_knock_over_ipv6_and_with_delay() {
    let cap = LoCapture::start();
    let start = std::time::Instant::now();
    client()
        .args(["knock", "::1", "7011:udp", "7012", "-d", "300"])
        .assert()
        .success();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "-d 300 waits between knocks"
    );
    let seen = cap.collect(
        Duration::from_millis(1500),
        Duration::from_millis(1500),
        knocks_to(&[7011, 7012]),
    );
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        seen[0].is_udp_to(7011) && seen[1].is_syn_to(7012),
        "{seen:#?}"
    );
    let Seen::Tcp {
        dst, checksum_ok, ..
    } = &seen[1]
    else {
        unreachable!()
    };
    assert_eq!(*dst, "::1".parse::<IpAddr>().expect("ipv6"));
    assert!(
        checksum_ok,
        "the crafted IPv6 SYN has a correct TCP checksum"
    );
}

#[test]
#[ignore = "needs root"]
fn without_raw_socket_rights_it_falls_back_to_connect() {
    let cap = LoCapture::start();
    let bin = assert_cmd::cargo::cargo_bin("spa-client");
    // Drop CAP_NET_RAW for the client only, as for an unprivileged user.
    Command::new("setpriv")
        .args(["--inh-caps=-net_raw", "--bounding-set=-net_raw", "--"])
        .arg(bin)
        .args(["knock", "127.0.0.1", "7021", "7022", "-v"])
        .assert()
        .success()
        .stderr(predicate::str::contains("raw sockets are not available"))
        .stderr(predicate::str::contains(
            "non-blocking connect() closed at once",
        ));
    let seen = cap.collect(
        Duration::from_millis(1500),
        Duration::from_millis(1500),
        knocks_to(&[7021, 7022]),
    );
    assert_eq!(seen.len(), 2, "one SYN each, no retransmission: {seen:#?}");
    assert!(
        seen[0].is_syn_to(7021) && seen[1].is_syn_to(7022),
        "{seen:#?}"
    );
}

#[test]
fn bad_knock_ports_are_refused() {
    client()
        .args(["knock", "127.0.0.1", "7001:sctp"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is not PORT, PORT:tcp or PORT:udp",
        ));
    client()
        .args(["knock", "127.0.0.1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs HOST and at least one PORT"));
}

const ROT_LO: u16 = 61000;
const ROT_HI: u16 = 65535;

#[test]
#[ignore = "needs root"]
fn rotating_knock_sends_the_current_sequence() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(
        dir.path(),
        &format!("host = \"127.0.0.1\"\n\n[gateway.knock.ssh]\nn = 3\nlo = {ROT_LO}\nhi = {ROT_HI}\nproto = \"tcp\""),
        0o600,
    );
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64
    };
    let before = step_of(now());
    let cap = LoCapture::start();
    client()
        .arg("--key")
        .arg(&key)
        .args(["knock", "--door", "ssh"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "knocked door ssh's rotating sequence",
        ));
    let after = step_of(now());
    let in_range = |s: &Seen| {
        matches!(s, Seen::Tcp { dst_port, .. } if *dst_port >= ROT_LO)
            && (ROT_LO..=ROT_HI).any(|p| s.is_syn_to(p))
    };
    let seen = cap.collect(
        Duration::from_millis(1500),
        Duration::from_millis(1500),
        in_range,
    );
    let got: Vec<u16> = seen
        .iter()
        .map(|s| match s {
            Seen::Tcp { dst_port, .. } => *dst_port,
            Seen::Udp { dst_port, .. } => *dst_port,
        })
        .collect();
    let keys = derived_keys(SERVER_ID);
    let spec = RotatingSpec::new(3, ROT_LO, ROT_HI).expect("valid spec");
    let door = "ssh".parse().expect("door");
    let expected: Vec<Vec<u16>> = (before..=after)
        .filter_map(|step| derive_sequence(&keys.knock, &door, &spec, step))
        .collect();
    assert!(
        expected.contains(&got),
        "knocked {got:?}, expected one of {expected:?}"
    );
}

#[test]
fn rotating_knock_for_a_door_without_one_lists_the_doors() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(
        dir.path(),
        "\n[gateway.knock.ssh]\nn = 3\nlo = 20000\nhi = 40000",
        0o600,
    );
    client()
        .arg("--key")
        .arg(&key)
        .args(["knock", "--door", "web", "127.0.0.1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "has no rotating knock for door web (it has: ssh)",
        ));
}
