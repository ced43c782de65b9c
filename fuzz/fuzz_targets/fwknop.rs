//! fwknop packets as they come off the wire: any bytes, from one of a few
//! senders, at a clock near the fixtures' time, into `spa_fwknop::admit`
//! over a fixed access.conf; the invariants live in `spa_fuzz::fwknop_gate`.
//! Input: byte 0 the sender, bytes 1–2 the clock shift (seconds, i16 LE),
//! the rest the packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spa_fuzz::fwknop_gate::{judge, now, report, source, stanzas};

fuzz_target!(|data: &[u8]| {
    let [sender, s0, s1, packet @ ..] = data else {
        return;
    };
    let all = stanzas();
    let list: Vec<_> = all.iter().map(|(s, _)| s.clone()).collect();
    let hmacs: Vec<_> = all.iter().map(|(_, h)| h.clone()).collect();
    let answer = judge(
        packet,
        &list,
        Some(&hmacs),
        source(*sender),
        now(i16::from_le_bytes([*s0, *s1])),
    );
    report(&answer);
});
