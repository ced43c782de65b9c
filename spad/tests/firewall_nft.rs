//! The nftables backend against a real kernel, inside network namespaces
//! of the test's own: doors closed after setup, open for exactly the
//! address given, closed again by the kernel's timeout, extended, closed,
//! reconfigured and torn down; stealth answers no ICMP. Needs root.
#![allow(clippy::unwrap_used)]

mod firewall_support;

use std::thread::sleep;
use std::time::{Duration, Instant};

use firewall_support::*;
use spad::firewall::{BackendKind, DoorSpec, Firewall, FirewallError, FirewallSettings, NftEngine};

fn settings(lab: &Lab, stealth: bool) -> FirewallSettings {
    FirewallSettings {
        table: "spad".into(),
        spa_port: 62210,
        stealth,
        netns: Some(lab.server.name.clone()),
        other_udp_ports: Vec::new(),
    }
}

fn nft_door(name: &str, ports: &[&str]) -> DoorSpec {
    DoorSpec {
        name: name.into(),
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
        backend: BackendKind::Nftables,
    }
}

fn ruleset(lab: &Lab) -> String {
    lab.server.exec(&["nft", "list", "ruleset"])
}

fn set(lab: &Lab, name: &str) -> String {
    lab.server
        .exec(&["nft", "list", "set", "inet", "spad", name])
}

#[test]
#[ignore = "needs root"]
fn a_door_opens_for_one_address_and_the_kernel_closes_it_on_time() {
    let lab = Lab::new();
    let _ssh = lab.server.listen_tcp(22);
    let _other = lab.server.listen_tcp(8080);
    let mut fw = Firewall::setup(settings(&lab, false), &[nft_door("ssh", &["tcp/22"])]).unwrap();
    assert!(fw.kernel_closes("ssh"));

    let rules = ruleset(&lab);
    assert!(rules.contains("table inet spad"), "{rules}");
    assert!(
        rules.contains("set ssh_v4") && rules.contains("set ssh_v6"),
        "{rules}"
    );
    assert!(rules.contains("tcp dport 22 drop"), "{rules}");
    assert!(
        !rules.contains("elements"),
        "no door may be open after setup:\n{rules}"
    );

    assert!(!lab.a_connects(22), "the door must be closed after setup");
    assert!(!lab.b_connects(22), "the door must be closed after setup");
    assert!(
        lab.a_connects(8080),
        "ports that are no door stay reachable"
    );

    fw.open("ssh", ip(CLIENT_A), 2).unwrap();
    let opened_at = Instant::now();
    assert!(lab.a_connects(22), "A opened the door");
    assert!(!lab.b_connects(22), "B did not open the door");
    assert!(
        !lab.a_connects_v6(22),
        "A's IPv6 address did not open the door"
    );
    assert!(set(&lab, "ssh_v4").contains("192.0.2.2 timeout 2s"));

    // No close(): the kernel's element timeout must shut the door.
    sleep(Duration::from_millis(2300).saturating_sub(opened_at.elapsed()));
    assert!(!lab.a_connects(22), "the kernel closed the door after 2 s");
    assert!(!set(&lab, "ssh_v4").contains("192.0.2.2"));

    fw.open("ssh", ip(CLIENT_A_V6), 30).unwrap();
    assert!(lab.a_connects_v6(22), "A opened the door over IPv6");
    assert!(!lab.a_connects(22), "IPv4 stays closed");
    assert!(set(&lab, "ssh_v6").contains("2001:db8:a::2 timeout 30s"));
    fw.teardown().unwrap();
}

