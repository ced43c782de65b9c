//! The `spa-client` binary as a user runs it: `open` sends one 100-byte packet
//! that the gateway's key opens, names the right address, refuses bad input
//! before sending anything, and `--wait` reports the door's state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv4Addr, TcpListener, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use assert_cmd::Command;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use predicates::prelude::*;
use spa_proto::packet::{open_with, Address, Request, PACKET_LEN};
use tempfile::TempDir;

use common::{derived_keys, secret_b64, write_key_file, SERVER_ID};

fn client() -> Command {
    Command::cargo_bin("spa-client").expect("the spa-client binary is built")
}

/// A UDP "gateway" on 127.0.0.1 with a receive timeout.
fn gateway() -> (UdpSocket, u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let port = sock.local_addr().expect("local addr").port();
    (sock, port)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Receives one datagram; returns its bytes.
fn recv_one(sock: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut buf).expect("a datagram arrives");
    buf[..n].to_vec()
}

/// Asserts nothing (more) arrives within `wait`.
fn assert_nothing_arrives(sock: &UdpSocket, wait: Duration) {
    sock.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 2048];
    let got = sock.recv_from(&mut buf);
    assert!(
        got.is_err(),
        "unexpected datagram of {} bytes",
        got.map(|(n, _)| n).unwrap_or(0)
    );
}

/// Opens a received packet the way the gateway does, with K_aead of the key
/// file's secret and server_id.
fn open_as_gateway(datagram: &[u8]) -> Request {
    assert_eq!(
        datagram.len(),
        PACKET_LEN,
        "an spa/1 packet is exactly 100 bytes"
    );
    let packet: [u8; PACKET_LEN] = datagram.try_into().expect("100 bytes");
    let keys = derived_keys(SERVER_ID);
    let cipher = ChaCha20Poly1305::new(keys.aead.expose().into());
    let body = open_with(&cipher, &packet).expect("the packet opens with K_aead of the key file");
    Request::decode(&body).expect("the plaintext follows PROTOCOL §2")
}

#[test]
fn open_sends_one_packet_that_the_gateway_opens() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let (gw, port) = gateway();
    let before = now_ms();
    let out = client()
        .args(["--key"])
        .arg(&key)
        .args([
            "open",
            "ssh",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--seconds",
            "120",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "sent door ssh for 127.0.0.1 (120 s) to 127.0.0.1:{port}"
        )))
        .get_output()
        .clone();
    let req = open_as_gateway(&recv_one(&gw));
    assert_eq!(req.door.as_str(), "ssh");
    assert_eq!(req.address, Address::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(req.address.kind(), 4);
    assert_eq!(req.seconds, 120);
    let now = now_ms();
    assert!(
        req.timestamp_ms + 5_000 >= now && req.timestamp_ms <= now + 5_000,
        "timestamp {} vs now {now}",
        req.timestamp_ms
    );
    assert!(
        req.timestamp_ms >= before.saturating_sub(1),
        "timestamp from before the run"
    );
    assert_nothing_arrives(&gw, Duration::from_millis(300));
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !printed.contains(&secret_b64()),
        "the secret must never be printed"
    );
}

#[test]
fn observed_names_address_kind_0_and_default_time() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let (gw, port) = gateway();
    client()
        .arg("--key")
        .arg(&key)
        .args([
            "open",
            "web",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--observed",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "for the address the gateway sees (the door's default time)",
        ));
    let req = open_as_gateway(&recv_one(&gw));
    assert_eq!(
        (req.address, req.address.kind(), req.seconds),
        (Address::Observed, 0, 0)
    );
    assert_eq!(req.door.as_str(), "web");
}

#[test]
fn source_names_the_given_address() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let (gw, port) = gateway();
    client()
        .arg("--key")
        .arg(&key)
        .args([
            "open",
            "ssh",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--source",
            "2001:db8::7",
        ])
        .assert()
        .success();
    let req = open_as_gateway(&recv_one(&gw));
    assert_eq!(
        req.address,
        Address::V6("2001:db8::7".parse().expect("ipv6"))
    );
}

#[test]
fn host_and_port_come_from_the_key_file() {
    let dir = TempDir::new().expect("tempdir");
    let (gw, port) = gateway();
    let key = write_key_file(
        dir.path(),
        &format!("host = \"127.0.0.1\"\nport = {port}"),
        0o600,
    );
    client()
        .arg("--key")
        .arg(&key)
        .args(["open", "ssh"])
        .assert()
        .success();
    assert_eq!(open_as_gateway(&recv_one(&gw)).door.as_str(), "ssh");
}

