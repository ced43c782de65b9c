//! The outer layer of an fwknop packet: unpadded base64 of the OpenSSL-style
//! `Salted__` + salt + AES-256-CBC ciphertext with its first 10 characters
//! (`U2FsdGVkX1`) stripped, followed by the base64 HMAC of that text
//! (prefix restored). Owns the cheap junk checks, the HMAC check (first,
//! constant time) and decryption with fwknop's key derivation
//! (lib/cipher_funcs.c `rij_salt_and_iv`: MD5 chained over key ‖ salt, as
//! OpenSSL's EVP_BytesToKey). Never looks at the plaintext's fields.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use zeroize::Zeroizing;

use crate::keys::{FwknopKeys, HmacDigest};
use crate::refusal::Refusal;

/// fwknopd's smallest packet (fwknopd_common.h `MIN_SPA_DATA_SIZE`).
pub const MIN_PACKET_LEN: usize = 140;
/// fwknopd's largest packet (fwknopd_common.h `MAX_SPA_PACKET_LEN`).
pub const MAX_PACKET_LEN: usize = 1500;
/// The base64 of `Salted__`'s first 7½ bytes, which clients strip (fko.h).
const SALTED_B64: &[u8] = b"U2FsdGVkX1";
/// The base64 start of a GPG packet (fko.h `B64_GPG_PREFIX`), and the size
/// above which fwknopd reads that start as GPG (`MIN_GNUPG_MSG_SIZE`).
const GPG_B64: &[u8] = b"hQ";
const MIN_GPG_LEN: usize = 400;
/// Shortest encrypted text left once the HMAC is cut off (fko_limits.h).
const MIN_ENCRYPTED_LEN: usize = 36;
const SALT_MAGIC: &[u8] = b"Salted__";
const BLOCK: usize = 16;

/// Canonical unpadded standard base64: one text for one byte string, so no
/// two packet texts carry the same authenticated content.
const STRICT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// Checks the packet's form and HMAC, then decrypts it; returns the
/// plaintext (`random:user:time:…:digest`).
pub(crate) fn open(packet: &[u8], keys: &FwknopKeys) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    if packet.len() < MIN_PACKET_LEN {
        return Err(Refusal::TooShort {
            len: packet.len(),
            min: MIN_PACKET_LEN,
        });
    }
    if packet.len() > MAX_PACKET_LEN {
        return Err(Refusal::TooLong {
            len: packet.len(),
            max: MAX_PACKET_LEN,
        });
    }
    if !packet
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
    {
        return Err(Refusal::NotBase64);
    }
    if packet.starts_with(SALTED_B64) {
        return Err(Refusal::SaltedPrefix);
    }
    if packet.len() > MIN_GPG_LEN && packet.starts_with(GPG_B64) {
        return Err(Refusal::Gpg);
    }

    let tag_len = keys.hmac_digest.tag_b64_len();
    let (body, tag_text) = packet.split_at(packet.len() - tag_len);
    if body.len() < MIN_ENCRYPTED_LEN {
        return Err(Refusal::HmacMismatch);
    }
    let tag = STRICT_B64
        .decode(tag_text)
        .map_err(|_| Refusal::HmacMismatch)?;
    let mut authenticated = Vec::with_capacity(SALTED_B64.len() + body.len());
    authenticated.extend_from_slice(SALTED_B64);
    authenticated.extend_from_slice(body);
    verify_hmac(keys, &authenticated, &tag)?;

    let raw = Zeroizing::new(
        STRICT_B64
            .decode(&authenticated)
            .map_err(|_| Refusal::Undecryptable)?,
    );
    decrypt(keys, &raw)
}

