//! The door scenarios, end to end, for each firewall backend (nftables,
//! iptables, command): real `spad`, `spa-client` and `spa-keygen` binaries in
//! network namespaces, judged by what a user sees — whether a TCP connect to
//! the door's port succeeds, from which address, for how long — and by what
//! the server host sends back (nothing). Root only.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use spa_e2e::capture::PacketCapture;
use spa_e2e::craft::{now_ms, random_bytes, read_client_key, sealed_packet};
use spa_e2e::lab::{
    Lab, ADMIN_PORT, CONNECT_TIMEOUT, LAPTOP_V4, LAPTOP_V6, OTHER_V4, PLAIN_PORT, SERVER_V4,
    SERVER_V6, SERVER_V6_OTHER, SSH_PORT,
};
use spa_e2e::probe::{connect_ok, send_file, udp_send};
use spa_e2e::spad::Backend;
use spa_e2e::Result;

/// How long after a door's time is up a new connect must fail.
const CLOSE_MARGIN: Duration = Duration::from_millis(1500);

fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}, got {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

fn wait_arg(port: u16) -> [String; 4] {
    [
        "--wait".into(),
        port.to_string(),
        "--wait-timeout".into(),
        "5".into(),
    ]
}

fn knock_and_wait(lab: &Lab, key: &Path, door: &str, port: u16, extra: &[&str]) -> Result<Instant> {
    let started = Instant::now();
    let wait = wait_arg(port);
    let mut args: Vec<&str> = wait.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    let out = lab.knock(key, door, SERVER_V4.into(), &args)?;
    assert_exit(
        &out,
        0,
        &format!("spa-client open {door} --wait {port} {extra:?}"),
    );
    Ok(started)
}

fn door_opens_only_for_the_knocking_address_and_closes_on_time(backend: Backend) -> Result<()> {
    let lab = Lab::new()?;
    let alice = lab.issue_key("alice", &["ssh"])?;
    let mut spad = lab.start_spad(&lab.config(backend, 1))?;
    assert!(
        lab.other_connects(PLAIN_PORT)?,
        "the network itself works: a port behind no door is reachable"
    );
    assert!(
        !lab.laptop_connects(SSH_PORT)?,
        "ssh is shut for the laptop before the knock"
    );
    assert!(
        !lab.other_connects(SSH_PORT)?,
        "ssh is shut for the other host before the knock"
    );

    let knocked = knock_and_wait(&lab, &alice, "ssh", SSH_PORT, &[])?;
    assert!(
        lab.laptop_connects(SSH_PORT)?,
        "the knocking address gets in"
    );
    assert!(
        !lab.other_connects(SSH_PORT)?,
        "another address is still refused"
    );
    assert!(
        !lab.laptop_connects(ADMIN_PORT)?,
        "only the door knocked for opens"
    );
    spad.wait_for_log("the door-opened log line", Duration::from_secs(2), |l| {
        l.contains("door opened")
            && l.contains("door=ssh")
            && l.contains(&format!("addr={LAPTOP_V4}"))
    })?;

    // The door's default time is 2 s.
    sleep_until(knocked + Duration::from_secs(2) + CLOSE_MARGIN);
    assert!(
        !lab.laptop_connects(SSH_PORT)?,
        "the door is shut again after its time"
    );
    assert_eq!(
        spad.doors_opened().len(),
        1,
        "one knock, one door opened: {:#?}",
        spad.log()
    );
    Ok(())
}

fn door_opens_over_ipv6_for_the_knocking_address(backend: Backend) -> Result<()> {
    let lab = Lab::new()?;
    let alice = lab.issue_key("alice", &["ssh"])?;
    let _spad = lab.start_spad(&lab.config(backend, 1))?;
    assert!(
        connect_ok(
            &lab.other,
            SERVER_V6_OTHER.into(),
            PLAIN_PORT,
            CONNECT_TIMEOUT
        )?,
        "IPv6 works"
    );
    assert!(
        !connect_ok(&lab.laptop, SERVER_V6.into(), SSH_PORT, CONNECT_TIMEOUT)?,
        "shut before the knock"
    );

    let out = lab.knock(
        &alice,
        "ssh",
        SERVER_V6.into(),
        &["--wait", "22", "--wait-timeout", "5"],
    )?;
    assert_exit(&out, 0, "spa-client open ssh over IPv6 --wait 22");
    assert!(
        connect_ok(&lab.laptop, SERVER_V6.into(), SSH_PORT, CONNECT_TIMEOUT)?,
        "{LAPTOP_V6} gets in"
    );
    assert!(
        !connect_ok(
            &lab.other,
            SERVER_V6_OTHER.into(),
            SSH_PORT,
            CONNECT_TIMEOUT
        )?,
        "another v6 address is refused"
    );
    assert!(
        !lab.laptop_connects(SSH_PORT)?,
        "the laptop's IPv4 address was not named, so it stays shut"
    );
    Ok(())
}

fn replayed_packet_opens_nothing_even_after_kill_and_restart(backend: Backend) -> Result<()> {
    // The skew is long enough that the replays below are still inside the
    // time window: only the replay cache can stop them.
    const SKEW: Duration = Duration::from_secs(8);
    let lab = Lab::new()?;
    let alice = lab.issue_key("alice", &["ssh"])?;
    let mut spad = lab.start_spad(&lab.config(backend, SKEW.as_secs() as u32))?;
    let saved = lab.dir.path().join("alice-ssh.packet");

    let sealed_at = knock_and_wait(
        &lab,
        &alice,
        "ssh",
        SSH_PORT,
        &["--seconds", "2", "--save-packet", &saved.to_string_lossy()],
    )?;
    let packet = std::fs::read(&saved).map_err(|e| spa_e2e::E2eError::Io {
        what: "reading the saved packet".into(),
        source: e,
    })?;
    assert_eq!(
        packet.len(),
        100,
        "--save-packet writes the exact 100 bytes sent"
    );
    sleep_until(sealed_at + Duration::from_secs(2) + Duration::from_millis(1200));
    assert!(!lab.laptop_connects(SSH_PORT)?, "the 2 s door has closed");

    send_file(&lab.laptop, &saved, lab.spa_addr())?;
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !lab.laptop_connects(SSH_PORT)?,
        "the replayed packet opened the door again"
    );

    spad.kill9()?;
    let mut spad = lab.restart_spad()?;
    send_file(&lab.laptop, &saved, lab.spa_addr())?;
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !lab.laptop_connects(SSH_PORT)?,
        "after kill -9 and a restart, the replayed packet opened the door"
    );
    assert!(
        sealed_at.elapsed() < SKEW,
        "the test was too slow ({:?}): the replays fell outside the skew and tested the clock, not the replay cache",
        sealed_at.elapsed()
    );

    // The restarted spad works: a fresh knock opens.
    knock_and_wait(&lab, &alice, "ssh", SSH_PORT, &[])?;
    spad.wait_for_log(
        "the fresh knock's door-opened line",
        Duration::from_secs(2),
        |l| l.contains("door opened"),
    )?;
    assert_eq!(
        spad.doors_opened().len(),
        1,
        "only the fresh knock opened: {:#?}",
        spad.log()
    );
    Ok(())
}

