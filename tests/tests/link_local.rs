//! A link-local gateway, as root: `spa-client open ssh fe80::…%eth0 --wait 22`
//! on the laptop reaches spad over the veth's link-local address (the zone
//! must survive parsing and resolving, or the kernel has no route), names the
//! laptop's own link-local address, and port 22, shut before, then answers
//! over the same link-local path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use spa_e2e::bins::workspace_bin;
use spa_e2e::lab::{Lab, SSH_PORT};
use spa_e2e::netns::Netns;
use spa_e2e::spad::Backend;
use spa_e2e::{E2eError, Result};

/// The interface's link-local address once duplicate address detection is done.
fn link_local(ns: &Netns, ifname: &str) -> Result<Ipv6Addr> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = ns.run(
            "ip",
            ["-6", "-o", "addr", "show", "dev", ifname, "scope", "link"],
        )?;
        let ready = text
            .lines()
            .filter(|l| !l.contains("tentative"))
            .find_map(|l| {
                let addr = l.split_whitespace().skip_while(|w| *w != "inet6").nth(1)?;
                addr.split('/').next()?.parse().ok()
            });
        if let Some(addr) = ready {
            return Ok(addr);
        }
        if Instant::now() > deadline {
            return Err(E2eError::Timeout {
                what: format!("a link-local address on {ifname} in {}", ns.name()),
                after: Duration::from_secs(10),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether a TCP connect from the laptop to `[addr%eth0]:port` succeeds within 1 s.
fn laptop_reaches(lab: &Lab, addr: Ipv6Addr, port: u16) -> Result<bool> {
    let out = lab.laptop.output(
        "timeout",
        [
            "1",
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/{addr}%eth0/{port}"),
        ],
    )?;
    Ok(out.status.success())
}

#[test]
#[ignore = "needs root"]
fn a_link_local_gateway_with_its_zone_is_reached_and_opens() -> Result<()> {
    let lab = Lab::new()?;
    let key = lab.issue_key("alice", &["ssh"])?;
    let server_ll = link_local(&lab.server, "to-laptop")?;
    let laptop_ll = link_local(&lab.laptop, "eth0")?;
    let mut spad = lab.start_spad(&lab.config(Backend::Nftables, 1))?;
    assert!(
        !laptop_reaches(&lab, server_ll, SSH_PORT)?,
        "port 22 is shut over the link-local path before the knock"
    );
    let host = format!("{server_ll}%eth0");
    let out = lab
        .laptop
        .command(workspace_bin("spa-client")?)
        .arg("--key")
        .arg(&key)
        .args([
            "-F",
            "/dev/null",
            "open",
            "ssh",
            &host,
            "--wait",
            "22",
            "--wait-timeout",
            "5",
        ])
        .output()
        .map_err(|source| E2eError::Io {
            what: "running spa-client".into(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "spa-client failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("sent door ssh for {laptop_ll} ")),
        "the packet names the laptop's link-local address: {stdout}"
    );
    assert!(
        stdout.contains(&format!("port 22 answered: connected to [{host}]:22")),
        "{stdout}"
    );
    assert!(
        laptop_reaches(&lab, server_ll, SSH_PORT)?,
        "and the same probe that found it shut now connects"
    );
    spad.wait_for_log(
        "door opened for the link-local address",
        Duration::from_secs(5),
        |l| l.contains("door opened") && l.contains(&laptop_ll.to_string()),
    )?;
    Ok(())
}
