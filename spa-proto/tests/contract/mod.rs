//! Reading the protocol's contract, `../shared/spa1-vectors.json`, in place
//! (never a copy): the file and the helpers that turn its fields into types.
#![allow(dead_code, clippy::expect_used)]

use base64::Engine;
use serde_json::Value;
use spa_proto::{SecretBytes, ServerId, UserSecret};

/// The whole vector file (`SPA_VECTORS` overrides its path).
pub fn vectors() -> Value {
    let path = std::env::var("SPA_VECTORS").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/spa1-vectors.json"
        )
        .to_string()
    });
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading the protocol vectors at {path}: {e}"));
    serde_json::from_str(&text).expect("vectors are JSON")
}

/// A hex string field as bytes.
pub fn hexb(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

/// The entry's `secret_b64` as a user secret.
pub fn secret(v: &Value) -> UserSecret {
    let b = base64::engine::general_purpose::STANDARD
        .decode(v["secret_b64"].as_str().expect("secret_b64"))
        .expect("base64");
    UserSecret::new(SecretBytes::from_slice(&b).expect("32 bytes"))
}

/// The entry's `server_id`.
pub fn server_id(v: &Value) -> ServerId {
    v["server_id"]
        .as_str()
        .expect("server_id")
        .parse()
        .expect("valid server_id")
}
