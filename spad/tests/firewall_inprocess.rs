//! The nftables backend through in-process libnftables, against a real
//! kernel. A firewall only uses the library in its own network namespace
//! (netns None), so this test binary re-runs itself inside the lab's server
//! namespace (`ip netns exec`), where the ignored `in_process_half` test
//! opens doors through the library and reads them back with `nft list set`;
//! the outer test then checks that clients really get through. Needs root.
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

    // With netns None and the library installed, setup picks the library.
    let mut fw = Firewall::setup(local_settings(), &doors).unwrap();
    assert_eq!(fw.nft_engine(), NftEngine::Library);
    fw.open("ssh", ip(CLIENT_A), 30).unwrap();
    assert!(list_set("ssh_v4").contains("192.0.2.2 timeout 30s"));
    drop(fw);

    // A fresh setup closes every door; asking for the library explicitly.
    let mut fw =
        Firewall::setup_with_nft_engine(local_settings(), &doors, Some(NftEngine::Library))
            .unwrap();
    assert_eq!(fw.nft_engine(), NftEngine::Library);
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

    // One bad entry (a timeout nftables refuses) and one unknown door do
    // not stop the rest of the batch.
    let results = fw.open_many(&[
        ("web", ip("10.8.0.1"), 60),
        ("web", ip("10.8.0.2"), u32::MAX),
        ("nope", ip("10.8.0.3"), 60),
        ("web", ip("::ffff:10.8.0.4"), 60),
    ]);
    assert!(results[0].is_ok(), "{results:?}");
    match &results[1] {
        Err(FirewallError::NftLibrary { message, .. }) => {
            assert!(message.contains("value too large"), "{message}")
        }
        other => panic!("expected libnftables to refuse the timeout, got {other:?}"),
    }
    assert!(matches!(&results[2], Err(FirewallError::UnknownDoor(d)) if d == "nope"));
    assert!(results[3].is_ok(), "{results:?}");
    let web = list_set("web_v4");
    assert!(
        web.contains("10.8.0.1 timeout 1m") && web.contains("10.8.0.4 timeout 1m"),
        "{web}"
    );
    assert!(!web.contains("10.8.0.2"), "{web}");

    // close_many: half the batch goes, the rest stays.
    let closes: Vec<(&str, IpAddr)> = addrs[..50].iter().map(|a| ("ssh", *a)).collect();
    assert!(fw.close_many(&closes).iter().all(Result::is_ok));
    let listed = list_set("ssh_v4");
    assert_eq!(listed.matches("timeout 1m30s").count(), 50, "{listed}");
    assert!(!listed.contains(&format!("{} ", addrs[0])), "{listed}");

    // The long-lived context sees changes made behind its back.
    run(&["nft", "flush", "set", "inet", "spad", "ssh_v4"]);
    fw.open("ssh", ip(CLIENT_B), 60).unwrap();
    let listed = list_set("ssh_v4");
    assert!(listed.contains("198.51.100.2 timeout 1m"), "{listed}");
    assert_eq!(listed.matches(" expires ").count(), 1, "{listed}");

    // Errors name what libnftables said, as nft would print it.
    run(&["nft", "delete", "table", "inet", "spad"]);
    let err = fw.open("ssh", ip(CLIENT_A), 60).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("libnftables refused") && text.contains("No such file or directory"),
        "{text}"
    );

    // Leave A's door open for the outer test to walk through.
    let mut fw = Firewall::setup(local_settings(), &doors).unwrap();
    fw.open("ssh", ip(CLIENT_A), 60).unwrap();
}

#[test]
fn the_library_is_refused_for_another_namespace() {
    let settings = FirewallSettings {
        netns: Some("spa-no-such-ns".into()),
        ..local_settings()
    };
    let err = Firewall::setup_with_nft_engine(settings, &[], Some(NftEngine::Library))
        .expect_err("the library cannot reach another namespace");
    assert!(
        matches!(err, FirewallError::NftLibraryUnavailable(_)),
        "{err}"
    );
    assert!(err.to_string().contains("spa-no-such-ns"), "{err}");
}
