//! The verifier past the AEAD: the fuzzer writes the 64-byte PLAINTEXT and this
//! target seals it with a known key (`packet::seal_plaintext`, feature `fuzzing`),
//! so every input reaches field validation (PROTOCOL §3 step 5) and the window,
//! address, door, replay and cap checks after it. Every verdict is checked by
//! `Judge`, which also re-decodes the plaintext of every grant.
//!
//! Input: records of `key u8` (index into the keyring; 4 and up: an unknown key),
//! `shift i8` (hint window relative to the plaintext timestamp's), `nonce u8`
//! (repeated 12 times: replays are frequent), `clock i32` (wall clock, ms relative
//! to the plaintext timestamp), the 64-byte plaintext, and a source (see
//! `read_source`; kind 3 = the address the plaintext names).
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spa_fuzz::gateway::{derived, read_source, Judge, Reader};
use spa_proto::packet::{field, seal_plaintext, window_of, Request, PLAINTEXT_LEN};
use spa_proto::Verdict;

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let mut judge = Judge::new();
    for _ in 0..16 {
        let Some([key, shift, nonce]) = input.array::<3>() else {
            break;
        };
        let Some(clock) = input.i32() else { break };
        let Some(plaintext) = input.array::<PLAINTEXT_LEN>() else {
            break;
        };
        let named = match plaintext[field::KIND] {
            4 => <[u8; 4]>::try_from(&plaintext[field::ADDRESS_V4])
                .ok()
                .map(IpAddr::from),
            6 => <[u8; 16]>::try_from(&plaintext[field::ADDRESS])
                .ok()
                .map(IpAddr::from),
            _ => None,
        };
        let Some(source) = read_source(&mut input, named) else {
            break;
        };
        let ts = u64::from_be_bytes(plaintext[field::TIMESTAMP].try_into().unwrap_or_default());
        let window = window_of(ts).saturating_add_signed(i64::from(shift as i8 % 3));
        let packet = seal_plaintext(derived(usize::from(key)), window, &plaintext, [nonce; 12]);
        let wall = ts.saturating_add_signed(i64::from(clock));
        let verdict = judge.judge(&packet, source, wall);
        if report_enabled() {
            // SPA_FUZZ_REPORT=1: which check each input reached (docs/fuzzing.md).
            let outcome = match verdict {
                Verdict::Grant(_) => "grant".to_owned(),
                Verdict::Drop(reason) => reason.to_string(),
            };
            let fields = match Request::decode(&plaintext) {
                Ok(_) => "fields ok".to_owned(),
                Err(e) => format!("{e:?}").split('(').next().unwrap_or("").to_owned(),
            };
            eprintln!("spa-fuzz: verdict {outcome:<8} plaintext {fields}");
        }
    }
});

fn report_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SPA_FUZZ_REPORT").is_some())
}
