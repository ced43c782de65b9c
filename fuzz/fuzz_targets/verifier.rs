//! The datagram verifier on arbitrary bytes: datagrams of any length from any
//! source at any (possibly backwards) wall clock, against a keyring of four keys.
//! A datagram may borrow a real hint of a key and window, so inputs also get past
//! the hint lookup to the AEAD. Every verdict is checked by `Judge`.
//!
//! Input: records of `flags u8` (bit 0: tick first; bit 1: real hint of key
//! `bits 2-3` for the window `shift` away), `shift i8`, `clock i32` (ms from
//! BASE_NOW_MS), a source (see `read_source`), `len u8` and `len` bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spa_fuzz::gateway::{derived, read_source, Judge, Reader, BASE_NOW_MS};
use spa_proto::packet::{hint, window_of};

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let mut judge = Judge::new();
    for _ in 0..16 {
        let Some(flags) = input.u8() else { break };
        let Some(shift) = input.u8() else { break };
        let Some(clock) = input.i32() else { break };
        let Some(source) = read_source(&mut input, None) else {
            break;
        };
        let Some(len) = input.u8() else { break };
        let Some(bytes) = input.bytes(usize::from(len)) else {
            break;
        };
        let wall = BASE_NOW_MS.saturating_add_signed(i64::from(clock));
        let mut datagram = bytes.to_vec();
        if flags & 2 != 0 && datagram.len() >= 8 {
            let key = derived(usize::from(flags >> 2) & 3);
            let window = window_of(wall).saturating_add_signed(i64::from(shift as i8));
            datagram[..8].copy_from_slice(&hint(key, window));
        }
        if flags & 1 != 0 {
            judge.tick(wall);
        }
        judge.judge(&datagram, source, wall);
    }
});
