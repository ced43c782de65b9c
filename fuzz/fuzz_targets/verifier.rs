//! The datagram verifier on arbitrary bytes: datagrams of any length from any
//! source at any (fuzzer-chosen, possibly backwards) wall clock, against a keyring
//! of four keys. A datagram may borrow a real hint of a key and window, so inputs
//! also get past the hint lookup to the AEAD. Every grant is checked by `Judge`.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use spa_fuzz::gateway::{derived, Judge, Source, BASE_NOW_MS, KEY_BYTES};
use spa_proto::packet::{hint, window_of};

#[derive(Debug, Arbitrary)]
struct Datagram {
    bytes: Vec<u8>,
    /// Wall clock, ms from BASE_NOW_MS (may go backwards between datagrams).
    clock_ms: i32,
    source: Source,
    /// Overwrite the first 8 bytes with the hint of (key, window offset).
    real_hint: Option<(u8, i8)>,
    /// Call `tick` before the datagram.
    tick: bool,
}

fuzz_target!(|datagrams: Vec<Datagram>| {
    let mut judge = Judge::new();
    for d in datagrams.into_iter().take(16) {
        let wall = BASE_NOW_MS.saturating_add_signed(i64::from(d.clock_ms));
        let mut bytes = d.bytes;
        if let Some((key, shift)) = d.real_hint {
            let byte = KEY_BYTES[usize::from(key) % KEY_BYTES.len()];
            let window = window_of(wall).saturating_add_signed(i64::from(shift));
            let h = hint(&derived(byte), window);
            if bytes.len() < 8 {
                bytes.resize(8, 0);
            }
            bytes[..8].copy_from_slice(&h);
        }
        if d.tick {
            judge.tick(wall);
        }
        judge.judge(&bytes, d.source.ip(None), wall);
    }
});