fn bad_packets_open_nothing_and_get_no_reply(backend: Backend) -> Result<()> {
    let lab = Lab::new()?;
    let alice = lab.issue_key("alice", &["ssh"])?;
    let bob = lab.issue_key("bob", &["ssh"])?;
    let mallory = lab.issue_key_into("mallory", &["ssh"], &lab.foreign_keys_dir())?;
    let spad = lab.start_spad(&lab.config(backend, 1))?;
    lab.revoke_key("bob")?;
    spad.reload()?;
    std::thread::sleep(Duration::from_secs(1));

    let capture = PacketCapture::start(&lab.server, &lab.dir.path().join("sent.pcap"))?;
    let shut = |what: &str| -> Result<()> {
        assert!(
            !lab.laptop_connects(SSH_PORT)?,
            "{what} opened ssh for the laptop"
        );
        assert!(
            !lab.other_connects(SSH_PORT)?,
            "{what} opened ssh for the other host"
        );
        Ok(())
    };
    let sent = |out: Output, what: &str| assert_exit(&out, 0, what);

    sent(
        lab.knock(&bob, "ssh", SERVER_V4.into(), &[])?,
        "bob's knock is sent",
    );
    shut("a revoked key (after SIGHUP)")?;
    sent(
        lab.knock(&mallory, "ssh", SERVER_V4.into(), &[])?,
        "mallory's knock is sent",
    );
    shut("a key spad does not know")?;

    let key = read_client_key(&alice)?;
    let old = sealed_packet(&key, "ssh", LAPTOP_V4.into(), 0, now_ms() - 120_000)?;
    udp_send(&lab.laptop, &old, lab.spa_addr(), lab.dir.path())?;
    shut("a packet sealed two minutes ago")?;
    let future = sealed_packet(&key, "ssh", LAPTOP_V4.into(), 0, now_ms() + 120_000)?;
    udp_send(&lab.laptop, &future, lab.spa_addr(), lab.dir.path())?;
    shut("a packet stamped two minutes ahead")?;

    let other = OTHER_V4.to_string();
    sent(
        lab.knock(&alice, "ssh", SERVER_V4.into(), &["--source", &other])?,
        "alice's knock naming another address",
    );
    shut("a packet naming another address than its source")?;

    sent(
        lab.knock(&alice, "admin", SERVER_V4.into(), &[])?,
        "alice's knock for admin",
    );
    assert!(
        !lab.laptop_connects(ADMIN_PORT)?,
        "a key opened a door it is not allowed"
    );

    for len in [100, 1, 99, 101, 512] {
        udp_send(
            &lab.laptop,
            &random_bytes(len)?,
            lab.spa_addr(),
            lab.dir.path(),
        )?;
    }
    shut("random junk")?;

    // The capture does see replies: a connect to the plain port gets a SYN-ACK.
    assert!(lab.laptop_connects(PLAIN_PORT)?);
    let sent_by_server = capture.stop()?;
    let plain = format!("{SERVER_V4}.{PLAIN_PORT} >");
    assert!(
        sent_by_server.iter().any(|l| l.contains(&plain)),
        "the capture missed the plain port's reply: {sent_by_server:#?}"
    );
    let replies: Vec<&String> = sent_by_server
        .iter()
        .filter(|l| !l.contains(&plain))
        .collect();
    assert!(
        replies.is_empty(),
        "spad's host answered bad knocks: {replies:#?}"
    );
    assert!(
        spad.doors_opened().is_empty(),
        "spad logged an opened door: {:#?}",
        spad.log()
    );

    // And spad is alive and well: a good knock opens.
    knock_and_wait(&lab, &alice, "ssh", SSH_PORT, &[])?;
    Ok(())
}

