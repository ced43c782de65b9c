//! fwknop's clients against spad (root only): Debian's real `fwknop` client
//! opens a spad door between namespaces, judged by a real TCP connect; the
//! same packet replayed (also after `kill -9` and a restart), a packet
//! naming another address, one with a broken HMAC and one too old open
//! nothing, each refused for its own reason in spad's log. spad's config is
//! what `spad import-fwknop` prints for the access.conf. (That fwknopd and
//! spa-fwknop decide the same packets alike is fwknop/tests/fwknopd_interop.rs.)

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use spa_e2e::bins::workspace_bin;
use spa_e2e::lab::{Lab, LAPTOP_V4, OTHER_V4, SERVER_V4, SPA_PORT, SSH_PORT};
use spa_e2e::probe::send_file;
use spa_e2e::spad::Spad;
use spa_e2e::{E2eError, Result};

/// fwknop's port.
const FWKNOP_PORT: u16 = 62201;
/// fwknopd's MAX_SPA_PACKET_AGE in this test (short: a spad without a
/// journal refuses packets made before it started, for this long).
const MAX_AGE_SECS: u64 = 8;
/// FW_ACCESS_TIMEOUT: how long the door stays open.
const OPEN_SECS: u64 = 3;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> E2eError {
    let what = what.into();
    move |source| E2eError::Io { what, source }
}

