//! `spa-client ssh-proxy HOST PORT` on loopback: it sends the packet first,
//! then connects to PORT and relays stdin/stdout like a ProxyCommand must.
//! (tests/tests/ssh_proxy.rs runs real OpenSSH through it, as root.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::thread;
use std::time::Duration;

use assert_cmd::Command;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use predicates::prelude::*;
use spa_proto::packet::{open_with, Request, PACKET_LEN};
use tempfile::TempDir;

use common::{derived_keys, write_key_file, SERVER_ID};

#[test]
fn ssh_proxy_knocks_then_relays_both_ways() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let gw = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    gw.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let spa_port = gw.local_addr().expect("addr").port();
    let service = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let svc_port = service.local_addr().expect("addr").port();
    let echo = thread::spawn(move || {
        let (mut conn, _) = service.accept().expect("accept");
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read");
        conn.write_all(b"SSH-2.0-fake\r\n").expect("write");
        conn.write_all(&got).expect("echo");
    });
    let profile = dir.path().join("config.toml");
    std::fs::write(
        &profile,
        format!("[[host]]\nname = \"gw1\"\nhostname = \"127.0.0.1\"\nport = {spa_port}\ndoor = \"ssh\"\nseconds = 30\n"),
    )
    .expect("write profile");
    Command::cargo_bin("spa-client")
        .expect("binary")
        .arg("--key")
        .arg(&key)
        .arg("-F")
        .arg(&profile)
        .args(["ssh-proxy", "gw1", &svc_port.to_string()])
        .write_stdin("client hello")
        .timeout(Duration::from_secs(10))
        .assert()
        .success()
        .stdout("SSH-2.0-fake\r\nclient hello")
        .stderr("");
    echo.join().expect("service thread");
    let mut buf = [0u8; 2048];
    let (n, _) = gw.recv_from(&mut buf).expect("the packet arrived");
    let packet: [u8; PACKET_LEN] = buf[..n].try_into().expect("100 bytes");
    let keys = derived_keys(SERVER_ID);
    let cipher = ChaCha20Poly1305::new(keys.aead.expose().into());
    let req = Request::decode(&open_with(&cipher, &packet).expect("opens")).expect("decodes");
    assert_eq!((req.door.as_str(), req.seconds), ("ssh", 30));
}

#[test]
fn ssh_proxy_without_a_door_says_how_to_give_one() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    Command::cargo_bin("spa-client")
        .expect("binary")
        .arg("--key")
        .arg(&key)
        .args(["-F", "/dev/null", "ssh-proxy", "127.0.0.1", "22"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no door to open for 127.0.0.1: pass --door DOOR, or set door = \"...\" in its [[host]] block",
        ));
}

#[test]
fn ssh_proxy_gives_up_with_exit_3_when_the_port_stays_shut() {
    let dir = TempDir::new().expect("tempdir");
    let key = write_key_file(dir.path(), "", 0o600);
    let gw = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let spa_port = gw.local_addr().expect("addr").port().to_string();
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    Command::cargo_bin("spa-client")
        .expect("binary")
        .arg("--key")
        .arg(&key)
        .args([
            "-F",
            "/dev/null",
            "ssh-proxy",
            "--door",
            "ssh",
            "--spa-port",
            &spa_port,
            "--wait-timeout",
            "1",
            "127.0.0.1",
        ])
        .arg(closed.to_string())
        .assert()
        .code(3)
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "no answer from 127.0.0.1:{closed} after 1 s"
        )));
}
