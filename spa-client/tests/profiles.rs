//! Profiles as a user meets them: `~/.spa/config.toml` `[[host]]` blocks let
//! `spa-client gw1` open the profile's door on the profile's gateway; flags
//! override; `spa-client config` shows each value's origin; a bad profile is
//! reported at file:line:col with a caret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use predicates::prelude::*;
use spa_proto::packet::{open_with, Request, PACKET_LEN};
use tempfile::TempDir;

use common::{derived_keys, write_key_file, SERVER_ID};

fn client(home: &Path) -> Command {
    let mut c = Command::cargo_bin("spa-client").expect("the spa-client binary is built");
    c.env("HOME", home);
    c
}

fn gateway() -> (UdpSocket, u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let port = sock.local_addr().expect("addr").port();
    (sock, port)
}

fn recv_request(sock: &UdpSocket) -> Request {
    let mut buf = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut buf).expect("a datagram arrives");
    let packet: [u8; PACKET_LEN] = buf[..n].try_into().expect("100 bytes");
    let keys = derived_keys(SERVER_ID);
    let cipher = ChaCha20Poly1305::new(keys.aead.expose().into());
    Request::decode(&open_with(&cipher, &packet).expect("opens")).expect("decodes")
}

/// A home with ~/.spa/key and ~/.spa/config.toml holding `profile`.
fn home_with(profile: &str) -> TempDir {
    let home = TempDir::new().expect("tempdir");
    let spa = home.path().join(".spa");
    fs::create_dir(&spa).expect("mkdir .spa");
    write_key_file(&spa, "", 0o600);
    fs::write(spa.join("config.toml"), profile).expect("write profile");
    home
}

#[test]
fn an_alias_alone_opens_its_door_on_its_gateway() {
    let (gw, port) = gateway();
    let home = home_with(&format!(
        "[[host]]\nname = \"gw1\"\nhostname = \"127.0.0.1\"\nport = {port}\ndoor = \"ssh\"\nseconds = 120\n"
    ));
    client(home.path())
        .arg("gw1")
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "sent door ssh for 127.0.0.1 (120 s) to 127.0.0.1:{port}, gateway {SERVER_ID}"
        )));
    let req = recv_request(&gw);
    assert_eq!((req.door.as_str(), req.seconds), ("ssh", 120));
    // The same through open, and flags after the alias override the profile.
    client(home.path())
        .args(["open", "web", "gw1", "--seconds", "7"])
        .assert()
        .success();
    let req = recv_request(&gw);
    assert_eq!((req.door.as_str(), req.seconds), ("web", 7));
    client(home.path())
        .args(["gw1", "--seconds", "9"])
        .assert()
        .success();
    assert_eq!(recv_request(&gw).seconds, 9);
}

#[test]
fn config_shows_each_value_and_where_it_came_from() {
    let (_gw, port) = gateway();
    let home = home_with(&format!(
        "[defaults]\nwait = 22\n\n[[host]]\nname = [\"gw1\", \"gw1.*\"]\nhostname = \"127.0.0.1:{port}\"\ndoor = \"ssh\"\n"
    ));
    let cfg = home.path().join(".spa/config.toml").display().to_string();
    let out = client(home.path())
        .args(["config", "gw1", "--wait-timeout"])
        .assert()
        .failure()
        .get_output()
        .clone();
    assert!(!out.stderr.is_empty(), "config takes no open flags");
    let out = client(home.path())
        .args(["-6", "config", "gw1"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("no {name} line in:\n{text}"))
    };
    assert_eq!(
        line("host"),
        format!("host 127.0.0.1 {cfg}:6 ([[host]] gw1, gw1.*)")
    );
    assert_eq!(
        line("port"),
        format!("port {port} {cfg}:6 ([[host]] gw1, gw1.*)")
    );
    assert_eq!(
        line("door"),
        format!("door ssh {cfg}:7 ([[host]] gw1, gw1.*)")
    );
    assert_eq!(line("wait"), format!("wait port 22 {cfg}:2 ([defaults])"));
    assert_eq!(line("family"), "family ipv6 command line");
    assert_eq!(
        line("seconds"),
        "seconds the door's default built-in default"
    );
    assert_eq!(
        line("key"),
        format!(
            "key {} built-in default",
            home.path().join(".spa/key").display()
        )
    );
    assert_eq!(
        line("server_id"),
        format!(
            "server_id {SERVER_ID} key file {}",
            home.path().join(".spa/key").display()
        )
    );
}

#[test]
fn a_bad_profile_is_reported_at_file_line_and_column() {
    let home = home_with("[[host]]\nname = \"gw1\"\nfamily = \"ip6\"\n");
    let cfg = home.path().join(".spa/config.toml").display().to_string();
    client(home.path())
        .args(["open", "ssh", "gw1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{cfg}:3:10: unknown variant `ip6`"
        )))
        .stderr(predicate::str::contains(
            "3 | family = \"ip6\"\n  |          ^^^^^",
        ));
}

#[test]
fn config_f_replaces_the_profile_files() {
    let (gw, port) = gateway();
    let home = home_with("[[host]]\nname = \"gw1\"\nhostname = \"127.0.0.3\"\ndoor = \"web\"\n");
    let other = home.path().join("other.toml");
    fs::write(
        &other,
        format!(
            "[[host]]\nname = \"gw1\"\nhostname = \"127.0.0.1\"\nport = {port}\ndoor = \"ssh\"\n"
        ),
    )
    .unwrap();
    client(home.path())
        .arg("-F")
        .arg(&other)
        .arg("gw1")
        .assert()
        .success();
    assert_eq!(recv_request(&gw).door.as_str(), "ssh");
}

#[test]
fn a_name_without_a_profile_door_says_what_to_run() {
    let home = home_with("");
    client(home.path())
        .arg("gw9")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "\"gw9\" is not a spa-client command, and no [[host]] block for it in the profiles gives a door: run spa-client open DOOR gw9",
        ));
}
