//! The secrets of one fwknop access stanza: the Rijndael key (`KEY` or
//! `KEY_BASE64`), the HMAC key (`HMAC_KEY` or `HMAC_KEY_BASE64`) and the
//! HMAC algorithm (`HMAC_DIGEST_TYPE`). Held in zeroizing buffers; Debug
//! never shows them. An HMAC key is required: there is no way to build keys
//! without one.

use std::fmt;

use base64::Engine;
use zeroize::Zeroizing;

/// fwknop's longest Rijndael key (rijndael.h `RIJNDAEL_MAX_KEYSIZE`).
pub const MAX_KEY_LEN: usize = 32;
/// fwknop's longest HMAC key (hmac.h `MAX_DIGEST_BLOCK_LEN`).
pub const MAX_HMAC_KEY_LEN: usize = 136;

/// The HMAC algorithms spa accepts (fwknop's `HMAC_DIGEST_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HmacDigest {
    /// fwknop's default.
    #[default]
    Sha256,
    Sha384,
    Sha512,
}

impl HmacDigest {
    /// Length of the unpadded base64 tag fwknop appends to the packet.
    pub fn tag_b64_len(self) -> usize {
        match self {
            HmacDigest::Sha256 => 43,
            HmacDigest::Sha384 => 64,
            HmacDigest::Sha512 => 86,
        }
    }

    /// Reads an `HMAC_DIGEST_TYPE` value as fwknopd does (case-insensitive).
    pub fn from_fwknop_name(name: &str) -> Result<Self, KeyError> {
        match name.to_ascii_uppercase().as_str() {
            "SHA256" => Ok(HmacDigest::Sha256),
            "SHA384" => Ok(HmacDigest::Sha384),
            "SHA512" => Ok(HmacDigest::Sha512),
            "MD5" | "SHA1" | "SHA3_256" | "SHA3_512" => {
                Err(KeyError::UnsupportedHmacDigest(name.to_owned()))
            }
            _ => Err(KeyError::UnknownHmacDigest(name.to_owned())),
        }
    }

    /// The name fwknop uses.
    pub fn fwknop_name(self) -> &'static str {
        match self {
            HmacDigest::Sha256 => "SHA256",
            HmacDigest::Sha384 => "SHA384",
            HmacDigest::Sha512 => "SHA512",
        }
    }
}

/// Why a stanza's keys cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("{which} is not valid base64")]
    BadBase64 { which: &'static str },
    #[error("the encryption key is empty")]
    EmptyKey,
    #[error("the encryption key is {len} bytes; fwknop's Rijndael keys are at most {MAX_KEY_LEN}")]
    KeyTooLong { len: usize },
    #[error("an HMAC key is required (fwknop without HMAC lets altered packets through)")]
    MissingHmacKey,
    #[error("the HMAC key is {len} bytes; fwknop allows at most {MAX_HMAC_KEY_LEN}")]
    HmacKeyTooLong { len: usize },
    #[error("the encryption key and the HMAC key are identical; fwknopd refuses that too")]
    SameKeys,
    #[error("HMAC_DIGEST_TYPE {0} is not supported by spa (use SHA256, SHA384 or SHA512)")]
    UnsupportedHmacDigest(String),
    #[error("HMAC_DIGEST_TYPE {0} is unknown (fwknop knows MD5, SHA1, SHA256, SHA384, SHA512, SHA3_256, SHA3_512)")]
    UnknownHmacDigest(String),
}

/// One stanza's keys, ready for [`crate::decode`].
#[derive(Clone)]
pub struct FwknopKeys {
    pub(crate) rijndael: Zeroizing<Vec<u8>>,
    pub(crate) hmac: Zeroizing<Vec<u8>>,
    pub(crate) hmac_digest: HmacDigest,
}

impl FwknopKeys {
    /// Keys from raw bytes (a `KEY`'s text bytes, or a decoded `KEY_BASE64`).
    pub fn new(
        rijndael: Zeroizing<Vec<u8>>,
        hmac: Zeroizing<Vec<u8>>,
        hmac_digest: HmacDigest,
    ) -> Result<Self, KeyError> {
        if rijndael.is_empty() {
            return Err(KeyError::EmptyKey);
        }
        if rijndael.len() > MAX_KEY_LEN {
            return Err(KeyError::KeyTooLong {
                len: rijndael.len(),
            });
        }
        if hmac.is_empty() {
            return Err(KeyError::MissingHmacKey);
        }
        if hmac.len() > MAX_HMAC_KEY_LEN {
            return Err(KeyError::HmacKeyTooLong { len: hmac.len() });
        }
        if rijndael.as_slice() == hmac.as_slice() {
            return Err(KeyError::SameKeys);
        }
        Ok(FwknopKeys {
            rijndael,
            hmac,
            hmac_digest,
        })
    }

    /// Keys from `KEY_BASE64` and `HMAC_KEY_BASE64` values (what
    /// `fwknop --key-gen` prints).
    pub fn from_base64(
        key_b64: &str,
        hmac_b64: &str,
        hmac_digest: HmacDigest,
    ) -> Result<Self, KeyError> {
        let key = decode_b64(key_b64, "KEY_BASE64")?;
        if hmac_b64.is_empty() {
            return Err(KeyError::MissingHmacKey);
        }
        let hmac = decode_b64(hmac_b64, "HMAC_KEY_BASE64")?;
        Self::new(key, hmac, hmac_digest)
    }

    /// The HMAC algorithm these keys check.
    pub fn hmac_digest(&self) -> HmacDigest {
        self.hmac_digest
    }

    /// Length of the encryption key in bytes (for reports; never the key).
    pub fn key_len(&self) -> usize {
        self.rijndael.len()
    }

    /// Length of the HMAC key in bytes (for reports; never the key).
    pub fn hmac_key_len(&self) -> usize {
        self.hmac.len()
    }
}

/// Decodes a key as fwknop writes it: standard base64, padding optional.
pub(crate) fn decode_b64(text: &str, which: &'static str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let trimmed = text.trim_end_matches('=');
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    engine
        .decode(trimmed)
        .map(Zeroizing::new)
        .map_err(|_| KeyError::BadBase64 { which })
}

impl fmt::Debug for FwknopKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FwknopKeys")
            .field("rijndael", &format_args!("<{} bytes>", self.rijndael.len()))
            .field("hmac", &format_args!("<{} bytes>", self.hmac.len()))
            .field("hmac_digest", &self.hmac_digest)
            .finish()
    }
}
