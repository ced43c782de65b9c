//! fwknop packets past the HMAC: the fuzzer writes the PLAINTEXT
//! (`random:user:time:version:type:access…[:digest]`) and the target seals
//! it (`spa_fwknop::seal`, AES-256-CBC + HMAC-SHA256) with a stanza's keys or
//! keys no stanza has, so every input reaches decryption, field parsing and
//! policy. Input: byte 0 the keys (0 the client's, 1 the `ANY` stanza's,
//! else unknown), byte 1 the sender, bytes 2–3 the clock shift (i16 LE),
//! byte 4 bit 0 "append the SHA-256 digest fwknop adds" and the salt, the
//! rest the plaintext.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spa_fuzz::fwknop_gate::{
    client_keys, judge, now, report, source, stanzas, OTHER_KEYS, UNKNOWN_KEYS,
};
use spa_fwknop::seal::{message, seal};
use spa_fwknop::Denial;

fuzz_target!(|data: &[u8]| {
    let [keys, sender, s0, s1, flags, plaintext @ ..] = data else {
        return;
    };
    let (key, hmac): (&[u8], &[u8]) = match keys % 3 {
        0 => (&client_keys().0, &client_keys().1),
        1 => (&OTHER_KEYS.0, &OTHER_KEYS.1),
        _ => (&UNKNOWN_KEYS.0, &UNKNOWN_KEYS.1),
    };
    let with_digest;
    let plaintext = if flags & 1 == 1 {
        with_digest = message(&String::from_utf8_lossy(plaintext));
        with_digest.as_bytes()
    } else {
        plaintext
    };
    let packet = seal(plaintext, key, hmac, [flags >> 1; 8]);
    let all = stanzas();
    let list: Vec<_> = all.iter().map(|(s, _)| s.clone()).collect();
    let hmacs: Vec<_> = all.iter().map(|(_, h)| h.clone()).collect();
    let answer = judge(
        packet.as_bytes(),
        &list,
        Some(&hmacs),
        source(*sender),
        now(i16::from_le_bytes([*s0, *s1])),
    );
    if keys % 3 == 2 {
        // Sealed with keys no stanza has: never an answer for an authentic packet.
        assert!(
            matches!(
                answer,
                Err(Denial::NotAuthentic(_) | Denial::NoStanzaForSource(_))
            ),
            "{answer:?} for a packet under unknown keys"
        );
    }
    report(&answer);
});