/// Constant-time HMAC check over the base64 text (prefix restored).
fn verify_hmac(keys: &FwknopKeys, text: &[u8], tag: &[u8]) -> Result<(), Refusal> {
    fn check<M: Mac + hmac::digest::KeyInit>(key: &[u8], text: &[u8], tag: &[u8]) -> bool {
        match <M as hmac::digest::KeyInit>::new_from_slice(key) {
            Ok(mut mac) => {
                mac.update(text);
                mac.verify_slice(tag).is_ok()
            }
            Err(_) => false,
        }
    }
    let key = keys.hmac.as_slice();
    let ok = match keys.hmac_digest {
        HmacDigest::Sha256 => check::<Hmac<sha2::Sha256>>(key, text, tag),
        HmacDigest::Sha384 => check::<Hmac<sha2::Sha384>>(key, text, tag),
        HmacDigest::Sha512 => check::<Hmac<sha2::Sha512>>(key, text, tag),
    };
    if ok {
        Ok(())
    } else {
        Err(Refusal::HmacMismatch)
    }
}

/// `Salted__` ‖ salt ‖ AES-256-CBC(PKCS#7) → plaintext.
fn decrypt(keys: &FwknopKeys, raw: &[u8]) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    // A ciphertext that is not whole blocks fails in `decrypt_padded_mut`.
    if raw.len() < 2 * BLOCK || !raw.starts_with(SALT_MAGIC) {
        return Err(Refusal::Undecryptable);
    }
    let (head, ciphertext) = raw.split_at(BLOCK);
    let salt = &head[SALT_MAGIC.len()..];
    let (key, iv) = derive_key_iv(&keys.rijndael, salt);
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let cipher = Aes256CbcDec::new_from_slices(key.as_slice(), iv.as_slice())
        .map_err(|_| Refusal::Undecryptable)?;
    let len = cipher
        .decrypt_padded_mut::<Pkcs7>(&mut buffer)
        .map_err(|_| Refusal::Undecryptable)?
        .len();
    buffer.truncate(len);
    Ok(buffer)
}

/// fwknop's key and IV: D1 = MD5(key ‖ salt), Dn = MD5(Dn-1 ‖ key ‖ salt);
/// key = D1 ‖ D2, IV = D3 (CBC mode, not the "legacy IV" mode).
fn derive_key_iv(key: &[u8], salt: &[u8]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 16]>) {
    let mut material = Zeroizing::new([0u8; 48]);
    let mut previous: Option<Zeroizing<[u8; 16]>> = None;
    for chunk in material.chunks_mut(16) {
        let mut md5 = Md5::new();
        if let Some(prev) = &previous {
            md5.update(prev.as_slice());
        }
        md5.update(key);
        md5.update(salt);
        let digest = Zeroizing::new(<[u8; 16]>::from(md5.finalize()));
        chunk.copy_from_slice(digest.as_slice());
        previous = Some(digest);
    }
    let mut aes_key = Zeroizing::new([0u8; 32]);
    let mut iv = Zeroizing::new([0u8; 16]);
    aes_key.copy_from_slice(&material[..32]);
    iv.copy_from_slice(&material[32..]);
    (aes_key, iv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_derivation_matches_openssl_evp_bytes_to_key_md5() {
        // openssl enc -aes-256-cbc -md md5 -S 0102030405060708 -pass pass:fwknop-test-key -P
        let (key, iv) = derive_key_iv(b"fwknop-test-key", &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            hex(key.as_slice()),
            "031C815E7DE90D1287A19EE32AD2E047CDFCB21D645110A60E121200DF50E6F8"
        );
        assert_eq!(hex(iv.as_slice()), "1BCE3B4C0B50F241BE0238F9290FE294");
    }

    #[test]
    fn ciphertext_that_is_not_whole_blocks_is_undecryptable() {
        let keys = FwknopKeys::from_base64("AAEC", "AAED", HmacDigest::Sha256).expect("keys");
        let mut raw = b"Salted__12345678".to_vec();
        raw.extend_from_slice(&[0u8; 17]);
        assert_eq!(
            decrypt(&keys, &raw).map(|_| ()),
            Err(Refusal::Undecryptable)
        );
        raw.truncate(16 + 16);
        // Whole blocks, but the padding of random bytes is not PKCS#7.
        raw[31] = 0x55;
        assert_eq!(
            decrypt(&keys, &raw).map(|_| ()),
            Err(Refusal::Undecryptable)
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }
}
