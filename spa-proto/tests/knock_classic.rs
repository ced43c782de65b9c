//! Conformance of the classic knock state machine (knockd semantics) with a
//! fake clock: orders, resets, timeouts, TCP-flag rules, UDP steps,
//! retransmitted SYNs, shared prefixes, concurrent clients, one-time lists,
//! and the memory bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use spa_proto::knock::{
    comment_out_one_time, parse_one_time_file, parse_sequence, ClassicDoor, KnockOutcome,
    KnockPacket, Knocker, TcpFlagsRule, Transport, TCP_ACK, TCP_SYN,
};
use spa_proto::DoorName;

const T0: u64 = 1_764_000_000_000;

/// The address knocks are sent to (the knocker is not told the host's
/// addresses unless a test is about destinations).
const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

fn name(s: &str) -> DoorName {
    s.parse().expect("valid door name")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("valid address")
}

fn door(door: &str, seq: &str, timeout_ms: u64, tcpflags: Option<&str>) -> ClassicDoor {
    let d = ClassicDoor {
        name: name(door),
        steps: parse_sequence(seq).expect("valid sequence"),
        seq_timeout_ms: timeout_ms,
        tcpflags: tcpflags.map(|f| f.parse().expect("valid tcpflags")),
        one_time: None,
        target: vec![],
    };
    d.validate().expect("valid door");
    d
}

/// A fake client: every TCP knock is a fresh connection attempt (new source
/// port and sequence number), as `knock` sends them.
struct Client {
    addr: IpAddr,
    next_port: u16,
}

impl Client {
    fn new(addr: &str) -> Self {
        Client {
            addr: ip(addr),
            next_port: 40_000,
        }
    }

    fn tcp_flags(&mut self, port: u16, flags: u8) -> KnockPacket {
        self.next_port += 1;
        KnockPacket {
            src: self.addr,
            dst: HOST,
            transport: Transport::Tcp,
            dst_port: port,
            tcp_flags: flags,
            src_port: self.next_port,
            tcp_seq: u32::from(self.next_port) * 7919,
        }
    }

    fn syn(&mut self, port: u16) -> KnockPacket {
        self.tcp_flags(port, TCP_SYN)
    }

    fn udp(&mut self, port: u16) -> KnockPacket {
        KnockPacket {
            src: self.addr,
            dst: HOST,
            transport: Transport::Udp,
            dst_port: port,
            tcp_flags: 0,
            src_port: 5353,
            tcp_seq: 0,
        }
    }
}

/// Feeds packets one second apart from `start`; returns every outcome.
fn feed(k: &mut Knocker, start: u64, pkts: &[KnockPacket]) -> Vec<KnockOutcome> {
    let mut out = Vec::new();
    for (i, p) in pkts.iter().enumerate() {
        out.extend(k.on_packet(p, start + 1000 * i as u64));
    }
    out
}

fn opened(out: &[KnockOutcome]) -> Vec<(String, IpAddr)> {
    out.iter()
        .filter_map(|o| match o {
            KnockOutcome::Opened { door, addr, .. } => Some((door.to_string(), *addr)),
            _ => None,
        })
        .collect()
}

fn ssh_door() -> ClassicDoor {
    door("ssh", "7000,8000,9000", 10_000, None)
}

#[test]
fn right_order_opens_with_stages_on_the_way() {
    let mut k = Knocker::new(vec![ssh_door()], vec![], T0);
    let mut c = Client::new("192.0.2.10");
    let a = c.addr;
    assert_eq!(
        k.on_packet(&c.syn(7000), T0),
        vec![KnockOutcome::Stage {
            door: name("ssh"),
            addr: a,
            stage: 1,
            of: 3
        }]
    );
    assert_eq!(
        k.on_packet(&c.syn(8000), T0 + 500),
        vec![KnockOutcome::Stage {
            door: name("ssh"),
            addr: a,
            stage: 2,
            of: 3
        }]
    );
    assert_eq!(
        k.on_packet(&c.syn(9000), T0 + 900),
        vec![KnockOutcome::Opened {
            door: name("ssh"),
            addr: a,
            user: None
        }]
    );
    assert_eq!(k.attempts(), 0, "a finished attempt is forgotten");
    assert_eq!(k.poll_timeout(), None, "nothing left to time out");
}