#[test]
#[ignore = "needs root"]
fn extending_sets_the_new_timeout_and_closing_is_idempotent() {
    let lab = Lab::new();
    let _ssh = lab.server.listen_tcp(22);
    let _web = lab.server.listen_tcp(443);
    let mut fw = Firewall::setup(
        settings(&lab, false),
        &[
            nft_door("ssh", &["tcp/22"]),
            nft_door("9web", &["tcp/443", "udp/443"]),
        ],
    )
    .unwrap();

    fw.open("ssh", ip(CLIENT_A), 30).unwrap();
    fw.open("ssh", ip(CLIENT_A), 90).unwrap();
    let listed = set(&lab, "ssh_v4");
    assert!(listed.contains("192.0.2.2 timeout 1m30s"), "{listed}");
    assert_eq!(listed.matches("192.0.2.2").count(), 1, "{listed}");
    // Extending may also shorten: the new time replaces the old.
    fw.open("ssh", ip(CLIENT_A), 45).unwrap();
    assert!(set(&lab, "ssh_v4").contains("192.0.2.2 timeout 45s"));

    // An IPv4-mapped IPv6 address is the IPv4 address.
    fw.open("9web", ip("::ffff:198.51.100.2"), 60).unwrap();
    assert!(set(&lab, "_9web_v4").contains("198.51.100.2 timeout 1m"));
    assert!(lab.b_connects(443));
    assert!(!lab.b_connects(22), "opening one door opens no other");

    fw.close("ssh", ip(CLIENT_A)).unwrap();
    assert!(!lab.a_connects(22), "closed");
    assert!(!set(&lab, "ssh_v4").contains("192.0.2.2"));
    fw.close("ssh", ip(CLIENT_A)).unwrap();
    fw.close("ssh", ip(CLIENT_A_V6)).unwrap();
    fw.open("ssh", ip(CLIENT_A), 0).unwrap();
    assert!(!lab.a_connects(22), "opening for 0 seconds closes");

    match fw.open("nope", ip(CLIENT_A), 10) {
        Err(FirewallError::UnknownDoor(name)) => assert_eq!(name, "nope"),
        other => panic!("expected UnknownDoor, got {other:?}"),
    }
    fw.teardown().unwrap();
}

#[test]
#[ignore = "needs root"]
fn stealth_makes_the_spa_port_silent() {
    let lab = Lab::new();
    let spa = ip(SERVER_FOR_A);
    let mut fw = Firewall::setup(settings(&lab, false), &[nft_door("ssh", &["tcp/22"])]).unwrap();
    assert!(
        lab.client_a.udp_refused(spa, 62210),
        "without stealth the kernel answers ICMP"
    );
    fw.teardown().unwrap();

    let mut fw = Firewall::setup(settings(&lab, true), &[nft_door("ssh", &["tcp/22"])]).unwrap();
    assert!(ruleset(&lab).contains("udp dport 62210 drop"));
    assert!(
        !lab.client_a.udp_refused(spa, 62210),
        "with stealth no ICMP comes back"
    );
    fw.teardown().unwrap();

    // Stealth alone (no door at all) still gets spad's table.
    let mut fw = Firewall::setup(settings(&lab, true), &[]).unwrap();
    assert!(!lab.client_a.udp_refused(spa, 62210));
    fw.teardown().unwrap();
    assert!(lab.client_a.udp_refused(spa, 62210));
}

#[test]
#[ignore = "needs root"]
fn setup_is_idempotent_reconfigure_keeps_open_doors_and_teardown_removes_all() {
    let lab = Lab::new();
    let _listeners: Vec<_> = [22, 80, 5432].map(|p| lab.server.listen_tcp(p)).into();
    let doors = [nft_door("ssh", &["tcp/22"]), nft_door("web", &["tcp/80"])];

    let first = Firewall::setup(settings(&lab, false), &doors).unwrap();
    let after_first = ruleset(&lab);
    let mut fw = Firewall::setup(settings(&lab, false), &doors).unwrap();
    assert_eq!(
        ruleset(&lab),
        after_first,
        "a second setup gives the same ruleset"
    );
    drop(first);

    fw.open("ssh", ip(CLIENT_A), 60).unwrap();
    fw.open("web", ip(CLIENT_A), 60).unwrap();
    fw.reconfigure(&[nft_door("ssh", &["tcp/22"]), nft_door("db", &["tcp/5432"])])
        .unwrap();
    assert!(
        lab.a_connects(22),
        "ssh stayed configured: A's open door survives"
    );
    assert!(!lab.a_connects(5432), "the new door starts closed");
    assert!(
        lab.b_connects(80),
        "web is no door any more: port 80 is not guarded"
    );
    let rules = ruleset(&lab);
    assert!(
        !rules.contains("web_v4"),
        "the removed door's sets are gone:\n{rules}"
    );
    assert!(matches!(
        fw.open("web", ip(CLIENT_A), 5),
        Err(FirewallError::UnknownDoor(_))
    ));

    // A setup (e.g. after a restart) starts from closed doors.
    let mut fw = Firewall::setup(settings(&lab, false), &[nft_door("ssh", &["tcp/22"])]).unwrap();
    assert!(!lab.a_connects(22));

    fw.teardown().unwrap();
    assert_eq!(ruleset(&lab).trim(), "", "teardown leaves an empty ruleset");
    assert!(lab.b_connects(22), "after teardown nothing is guarded");
    fw.teardown().unwrap();
}

