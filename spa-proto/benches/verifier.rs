//! Criterion benchmarks of the verifier's costs: a valid packet, garbage (hint
//! miss) with and without the clock-skew diagnosis spad runs after it, a packet
//! from a clock 2 min behind (diagnosed, and flooded past the AEAD budget), a
//! replayed packet, a wrong-key packet (hint hit, AEAD fails), and a full
//! hint-table build for 10,000 keys.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use spa_proto::hint_table::HintTable;
use spa_proto::packet::{self, Address, Request};
use spa_proto::replay::ReplayCache;
use spa_proto::{
    DoorPolicy, KeyEntry, Keyring, SecretBytes, ServerId, UserSecret, Verdict, Verifier,
    VerifierConfig,
};

const NOW: u64 = 1_764_000_000_123;
const SKEW: u64 = 30_000;

fn sid() -> ServerId {
    "gw1.example.net".parse().unwrap()
}

fn entry(i: u32) -> KeyEntry {
    let mut s = [0u8; 32];
    s[..4].copy_from_slice(&i.to_be_bytes());
    KeyEntry {
        user: format!("user{i}"),
        key: UserSecret::new(SecretBytes::new(s)).server_key(&sid()),
        doors: ["ssh".parse().unwrap()].into_iter().collect(),
        allow_observed: false,
        expires_at_ms: None,
        enabled: true,
    }
}

fn verifier(keys: u32, cap: usize) -> Verifier {
    let doors: BTreeMap<_, _> = [(
        "ssh".parse().unwrap(),
        DoorPolicy {
            default_secs: 30,
            max_secs: 300,
        },
    )]
    .into_iter()
    .collect();
    Verifier::new(
        VerifierConfig {
            skew_ms: SKEW,
            cap,
            doors,
        },
        Keyring::new((0..keys).map(entry)),
        ReplayCache::new(cap, SKEW),
    )
}

fn packet_for(i: u32, ts: u64, nonce: [u8; 12]) -> [u8; 100] {
    let d = entry(i).key.derive();
    let req = Request {
        timestamp_ms: ts,
        address: Address::V4([203, 0, 113, 7].into()),
        seconds: 0,
        door: "ssh".parse().unwrap(),
    };
    packet::seal(&d, &req, nonce)
}

fn bench(c: &mut Criterion) {
    let src: IpAddr = "203.0.113.7".parse().unwrap();
    let mut g = c.benchmark_group("verify");

    // A valid packet from one of 10,000 keys; time advances 1 ms per packet, so the
    // replay cache stays bounded (~6 live entries per key) and a hint window passes
    // every 30,000 packets (its rebuild is amortized into this number).
    let mut v = verifier(10_000, 32);
    let mut n: u64 = 0;
    g.bench_function("valid", |b| {
        b.iter_batched(
            || {
                n += 1;
                let ts = NOW + n;
                (
                    packet_for(
                        (n % 10_000) as u32,
                        ts,
                        (n as u128).to_be_bytes()[4..].try_into().unwrap(),
                    ),
                    ts,
                )
            },
            |(p, ts)| {
                assert!(matches!(
                    v.verify(black_box(&p), src, ts),
                    Verdict::Grant(_)
                ))
            },
            BatchSize::SmallInput,
        )
    });

    let mut v = verifier(1000, 64);
    let junk: Vec<[u8; 100]> = (0..256u32)
        .map(|i| {
            let mut p = [0u8; 100];
            for (j, b) in p.iter_mut().enumerate() {
                *b = (i as usize * 131 + j * 31) as u8 ^ 0x5a;
            }
            p
        })
        .collect();
    let mut i = 0;
    g.bench_function("garbage (hint miss)", |b| {
        b.iter(|| {
            i = (i + 1) % junk.len();
            black_box(v.verify(black_box(&junk[i]), src, NOW))
        })
    });

    // What spad does on a hint miss: verify, then ask for a clock diagnosis.
    g.bench_function("garbage (hint miss) + clock diagnosis", |b| {
        b.iter(|| {
            i = (i + 1) % junk.len();
            if v.verify(black_box(&junk[i]), src, NOW) == Verdict::Drop(spa_proto::Reason::Hint) {
                black_box(v.diagnose_clock(black_box(&junk[i]), NOW));
            }
        })
    });

    // A packet from a clock 2 min 10 s behind, diagnosed (one AEAD open): 64
    // distinct users per 30-s window (the AEAD budget); the window is moved on,
    // and the next 64 packets sealed, outside the timed part.
    let mut v = verifier(1000, 64);
    let mut t = NOW;
    g.bench_function("skewed packet, 2 min behind (diagnosed)", |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                t += packet::WINDOW_MS;
                v.tick(t);
                let n = left.min(u64::from(spa_proto::clock_skew::OPENS));
                let packets: Vec<[u8; 100]> = (0..n)
                    .map(|u| packet_for(u as u32, t - 130_000, [3; 12]))
                    .collect();
                let start = std::time::Instant::now();
                for p in &packets {
                    assert!(v.diagnose_clock(black_box(p), t).is_some());
                }
                spent += start.elapsed();
                left -= n;
            }
            spent
        })
    });

    // A flood of one recorded skewed packet: past the budget, a hash lookup.
    let mut v = verifier(1000, 64);
    let recorded = packet_for(7, NOW - 130_000, [4; 12]);
    g.bench_function("recorded skewed packet flood (budget spent)", |b| {
        b.iter(|| {
            assert_eq!(
                v.verify(black_box(&recorded), src, NOW),
                Verdict::Drop(spa_proto::Reason::Hint)
            );
            black_box(v.diagnose_clock(black_box(&recorded), NOW))
        })
    });

    let mut v = verifier(1000, 64);
    let replayed = packet_for(7, NOW, [1; 12]);
    assert!(matches!(v.verify(&replayed, src, NOW), Verdict::Grant(_)));
    g.bench_function("replayed packet", |b| {
        b.iter(|| {
            assert_eq!(
                v.verify(black_box(&replayed), src, NOW),
                Verdict::Drop(spa_proto::Reason::Replay)
            )
        })
    });

    let mut v = verifier(1000, 64);
    let mut wrong = packet_for(7, NOW, [2; 12]);
    wrong[50] ^= 1;
    g.bench_function("wrong key (hint hit, AEAD fails)", |b| {
        b.iter(|| {
            assert_eq!(
                v.verify(black_box(&wrong), src, NOW),
                Verdict::Drop(spa_proto::Reason::Aead)
            )
        })
    });
    g.finish();

    let ring = Keyring::new((0..10_000).map(entry));
    let mut g = c.benchmark_group("hint table");
    g.sample_size(10);
    g.bench_function("build for 10,000 keys", |b| {
        b.iter(|| black_box(HintTable::build(&ring, NOW, SKEW)))
    });
    let mut table = HintTable::build(&ring, NOW, SKEW);
    let mut t = NOW;
    g.bench_function("advance one window, 10,000 keys", |b| {
        b.iter(|| {
            t += packet::WINDOW_MS;
            table.refresh(&ring, t, SKEW);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
