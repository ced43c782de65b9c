//! Property tests of the knock state machine: arbitrary packet streams never
//! panic and never grow its memory beyond the bound; a client's correct
//! sequence opens whatever other sources send meanwhile; the timer contract
//! of `poll_timeout` / `handle_timeout` holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use proptest::prelude::*;
use spa_proto::knock::{
    parse_sequence, ClassicDoor, KnockOutcome, KnockPacket, Knocker, RotatingDoor, RotatingSpec,
    Transport, TCP_SYN,
};
use spa_proto::{KeyId, SecretBytes};

const T0: u64 = 1_764_000_000_000;
const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
const CAP: usize = 64;

fn doors() -> (Vec<ClassicDoor>, Vec<RotatingDoor>) {
    let classic =
        |name: &str, seq: &str, flags: Option<&str>, one_time: Option<Vec<&str>>| ClassicDoor {
            name: name.parse().expect("door"),
            steps: parse_sequence(seq).expect("sequence"),
            seq_timeout_ms: 5_000,
            tcpflags: flags.map(|f| f.parse().expect("flags")),
            one_time: one_time.map(|l| {
                l.into_iter()
                    .map(|s| parse_sequence(s).expect("sequence"))
                    .collect()
            }),
            target: vec![],
        };
    let classic = vec![
        classic("a", "7000,7001,7002", None, None),
        classic("b", "7000,7001,7003:udp", Some("syn,!ack"), None),
        classic("c", "7002,7002,7000", Some("syn"), None),
        classic(
            "d",
            "7004",
            None,
            Some(vec!["7005,7006", "7006,7005", "7004"]),
        ),
    ];
    let rotating = vec![RotatingDoor {
        name: "r".parse().expect("door"),
        spec: RotatingSpec::new(3, 7000, 8626).expect("spec"),
        transport: Transport::Tcp,
        seq_timeout_ms: 5_000,
        users: vec![("u".into(), KeyId([1; 16]), SecretBytes::new([9; 32]))],
    }];
    (classic, rotating)
}

#[derive(Debug, Clone)]
struct Event {
    src: u8,
    udp: bool,
    port: u16,
    flags: u8,
    src_port: u16,
    seq: u32,
    dt_ms: u64,
}

fn event() -> impl Strategy<Value = Event> {
    (
        any::<u8>(),
        any::<bool>(),
        prop_oneof![7000u16..7008, 7000u16..8627, any::<u16>()],
        any::<u8>(),
        0u16..4,
        0u32..4,
        prop_oneof![0u64..50, 0u64..40_000],
    )
        .prop_map(|(src, udp, port, flags, src_port, seq, dt_ms)| Event {
            src,
            udp,
            port,
            flags,
            src_port,
            seq,
            dt_ms,
        })
}

fn packet(e: &Event) -> KnockPacket {
    // Half the sources are IPv4, half IPv6 (some of them IPv4-mapped).
    let src = match e.src % 3 {
        0 => IpAddr::from([10, 0, 0, e.src]),
        1 => IpAddr::from([0, 0, 0, 0, 0, 0xffff, 0x0a00, u16::from(e.src)]),
        _ => IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(e.src)]),
    };
    KnockPacket {
        src,
        dst: HOST,
        transport: if e.udp {
            Transport::Udp
        } else {
            Transport::Tcp
        },
        dst_port: e.port,
        tcp_flags: e.flags,
        src_port: e.src_port,
        tcp_seq: e.seq,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_streams_never_panic_and_stay_bounded(events in proptest::collection::vec(event(), 0..400)) {
        let (classic, rotating) = doors();
        let mut k = Knocker::new(classic, rotating, T0).with_max_attempts(CAP);
        let mut now = T0;
        for e in &events {
            now += e.dt_ms;
            if let Some(due) = k.poll_timeout() {
                prop_assert!(due > now - e.dt_ms, "poll_timeout {due} is in the past");
                if due <= now {
                    k.handle_timeout(now);
                    prop_assert!(k.poll_timeout().is_none_or(|d| d > now), "handle_timeout left work due");
                }
            }
            k.on_packet(&packet(e), now);
            prop_assert!(k.attempts() <= CAP, "{} attempts", k.attempts());
            prop_assert!(k.sources() <= k.attempts());
        }
    }

    #[test]
    fn noise_from_other_sources_never_stops_a_client(
        noise in proptest::collection::vec(event(), 0..200),
        gaps in proptest::collection::vec(0usize..200, 3),
    ) {
        let (classic, rotating) = doors();
        let mut k = Knocker::new(classic, rotating, T0);
        let client: IpAddr = "192.0.2.77".parse().expect("address");
        let mut knocks = [7000u16, 7001, 7002].into_iter().enumerate().map(|(i, port)| KnockPacket {
            src: client,
            dst: HOST,
            transport: Transport::Tcp,
            dst_port: port,
            tcp_flags: TCP_SYN,
            src_port: 50_000 + i as u16,
            tcp_seq: 1 + i as u32,
        });
        let mut sorted = gaps.clone();
        sorted.sort_unstable();
        let mut opened = false;
        let mut next = 0;
        // Noise events (never from the client) every ms; client knocks at the gaps.
        for i in 0..=noise.len() {
            while next < 3 && sorted[next] <= i {
                next += 1;
                if let Some(p) = knocks.next() {
                    let out = k.on_packet(&p, T0 + i as u64);
                    opened |= out.contains(&KnockOutcome::Opened { door: "a".parse().expect("door"), addr: client, user: None });
                }
            }
            if let Some(e) = noise.get(i) {
                let p = KnockPacket { src: IpAddr::from([10, 1, 0, e.src]), ..packet(e) };
                k.on_packet(&p, T0 + i as u64);
            }
        }
        while next < 3 {
            next += 1;
            if let Some(p) = knocks.next() {
                let out = k.on_packet(&p, T0 + 300);
                opened |= out.contains(&KnockOutcome::Opened { door: "a".parse().expect("door"), addr: client, user: None });
            }
        }
        prop_assert!(opened);
    }
}