#[test]
fn wrong_order_does_not_open() {
    let mut k = Knocker::new(vec![ssh_door()], vec![], T0);
    let mut c = Client::new("192.0.2.10");
    for order in [[8000, 7000, 9000], [7000, 9000, 8000], [9000, 8000, 7000]] {
        let pkts: Vec<_> = order.iter().map(|&p| c.syn(p)).collect();
        let out = feed(&mut k, T0, &pkts);
        assert_eq!(opened(&out), vec![], "{order:?}");
    }
    // A knock on its own later port resets the attempt.
    let out = feed(&mut k, T0 + 60_000, &[c.syn(7000), c.syn(9000)]);
    assert_eq!(
        out.last(),
        Some(&KnockOutcome::Reset {
            door: name("ssh"),
            addr: c.addr
        })
    );
    let out = feed(&mut k, T0 + 70_000, &[c.syn(8000), c.syn(9000)]);
    assert_eq!(opened(&out), vec![], "the reset attempt does not continue");
}

#[test]
fn ports_of_no_sequence_are_ignored_even_if_fed() {
    let mut k = Knocker::new(vec![ssh_door()], vec![], T0);
    let mut c = Client::new("192.0.2.10");
    assert_eq!(k.ports(), (vec![7000, 8000, 9000], vec![]));
    let out = feed(
        &mut k,
        T0,
        &[
            c.syn(7000),
            c.syn(12345),
            c.udp(8000),
            c.syn(8000),
            c.syn(22),
            c.syn(9000),
        ],
    );
    assert_eq!(opened(&out), vec![("ssh".into(), c.addr)]);
    assert_eq!(k.on_packet(&c.syn(12345), T0 + 10_000), vec![]);
}

#[test]
fn another_sequences_port_in_between_resets() {
    let doors = vec![ssh_door(), door("web", "1111,2222", 10_000, None)];
    let mut k = Knocker::new(doors, vec![], T0);
    let mut c = Client::new("192.0.2.10");
    let out = feed(&mut k, T0, &[c.syn(7000), c.syn(2222)]);
    assert_eq!(
        out.last(),
        Some(&KnockOutcome::Reset {
            door: name("ssh"),
            addr: c.addr
        })
    );
    let out = feed(&mut k, T0 + 2000, &[c.syn(8000), c.syn(9000)]);
    assert_eq!(opened(&out), vec![]);
}

#[test]
fn a_new_knock_on_the_first_port_while_the_second_is_expected_invalidates_the_attempt() {
    let mut k = Knocker::new(vec![ssh_door()], vec![], T0);
    let mut c = Client::new("192.0.2.10");
    // knockd: the second connection to 7000 ends the attempt and starts none.
    let out = feed(
        &mut k,
        T0,
        &[c.syn(7000), c.syn(7000), c.syn(8000), c.syn(9000)],
    );
    assert_eq!(opened(&out), vec![]);
    assert!(out.contains(&KnockOutcome::Reset {
        door: name("ssh"),
        addr: c.addr
    }));
    assert_eq!(k.attempts(), 0);
    // Knocking the whole sequence again then opens.
    let out = feed(&mut k, T0 + 5000, &[c.syn(7000), c.syn(8000), c.syn(9000)]);
    assert_eq!(opened(&out), vec![("ssh".into(), c.addr)]);
}

#[test]
fn a_knock_that_moves_an_attempt_starts_no_other_sequence() {
    // Debian's default knockd.conf: openSSH 7000,8000,9000 and closeSSH
    // 9000,8000,7000. The 9000 that opens must not also start closeSSH, or
    // the next 9000 (a repeated first knock) would end it.
    let doors = vec![ssh_door(), door("close", "9000,8000,7000", 10_000, None)];
    let mut k = Knocker::new(doors, vec![], T0);
    let mut c = Client::new("192.0.2.10");
    let out = feed(&mut k, T0, &[c.syn(7000), c.syn(8000), c.syn(9000)]);
    assert_eq!(opened(&out), vec![("ssh".into(), c.addr)]);
    assert_eq!(k.attempts(), 0);
    let out = feed(&mut k, T0 + 5000, &[c.syn(9000), c.syn(8000), c.syn(7000)]);
    assert_eq!(opened(&out), vec![("close".into(), c.addr)]);
}

#[test]
fn a_retransmitted_first_knock_while_the_second_is_expected_is_ignored() {
    let mut k = Knocker::new(vec![ssh_door()], vec![], T0);
    let mut c = Client::new("192.0.2.10");
    let first = c.syn(7000);
    let out = feed(&mut k, T0, &[first, first, c.syn(8000), c.syn(9000)]);
    assert_eq!(opened(&out), vec![("ssh".into(), c.addr)]);
}

