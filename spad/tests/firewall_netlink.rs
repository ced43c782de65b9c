//! The nftables backend over netlink in spad's OWN network namespace
//! (netns None, as the daemon runs by default), against a real kernel: this
//! test binary re-runs itself inside the lab's server namespace (`ip netns
//! exec`), where the ignored `in_process_half` test opens doors with
//! netlink batches and reads them back with `nft list set`; the outer test
//! then checks that clients really get through. Needs root.
#![allow(clippy::unwrap_used)]

mod firewall_support;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use firewall_support::*;
use spad::firewall::{BackendKind, DoorSpec, Firewall, FirewallError, FirewallSettings, NftEngine};

/// Set by the outer test for the inner half: the namespace it runs in.
const INNER_NETNS: &str = "SPAD_TEST_INPROCESS_NETNS";

fn nft_door(name: &str, ports: &[&str]) -> DoorSpec {
    DoorSpec {
        name: name.into(),
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
        backend: BackendKind::Nftables,
    }
}

fn local_settings() -> FirewallSettings {
    FirewallSettings {
        table: "spad".into(),
        spa_port: 62210,
        stealth: false,
        other_udp_ports: Vec::new(),
        netns: None,
    }
}

fn list_set(name: &str) -> String {
    run(&["nft", "list", "set", "inet", "spad", name])
}

/// 10.9.x.y, distinct for every n < 65536.
fn batch_address(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 9, (n >> 8) as u8, n as u8))
}