fn door_closes_on_time_although_spad_was_killed(backend: Backend) -> Result<()> {
    let lab = Lab::new()?;
    let alice = lab.issue_key("alice", &["ssh"])?;
    let mut spad = lab.start_spad(&lab.config(backend, 1))?;
    let knocked = knock_and_wait(&lab, &alice, "ssh", SSH_PORT, &["--seconds", "3"])?;
    spad.kill9()?;
    assert!(
        lab.laptop_connects(SSH_PORT)?,
        "the door stays open for its time while spad is dead"
    );
    sleep_until(knocked + Duration::from_secs(3) + CLOSE_MARGIN);
    assert!(
        !lab.laptop_connects(SSH_PORT)?,
        "the kernel closed the door on time without spad"
    );
    Ok(())
}

fn restart_after_kill_closes_the_overdue_door(backend: Backend) -> Result<()> {
    let lab = Lab::new()?;
    let alice = lab.issue_key("alice", &["ssh"])?;
    let mut spad = lab.start_spad(&lab.config(backend, 1))?;
    let knocked = knock_and_wait(&lab, &alice, "ssh", SSH_PORT, &["--seconds", "2"])?;
    spad.kill9()?;
    sleep_until(knocked + Duration::from_secs(2) + Duration::from_secs(1));
    // This backend's doors are closed by spad's timers: with spad dead the door is overdue.
    assert!(
        lab.laptop_connects(SSH_PORT)?,
        "precondition: with spad dead the door is still open past its time"
    );
    let _spad = lab.restart_spad()?;
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !lab.laptop_connects(SSH_PORT)?,
        "the restarted spad closed the overdue door at once"
    );
    Ok(())
}