#[test]
fn save_packet_writes_the_exact_bytes_sent() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let saved = dir.path().join("packet.bin");
    let (gw, port) = gateway();
    client()
        .arg("--key")
        .arg(&key)
        .args([
            "open",
            "ssh",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--save-packet",
        ])
        .arg(&saved)
        .assert()
        .success();
    let sent = recv_one(&gw);
    assert_eq!(std::fs::read(&saved).expect("saved packet"), sent);
    let mode = std::fs::metadata(&saved)
        .expect("saved")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(
        mode, 0o600,
        "a saved packet opens the door again: owner only"
    );
}

fn open_at(key: &std::path::Path, host: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    client()
        .arg("--key")
        .arg(key)
        .args(["open", "ssh", host])
        .args(extra)
        .assert()
}

#[test]
fn host_colon_port_sends_to_that_port() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let (gw, port) = gateway();
    open_at(&key, &format!("127.0.0.1:{port}"), &[])
        .success()
        .stdout(predicate::str::contains(format!(
            "to 127.0.0.1:{port}, gateway gw.test"
        )));
    assert_eq!(open_as_gateway(&recv_one(&gw)).door.as_str(), "ssh");
    open_at(&key, &format!("127.0.0.1:{port}"), &["--port", "1"])
        .code(2)
        .stderr(predicate::str::contains(format!(
            "HOST 127.0.0.1:{port} gives a port and --port gives 1: give the port once"
        )));
    open_at(&key, "127.0.0.1:0", &[])
        .code(2)
        .stderr(predicate::str::contains(
            "not a port number from 1 to 65535",
        ));
}

#[test]
fn bracketed_ipv6_with_port_sends_over_ipv6() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let sock = UdpSocket::bind("[::1]:0").expect("bind ::1");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let port = sock.local_addr().expect("addr").port();
    open_at(&key, &format!("[::1]:{port}"), &[])
        .success()
        .stdout(predicate::str::contains(format!(
            "sent door ssh for ::1 (the door's default time) to [::1]:{port}, gateway gw.test"
        )));
    let req = open_as_gateway(&recv_one(&sock));
    assert_eq!(req.address, Address::V6(std::net::Ipv6Addr::LOCALHOST));
}

#[test]
fn a_link_local_zone_names_an_interface_that_exists() {
    // (route.rs's unit test checks the zone becomes the interface index.)
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let out = open_at(&key, "fe80::1%no-such-if0", &[])
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot resolve fe80::1%no-such-if0: there is no network interface named \"no-such-if0\""),
        "{stderr}"
    );
    open_at(&key, "2001:db8::1%lo", &[])
        .code(2)
        .stderr(predicate::str::contains(
            "only a link-local (fe80::/10) address takes",
        ));
}

#[test]
fn both_sends_one_packet_per_family() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    // "localhost" resolves to 127.0.0.1 and ::1 here; one socket for both families.
    let sock = UdpSocket::bind("[::]:0").expect("bind dual-stack");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let port = sock.local_addr().expect("addr").port();
    let has_v6 = ("localhost", port)
        .to_socket_addrs()
        .expect("localhost resolves")
        .any(|a| a.is_ipv6());
    let out = open_at(&key, "localhost", &["-p", &port.to_string(), "--both"])
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut kinds = vec![open_as_gateway(&recv_one(&sock)).address.kind()];
    if has_v6 {
        kinds.push(open_as_gateway(&recv_one(&sock)).address.kind());
        kinds.sort();
        assert_eq!(kinds, vec![4, 6], "{stdout}");
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.starts_with("sent door ssh"))
                .count(),
            2,
            "{stdout}"
        );
    } else {
        assert_eq!(kinds, vec![4], "{stdout}");
    }
    assert_nothing_arrives(&sock, Duration::from_millis(300));
    open_at(&key, "localhost", &["--both", "-4"]).code(2);
}

#[test]
fn the_host_typed_chooses_among_several_gateways() {
    let dir = TempDir::new().expect("tempdir");
    let (gw, port) = gateway();
    let key = write_key_file(
        dir.path(),
        &format!("host = \"127.0.0.1:{port}\"\n\n[[gateway]]\nserver_id = \"other.test\"\nhost = \"10.9.9.9\""),
        0o600,
    );
    open_at(&key, &format!("127.0.0.1:{port}"), &[])
        .success()
        .stdout(predicate::str::contains("gateway gw.test"));
    assert_eq!(open_as_gateway(&recv_one(&gw)).door.as_str(), "ssh");
    open_at(&key, "127.0.0.2", &["-p", &port.to_string()])
        .code(2)
        .stderr(predicate::str::contains("choose one with --server-id"));
}

