//! Rotating knock sequences (PROTOCOL §4) against every `knock` and
//! `invalid_knock_configs` entry of `../shared/spa1-vectors.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract;

use contract::{secret, server_id, vectors};
use serde_json::Value;
use spa_proto::knock::{derive_sequence, RotatingSpec};
use spa_proto::{DoorName, SecretBytes};

fn group<'a>(v: &'a Value, name: &str) -> &'a Vec<Value> {
    let entries = v[name]
        .as_array()
        .unwrap_or_else(|| panic!("group {name} is an array"));
    assert!(!entries.is_empty(), "group {name} is empty");
    entries
}

fn int<T: TryFrom<u64>>(v: &Value, field: &str) -> T {
    let n = v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is an unsigned integer: {v}"));
    T::try_from(n).unwrap_or_else(|_| panic!("{field} = {n} is out of range"))
}

#[test]
fn every_knock_vector_derives_its_key_and_sequence() {
    let v = vectors();
    for entry in group(&v, "knock") {
        let secret = secret(entry);
        let server_id = server_id(entry);
        let k_knock = secret.server_key(&server_id).derive().knock;
        assert_eq!(
            hex::encode(k_knock.expose()),
            entry["k_knock_hex"].as_str().expect("k_knock_hex"),
            "K_knock of {entry}"
        );

        let door: DoorName = entry["door"]
            .as_str()
            .expect("door")
            .parse()
            .expect("valid door");
        let spec = RotatingSpec::new(int(entry, "n"), int(entry, "lo"), int(entry, "hi"))
            .unwrap_or_else(|e| panic!("vector spec refused: {e}: {entry}"));
        let want: Vec<u16> = entry["sequence"]
            .as_array()
            .expect("sequence")
            .iter()
            .map(|p| u16::try_from(p.as_u64().expect("port")).expect("port fits u16"))
            .collect();
        let got = derive_sequence(&k_knock, &door, &spec, int(entry, "step"));
        assert_eq!(got, Some(want), "sequence of {entry}");
        // The neighbouring step gives another sequence.
        let next = derive_sequence(&k_knock, &door, &spec, int::<u64>(entry, "step") + 1);
        assert_ne!(next, got, "step+1 of {entry}");
    }
}

#[test]
fn every_invalid_knock_config_is_refused() {
    let v = vectors();
    for entry in group(&v, "invalid_knock_configs") {
        let (n, lo, hi) = (
            entry["n"].as_u64(),
            entry["lo"].as_u64(),
            entry["hi"].as_u64(),
        );
        let (Some(n), Some(lo), Some(hi)) = (n, lo, hi) else {
            panic!("n, lo, hi are unsigned integers: {entry}");
        };
        // A value that does not even fit the field is refused as well.
        let (Ok(n), Ok(lo), Ok(hi)) = (u8::try_from(n), u16::try_from(lo), u16::try_from(hi))
        else {
            continue;
        };
        let result = RotatingSpec::new(n, lo, hi);
        assert!(result.is_err(), "accepted {entry}");
        let key = SecretBytes::new([1; 32]);
        let door: DoorName = "x".parse().expect("door");
        assert_eq!(
            derive_sequence(&key, &door, &RotatingSpec { n, lo, hi }, 0),
            None,
            "{entry}"
        );
    }
}
