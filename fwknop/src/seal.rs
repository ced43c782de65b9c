//! An fwknop packet sealer for tests and fuzzing only (cargo feature `seal`),
//! so arbitrary plaintexts reach past the HMAC: `Salted__` ‖ salt ‖
//! AES-256-CBC (fwknop's MD5 key derivation), unpadded base64 without the
//! `U2FsdGVkX1` prefix, then the base64 HMAC-SHA256 tag of that text. Checked
//! against the real client by the `sealed_like_the_client` test. spad never
//! seals: it is not built into the daemon.

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

/// Seals `plaintext` under raw keys (the Rijndael key and the HMAC-SHA256
/// key) with a fixed `salt`; returns the packet text a client would send.
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
        .unwrap_or_else(|_| unreachable!("a 32-byte key and a 16-byte IV"));
    let mut buffer = plaintext.to_vec();
    let len = buffer.len();
    buffer.resize(len + 16, 0);
    let ciphertext = cipher
        .encrypt_padded_mut::<Pkcs7>(&mut buffer, len)
        .unwrap_or_else(|_| unreachable!("one block of room for the padding"))
        .to_vec();
    let mut raw = b"Salted__".to_vec();
    raw.extend_from_slice(&salt);
    raw.extend_from_slice(&ciphertext);
    let text = STANDARD_NO_PAD.encode(raw);
    let body = text
        .strip_prefix("U2FsdGVkX1")
        .unwrap_or_else(|| unreachable!("base64 of Salted__ starts so"))
        .to_owned();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(hmac_key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(text.as_bytes());
    body + &STANDARD_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The inner message fwknop builds from its `:`-separated fields: the
/// fields, then `:` and their unpadded base64 SHA-256.
pub fn message(fields: &str) -> String {
    let digest = STANDARD_NO_PAD.encode(sha2::Sha256::digest(fields.as_bytes()));
    format!("{fields}:{digest}")
}
