//! Runs every entry of `../shared/spa1-vectors.json` (the protocol's contract,
//! read in place, never copied with edits) against spa-proto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

mod contract;

use contract::{hexb, secret, server_id, vectors};
use serde_json::Value;
use spa_proto::packet::{self, Address, Request};
use spa_proto::replay::ReplayCache;
use spa_proto::{
    DoorName, DoorPolicy, KeyEntry, Keyring, ServerKey, Verdict, Verifier, VerifierConfig,
};

fn door(s: &str) -> DoorName {
    s.parse().expect("door name")
}

fn entry(key: ServerKey, doors: &[&str], allow_observed: bool) -> KeyEntry {
    KeyEntry {
        user: "alice".into(),
        key,
        doors: doors
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect::<BTreeSet<_>>(),
        allow_observed,
        expires_at_ms: None,
        enabled: true,
    }
}

fn policies(names: &[&str], default_secs: u32, max_secs: u32) -> BTreeMap<DoorName, DoorPolicy> {
    names
        .iter()
        .map(|n| {
            (
                door(n),
                DoorPolicy {
                    default_secs,
                    max_secs,
                },
            )
        })
        .collect()
}

fn ip(v: &Value) -> IpAddr {
    v.as_str().expect("ip string").parse().expect("ip")
}

#[test]
fn valid_vectors_encode_decode_and_open() {
    let all = vectors();
    let valid = all["valid"].as_array().expect("valid");
    assert!(!valid.is_empty());
    for v in valid {
        let srv = secret(v).server_key(&server_id(v));
        assert_eq!(srv.expose().to_vec(), hexb(&v["k_srv_hex"]), "K_srv");
        let d = srv.derive();
        assert_eq!(d.aead.expose().to_vec(), hexb(&v["k_aead_hex"]), "K_aead");
        assert_eq!(d.hint.expose().to_vec(), hexb(&v["k_hint_hex"]), "K_hint");
        assert_eq!(
            d.knock.expose().to_vec(),
            hexb(&v["k_knock_hex"]),
            "K_knock"
        );
        let ts = v["timestamp_ms"].as_u64().expect("timestamp");
        assert_eq!(packet::window_of(ts), v["window"].as_u64().expect("window"));
        assert_eq!(
            packet::hint(&d, packet::window_of(ts)).to_vec(),
            hexb(&v["hint_hex"])
        );

        let address = match v["address"].as_str() {
            None => Address::Observed,
            Some(a) => Address::from(a.parse::<IpAddr>().expect("address")),
        };
        assert_eq!(
            address.kind() as u64,
            v["address_kind"].as_u64().expect("kind")
        );
        let request = Request {
            timestamp_ms: ts,
            address,
            seconds: v["seconds"].as_u64().expect("seconds") as u16,
            door: door(v["door"].as_str().expect("door")),
        };
        let plaintext = hexb(&v["plaintext_hex"]);
        assert_eq!(
            request.encode().to_vec(),
            plaintext,
            "plaintext of {}",
            v["door"]
        );
        let mut p = [0u8; 64];
        p.copy_from_slice(&plaintext);
        assert_eq!(Request::decode(&p).as_ref(), Ok(&request), "decode");

        let nonce: [u8; 12] = hexb(&v["nonce_hex"]).try_into().expect("12-byte nonce");
        let sealed = packet::seal(&d, &request, nonce);
        assert_eq!(sealed.to_vec(), hexb(&v["packet_hex"]), "packet bytes");

        let door_name = v["door"].as_str().expect("door");
        let config = VerifierConfig {
            skew_ms: all["skew_ms"].as_u64().expect("skew"),
            cap: 32,
            doors: policies(&[door_name], 30, 65535),
        };
        let keyring = Keyring::new([entry(
            srv,
            &[door_name],
            request.address == Address::Observed,
        )]);
        let mut verifier = Verifier::new(config, keyring, ReplayCache::new(32, 30_000));
        match verifier.verify(&sealed, ip(&v["ip_source"]), ts) {
            Verdict::Grant(g) => {
                assert_eq!(g.addr, ip(&v["opens_for"]));
                assert_eq!(g.door.as_str(), door_name);
            }
            Verdict::Drop(r) => panic!("valid vector for door {door_name} dropped: {r}"),
        }
    }
}

fn server_for(all: &Value, user_doors: &[&str], allow_observed: bool, cap: usize) -> Verifier {
    let s = &all["invalid_server"];
    let srv = secret(s).server_key(&server_id(s));
    assert_eq!(srv.expose().to_vec(), hexb(&s["k_srv_hex"]));
    let config = VerifierConfig {
        skew_ms: all["skew_ms"].as_u64().expect("skew"),
        cap,
        doors: policies(&["ssh", "admin"], 30, 300),
    };
    let keyring = Keyring::new([entry(srv, user_doors, allow_observed)]);
    Verifier::new(config, keyring, ReplayCache::new(cap, 30_000))
}

#[test]
fn invalid_vectors_are_dropped_for_their_reason() {
    let all = vectors();
    let invalid = all["invalid"].as_array().expect("invalid");
    assert!(!invalid.is_empty());
    for v in invalid {
        let doors: Vec<&str> = v["user_doors"]
            .as_array()
            .expect("user_doors")
            .iter()
            .map(|d| d.as_str().expect("door"))
            .collect();
        let mut verifier = server_for(
            &all,
            &doors,
            v["allow_observed"].as_bool().expect("bool"),
            32,
        );
        let got = verifier.verify(
            &hexb(&v["packet_hex"]),
            ip(&v["ip_source"]),
            v["now_ms"].as_u64().expect("now"),
        );
        let want = v["reason"].as_str().expect("reason");
        match got {
            Verdict::Drop(r) => assert_eq!(r.as_str(), want, "{}", v["why"]),
            Verdict::Grant(g) => panic!("{} opened {} for {}", v["why"], g.door, g.addr),
        }
    }
}

#[test]
fn sequences_give_their_results_in_order() {
    let all = vectors();
    let sequences = all["sequences"].as_array().expect("sequences");
    assert!(!sequences.is_empty());
    for s in sequences {
        let cap = s["cap"].as_u64().expect("cap") as usize;
        let mut verifier = server_for(
            &all,
            &["ssh"],
            s["allow_observed"].as_bool().expect("bool"),
            cap,
        );
        for (i, step) in s["steps"].as_array().expect("steps").iter().enumerate() {
            let got = verifier.verify(
                &hexb(&step["packet_hex"]),
                ip(&step["ip_source"]),
                step["now_ms"].as_u64().expect("now"),
            );
            let why = format!("{} (step {i})", s["why"]);
            match (step["result"].as_str().expect("result"), got) {
                ("open", Verdict::Grant(g)) => assert_eq!(g.addr, ip(&step["opens_for"]), "{why}"),
                ("drop", Verdict::Drop(r)) => {
                    assert_eq!(Some(r.as_str()), step["reason"].as_str(), "{why}")
                }
                (want, got) => panic!("{why}: wanted {want}, got {got:?}"),
            }
        }
    }
}
