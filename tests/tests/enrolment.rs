//! Self-enrolment end to end, as root: the admin makes the gateway's
//! enrolment key with `spa-keygen enrol-key`, the user makes their secret and
//! a sealed request with `spa-client enroll`, the admin accepts it with
//! `spa-keygen accept --fingerprint` into spad's keys dir, and the real spad
//! then opens door ssh for the laptop's packet — and only for the laptop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use spa_e2e::bins::workspace_bin;
use spa_e2e::lab::{Lab, SERVER_V4, SSH_PORT};
use spa_e2e::spad::Backend;
use spa_e2e::{E2eError, Result};

fn run(cmd: &mut Command) -> Result<Output> {
    cmd.output().map_err(|source| E2eError::Io {
        what: format!("running {cmd:?}"),
        source,
    })
}

fn stdout_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root"]
fn a_self_enrolled_key_opens_the_door_on_a_real_spad() -> Result<()> {
    let lab = Lab::new()?;
    let dir = lab.dir.path();
    let keygen = workspace_bin("spa-keygen")?;
    let client = workspace_bin("spa-client")?;

    // Admin, once per gateway.
    let enrol_key = dir.join("enrol.key");
    let said = stdout_ok(
        &run(Command::new(&keygen)
            .args(["enrol-key", "--server-id", "gw1", "--out"])
            .arg(&enrol_key))?,
        "spa-keygen enrol-key",
    );
    let public = said
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("spa-enrol-key-1:gw1:"))
        .expect("enrol-key prints the public key line")
        .to_owned();

    // User, on their own machine.
    let home = dir.join("home");
    let request = dir.join("alice.req");
    let said = stdout_ok(
        &run(Command::new(&client)
            .env("HOME", &home)
            .args([
                "enroll",
                "--user",
                "alice",
                "--host",
                &SERVER_V4.to_string(),
                "--gateway-key",
                &public,
                "--request",
            ])
            .arg(&request))?,
        "spa-client enroll",
    );
    let fingerprint = said
        .lines()
        .find_map(|l| l.strip_prefix("request fingerprint: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("enroll prints the fingerprint")
        .to_owned();

    // Admin: sees the same fingerprint, then accepts with it.
    let accept = |extra: &[&str]| {
        let mut cmd = Command::new(&keygen);
        cmd.arg("accept")
            .arg(&request)
            .arg("--enrol-key")
            .arg(&enrol_key)
            .args(["--doors", "ssh", "--keys-dir"])
            .arg(lab.keys_dir())
            .args(extra);
        run(&mut cmd)
    };
    let shown = stdout_ok(&accept(&[])?, "spa-keygen accept (show)");
    assert!(
        shown.contains(&format!(
            "request from user alice for gateway gw1, fingerprint {fingerprint}"
        )),
        "{shown}"
    );
    assert!(
        !lab.keys_dir().join("alice.toml").exists(),
        "nothing written before the fingerprint is confirmed"
    );
    stdout_ok(
        &accept(&["--fingerprint", &fingerprint])?,
        "spa-keygen accept",
    );

    let _spad = lab.start_spad(&lab.config(Backend::Nftables, 1))?;
    assert!(
        !lab.laptop_connects(SSH_PORT)?,
        "ssh is shut before the knock"
    );
    let mut open = lab.laptop.command(&client);
    open.env("HOME", &home).args([
        "-F",
        "/dev/null",
        "open",
        "ssh",
        "--wait",
        "22",
        "--wait-timeout",
        "5",
    ]);
    let said = stdout_ok(&run(&mut open)?, "spa-client open ssh (enrolled key)");
    assert!(said.contains("port 22 answered"), "{said}");
    assert!(
        lab.laptop_connects(SSH_PORT)?,
        "the door opened for the laptop"
    );
    assert!(!lab.other_connects(SSH_PORT)?, "and for no one else");
    Ok(())
}
