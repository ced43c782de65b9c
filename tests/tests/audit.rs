//! The audit trail from outside: spad under journald writes each decision as
//! one line with its syslog priority, refused datagrams once per source in
//! the format docs/operating.md fixes, and Debian's fail2ban-regex with the
//! shipped filter picks the junk sender's address out of spad's real output
//! (and not the key holder's). Root only.

use std::process::Command;
use std::time::Duration;

use spa_e2e::lab::{Lab, SERVER_V4, SSH_PORT};
use spa_e2e::probe::udp_send;
use spa_e2e::spad::{Backend, Spad};
use spa_e2e::{E2eError, Result};

const FILTER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../conf/fail2ban/filter.d/spad.conf"
);

fn io(what: &str) -> impl FnOnce(std::io::Error) -> E2eError + '_ {
    move |source| E2eError::Io {
        what: what.to_owned(),
        source,
    }
}

/// The lab, alice's key for `ssh`, and spad logging as under systemd
/// (journald priorities), past the fresh-start rule (skew 1 s).
fn lab_with_journald_spad() -> Result<(Lab, std::path::PathBuf, Spad)> {
    let lab = Lab::new()?;
    let alice = lab.issue_key("alice", &["ssh"])?;
    let config = lab.config(Backend::Nftables, 1);
    lab.prepare_backend(config.backend)?;
    config.write(&lab.config_path())?;
    let spad = Spad::start_with_env(
        &lab.server,
        &lab.config_path(),
        &[("JOURNAL_STREAM", "8:1")],
    )?;
    std::thread::sleep(Duration::from_millis(1300));
    Ok((lab, alice, spad))
}

#[test]
#[ignore = "needs root"]
fn junk_is_logged_per_source_with_priorities_and_fail2ban_picks_out_its_sender() -> Result<()> {
    let (lab, alice, mut spad) = lab_with_journald_spad()?;

    // Junk from the other host: 100 random bytes (no key's hint) three times, and a short datagram.
    let scratch = lab.dir.path();
    // The server's address on the other host's link.
    let spa_port = std::net::SocketAddr::new([10, 77, 2, 1].into(), lab.spa_addr().port());
    for _ in 0..3 {
        let junk = spa_e2e::craft::random_bytes(100)?;
        udp_send(&lab.other, &junk, spa_port, scratch)?;
    }
    udp_send(&lab.other, b"short", spa_port, scratch)?;
    spad.wait_for_log("the hint refusal", Duration::from_secs(3), |l| {
        l == "<6>refused src=10.77.2.2 reason=hint count=1"
    })?;
    spad.wait_for_log("the length refusal", Duration::from_secs(3), |l| {
        l == "<6>refused src=10.77.2.2 reason=length count=1"
    })?;
    // The key holder's knock: a decision line, not a refusal.
    let out = lab.knock(
        &alice,
        "ssh",
        SERVER_V4.into(),
        &["--wait", &SSH_PORT.to_string()],
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    spad.wait_for_log("the door-opened line", Duration::from_secs(3), |l| {
        l.starts_with("<6>door opened door=ssh addr=10.77.1.2 user=alice")
    })?;
    let log = spad.log();
    assert_eq!(
        log.iter().filter(|l| l.contains("reason=hint")).count(),
        1,
        "three junk datagrams from one source, one line this minute: {log:#?}"
    );

    // spad's real lines as syslog would show them, through the shipped filter.
    let syslog: String = log
        .iter()
        .filter_map(|l| l.strip_prefix('<').and_then(|l| l.split_once('>')))
        .map(|(_, msg)| format!("Dec  1 12:00:00 gw1 spad[4242]: {msg}\n"))
        .collect();
    let dir = lab.dir.path();
    std::fs::write(dir.join("spad.log"), &syslog).map_err(io("writing the log"))?;
    let filter_d = dir.join("filter.d");
    std::fs::create_dir(&filter_d).map_err(io("filter.d"))?;
    std::fs::copy(FILTER, filter_d.join("spad.conf")).map_err(io("copying the filter"))?;
    std::fs::copy(
        "/etc/fail2ban/filter.d/common.conf",
        filter_d.join("common.conf"),
    )
    .map_err(io("copying common.conf (apt-get install fail2ban)"))?;
    let out = Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(dir.join("spad.log"))
        .arg(filter_d.join("spad.conf"))
        .output()
        .map_err(io("running fail2ban-regex (apt-get install fail2ban)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let matched = text
        .split("Matched line(s):")
        .nth(1)
        .and_then(|s| s.split("Missed line(s):").next())
        .unwrap_or_default();
    assert!(
        matched.contains("refused src=10.77.2.2 reason=hint count=1"),
        "{text}\n{syslog}"
    );
    assert!(
        matched.contains("refused src=10.77.2.2 reason=length count=1"),
        "{text}"
    );
    assert!(
        !matched.contains("10.77.1.2"),
        "the key holder was matched: {text}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn a_clock_two_minutes_off_is_logged_with_the_user_and_the_offset_and_not_banned() -> Result<()> {
    use spa_e2e::craft::{now_ms, read_client_key, sealed_packet};
    use spa_e2e::lab::{LAPTOP_V4, OTHER_V4};

    let (lab, alice, mut spad) = lab_with_journald_spad()?;
    let scratch = lab.dir.path();
    let key = read_client_key(&alice)?;

    // alice's laptop, its clock 2 min 10 s behind: sealed properly, twice.
    for _ in 0..2 {
        let behind = sealed_packet(&key, "ssh", LAPTOP_V4.into(), 0, now_ms() - 130_000)?;
        udp_send(&lab.laptop, &behind, lab.spa_addr(), scratch)?;
    }
    spad.wait_for_log("the clock-behind line", Duration::from_secs(3), |l| {
        l == "<4>not opened user=alice src=10.77.1.2 reason=clock: \
              alice's clock is about 2 min 10 s behind"
    })?;
    // From the other host, 40 s ahead.
    let ahead = sealed_packet(&key, "ssh", OTHER_V4.into(), 0, now_ms() + 40_000)?;
    let spa_other = std::net::SocketAddr::new([10, 77, 2, 1].into(), lab.spa_addr().port());
    udp_send(&lab.other, &ahead, spa_other, scratch)?;
    spad.wait_for_log("the clock-ahead line", Duration::from_secs(3), |l| {
        l == "<4>not opened user=alice src=10.77.2.2 reason=clock: \
              alice's clock is about 40 s ahead"
    })?;
    assert!(
        !lab.laptop_connects(SSH_PORT)?,
        "a skewed packet opened ssh"
    );

    let log = spad.log();
    assert_eq!(
        log.iter().filter(|l| l.contains("reason=clock")).count(),
        2,
        "one line per (user, source) a minute: {log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("reason=hint")),
        "a key holder's skewed packet is not junk for fail2ban: {log:#?}"
    );

    // Counted in the status counters.
    let socket = lab.state_dir().with_file_name("control.sock");
    let out = Command::new(spa_e2e::bins::workspace_bin("spad")?)
        .args(["status", "--prometheus", "--socket"])
        .arg(&socket)
        .output()
        .map_err(io("running spad status"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("spad_refused_total{reason=\"clock\"} 3\n"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("spad_refused_total{reason=\"hint\"} 0\n"),
        "{text}"
    );
    Ok(())
}