#[test]
#[ignore = "needs root"]
fn the_documented_drop_policy_ruleset_works_with_spads_table() {
    let lab = Lab::new();
    let _ssh = lab.server.listen_tcp(22);
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../conf/nftables-example.nft");
    lab.server.exec(&["nft", "-f", example]);
    assert!(!lab.a_connects(22), "the example's policy drops");

    let mut fw = Firewall::setup(settings(&lab, false), &[nft_door("ssh", &["tcp/22"])]).unwrap();
    assert!(!lab.a_connects(22) && !lab.b_connects(22));
    fw.open("ssh", ip(CLIENT_A), 30).unwrap();
    assert!(
        lab.a_connects(22),
        "the user's chain lets spad's opened door through"
    );
    assert!(!lab.b_connects(22));

    fw.teardown().unwrap();
    assert!(
        !lab.a_connects(22),
        "without spad's table the port fails closed"
    );
    let rules = ruleset(&lab);
    assert!(
        rules.contains("table inet filter") && !rules.contains("inet spad"),
        "{rules}"
    );
}

#[test]
#[ignore = "needs root"]
fn a_setup_without_nftables_doors_removes_a_stale_table() {
    let lab = Lab::new();
    let crashed = Firewall::setup(settings(&lab, false), &[nft_door("ssh", &["tcp/22"])]).unwrap();
    drop(crashed); // no teardown: as if spad had died
    assert!(ruleset(&lab).contains("table inet spad"));

    let iptables_door = DoorSpec {
        backend: BackendKind::Iptables,
        ..nft_door("ssh", &["tcp/22"])
    };
    let mut fw = Firewall::setup(settings(&lab, false), &[iptables_door]).unwrap();
    assert!(
        !ruleset(&lab).contains("table inet spad"),
        "{}",
        ruleset(&lab)
    );
    fw.teardown().unwrap();
}

#[test]
#[ignore = "needs root"]
fn a_batch_opens_and_closes_many_doors_in_one_go_and_a_bad_entry_fails_alone() {
    let lab = Lab::new();
    let _ssh = lab.server.listen_tcp(22);
    let _web = lab.server.listen_tcp(443);
    let mut fw = Firewall::setup(
        settings(&lab, false),
        &[nft_door("ssh", &["tcp/22"]), nft_door("web", &["tcp/443"])],
    )
    .unwrap();
    assert_eq!(
        fw.nft_engine(),
        NftEngine::Netlink,
        "the netlink socket is opened inside the namespace"
    );

    let results = fw.open_many(&[
        ("ssh", ip(CLIENT_A), 60),
        ("ssh", ip(CLIENT_A_V6), 60),
        ("web", ip(CLIENT_B), 30),
        ("ssh", ip("10.0.0.7"), 10),
        ("ssh", ip("10.0.0.7"), 40), // the later entry wins
    ]);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(lab.a_connects(22) && lab.a_connects_v6(22));
    assert!(lab.b_connects(443) && !lab.b_connects(22));
    let ssh = set(&lab, "ssh_v4");
    assert!(ssh.contains("192.0.2.2 timeout 1m"), "{ssh}");
    assert!(ssh.contains("10.0.0.7 timeout 40s"), "{ssh}");
    assert!(set(&lab, "web_v4").contains("198.51.100.2 timeout 30s"));

    let results = fw.close_many(&[
        ("ssh", ip(CLIENT_A)),
        ("web", ip(CLIENT_B)),
        ("ssh", ip("10.0.0.99")), // never open: fine
    ]);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(!lab.a_connects(22), "closed");
    assert!(!lab.b_connects(443), "closed");
    assert!(lab.a_connects_v6(22), "not in the close batch");
    assert!(fw.open_many(&[]).is_empty());

    // nftables refuses an entry (its set was deleted behind spad's back):
    // the batch is retried entry by entry, so only that entry fails, and
    // the error names the refused step and the kernel's reason.
    lab.server
        .exec(&["nft", "flush", "chain", "inet", "spad", "input"]);
    lab.server
        .exec(&["nft", "delete", "set", "inet", "spad", "web_v4"]);
    let results = fw.open_many(&[
        ("ssh", ip(CLIENT_B), 60),
        ("web", ip("10.0.0.8"), 60),
        ("gone", ip(CLIENT_A), 60),
    ]);
    assert!(results[0].is_ok(), "{results:?}");
    match &results[1] {
        Err(err @ FirewallError::NftRefused { op, message }) => {
            assert!(op.contains("web_v4") && op.contains("10.0.0.8"), "{op}");
            assert!(message.contains("No such file or directory"), "{message}");
            assert!(
                err.to_string()
                    .starts_with("nftables refused `add element inet spad web_v4"),
                "{err}"
            );
        }
        other => panic!("expected nftables to refuse the element, got {other:?}"),
    }
    assert!(matches!(&results[2], Err(FirewallError::UnknownDoor(_))));
    assert!(set(&lab, "ssh_v4").contains("198.51.100.2 timeout 1m"));
    fw.teardown().unwrap();
}