#[test]
fn a_sequence_that_repeats_a_port_still_opens() {
    let mut k = Knocker::new(
        vec![door("rep", "7000,7000,8000", 10_000, None)],
        vec![],
        T0,
    );
    let mut c = Client::new("192.0.2.10");
    let out = feed(&mut k, T0, &[c.syn(7000), c.syn(7000), c.syn(8000)]);
    assert_eq!(opened(&out), vec![("rep".into(), c.addr)]);
}

#[test]
fn knocks_sent_to_an_address_not_this_hosts_are_ignored_unless_the_target_names_it() {
    let mut routed = door("routed", "1111,2222", 10_000, None);
    routed.target = vec![ip("10.9.9.9")];
    let mut k = Knocker::new(vec![ssh_door(), routed], vec![], T0);
    k.set_local_addresses([HOST, ip("2001:db8::1")]);
    assert_eq!(k.local_addresses(), Some(2));
    let mut c = Client::new("192.0.2.10");
    let to = |mut p: KnockPacket, dst: &str| {
        p.dst = ip(dst);
        p
    };
    // Passing through (a router or bridge spad can see): not a knock at all.
    let out = feed(
        &mut k,
        T0,
        &[
            to(c.syn(7000), "10.1.1.1"),
            to(c.syn(8000), "10.1.1.1"),
            to(c.syn(9000), "10.1.1.1"),
        ],
    );
    assert_eq!(out, vec![]);
    assert_eq!(k.attempts(), 0);
    // Sent to this host (IPv4-mapped counts as IPv4): opens.
    let out = feed(
        &mut k,
        T0 + 5000,
        &[
            c.syn(7000),
            to(c.syn(8000), "::ffff:192.0.2.1"),
            c.syn(9000),
        ],
    );
    assert_eq!(opened(&out), vec![("ssh".into(), c.addr)]);
    // The target door: only knocks to its target count, not to this host.
    let out = feed(&mut k, T0 + 10_000, &[c.syn(1111), c.syn(2222)]);
    assert_eq!(opened(&out), vec![]);
    let out = feed(
        &mut k,
        T0 + 15_000,
        &[to(c.syn(1111), "10.9.9.9"), to(c.syn(2222), "10.9.9.9")],
    );
    assert_eq!(opened(&out), vec![("routed".into(), c.addr)]);
}

#[test]
fn a_knock_to_another_host_does_not_break_an_attempt() {
    let mut k = Knocker::new(vec![ssh_door()], vec![], T0);
    k.set_local_addresses([HOST]);
    let mut c = Client::new("192.0.2.10");
    let mut elsewhere = c.syn(8000);
    elsewhere.dst = ip("10.1.1.1");
    let out = feed(
        &mut k,
        T0,
        &[c.syn(7000), elsewhere, c.syn(8000), c.syn(9000)],
    );
    assert_eq!(opened(&out), vec![("ssh".into(), c.addr)]);
}

#[test]
fn a_sequence_not_finished_within_seq_timeout_is_dropped() {
    let mut k = Knocker::new(vec![door("ssh", "7000,8000,9000", 5_000, None)], vec![], T0);
    let mut c = Client::new("192.0.2.10");
    k.on_packet(&c.syn(7000), T0);
    assert_eq!(
        k.poll_timeout(),
        Some(T0 + 5_000),
        "measured from the first knock"
    );
    k.on_packet(&c.syn(8000), T0 + 4_000);
    assert_eq!(
        k.poll_timeout(),
        Some(T0 + 5_000),
        "later knocks do not extend it"
    );
    assert_eq!(k.handle_timeout(T0 + 4_999), vec![]);
    let out = k.on_packet(&c.syn(9000), T0 + 5_000);
    assert_eq!(
        out,
        vec![KnockOutcome::TimedOut {
            door: name("ssh"),
            addr: c.addr
        }]
    );
    assert_eq!(k.attempts(), 0);

    // handle_timeout drops a stale attempt on its own.
    k.on_packet(&c.syn(7000), T0 + 10_000);
    assert_eq!(k.handle_timeout(T0 + 14_999), vec![]);
    assert_eq!(
        k.handle_timeout(T0 + 15_000),
        vec![KnockOutcome::TimedOut {
            door: name("ssh"),
            addr: c.addr
        }]
    );
    assert_eq!(k.poll_timeout(), None);
    // In time, the same knocks open.
    let out = feed(
        &mut k,
        T0 + 20_000,
        &[c.syn(7000), c.syn(8000), c.syn(9000)],
    );
    assert_eq!(opened(&out), vec![("ssh".into(), c.addr)]);
}