#[test]
fn two_packets_never_share_a_nonce() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let (gw, port) = gateway();
    for _ in 0..2 {
        client()
            .arg("--key")
            .arg(&key)
            .args(["open", "ssh", "127.0.0.1", "-p", &port.to_string()])
            .assert()
            .success();
    }
    let (a, b) = (recv_one(&gw), recv_one(&gw));
    assert_ne!(a[8..20], b[8..20], "nonces must be fresh");
}

#[test]
fn a_key_file_others_can_read_is_refused_with_the_chmod() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o644);
    let (gw, port) = gateway();
    client()
        .arg("--key")
        .arg(&key)
        .args(["open", "ssh", "127.0.0.1", "-p", &port.to_string()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "chmod 600 {}",
            key.display()
        )));
    assert_nothing_arrives(&gw, Duration::from_millis(300));
}

#[test]
fn a_missing_key_file_names_the_path() {
    let dir = TempDir::new().expect("tempdir");
    let missing = dir.path().join("nope");
    client()
        .arg("--key")
        .arg(&missing)
        .args(["open", "ssh", "127.0.0.1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "no key file at {}: pass --key FILE",
            missing.display()
        )))
        .stderr(predicate::str::contains("ask your gateway's admin"));
}

#[test]
fn the_default_key_is_home_dot_spa_key() {
    let home = TempDir::new().expect("tempdir");
    client()
        .env("HOME", home.path())
        .args(["open", "ssh", "127.0.0.1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            home.path().join(".spa/key").display().to_string(),
        ));
}

#[test]
fn a_bad_door_name_is_refused_and_nothing_is_sent() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let (gw, port) = gateway();
    client()
        .arg("--key")
        .arg(&key)
        .args(["open", "SSH!", "127.0.0.1", "-p", &port.to_string()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "door name \"SSH!\" must start with a-z or 0-9",
        ));
    assert_nothing_arrives(&gw, Duration::from_millis(300));
}

#[test]
fn an_unknown_host_says_cannot_resolve() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    client()
        .arg("--key")
        .arg(&key)
        .args(["open", "ssh", "no-such-host.invalid"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot resolve no-such-host.invalid",
        ));
}

#[test]
fn an_unknown_server_id_lists_the_gateways() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    client()
        .arg("--key")
        .arg(&key)
        .args(["open", "ssh", "127.0.0.1", "--server-id", "other.gw"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("no gateway with server_id other.gw")
                .and(predicate::str::contains(SERVER_ID)),
        );
}

#[test]
fn seconds_out_of_range_are_refused() {
    client()
        .args(["open", "ssh", "127.0.0.1", "--seconds", "0"])
        .assert()
        .code(2);
    client()
        .args(["open", "ssh", "127.0.0.1", "--seconds", "65536"])
        .assert()
        .code(2);
}

#[test]
fn wait_reports_an_open_door() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let (_gw, port) = gateway();
    let service = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let svc_port = service.local_addr().expect("addr").port();
    client()
        .arg("--key")
        .arg(&key)
        .args([
            "open",
            "ssh",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--wait",
            &svc_port.to_string(),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "port {svc_port} answered: connected to 127.0.0.1:{svc_port} after "
        )))
        .stdout(predicate::str::contains("is open").not());
}

#[test]
fn wait_on_a_closed_port_exits_3_within_the_timeout() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let (_gw, port) = gateway();
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let start = Instant::now();
    client()
        .arg("--key")
        .arg(&key)
        .args(["open", "ssh", "127.0.0.1", "-p", &port.to_string(), "--wait", &closed.to_string(), "--wait-timeout", "2"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(format!(
            "no answer from 127.0.0.1:{closed} after 2 s: port {closed} did not answer (if the door did \
             not open: check the key, the door name, and that your clock is within the server's skew)"
        )));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "took {took:?}"
    );
}

#[test]
fn help_shows_worked_examples() {
    client()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "spa-client open ssh gw.example.net --wait 22",
        ))
        .stdout(predicate::str::contains(
            "spa-client knock gw.example.net 7001 7002:udp",
        ));
}
