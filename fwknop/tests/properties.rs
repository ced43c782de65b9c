//! Property tests of the decoder: it never panics on any input, and with
//! packets sealed under the right keys (reaching past the HMAC) it accepts
//! exactly well-formed messages and never panics on arbitrary plaintext.

mod common;

use common::seal::{message, seal};
use common::{fixture, keys, raw_keys};
use proptest::prelude::*;
use spa_fwknop::{decode, Refusal};

const NOW: u64 = 1_796_128_000;

#[test]
fn sealed_like_the_client() {
    // The sealer's output decodes, and reading a real client packet's
    // fields back and resealing them decodes to the same request.
    let f = fixture("access");
    let real = decode(f.packet.as_bytes(), &keys(), f.timestamp).expect("real packet");
    let (key, hmac) = raw_keys();
    let fields = format!(
        "{}:cm9vdA:{}:3.0.0:1:MTAuMS4yLjMsdGNwLzIy",
        real.random, real.timestamp
    );
    let packet = seal(message(&fields).as_bytes(), &key, &hmac, [7; 8]);
    let again = decode(packet.as_bytes(), &keys(), f.timestamp).expect("resealed");
    assert_eq!(
        (
            again.allow_addr,
            again.access.clone(),
            again.username.clone()
        ),
        (real.allow_addr, real.access.clone(), real.username.clone())
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_decode(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        prop_assert!(decode(&bytes, &keys(), NOW).is_err());
    }

    #[test]
    fn arbitrary_base64_text_is_refused_at_the_hmac(text in "[A-Za-z0-9+/]{140,600}") {
        prop_assert!(decode(text.as_bytes(), &keys(), NOW).is_err());
    }

    #[test]
    fn arbitrary_authentic_plaintext_never_panics_and_is_checked(
        plaintext in proptest::collection::vec(any::<u8>(), 0..400),
        salt in any::<[u8; 8]>(),
    ) {
        let (key, hmac) = raw_keys();
        let packet = seal(&plaintext, &key, &hmac, salt);
        if packet.len() >= 140 {
            // Authentic, so never refused as junk or for its HMAC.
            match decode(packet.as_bytes(), &keys(), NOW) {
                Ok(_) => prop_assert!(false, "random plaintext accepted"),
                Err(refusal) => prop_assert!(refusal.authenticated(), "{refusal:?}"),
            }
        }
    }

    #[test]
    fn authentic_messages_with_arbitrary_fields_never_panic(
        user in "[ -~]{0,70}",
        timestamp in "[0-9]{0,14}",
        kind in "[0-9]{1,3}",
        access in "[ -~]{0,80}",
        extra in proptest::option::of("[A-Za-z0-9+/:]{0,40}"),
    ) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
        let mut fields = format!(
            "1234567890123456:{}:{timestamp}:3.0.0:{kind}:{}",
            b64.encode(&user),
            b64.encode(&access)
        );
        if let Some(extra) = extra {
            fields.push(':');
            fields.push_str(&extra);
        }
        let (key, hmac) = raw_keys();
        let packet = seal(message(&fields).as_bytes(), &key, &hmac, [1; 8]);
        if let Ok(request) = decode(packet.as_bytes(), &keys(), NOW) {
            // Whatever passes is timely and names ports.
            prop_assert!(NOW.abs_diff(request.timestamp) <= 120);
            prop_assert!(!request.access.is_empty());
            prop_assert!(!request.username.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn well_formed_authentic_requests_decode_to_their_fields(
        user in "[a-z][a-z0-9._-]{0,15}",
        offset in -120i64..=120,
        addr in any::<[u8; 4]>(),
        ports in proptest::collection::vec((any::<bool>(), 1u16..), 1..5),
        timeout in proptest::option::of(1u32..=65536),
    ) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
        let timestamp = NOW.checked_add_signed(offset).expect("near NOW");
        let ip = std::net::Ipv4Addr::from(addr);
        let specs: Vec<String> = ports
            .iter()
            .map(|(tcp, port)| format!("{}/{port}", if *tcp { "tcp" } else { "udp" }))
            .collect();
        let access = format!("{ip},{}", specs.join(","));
        let kind = if timeout.is_some() { 3 } else { 1 };
        let mut fields = format!(
            "6543210987654321:{}:{timestamp}:3.0.0:{kind}:{}",
            b64.encode(&user),
            b64.encode(&access)
        );
        if let Some(t) = timeout {
            fields.push_str(&format!(":{t}"));
        }
        let (key, hmac) = raw_keys();
        let packet = seal(message(&fields).as_bytes(), &key, &hmac, [3; 8]);
        let request = decode(packet.as_bytes(), &keys(), NOW);
        prop_assert!(request.is_ok(), "{request:?} for {fields}");
        let request = request.expect("checked");
        prop_assert_eq!(request.username, user);
        prop_assert_eq!(request.timestamp, timestamp);
        prop_assert_eq!(request.allow_addr, std::net::IpAddr::V4(ip));
        prop_assert_eq!(request.client_timeout, timeout);
        let got: Vec<(bool, u16)> = request
            .access
            .iter()
            .map(|p| (p.transport == spa_proto::knock::Transport::Tcp, p.port))
            .collect();
        prop_assert_eq!(got, ports);
    }
}

#[test]
fn an_authentic_message_with_a_wrong_inner_digest_is_refused() {
    let (key, hmac) = raw_keys();
    let fields = format!("1234567890123456:cm9vdA:{NOW}:3.0.0:1:MTAuMS4yLjMsdGNwLzIy");
    let mut text = message(&fields);
    // Change one digit of the random value after the digest was taken.
    text.replace_range(0..1, "9");
    let packet = seal(text.as_bytes(), &key, &hmac, [2; 8]);
    assert_eq!(
        decode(packet.as_bytes(), &keys(), NOW),
        Err(Refusal::DigestMismatch)
    );
}
