//! Property tests: round trips, bit flips, and arbitrary bytes.
mod support;

use proptest::prelude::*;
use spa_proto::packet::{Address, Request};
use spa_proto::{DoorName, Reason, Verdict};
use support::*;

fn door_name() -> impl Strategy<Value = DoorName> {
    "[a-z0-9][a-z0-9_-]{0,31}".prop_map(|s| s.parse().unwrap_or_else(|_| unreachable!()))
}

fn address() -> impl Strategy<Value = Address> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| Address::V4(b.into())),
        any::<[u8; 16]>()
            .prop_filter("not v4-mapped", |b| std::net::Ipv6Addr::from(*b)
                .to_ipv4_mapped()
                .is_none())
            .prop_map(|b| Address::V6(b.into())),
        Just(Address::Observed),
    ]
}

proptest! {
    #[test]
    fn any_request_round_trips(ts in any::<u64>(), address in address(), seconds in any::<u16>(), door in door_name()) {
        let req = Request { timestamp_ms: ts, address, seconds, door };
        prop_assert_eq!(Request::decode(&req.encode()), Ok(req.clone()));
        // And through seal/open with the verifier's cipher.
        let k = keys(3);
        let pkt = spa_proto::packet::seal(&k, &req, [5; 12]);
        let cipher = <chacha20poly1305::ChaCha20Poly1305 as chacha20poly1305::KeyInit>::new(k.aead.expose().into());
        let body = spa_proto::packet::open_with(&cipher, &pkt);
        prop_assert!(body.is_some());
        prop_assert_eq!(body.map(|b| Request::decode(&b)), Some(Ok(req)));
    }

    #[test]
    fn any_single_bit_flip_is_rejected(bit in 0usize..800) {
        let mut gw = gateway(32, &[1]);
        let mut pkt = sealed(1, &request(NOW, "203.0.113.7", "ssh", 0), 1);
        pkt[bit / 8] ^= 1 << (bit % 8);
        let got = gw.verify(&pkt, "203.0.113.7".parse().unwrap_or_else(|_| unreachable!()), NOW);
        prop_assert!(matches!(got, Verdict::Drop(Reason::Hint | Reason::Aead)), "{:?}", got);
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_open(bytes in proptest::collection::vec(any::<u8>(), 0..200), now in any::<u64>()) {
        let mut gw = gateway(32, &[1]);
        let got = gw.verify(&bytes, "203.0.113.7".parse().unwrap_or_else(|_| unreachable!()), now);
        prop_assert!(matches!(got, Verdict::Drop(_)));
    }

    #[test]
    fn valid_packets_open_at_any_time_within_skew(offset in 0u64..60_000, seconds in 0u16..1000) {
        let mut gw = gateway(32, &[1]);
        let ts = NOW;
        let pkt = sealed(1, &request(ts, "198.51.100.4", "ssh", seconds), 1);
        let now = ts - SKEW + offset;
        match gw.verify(&pkt, "198.51.100.4".parse().unwrap_or_else(|_| unreachable!()), now) {
            Verdict::Grant(g) => {
                let want = if seconds == 0 { 30 } else { u32::from(seconds).min(300) };
                prop_assert_eq!(g.seconds, want);
            }
            Verdict::Drop(r) => prop_assert!(false, "dropped: {}", r),
        }
    }
}