#[test]
fn interleaved_clients_each_open_for_their_own_address() {
    let mut k = Knocker::new(vec![ssh_door()], vec![], T0);
    let mut a = Client::new("192.0.2.10");
    let mut b = Client::new("2001:db8::b");
    let mut noisy = Client::new("198.51.100.7");
    let pkts = [
        a.syn(7000),
        b.syn(7000),
        noisy.syn(9000),
        b.syn(8000),
        a.syn(8000),
        noisy.syn(7000),
        noisy.syn(9000),
        a.syn(9000),
        b.syn(9000),
    ];
    let out = feed(&mut k, T0, &pkts);
    assert_eq!(
        opened(&out),
        vec![("ssh".into(), a.addr), ("ssh".into(), b.addr)]
    );
}

#[test]
fn ipv4_mapped_ipv6_is_the_same_source() {
    let mut k = Knocker::new(vec![ssh_door()], vec![], T0);
    let mut v4 = Client::new("192.0.2.10");
    let mut mapped = Client::new("::ffff:192.0.2.10");
    let out = feed(&mut k, T0, &[v4.syn(7000), mapped.syn(8000), v4.syn(9000)]);
    assert_eq!(opened(&out), vec![("ssh".into(), ip("192.0.2.10"))]);
}

#[test]
fn doors_sharing_a_prefix_advance_in_parallel() {
    let doors = vec![
        door("a", "1001,1002,1003", 10_000, None),
        door("b", "1001,1002,1004", 10_000, None),
    ];
    let mut k = Knocker::new(doors, vec![], T0);
    let mut x = Client::new("192.0.2.1");
    let mut y = Client::new("192.0.2.2");
    let out = k.on_packet(&x.syn(1001), T0);
    assert_eq!(
        out,
        vec![
            KnockOutcome::Stage {
                door: name("a"),
                addr: x.addr,
                stage: 1,
                of: 3
            },
            KnockOutcome::Stage {
                door: name("b"),
                addr: x.addr,
                stage: 1,
                of: 3
            },
        ]
    );
    let out = feed(&mut k, T0 + 1000, &[x.syn(1002), x.syn(1003)]);
    assert_eq!(opened(&out), vec![("a".into(), x.addr)]);
    let out = feed(&mut k, T0, &[y.syn(1001), y.syn(1002), y.syn(1004)]);
    assert_eq!(opened(&out), vec![("b".into(), y.addr)]);
}

#[test]
fn tcpflags_syn_ignores_packets_without_syn() {
    let mut k = Knocker::new(
        vec![door("ssh", "7000,8000,9000", 10_000, Some("syn"))],
        vec![],
        T0,
    );
    let mut c = Client::new("192.0.2.10");
    // A plain ACK neither starts, advances nor resets.
    assert_eq!(k.on_packet(&c.tcp_flags(7000, TCP_ACK), T0), vec![]);
    let out = feed(
        &mut k,
        T0,
        &[
            c.syn(7000),
            c.tcp_flags(9000, TCP_ACK),
            c.syn(8000),
            c.tcp_flags(7000, TCP_ACK),
            c.syn(9000),
        ],
    );
    assert_eq!(opened(&out), vec![("ssh".into(), c.addr)]);
    assert!(
        !out.iter().any(|o| matches!(o, KnockOutcome::Reset { .. })),
        "{out:?}"
    );
    // `syn` alone accepts SYN+ACK as a knock.
    let pkts = [7000, 8000, 9000].map(|p| c.tcp_flags(p, TCP_SYN | TCP_ACK));
    assert_eq!(
        opened(&feed(&mut k, T0 + 20_000, &pkts)),
        vec![("ssh".into(), c.addr)]
    );
}

