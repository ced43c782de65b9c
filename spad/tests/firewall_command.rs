//! The command backend: templates are filled in per argument and run
//! without a shell, inside spad's network namespace, once per port when
//! they name a port; a command past its time limit is killed; a failing
//! command's status and stderr reach the error; spad adds no drop rule.
//! Needs root (for the namespace).
#![allow(clippy::unwrap_used)]

mod firewall_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use firewall_support::*;
use spad::firewall::{
    BackendKind, CommandTemplates, DoorSpec, Firewall, FirewallError, FirewallSettings,
};

fn settings(ns: &Netns) -> FirewallSettings {
    FirewallSettings {
        table: "spad".into(),
        spa_port: 62210,
        stealth: false,
        netns: Some(ns.name.clone()),
        other_udp_ports: Vec::new(),
    }
}

fn command_door(
    name: &str,
    ports: &[&str],
    open: &str,
    close: Option<&str>,
    timeout: Duration,
) -> DoorSpec {
    DoorSpec {
        name: name.into(),
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
        backend: BackendKind::Command(CommandTemplates::parse(open, close, timeout).unwrap()),
    }
}

fn files_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
#[ignore = "needs root"]
fn templates_are_filled_in_and_run_per_port_and_close_only_what_was_opened() {
    require_root();
    let ns = Netns::new("c");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let door = command_door(
        "knock",
        &["tcp/22", "udp/53"],
        &format!("touch {d}/{{door}}_%IP%_{{proto}}{{port}}_{{seconds}}s"),
        Some(&format!("rm {d}/{{door}}_{{ip}}_{{proto}}{{port}}_30s")),
        Duration::from_secs(5),
    );
    let mut fw = Firewall::setup(settings(&ns), &[door]).unwrap();
    assert!(!fw.kernel_closes("knock"));
    assert_eq!(
        ns.exec(&["nft", "list", "ruleset"]).trim(),
        "",
        "command doors get no nftables rule"
    );
    assert!(
        !ns.exec(&["iptables", "-w", "-S"]).contains("SPAD"),
        "nor an iptables chain"
    );

    fw.close("knock", ip(CLIENT_A)).unwrap();
    assert!(
        files_in(dir.path()).is_empty(),
        "closing a door never opened runs nothing"
    );

    fw.open("knock", ip(CLIENT_A), 30).unwrap();
    assert_eq!(
        files_in(dir.path()),
        names(&["knock_192.0.2.2_tcp22_30s", "knock_192.0.2.2_udp53_30s"])
    );
    fw.close("knock", ip(CLIENT_A)).unwrap();
    assert!(
        files_in(dir.path()).is_empty(),
        "the close command ran once per port"
    );

    fw.open("knock", ip(CLIENT_A_V6), 30).unwrap();
    assert_eq!(files_in(dir.path()).len(), 2);
    fw.teardown().unwrap();
    assert!(
        files_in(dir.path()).is_empty(),
        "teardown closes what is still open"
    );
}

#[test]
#[ignore = "needs root"]
fn no_shell_ever_sees_the_arguments() {
    require_root();
    let ns = Netns::new("c");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let door = command_door(
        "literal",
        &[],
        &format!("touch '{d}/one;touch two' '{d}/$(echo three)' {d}/`id`>x"),
        None,
        Duration::from_secs(5),
    );
    let mut fw = Firewall::setup(settings(&ns), &[door]).unwrap();
    fw.open("literal", ip(CLIENT_A), 10).unwrap();
    // A shell would have made "one", "three", "uid=0(root)..." and "x".
    assert_eq!(
        files_in(dir.path()),
        names(&["one;touch two", "$(echo three)", "`id`>x"])
    );
}

#[test]
#[ignore = "needs root"]
fn commands_run_inside_spads_network_namespace() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("addrs");
    let door = command_door(
        "where",
        &[],
        &format!("sh -c 'ip -o addr show > \"$1\"' sh {}", out.display()),
        None,
        Duration::from_secs(5),
    );
    let mut fw = Firewall::setup(settings(&lab.server), &[door]).unwrap();
    fw.open("where", ip(CLIENT_A), 10).unwrap();
    let addrs = std::fs::read_to_string(&out).unwrap();
    assert!(
        addrs.contains("192.0.2.1/24") && addrs.contains("198.51.100.1/24"),
        "{addrs}"
    );
}

#[test]
#[ignore = "needs root"]
fn a_command_past_its_timeout_is_killed() {
    require_root();
    let ns = Netns::new("c");
    let door = command_door("slow", &[], "sleep 10", None, Duration::from_millis(500));
    let mut fw = Firewall::setup(settings(&ns), &[door]).unwrap();
    let started = Instant::now();
    let err = fw.open("slow", ip(CLIENT_A), 10).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, FirewallError::TimedOut { .. }), "{err}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(err.to_string().contains("sleep 10"), "{err}");
    assert!(
        fw.timer_open("slow").is_empty(),
        "a door whose command failed is not open"
    );
}

#[test]
#[ignore = "needs root"]
fn a_failing_command_reports_status_and_stderr() {
    require_root();
    let ns = Netns::new("c");
    let door = command_door(
        "broken",
        &[],
        "sh -c 'echo no such rule for $0 >&2; exit 4' {ip}",
        None,
        Duration::from_secs(5),
    );
    let mut fw = Firewall::setup(settings(&ns), &[door]).unwrap();
    let err = fw.open("broken", ip(CLIENT_B), 10).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("exit status: 4"), "{text}");
    assert!(text.contains("no such rule for 198.51.100.2"), "{text}");
}

#[test]
#[ignore = "needs root"]
fn reconfigure_runs_the_close_command_of_doors_that_go_away() {
    require_root();
    let ns = Netns::new("c");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let door = |name: &str| {
        command_door(
            name,
            &[],
            &format!("touch {d}/{{door}}-{{ip}}"),
            Some(&format!("rm {d}/{{door}}-{{ip}}")),
            Duration::from_secs(5),
        )
    };
    let mut fw = Firewall::setup(settings(&ns), &[door("stay"), door("go")]).unwrap();
    fw.open("stay", ip(CLIENT_A), 60).unwrap();
    fw.open("go", ip(CLIENT_A), 60).unwrap();
    fw.reconfigure(&[door("stay")]).unwrap();
    assert_eq!(files_in(dir.path()), names(&["stay-192.0.2.2"]));
    assert_eq!(fw.timer_open("stay"), [ip(CLIENT_A)]);
    fw.teardown().unwrap();
    assert!(files_in(dir.path()).is_empty());
}
