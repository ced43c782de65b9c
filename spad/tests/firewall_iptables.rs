//! The iptables backend against a real kernel, inside network namespaces
//! of the test's own: spad's chain drops door ports, open inserts exactly
//! one accept rule per port (never a duplicate), close removes it,
//! reconfigure keeps open doors, teardown removes chain and jump. Needs root.
#![allow(clippy::unwrap_used)]

mod firewall_support;

use firewall_support::*;
use spad::firewall::{BackendKind, DoorSpec, Firewall, FirewallSettings};

fn settings(lab: &Lab, stealth: bool) -> FirewallSettings {
    FirewallSettings {
        table: "spad".into(),
        spa_port: 62210,
        stealth,
        netns: Some(lab.server.name.clone()),
        other_udp_ports: Vec::new(),
    }
}

fn ipt_door(name: &str, ports: &[&str]) -> DoorSpec {
    DoorSpec {
        name: name.into(),
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
        backend: BackendKind::Iptables,
    }
}

/// `iptables -S SPAD` (or ip6tables) in the server namespace.
fn chain(lab: &Lab, program: &str) -> String {
    lab.server.exec(&[program, "-w", "-S", "SPAD"])
}

#[test]
#[ignore = "needs root"]
fn open_inserts_one_rule_close_removes_it() {
    let lab = Lab::new();
    let _ssh = lab.server.listen_tcp(22);
    let mut fw = Firewall::setup(settings(&lab, false), &[ipt_door("ssh", &["tcp/22"])]).unwrap();
    assert!(
        !fw.kernel_closes("ssh"),
        "iptables doors are closed by spad's timers"
    );

    for program in ["iptables", "ip6tables"] {
        let input = lab.server.exec(&[program, "-w", "-S", "INPUT"]);
        assert!(input.contains("-A INPUT -j SPAD"), "{program}: {input}");
        let rules = chain(&lab, program);
        assert!(rules.contains("--dport 22 -j DROP"), "{program}: {rules}");
    }
    assert!(
        !lab.a_connects(22) && !lab.b_connects(22),
        "closed after setup"
    );

    fw.open("ssh", ip(CLIENT_A), 30).unwrap();
    assert!(lab.a_connects(22), "A opened the door");
    assert!(!lab.b_connects(22), "B did not");
    fw.open("ssh", ip(CLIENT_A), 30).unwrap();
    let rules = chain(&lab, "iptables");
    assert_eq!(
        rules.matches("-s 192.0.2.2/32").count(),
        1,
        "re-opening adds no duplicate:\n{rules}"
    );
    assert!(
        rules.starts_with("-N SPAD\n-A SPAD -s 192.0.2.2/32 -p tcp -m tcp --dport 22"),
        "the accept goes first:\n{rules}"
    );
    assert_eq!(fw.timer_open("ssh"), [ip(CLIENT_A)]);

    fw.close("ssh", ip(CLIENT_A)).unwrap();
    assert!(!chain(&lab, "iptables").contains("192.0.2.2"));
    assert!(!lab.a_connects(22), "closed again");
    fw.close("ssh", ip(CLIENT_A)).unwrap();
    assert!(fw.timer_open("ssh").is_empty());

    fw.open("ssh", ip(CLIENT_A_V6), 30).unwrap();
    assert!(chain(&lab, "ip6tables").contains("-s 2001:db8:a::2/128"));
    assert!(lab.a_connects_v6(22), "A opened the door over IPv6");
    assert!(!lab.a_connects(22), "IPv4 stays closed");
    fw.close("ssh", ip(CLIENT_A_V6)).unwrap();
    assert!(!lab.a_connects_v6(22));

    fw.teardown().unwrap();
}

#[test]
#[ignore = "needs root"]
fn reconfigure_keeps_open_doors_and_teardown_removes_chain_and_jump() {
    let lab = Lab::new();
    let _listeners: Vec<_> = [22, 80].map(|p| lab.server.listen_tcp(p)).into();
    let doors = [ipt_door("ssh", &["tcp/22"]), ipt_door("web", &["tcp/80"])];
    let _first = Firewall::setup(settings(&lab, false), &doors).unwrap();
    let mut fw = Firewall::setup(settings(&lab, false), &doors).unwrap();
    let input = lab.server.exec(&["iptables", "-w", "-S", "INPUT"]);
    assert_eq!(
        input.matches("-j SPAD").count(),
        1,
        "a second setup adds no second jump:\n{input}"
    );

    fw.open("ssh", ip(CLIENT_A), 60).unwrap();
    fw.open("web", ip(CLIENT_A), 60).unwrap();
    fw.reconfigure(&[ipt_door("ssh", &["tcp/22"])]).unwrap();
    assert!(lab.a_connects(22), "ssh stayed: A's open door survives");
    assert!(
        lab.b_connects(80),
        "web is gone: port 80 is no longer guarded"
    );
    assert!(!chain(&lab, "iptables").contains("spad:web"));
    assert!(fw.timer_open("web").is_empty());

    fw.teardown().unwrap();
    for program in ["iptables", "ip6tables"] {
        let all = lab.server.exec(&[program, "-w", "-S"]);
        assert!(
            !all.contains("SPAD"),
            "{program} still has spad's chain:\n{all}"
        );
    }
    assert!(lab.b_connects(22), "nothing is guarded after teardown");
    fw.teardown().unwrap();
}

#[test]
#[ignore = "needs root"]
fn stealth_goes_to_iptables_when_only_iptables_doors_exist() {
    let lab = Lab::new();
    let spa = ip(SERVER_FOR_A);
    assert!(lab.client_a.udp_refused(spa, 62210));
    let mut fw = Firewall::setup(settings(&lab, true), &[ipt_door("ssh", &["tcp/22"])]).unwrap();
    assert!(chain(&lab, "iptables").contains("-p udp -m udp --dport 62210 -j DROP"));
    assert!(
        !lab.server
            .exec(&["nft", "list", "tables"])
            .contains("inet spad"),
        "no nftables table when no door uses nftables"
    );
    assert!(
        !lab.client_a.udp_refused(spa, 62210),
        "with stealth no ICMP comes back"
    );
    fw.teardown().unwrap();
    assert!(lab.client_a.udp_refused(spa, 62210));
}

#[test]
#[ignore = "needs root"]
fn the_documented_drop_policy_script_works_with_spads_chain() {
    let lab = Lab::new();
    let _ssh = lab.server.listen_tcp(22);
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../conf/iptables-example.sh");
    lab.server.exec(&["sh", example]);
    assert!(!lab.a_connects(22), "the example's policy drops");

    let mut fw = Firewall::setup(settings(&lab, false), &[ipt_door("ssh", &["tcp/22"])]).unwrap();
    let input = lab.server.exec(&["iptables", "-w", "-S", "INPUT"]);
    assert!(
        input.contains("-P INPUT DROP\n-A INPUT -j SPAD\n"),
        "the jump comes first:\n{input}"
    );
    fw.open("ssh", ip(CLIENT_A), 30).unwrap();
    assert!(lab.a_connects(22), "an ACCEPT in SPAD is final for INPUT");
    assert!(!lab.b_connects(22));

    fw.teardown().unwrap();
    assert!(!lab.a_connects(22), "without spad's chain the policy drops");
}