#[test]
fn tcpflags_syn_not_ack_ignores_syn_ack_and_ack() {
    let rule = Some("syn,!ack");
    let mut k = Knocker::new(
        vec![door("ssh", "7000,8000,9000", 10_000, rule)],
        vec![],
        T0,
    );
    let mut c = Client::new("192.0.2.10");
    let synack = |c: &mut Client, p| c.tcp_flags(p, TCP_SYN | TCP_ACK);
    let only_synack = [
        synack(&mut c, 7000),
        synack(&mut c, 8000),
        synack(&mut c, 9000),
    ];
    assert_eq!(
        feed(&mut k, T0, &only_synack),
        vec![],
        "SYN+ACK is no knock at all"
    );
    let out = feed(
        &mut k,
        T0 + 10_000,
        &[
            c.syn(7000),
            synack(&mut c, 9000),
            c.tcp_flags(9000, TCP_ACK),
            c.syn(8000),
            c.syn(9000),
        ],
    );
    assert_eq!(opened(&out), vec![("ssh".into(), c.addr)]);
}

#[test]
fn without_tcpflags_any_tcp_packet_counts_like_knockd() {
    let mut k = Knocker::new(vec![ssh_door()], vec![], T0);
    let mut c = Client::new("192.0.2.10");
    let out = feed(
        &mut k,
        T0,
        &[
            c.syn(7000),
            c.tcp_flags(9000, TCP_ACK),
            c.syn(8000),
            c.syn(9000),
        ],
    );
    assert_eq!(opened(&out), vec![], "the ACK on 9000 reset the attempt");
}

#[test]
fn udp_and_mixed_steps_open() {
    let d = door("mixed", "2222:udp,3333:tcp,4444:udp", 15_000, Some("syn"));
    let mut k = Knocker::new(vec![d], vec![], T0);
    assert_eq!(k.ports(), (vec![3333], vec![2222, 4444]));
    let mut c = Client::new("192.0.2.10");
    // The right ports over the wrong transport are no knocks.
    let wrong = [c.syn(2222), c.udp(3333), c.syn(4444)];
    assert_eq!(feed(&mut k, T0, &wrong), vec![]);
    let out = feed(&mut k, T0, &[c.udp(2222), c.syn(3333), c.udp(4444)]);
    assert_eq!(opened(&out), vec![("mixed".into(), c.addr)]);
    // UDP knocks ignore the TCP-flags rule.
    let d = door("u", "5000:udp,5001:udp", 15_000, Some("syn,!ack"));
    let mut k = Knocker::new(vec![d], vec![], T0);
    let out = feed(&mut k, T0, &[c.udp(5000), c.udp(5001)]);
    assert_eq!(opened(&out), vec![("u".into(), c.addr)]);
}

#[test]
fn a_retransmitted_syn_neither_advances_nor_resets() {
    let mut k = Knocker::new(vec![ssh_door()], vec![], T0);
    let mut c = Client::new("192.0.2.10");
    let first = c.syn(7000);
    let second = c.syn(8000);
    k.on_packet(&first, T0);
    assert_eq!(
        k.on_packet(&first, T0 + 1000),
        vec![],
        "retransmit of the first knock"
    );
    k.on_packet(&second, T0 + 1100);
    assert_eq!(
        k.on_packet(&first, T0 + 3000),
        vec![],
        "a late retransmit does not restart"
    );
    assert_eq!(
        k.on_packet(&second, T0 + 3100),
        vec![],
        "nor does it count twice"
    );
    let out = k.on_packet(&c.syn(9000), T0 + 3200);
    assert_eq!(opened(&out), vec![("ssh".into(), c.addr)]);

    // A repeated port in a sequence needs a new SYN, not a retransmit.
    let mut k = Knocker::new(
        vec![door("rep", "7000,7000,9000", 10_000, None)],
        vec![],
        T0,
    );
    let knock = c.syn(7000);
    let out = feed(&mut k, T0, &[knock, knock, c.syn(9000)]);
    assert_eq!(opened(&out), vec![]);
    let out = feed(
        &mut k,
        T0 + 20_000,
        &[c.syn(7000), c.syn(7000), c.syn(9000)],
    );
    assert_eq!(opened(&out), vec![("rep".into(), c.addr)]);
}

