//! Self-enrolment, round trip without root: the gateway's enrolment key is
//! made (spa-keys, as `spa-keygen enrol-key` does), `spa-client enroll` makes
//! the user's secret and a sealed request, the admin's `accept` (spa-keys, as
//! `spa-keygen accept` runs it) writes the server entry only with the
//! fingerprint the user saw, and a packet `spa-client open` then sends opens
//! with that entry's key. tests/tests/enrolment.rs does the same with spad.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use predicates::prelude::*;
use spa_keygen::enrol_cli::{accept, AcceptArgs};
use spa_keys::{load_client_key, load_server_entry, write_secret_file, GatewayEnrolmentKey};
use spa_proto::packet::{open_with, Request, PACKET_LEN};
use tempfile::TempDir;

fn accept_args(dir: &Path, request: &Path, fingerprint: Option<&str>) -> AcceptArgs {
    AcceptArgs {
        request: request.to_owned(),
        fingerprint: fingerprint.map(str::to_owned),
        doors: vec!["ssh".parse().unwrap()],
        enrol_key: dir.join("enrol.key"),
        keys_dir: dir.join("keys.d"),
        expires: None,
        allow_observed: false,
        force: false,
    }
}

#[test]
fn enrol_accept_open_round_trip() {
    let admin = TempDir::new().unwrap();
    let home = TempDir::new().unwrap();
    fs::create_dir(admin.path().join("keys.d")).unwrap();
    let gw =
        GatewayEnrolmentKey::generate("gw.test".parse().unwrap(), admin.path().join("enrol.key"))
            .unwrap();
    write_secret_file(&gw.path, &gw.to_toml(), false).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = udp.local_addr().unwrap().port();

    // The user: a new secret and a request, without any key file before.
    let request = home.path().join("alice.req");
    let out = Command::cargo_bin("spa-client")
        .unwrap()
        .env("HOME", home.path())
        .args([
            "enroll",
            "--user",
            "alice",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .arg("--gateway-key")
        .arg(gw.public().to_string())
        .arg("--request")
        .arg(&request)
        .assert()
        .success()
        .stdout(predicate::str::contains("made your secret and key file"))
        .get_output()
        .clone();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let fingerprint = said
        .lines()
        .find_map(|l| l.strip_prefix("request fingerprint: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the user is shown the fingerprint")
        .to_owned();
    assert!(
        said.contains(&format!(
            "gateway key fingerprint: {}",
            gw.public().fingerprint()
        )),
        "{said}"
    );
    let key_path = home.path().join(".spa/key");
    let client = load_client_key(&key_path).expect("a 0600 key file");
    let text = fs::read_to_string(&request).unwrap();
    let k_srv = client.secret.server_key(&gw.server_id);
    for secret in [client.secret.expose(), k_srv.expose()] {
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, secret);
        assert!(!text.contains(&b64), "a secret in the request file");
    }

    // The admin: without the fingerprint nothing is written; a wrong one is refused.
    let mut shown = Vec::new();
    assert!(!accept(&accept_args(admin.path(), &request, None), &mut shown).unwrap());
    let shown = String::from_utf8(shown).unwrap();
    assert!(
        shown.contains(&format!(
            "request from user alice for gateway gw.test, fingerprint {fingerprint}"
        )),
        "{shown}"
    );
    assert!(fs::read_dir(admin.path().join("keys.d"))
        .unwrap()
        .next()
        .is_none());
    let err = accept(
        &accept_args(admin.path(), &request, Some("0000-0000-0000-0000")),
        &mut Vec::new(),
    )
    .map(|_| ())
    .map_err(|e| e.to_string());
    assert!(
        matches!(&err, Err(m) if m.contains("does not match")),
        "{err:?}"
    );
    assert!(accept(
        &accept_args(admin.path(), &request, Some(&fingerprint.to_uppercase())),
        &mut Vec::new()
    )
    .unwrap());
    let entry = load_server_entry(&admin.path().join("keys.d/alice.toml")).expect("a 0600 entry");
    assert_eq!(
        entry.key.expose(),
        k_srv.expose(),
        "the gateway holds K_srv of the user's S"
    );
    assert_eq!(entry.doors, vec!["ssh".parse().unwrap()]);

    // The packet the user now sends opens with the entry's key.
    Command::cargo_bin("spa-client")
        .unwrap()
        .env("HOME", home.path())
        .args(["-F", "/dev/null", "open", "ssh"])
        .assert()
        .success();
    let mut buf = [0u8; 256];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    let packet: [u8; PACKET_LEN] = buf[..n].try_into().unwrap();
    let keys = entry.key.derive();
    let cipher = ChaCha20Poly1305::new(keys.aead.expose().into());
    let req =
        Request::decode(&open_with(&cipher, &packet).expect("opens with the entry's key")).unwrap();
    assert_eq!(req.door.as_str(), "ssh");
}

#[test]
fn a_second_gateway_reuses_the_secret_and_a_new_key_file_needs_a_user() {
    let home = TempDir::new().unwrap();
    let gw = |id: &str| {
        GatewayEnrolmentKey::generate(id.parse().unwrap(), "/unused".into())
            .unwrap()
            .public()
            .to_string()
    };
    let client = || {
        let mut c = Command::cargo_bin("spa-client").unwrap();
        c.env("HOME", home.path()).current_dir(home.path());
        c
    };
    client()
        .args(["enroll", "--gateway-key", &gw("gw1")])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "does not exist yet: pass --user NAME",
        ));
    client()
        .args(["enroll", "--user", "bob", "--gateway-key", &gw("gw1")])
        .assert()
        .success();
    let first = load_client_key(&home.path().join(".spa/key")).unwrap();
    client()
        .args(["enroll", "--gateway-key", &gw("gw2")])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "added gateway gw2 to your key file",
        ));
    let second = load_client_key(&home.path().join(".spa/key")).unwrap();
    assert_eq!(second.secret, first.secret, "the same S");
    let ids: Vec<&str> = second
        .gateways
        .iter()
        .map(|g| g.server_id.as_str())
        .collect();
    assert_eq!(ids, ["gw1", "gw2"]);
    assert!(home.path().join("bob-gw2.spa-request").is_file());
    client()
        .args(["enroll", "--user", "carol", "--gateway-key", &gw("gw3")])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("belongs to user bob, not carol"));
    client()
        .args(["enroll", "--gateway-key", "ssh-ed25519 AAAA"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a gateway enrolment key"));
}
