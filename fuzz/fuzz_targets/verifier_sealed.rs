//! The verifier past the AEAD: the fuzzer writes the 64-byte PLAINTEXT and this
//! target seals it with a known key (`packet::seal_plaintext`, feature `fuzzing`),
//! so every input reaches field validation (PROTOCOL §3 step 5) and the window,
//! address, door, replay and cap checks after it. Every grant is checked by `Judge`.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use spa_fuzz::gateway::{derived, Judge, Source, BASE_NOW_MS, KEY_BYTES};
use spa_proto::packet::{field, seal_plaintext, window_of, PLAINTEXT_LEN};

#[derive(Debug, Arbitrary)]
struct Sealed {
    /// Which key seals it (beyond the keyring: an unknown key).
    key: u8,
    /// Hint window relative to the plaintext's own timestamp window.
    window_shift: i8,
    /// Nonce: one byte repeated, so replays are frequent.
    nonce: u8,
    plaintext: [u8; PLAINTEXT_LEN],
    /// Wall clock relative to the plaintext timestamp, ms.
    clock_ms: i32,
    /// Whether the timestamp is taken near BASE_NOW_MS (else as written).
    near_base: bool,
    source: Source,
}

fuzz_target!(|packets: Vec<Sealed>| {
    let mut judge = Judge::new();
    for p in packets.into_iter().take(16) {
        let mut plaintext = p.plaintext;
        let mut ts = u64::from_be_bytes(plaintext[field::TIMESTAMP].try_into().unwrap_or_default());
        if p.near_base {
            ts = BASE_NOW_MS + ts % 3_600_000;
            plaintext[field::TIMESTAMP].copy_from_slice(&ts.to_be_bytes());
        }
        let byte = match KEY_BYTES.get(usize::from(p.key % 5)) {
            Some(b) => *b,
            None => 99, // not in the keyring
        };
        let window = window_of(ts).saturating_add_signed(i64::from(p.window_shift % 3));
        let packet = seal_plaintext(&derived(byte), window, &plaintext, [p.nonce; 12]);
        let named = match plaintext[field::KIND] {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(&plaintext[field::ADDRESS_V4]).unwrap_or_default())),
            6 => Some(IpAddr::from(<[u8; 16]>::try_from(&plaintext[field::ADDRESS]).unwrap_or_default())),
            _ => None,
        };
        let wall = ts.saturating_add_signed(i64::from(p.clock_ms));
        judge.judge(&packet, p.source.ip(named), wall);
    }
});