fn sigterm_closes_open_doors_and_exits_zero(backend: Backend) -> Result<()> {
    let lab = Lab::new()?;
    let alice = lab.issue_key("alice", &["ssh"])?;
    let mut spad = lab.start_spad(&lab.config(backend, 1))?;
    knock_and_wait(&lab, &alice, "ssh", SSH_PORT, &["--seconds", "60"])?;
    let status = spad.terminate(Duration::from_secs(10))?;
    assert_eq!(
        status.code(),
        Some(0),
        "spad exits 0 on SIGTERM: {:#?}",
        spad.log()
    );
    let laptop = LAPTOP_V4.to_string();
    for (program, args) in [
        ("nft", &["list", "ruleset"][..]),
        ("iptables-save", &[][..]),
    ] {
        let rules = lab.server.run(program, args)?;
        assert!(
            !rules.contains(&laptop),
            "{program} still lets {laptop} in after SIGTERM:\n{rules}"
        );
    }
    if backend == Backend::Command {
        // The e2e ruleset stays; the close command took the laptop out of it.
        assert!(
            !lab.laptop_connects(SSH_PORT)?,
            "the close command did not run on SIGTERM"
        );
    }
    Ok(())
}

/// One test per scenario for a backend, in a module named after it
/// (`nftables::bad_packets_open_nothing_and_get_no_reply`, ...).
macro_rules! per_backend {
    ($module:ident, $backend:expr, [$($scenario:ident),* $(,)?]) => {
        mod $module {
            use spa_e2e::Result;
            $(
                #[test]
                #[ignore = "needs root"]
                fn $scenario() -> Result<()> {
                    super::$scenario($backend)
                }
            )*
        }
    };
}

per_backend!(
    nftables,
    spa_e2e::spad::Backend::Nftables,
    [
        door_opens_only_for_the_knocking_address_and_closes_on_time,
        door_opens_over_ipv6_for_the_knocking_address,
        replayed_packet_opens_nothing_even_after_kill_and_restart,
        bad_packets_open_nothing_and_get_no_reply,
        door_closes_on_time_although_spad_was_killed,
        sigterm_closes_open_doors_and_exits_zero,
    ]
);

per_backend!(
    iptables,
    spa_e2e::spad::Backend::Iptables,
    [
        door_opens_only_for_the_knocking_address_and_closes_on_time,
        door_opens_over_ipv6_for_the_knocking_address,
        replayed_packet_opens_nothing_even_after_kill_and_restart,
        bad_packets_open_nothing_and_get_no_reply,
        restart_after_kill_closes_the_overdue_door,
        sigterm_closes_open_doors_and_exits_zero,
    ]
);

// The command backend's templates manage an IPv4-only nft set, so no IPv6 scenario.
per_backend!(
    command,
    spa_e2e::spad::Backend::Command,
    [
        door_opens_only_for_the_knocking_address_and_closes_on_time,
        replayed_packet_opens_nothing_even_after_kill_and_restart,
        bad_packets_open_nothing_and_get_no_reply,
        restart_after_kill_closes_the_overdue_door,
        sigterm_closes_open_doors_and_exits_zero,
    ]
);