#[test]
#[ignore = "needs root"]
fn doors_opened_in_process_are_in_the_kernel_and_let_the_client_in() {
    let lab = Lab::new();
    let _ssh = lab.server.listen_tcp(22);
    let me = std::env::current_exe().unwrap();
    let inner = Command::new("ip")
        .args(["netns", "exec", &lab.server.name])
        .arg(me)
        .args([
            "--exact",
            "in_process_half",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER_NETNS, &lab.server.name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&inner.stdout);
    let stderr = String::from_utf8_lossy(&inner.stderr);
    assert!(
        inner.status.success() && stdout.contains("test in_process_half ... ok"),
        "the in-namespace half failed ({}):\n{stdout}\n{stderr}",
        inner.status
    );

    // The inner half left spad's table with A's door open for 60 s.
    assert!(lab.a_connects(22), "A's door, opened in-process, lets A in");
    assert!(!lab.b_connects(22), "B opened nothing");
    let rules = lab
        .server
        .exec(&["nft", "list", "set", "inet", "spad", "ssh_v4"]);
    assert!(rules.contains("192.0.2.2 timeout 1m"), "{rules}");
}

#[test]
#[ignore = "the inner half of doors_opened_in_process_are_in_the_kernel_and_let_the_client_in, \
            which runs it inside its namespace"]
fn in_process_half() {
    let netns = std::env::var(INNER_NETNS)
        .expect("run by doors_opened_in_process_are_in_the_kernel_and_let_the_client_in");
    assert_eq!(
        run(&["ip", "netns", "identify"]).trim(),
        netns,
        "must run inside the lab's namespace, never on the host"
    );
    let doors = [nft_door("ssh", &["tcp/22"]), nft_door("web", &["tcp/443"])];

    // With netns None, setup speaks netlink in this namespace.
    let mut fw = Firewall::setup(local_settings(), &doors).unwrap();
    assert_eq!(fw.nft_engine(), NftEngine::Netlink);
    fw.open("ssh", ip(CLIENT_A), 30).unwrap();
    assert!(list_set("ssh_v4").contains("192.0.2.2 timeout 30s"));
    drop(fw);

    // A fresh setup closes every door; asking for netlink explicitly.
    let mut fw =
        Firewall::setup_with_nft_engine(local_settings(), &doors, Some(NftEngine::Netlink))
            .unwrap();
    assert_eq!(fw.nft_engine(), NftEngine::Netlink);
    assert!(
        !list_set("ssh_v4").contains("192.0.2.2"),
        "setup starts closed"
    );

    // One open: the element carries its timeout; extending replaces it.
    fw.open("ssh", ip(CLIENT_A), 20).unwrap();
    assert!(list_set("ssh_v4").contains("192.0.2.2 timeout 20s"));
    fw.open("ssh", ip(CLIENT_A), 60).unwrap();
    let listed = list_set("ssh_v4");
    assert!(listed.contains("192.0.2.2 timeout 1m"), "{listed}");
    assert_eq!(listed.matches("192.0.2.2").count(), 1, "{listed}");

    // A batch of 100 opens: 100 more elements, each with its timeout.
    let addrs: Vec<IpAddr> = (0..100).map(batch_address).collect();
    let opens: Vec<(&str, IpAddr, u32)> = addrs.iter().map(|a| ("ssh", *a, 90)).collect();
    let results = fw.open_many(&opens);
    assert_eq!(results.len(), 100);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let listed = list_set("ssh_v4");
    assert_eq!(listed.matches("timeout 1m30s").count(), 100, "{listed}");
    for addr in &addrs {
        assert!(
            listed.contains(&format!("{addr} timeout 1m30s")),
            "{addr}: {listed}"
        );
    }

    // An unknown door does not stop the rest of the batch; IPv4-mapped
    // addresses count as IPv4.
    let results = fw.open_many(&[
        ("web", ip("10.8.0.1"), 60),
        ("nope", ip("10.8.0.3"), 60),
        ("web", ip("::ffff:10.8.0.4"), 60),
    ]);
    assert!(results[0].is_ok(), "{results:?}");
    assert!(matches!(&results[1], Err(FirewallError::UnknownDoor(d)) if d == "nope"));
    assert!(results[2].is_ok(), "{results:?}");
    let web = list_set("web_v4");
    assert!(
        web.contains("10.8.0.1 timeout 1m") && web.contains("10.8.0.4 timeout 1m"),
        "{web}"
    );

    // close_many: half the batch goes, the rest stays.
    let closes: Vec<(&str, IpAddr)> = addrs[..50].iter().map(|a| ("ssh", *a)).collect();
    assert!(fw.close_many(&closes).iter().all(Result::is_ok));
    let listed = list_set("ssh_v4");
    assert_eq!(listed.matches("timeout 1m30s").count(), 50, "{listed}");
    assert!(!listed.contains(&format!("{} ", addrs[0])), "{listed}");

    // The long-lived socket sees changes made behind its back.
    run(&["nft", "flush", "set", "inet", "spad", "ssh_v4"]);
    fw.open("ssh", ip(CLIENT_B), 60).unwrap();
    let listed = list_set("ssh_v4");
    assert!(listed.contains("198.51.100.2 timeout 1m"), "{listed}");
    assert_eq!(listed.matches(" expires ").count(), 1, "{listed}");

    // Errors name the refused step and the kernel's reason.
    run(&["nft", "delete", "table", "inet", "spad"]);
    let err = fw.open("ssh", ip(CLIENT_A), 60).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("nftables refused `add element inet spad ssh_v4 { 192.0.2.2 timeout 60s }`")
            && text.contains("No such file or directory"),
        "{text}"
    );

    // Leave A's door open for the outer test to walk through.
    let mut fw = Firewall::setup(local_settings(), &doors).unwrap();
    fw.open("ssh", ip(CLIENT_A), 60).unwrap();
}

#[test]
#[ignore = "needs root"]
fn a_namespace_that_does_not_exist_is_refused_with_its_name() {
    let settings = FirewallSettings {
        netns: Some("spa-nf-no-such-ns".into()),
        ..local_settings()
    };
    let err = Firewall::setup(settings, &[nft_door("ssh", &["tcp/22"])])
        .expect_err("no socket can be opened in a namespace that does not exist");
    assert!(matches!(err, FirewallError::NftNetlink(_)), "{err}");
    assert!(
        err.to_string().contains("/run/netns/spa-nf-no-such-ns"),
        "{err}"
    );
}
