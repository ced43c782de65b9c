//! A small gateway for integration tests: one user, doors ssh and admin.
#![allow(dead_code)]

use std::collections::BTreeMap;

use spa_proto::packet::{self, Address, Request};
use spa_proto::replay::ReplayCache;
use spa_proto::{
    DerivedKeys, DoorPolicy, KeyEntry, Keyring, SecretBytes, ServerId, UserSecret, Verifier,
    VerifierConfig,
};

pub const SKEW: u64 = 30_000;
pub const NOW: u64 = 1_764_000_000_123;

pub fn user_secret(byte: u8) -> UserSecret {
    UserSecret::new(SecretBytes::new([byte; 32]))
}

pub fn server_id() -> ServerId {
    "gw1.example.net".parse().unwrap_or_else(|_| unreachable!())
}

pub fn keys(byte: u8) -> DerivedKeys {
    user_secret(byte).server_key(&server_id()).derive()
}

pub fn gateway(cap: usize, users: &[u8]) -> Verifier {
    let doors: BTreeMap<_, _> = ["ssh", "admin"]
        .iter()
        .filter_map(|d| d.parse().ok())
        .map(|d| {
            (
                d,
                DoorPolicy {
                    default_secs: 30,
                    max_secs: 300,
                },
            )
        })
        .collect();
    let keyring = Keyring::new(users.iter().map(|&b| {
        KeyEntry {
            user: format!("user{b}"),
            key: user_secret(b).server_key(&server_id()),
            doors: ["ssh".parse().unwrap_or_else(|_| unreachable!())]
                .into_iter()
                .collect(),
            allow_observed: false,
            expires_at_ms: None,
            enabled: true,
        }
    }));
    Verifier::new(
        VerifierConfig {
            skew_ms: SKEW,
            cap,
            doors,
        },
        keyring,
        ReplayCache::new(cap, SKEW),
    )
}

pub fn request(ts: u64, addr: &str, door: &str, seconds: u16) -> Request {
    Request {
        timestamp_ms: ts,
        address: Address::from(
            addr.parse::<std::net::IpAddr>()
                .unwrap_or_else(|_| unreachable!()),
        ),
        seconds,
        door: door.parse().unwrap_or_else(|_| unreachable!()),
    }
}

pub fn sealed(byte: u8, req: &Request, nonce: u8) -> [u8; 100] {
    packet::seal(&keys(byte), req, [nonce; 12])
}