#[test]
fn one_time_sequences_are_used_in_order_then_the_door_is_disabled() {
    let file = "# smtp\n 1000,2000,3000\n 1001,2001:udp,3001\n";
    let list = parse_one_time_file(file).expect("valid file");
    let d = ClassicDoor {
        name: name("smtp"),
        steps: vec![],
        seq_timeout_ms: 15_000,
        tcpflags: Some(TcpFlagsRule::SYN_NOT_ACK),
        one_time: Some(list.clone()),
        target: vec![],
    };
    d.validate().expect("valid door");
    let mut k = Knocker::new(vec![d], vec![], T0);
    assert_eq!(k.one_time_remaining(&name("smtp")), Some(2));
    assert_eq!(
        k.ports(),
        (vec![1000, 2000, 3000], vec![]),
        "only the current sequence"
    );

    let mut c = Client::new("192.0.2.10");
    let mut other = Client::new("192.0.2.99");
    k.on_packet(&other.syn(1000), T0);
    let out = feed(&mut k, T0, &[c.syn(1000), c.syn(2000), c.syn(3000)]);
    assert_eq!(
        out[out.len() - 4..],
        [
            KnockOutcome::Opened {
                door: name("smtp"),
                addr: c.addr,
                user: None
            },
            KnockOutcome::OneTimeUsed {
                door: name("smtp"),
                index: 0,
                steps: list[0].clone()
            },
            KnockOutcome::Reset {
                door: name("smtp"),
                addr: other.addr
            },
            KnockOutcome::PortsChanged,
        ]
    );
    let file = comment_out_one_time(file, &list[0]).expect("line found");
    assert_eq!(
        parse_one_time_file(&file),
        Ok(vec![list[1].clone()]),
        "what a restart reads back"
    );
    assert_eq!(k.one_time_remaining(&name("smtp")), Some(1));
    assert_eq!(k.ports(), (vec![1001, 3001], vec![2001]));

    // The used sequence is no longer a knock; the next one opens, once.
    let out = feed(
        &mut k,
        T0 + 20_000,
        &[c.syn(1000), c.syn(2000), c.syn(3000)],
    );
    assert_eq!(out, vec![]);
    let out = feed(
        &mut k,
        T0 + 30_000,
        &[c.syn(1001), c.udp(2001), c.syn(3001)],
    );
    assert_eq!(
        out[out.len() - 4..],
        [
            KnockOutcome::Opened {
                door: name("smtp"),
                addr: c.addr,
                user: None
            },
            KnockOutcome::OneTimeUsed {
                door: name("smtp"),
                index: 1,
                steps: list[1].clone()
            },
            KnockOutcome::OneTimeExhausted { door: name("smtp") },
            KnockOutcome::PortsChanged,
        ]
    );
    assert_eq!(k.one_time_remaining(&name("smtp")), Some(0));
    assert_eq!(k.ports(), (vec![], vec![]));
    let out = feed(
        &mut k,
        T0 + 40_000,
        &[c.syn(1001), c.udp(2001), c.syn(3001)],
    );
    assert_eq!(opened(&out), vec![], "an exhausted door is disabled");
}

#[test]
fn memory_is_bounded_and_the_oldest_attempts_go_first() {
    let mut k = Knocker::new(vec![ssh_door()], vec![], T0).with_max_attempts(100);
    for i in 0..1000u32 {
        let src = IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
        let pkt = KnockPacket {
            src,
            dst: HOST,
            transport: Transport::Tcp,
            dst_port: 7000,
            tcp_flags: TCP_SYN,
            src_port: 1,
            tcp_seq: i,
        };
        k.on_packet(&pkt, T0 + u64::from(i));
    }
    assert_eq!(k.attempts(), 100);
    assert_eq!(k.sources(), 100);
    assert_eq!(k.evicted(), 900);
    // The newest attempts survive and can finish; the oldest were dropped.
    let newest = |port| KnockPacket {
        src: IpAddr::from([10, 0, 3, 231]),
        dst: HOST,
        transport: Transport::Tcp,
        dst_port: port,
        tcp_flags: TCP_SYN,
        src_port: port,
        tcp_seq: 1,
    };
    let oldest = |port| KnockPacket {
        src: IpAddr::from([10, 0, 0, 0]),
        dst: HOST,
        ..newest(port)
    };
    let out = feed(
        &mut k,
        T0 + 2000,
        &[oldest(8000), oldest(9000), newest(8000), newest(9000)],
    );
    assert_eq!(
        opened(&out),
        vec![("ssh".into(), IpAddr::from([10, 0, 3, 231]))]
    );
}

#[test]
fn doors_that_cannot_open_are_refused_by_validate() {
    let mut d = ssh_door();
    d.seq_timeout_ms = 0;
    assert_eq!(
        d.validate().map_err(|e| e.to_string()),
        Err("door ssh: seq_timeout must be more than 0".into())
    );
    d.seq_timeout_ms = 1;
    d.steps.clear();
    assert_eq!(
        d.validate().map_err(|e| e.to_string()),
        Err("door ssh: the knock sequence is empty".into())
    );
}