/// The netlink engine must leave exactly the ruleset the nft script
/// leaves (the same `nft list table` text), for every kind of rule: a
/// stealth drop, single ports, port lists (anonymous sets), TCP and UDP,
/// and elements with timeouts in both families.
#[test]
#[ignore = "needs root"]
fn the_netlink_batches_write_the_ruleset_the_nft_script_writes() {
    let lab = Lab::new();
    let doors = [
        nft_door("ssh", &["tcp/22"]),
        nft_door("multi", &["tcp/80", "tcp/443", "udp/53", "tcp/22"]),
        nft_door("9p", &["udp/564"]),
    ];
    let listed = |engine: NftEngine| {
        let mut fw =
            Firewall::setup_with_nft_engine(settings(&lab, true), &doors, Some(engine)).unwrap();
        assert_eq!(fw.nft_engine(), engine);
        let results = fw.open_many(&[
            ("ssh", ip(CLIENT_A), 3600),
            ("multi", ip(CLIENT_A_V6), 7200),
            ("9p", ip(CLIENT_B), 600),
        ]);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        // `expires` counts down: drop it, keep the timeouts.
        let text = lab.server.exec(&["nft", "list", "table", "inet", "spad"]);
        let text = text
            .split(" expires ")
            .enumerate()
            .map(|(i, part)| match i {
                0 => part.to_owned(),
                _ => part
                    .split_once(['}', ','])
                    .map_or(String::new(), |(_, rest)| {
                        let sep = &part[part.len() - rest.len() - 1..][..1];
                        format!("{sep}{rest}")
                    }),
            })
            .collect::<String>();
        fw.teardown().unwrap();
        text
    };
    let from_script = listed(NftEngine::Process);
    let from_netlink = listed(NftEngine::Netlink);
    assert!(
        from_script.contains("tcp dport { 22, 80, 443 } ip6 saddr @multi_v6"),
        "{from_script}"
    );
    assert!(from_script.contains("timeout 1h"), "{from_script}");
    assert_eq!(from_netlink, from_script);
}

/// A large door set is one transaction of about a thousand messages (each
/// two-port rule needs an anonymous set and its elements): it goes through,
/// reads back as set up, and a batch of 2,000 opens goes through too.
#[test]
#[ignore = "needs root"]
fn a_large_setup_and_a_large_batch_go_through_in_one_transaction_each() {
    let lab = Lab::new();
    let names: Vec<String> = (0..150).map(|n| format!("door{n}")).collect();
    let doors: Vec<DoorSpec> = names
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let a = format!("tcp/{}", 10_000 + 2 * n);
            let b = format!("tcp/{}", 10_001 + 2 * n);
            nft_door(name, &[a.as_str(), b.as_str()])
        })
        .collect();
    let mut fw = Firewall::setup(settings(&lab, true), &doors).unwrap();
    assert!(fw.check_intact().unwrap(), "the table reads back as set up");
    let listed = ruleset(&lab);
    assert_eq!(listed.matches(" accept\n").count(), 300 + 1, "{listed}");
    let addrs: Vec<std::net::IpAddr> = (0..2000u32)
        .map(|n| std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a10_0000 + n)))
        .collect();
    let opens: Vec<(&str, std::net::IpAddr, u32)> =
        addrs.iter().map(|a| ("door7", *a, 120)).collect();
    let results = fw.open_many(&opens);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(set(&lab, "door7_v4").matches("timeout 2m").count(), 2000);
    fw.teardown().unwrap();
}
