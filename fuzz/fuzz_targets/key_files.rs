//! The key files spa reads: a gateway's server entry (`parse_server_entry`) and a
//! user's client key file (`parse_client_key`). Whatever parses writes back
//! (`to_toml`) to a file that parses to the same entry or key; whatever does not
//! parse gives an error naming the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spa_keys::{parse_client_key, parse_server_entry};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/spad/keys/alice.toml");
    match parse_server_entry(path, text) {
        Ok(entry) => {
            let again = parse_server_entry(path, &entry.to_toml())
                .unwrap_or_else(|e| panic!("written server entry does not parse: {e}"));
            assert_eq!(again.user, entry.user);
            assert_eq!(again.server_id, entry.server_id);
            assert!(again.key == entry.key, "key changed in the round trip");
            assert_eq!(again.doors, entry.doors);
            assert_eq!(again.expires, entry.expires);
            assert_eq!(again.allow_observed, entry.allow_observed);
            assert_eq!(again.revoked, entry.revoked);
            let _ = entry.to_key_entry();
        }
        Err(e) => assert!(e.to_string().contains("alice.toml"), "{e}"),
    }
    let path = Path::new("/home/alice/.config/spa/key.toml");
    match parse_client_key(path, text) {
        Ok(key) => {
            let again = parse_client_key(path, &key.to_toml())
                .unwrap_or_else(|e| panic!("written client key does not parse: {e}"));
            assert_eq!(again.user, key.user);
            assert!(
                again.secret == key.secret,
                "secret changed in the round trip"
            );
            assert_eq!(again.gateways, key.gateways);
            let _ = key.gateway(None);
        }
        Err(e) => assert!(e.to_string().contains("key.toml"), "{e}"),
    }
});
