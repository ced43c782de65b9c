//! Shared by the fwknop decoder tests: the test-only keys the fixtures were
//! made with (fixtures/make-packets.sh) and the fixture reader.

#![allow(dead_code)]

use spa_fwknop::{FwknopKeys, HmacDigest};

pub const KEY: &str = "wHCG6pRmYWN2ipv7Ebp+D8q1lEZ8mXVLsuFXA/Fp6oY=";
pub const HMAC: &str =
    "Mzo0rAOxwEHxqy0d5FzwqKpxtmRqg0cx3nAwzHp5Zc1LVn5YjzFuuNQuH3GYhEx3aqQ/SZ3GECHRT+f4jhsN6w==";
pub const OTHER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

pub fn keys() -> FwknopKeys {
    FwknopKeys::from_base64(KEY, HMAC, HmacDigest::Sha256).expect("test keys are valid")
}

/// One packet made by the real fwknop client: its timestamp and text.
#[derive(Debug)]
pub struct Fixture {
    pub timestamp: u64,
    pub packet: String,
}

pub fn fixture(name: &str) -> Fixture {
    let text = include_str!("../fixtures/packets.txt");
    for line in text.lines() {
        let mut parts = line.split(' ');
        if parts.next() == Some(name) {
            let timestamp = parts
                .next()
                .and_then(|t| t.parse().ok())
                .expect("timestamp");
            let packet = parts.next().expect("packet").to_owned();
            return Fixture { timestamp, packet };
        }
    }
    panic!("no fixture {name}");
}

pub mod seal;

/// The raw bytes of the fixtures' keys.
pub fn raw_keys() -> (Vec<u8>, Vec<u8>) {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    (
        engine.decode(KEY).expect("key"),
        engine.decode(HMAC).expect("hmac"),
    )
}