fn failed(command: &str, out: &std::process::Output) -> E2eError {
    E2eError::CommandFailed {
        command: command.to_owned(),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `fwknop --key-gen`: (KEY_BASE64, HMAC_KEY_BASE64).
fn key_gen() -> Result<(String, String)> {
    let out = Command::new("fwknop")
        .args(["--no-rc-file", "--key-gen"])
        .output()
        .map_err(io(
            "running fwknop --key-gen (apt-get install fwknop-client)",
        ))?;
    if !out.status.success() {
        return Err(failed("fwknop --key-gen", &out));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| failed(&format!("fwknop --key-gen: no {name}"), &out))
    };
    Ok((field("KEY_BASE64:")?, field("HMAC_KEY_BASE64:")?))
}

struct Fwknop {
    key: String,
    hmac: String,
    scratch: PathBuf,
}

impl Fwknop {
    /// Runs the real client in the laptop's namespace, asking for tcp/22 for
    /// `allow`, sending to spad (or only saving with `-T`); the packet is
    /// saved to `save` either way.
    fn run(&self, lab: &Lab, allow: IpAddr, save: &Path, extra: &[&str]) -> Result<()> {
        let out = lab
            .laptop
            .command("fwknop")
            .args(["--no-rc-file", "-D", &SERVER_V4.to_string()])
            .args(["-p", &FWKNOP_PORT.to_string(), "-P", "udp"])
            .args(["-a", &allow.to_string(), "-A", &format!("tcp/{SSH_PORT}")])
            .args(["--use-hmac", "-U", "alice"])
            .arg(format!("--key-base64-rijndael={}", self.key))
            .arg(format!("--key-base64-hmac={}", self.hmac))
            .arg("-B")
            .arg(save)
            .args(extra)
            .output()
            .map_err(io("running fwknop"))?;
        if !out.status.success() {
            return Err(failed("fwknop (client)", &out));
        }
        // The client saves the packet with a newline it does not send.
        let text = std::fs::read_to_string(save).map_err(io("reading the saved packet"))?;
        std::fs::write(save, text.trim_end()).map_err(io("trimming the saved packet"))
    }

    fn packet(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }
}

fn spad_config(lab: &Lab, access: &Path) -> Result<PathBuf> {
    let out = Command::new(workspace_bin("spad")?)
        .arg("import-fwknop")
        .arg(access)
        .output()
        .map_err(io("running spad import-fwknop"))?;
    if !out.status.success() {
        return Err(failed("spad import-fwknop", &out));
    }
    let imported = String::from_utf8_lossy(&out.stdout).replace(
        "max_age_secs = 120",
        &format!("max_age_secs = {MAX_AGE_SECS}"),
    );
    let dir = lab.dir.path();
    let config = format!(
        "server_id = \"gw1\"\nkeys_dir = \"{}\"\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\n\
         port = {SPA_PORT}\nskew_secs = 1\nbackend = \"nftables\"\nnft_table = \"spad\"\n{imported}",
        dir.join("no-spa-keys").display(),
        lab.state_dir().display(),
        dir.join("control.sock").display(),
    );
    let path = lab.config_path();
    std::fs::write(&path, config).map_err(io("writing spad.toml"))?;
    Ok(path)
}

/// Whether the laptop gets through to port 22 within `within`.
fn laptop_gets_in(lab: &Lab, within: Duration) -> Result<bool> {
    let start = Instant::now();
    loop {
        if lab.laptop_connects(SSH_PORT)? {
            return Ok(true);
        }
        if start.elapsed() > within {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_line(spad: &mut Spad, what: &str, pred: impl Fn(&str) -> bool) -> Result<String> {
    spad.wait_for_log(what, Duration::from_secs(5), pred)
}

#[test]
#[ignore = "needs root"]
fn the_real_fwknop_client_opens_a_spad_door_and_nothing_else_does() -> Result<()> {
    let lab = Lab::new()?;
    let (key, hmac) = key_gen()?;
    let access = lab.dir.path().join("access.conf");
    std::fs::write(
        &access,
        format!(
            "SOURCE ANY\nOPEN_PORTS tcp/{SSH_PORT}\nKEY_BASE64 {key}\nHMAC_KEY_BASE64 {hmac}\n\
             FW_ACCESS_TIMEOUT {OPEN_SECS}\nREQUIRE_SOURCE_ADDRESS Y\n"
        ),
    )
    .map_err(io("writing access.conf"))?;
    std::fs::set_permissions(&access, std::fs::Permissions::from_mode(0o600))
        .map_err(io("chmod access.conf"))?;
    let config = spad_config(&lab, &access)?;
    let mut spad = Spad::start(&lab.server, &config)?;
    let client = Fwknop {
        key,
        hmac,
        scratch: lab.dir.path().to_path_buf(),
    };
    let fwknop_dst = SocketAddr::new(IpAddr::V4(SERVER_V4), FWKNOP_PORT);
    // A fresh spad has no replay history: packets made before it started
    // (plus fwknop's max age) are refused. Wait that out.
    std::thread::sleep(Duration::from_millis(MAX_AGE_SECS * 1000 + 1500));
    assert!(
        !lab.laptop_connects(SSH_PORT)?,
        "ssh open before any packet"
    );

    // 1. The real client opens the door for the laptop, and only for it.
    let first = client.packet("first");
    client.run(&lab, IpAddr::V4(LAPTOP_V4), &first, &[])?;
    assert!(
        laptop_gets_in(&lab, Duration::from_secs(2))?,
        "the fwknop client's packet did not open ssh: {:#?}",
        spad.log()
    );
    assert!(!lab.other_connects(SSH_PORT)?, "ssh opened for everyone");
    let opened = wait_line(&mut spad, "door opened", |l| {
        l.contains("door opened door=fwknop-tcp-22 addr=10.77.1.2 user=fwknop:1:alice seconds=3")
    })?;
    assert!(opened.contains("seconds=3"), "{opened}");

    // 2. The same packet again (a sniffer's replay) opens nothing, also
    // after spad is killed and restarted: the digest is in its journal.
    std::thread::sleep(Duration::from_secs(OPEN_SECS + 1));
    assert!(
        !lab.laptop_connects(SSH_PORT)?,
        "the door did not close on time"
    );
    send_file(&lab.laptop, &first, fwknop_dst)?;
    wait_line(&mut spad, "a replay refused", |l| {
        l.contains("not opened ports=tcp/22 addr=10.77.1.2") && l.contains("reason=replay")
    })?;
    spad.kill9()?;
    let mut spad = Spad::start(&lab.server, &config)?;
    send_file(&lab.laptop, &first, fwknop_dst)?;
    wait_line(&mut spad, "a replay refused after kill -9", |l| {
        l.contains("reason=replay")
    })?;
    assert!(
        !laptop_gets_in(&lab, Duration::from_millis(800))?,
        "a replay opened ssh"
    );

    // 3. A packet naming another address (the "other" host) opens nothing.
    client.run(&lab, IpAddr::V4(OTHER_V4), &client.packet("other"), &[])?;
    wait_line(&mut spad, "another address refused", |l| {
        l.contains("refused src=10.77.1.2 reason=address")
            && l.contains("packet names 10.77.2.2, not its source 10.77.1.2")
    })?;
    assert!(!lab.other_connects(SSH_PORT)?, "opened for a named address");
    assert!(!lab.laptop_connects(SSH_PORT)?);

    // 4. A packet with one character of its HMAC changed: junk.
    let forged = client.packet("forged");
    client.run(&lab, IpAddr::V4(LAPTOP_V4), &forged, &["-T"])?;
    let mut text = std::fs::read_to_string(&forged).map_err(io("reading the packet"))?;
    let at = text.len() - 2;
    let swapped = if text.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    text.replace_range(at..at + 1, swapped);
    std::fs::write(&forged, text).map_err(io("writing the forged packet"))?;
    send_file(&lab.laptop, &forged, fwknop_dst)?;
    // 5. A packet made a minute ago: too old.
    client.run(
        &lab,
        IpAddr::V4(LAPTOP_V4),
        &client.packet("old"),
        &["--time-offset-minus", "60s"],
    )?;
    wait_line(&mut spad, "an old packet refused", |l| {
        l.contains("refused src=10.77.1.2 reason=window") && l.contains("s old (at most 8 s)")
    })?;
    assert!(
        !laptop_gets_in(&lab, Duration::from_millis(800))?,
        "a refused packet opened ssh"
    );
    let log = spad.log();
    assert!(
        !log.iter()
            .any(|l| l.contains("door opened") && !l.contains(&opened)),
        "something else opened: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("refused src=10.77.1.2 reason=aead count=1")),
        "the forged HMAC was not counted as junk: {log:#?}"
    );

    // 6. A fresh packet still opens: refusals locked no one out.
    client.run(&lab, IpAddr::V4(LAPTOP_V4), &client.packet("again"), &[])?;
    assert!(
        laptop_gets_in(&lab, Duration::from_secs(2))?,
        "a fresh packet did not open after the refusals: {:#?}",
        spad.log()
    );
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn spad_refuses_an_access_file_others_can_read() -> Result<()> {
    let lab = Lab::new()?;
    let (key, hmac) = key_gen()?;
    let access = lab.dir.path().join("access.conf");
    std::fs::write(
        &access,
        format!("SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {key}\nHMAC_KEY_BASE64 {hmac}\n"),
    )
    .map_err(io("writing access.conf"))?;
    std::fs::set_permissions(&access, std::fs::Permissions::from_mode(0o644))
        .map_err(io("chmod access.conf"))?;
    let config = spad_config(&lab, &access)?;
    let check = Command::new(workspace_bin("spad")?)
        .args(["--check", "--config"])
        .arg(&config)
        .output()
        .map_err(io("running spad --check"))?;
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        !check.status.success(),
        "--check accepted a 0644 access file"
    );
    assert!(
        stderr.contains("chmod 600") && stderr.contains("access.conf"),
        "{stderr}"
    );
    let refused = Spad::start(&lab.server, &config);
    assert!(refused.is_err(), "spad started with a 0644 access file");
    Ok(())
}
