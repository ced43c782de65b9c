//! Tests of the harness itself: the network it builds carries traffic, the
//! probes tell open from shut, and the capture sees what a host sends back
//! (so "the capture is empty" in the door tests means something).

use std::net::SocketAddr;
use std::time::Duration;

use spa_e2e::capture::PacketCapture;
use spa_e2e::lab::{Lab, CONNECT_TIMEOUT, LAPTOP_V4, PLAIN_PORT, SERVER_V4, SERVER_V6};
use spa_e2e::probe::{connect_ok, udp_send};
use spa_e2e::Result;

#[test]
#[ignore = "needs root"]
fn lab_network_carries_ipv4_and_ipv6_and_probes_tell_open_from_shut() -> Result<()> {
    let lab = Lab::new()?;
    assert!(connect_ok(
        &lab.laptop,
        SERVER_V4.into(),
        PLAIN_PORT,
        CONNECT_TIMEOUT
    )?);
    assert!(connect_ok(
        &lab.laptop,
        SERVER_V6.into(),
        PLAIN_PORT,
        CONNECT_TIMEOUT
    )?);
    assert!(lab.other_connects(PLAIN_PORT)?);
    // Nothing listens on 9: refused, not open.
    assert!(!connect_ok(
        &lab.laptop,
        SERVER_V4.into(),
        9,
        CONNECT_TIMEOUT
    )?);
    // A dropped SYN times out: shut too, and within the timeout.
    lab.server.run("nft", ["add table inet t; add chain inet t in { type filter hook input priority 0; }; add rule inet t in tcp dport 8080 drop"])?;
    let started = std::time::Instant::now();
    assert!(!lab.laptop_connects(PLAIN_PORT)?);
    assert!(started.elapsed() < CONNECT_TIMEOUT + Duration::from_secs(1));
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn capture_records_an_icmp_reply_and_not_the_arp_noise() -> Result<()> {
    let lab = Lab::new()?;
    let capture = PacketCapture::start(&lab.server, &lab.dir.path().join("sent.pcap"))?;
    // Nothing listens on UDP 9 and no firewall hides it: the kernel answers with ICMP.
    udp_send(
        &lab.laptop,
        b"are you there",
        SocketAddr::new(SERVER_V4.into(), 9),
        lab.dir.path(),
    )?;
    let sent = capture.stop()?;
    assert!(
        sent.iter()
            .any(|l| l.contains("ICMP") && l.contains(&format!("{SERVER_V4} > {LAPTOP_V4}"))),
        "expected an ICMP port unreachable in {sent:#?}"
    );
    assert!(sent.iter().all(|l| !l.contains("ARP")), "{sent:#?}");
    Ok(())
}
