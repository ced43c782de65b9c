//! Handing a key to another device: `spa-client export-key --qr` prints a
//! warning, a terminal QR code and the URI; the QR code as drawn decodes (with
//! rqrr, an independent decoder) to the URI, and `spa-client import-key -` on
//! the other device writes the same key, mode 0600.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use assert_cmd::Command;
use predicates::prelude::*;
use spa_keys::load_client_key;
use tempfile::TempDir;

use common::write_key_file;

/// Turns the terminal drawing back into pixels (dark background: a block is a
/// light module) and decodes it.
fn decode_terminal_qr(lines: &[&str]) -> String {
    const SCALE: usize = 4;
    let rows: Vec<Vec<bool>> = lines
        .iter()
        .flat_map(|line| {
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for c in line.chars() {
                let (t, b) = match c {
                    ' ' => (false, false),
                    '\u{2580}' => (true, false),
                    '\u{2584}' => (false, true),
                    '\u{2588}' => (true, true),
                    other => panic!("unexpected {other:?} in the QR drawing"),
                };
                top.push(t);
                bottom.push(b);
            }
            [top, bottom]
        })
        .collect();
    let (h, w) = (rows.len(), rows[0].len());
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w * SCALE, h * SCALE, |x, y| {
        if rows[y / SCALE][x / SCALE] {
            255
        } else {
            0
        }
    });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the drawing");
    grids[0].decode().expect("the QR code decodes").1
}

#[test]
fn export_qr_and_import_round_trip() {
    let old = TempDir::new().unwrap();
    let key = write_key_file(old.path(), "host = \"2001:db8::1\"\nport = 62211\n\n[gateway.knock.legacy]\nn = 4\nlo = 20000\nhi = 40000\nproto = \"udp\"", 0o600);
    let out = Command::cargo_bin("spa-client")
        .unwrap()
        .arg("--key")
        .arg(&key)
        .args(["export-key", "--qr"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "WARNING: this carries your secret",
        ))
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let (uri, drawing) = lines.split_last().unwrap();
    assert!(uri.starts_with("spa://key/1?user=alice&secret="), "{uri}");
    assert_eq!(
        decode_terminal_qr(drawing),
        *uri,
        "the QR code carries the URI"
    );

    let new = TempDir::new().unwrap();
    Command::cargo_bin("spa-client")
        .unwrap()
        .env("HOME", new.path())
        .args(["import-key", "-"])
        .write_stdin(format!("{uri}\n"))
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "for user alice with gateways: gw.test",
        ));
    let path = new.path().join(".spa/key");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (a, b) = (
        load_client_key(&key).unwrap(),
        load_client_key(&path).unwrap(),
    );
    assert_eq!(
        (a.user, a.secret, a.gateways),
        (b.user, b.secret, b.gateways)
    );
    // A second import does not overwrite without --force.
    Command::cargo_bin("spa-client")
        .unwrap()
        .env("HOME", new.path())
        .args(["import-key", uri])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists"));
}
