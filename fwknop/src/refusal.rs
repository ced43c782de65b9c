//! Why an fwknop packet was refused: one variant per check, in the order
//! the decoder makes them. Never carries key material or plaintext.

/// Why a packet opened nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Shorter than fwknopd's minimum (140 bytes): not an fwknop packet.
    #[error("packet too short for fwknop ({len} bytes, at least {min})")]
    TooShort { len: usize, min: usize },
    /// Longer than fwknopd's maximum (1500 bytes).
    #[error("packet too long for fwknop ({len} bytes, at most {max})")]
    TooLong { len: usize, max: usize },
    /// A byte outside base64's alphabet (fwknop sends unpadded base64 text).
    #[error("not base64 text: not an fwknop packet")]
    NotBase64,
    /// Starts with the base64 of `Salted__`, which clients strip: fwknopd
    /// refuses it since a prefix can be tacked onto a seen packet to dodge
    /// the replay check.
    #[error("packet starts with the \"Salted__\" prefix fwknop clients strip (replay trick)")]
    SaltedPrefix,
    /// Looks like a GPG-encrypted packet; spa supports Rijndael + HMAC only.
    #[error("GPG-encrypted fwknop packets are not supported")]
    Gpg,
    /// The HMAC does not match these keys (wrong key, or altered packet).
    #[error("HMAC does not match (wrong key or altered packet)")]
    HmacMismatch,
    /// Authentic but the ciphertext does not decrypt (wrong encryption key,
    /// or an encryption mode other than CBC).
    #[error("authentic packet does not decrypt with this key (wrong KEY, or not CBC mode)")]
    Undecryptable,
    /// A decrypted field is malformed.
    #[error("malformed {field} field")]
    BadField { field: &'static str },
    /// The inner digest's length names an algorithm spa does not check.
    #[error("inner digest {0} is not supported (use SHA256, SHA384 or SHA512)")]
    UnsupportedDigest(&'static str),
    /// The inner digest does not match the fields (or is SHA3).
    #[error("inner digest does not match the fields (SHA3 digests are not supported)")]
    DigestMismatch,
    /// A command-execution message (`fwknop --server-cmd`): never run.
    #[error("fwknop command messages are not supported")]
    CommandMessage,
    /// The timestamp is older than the allowed age.
    #[error("packet is {age_secs} s old (at most {max_secs} s)")]
    TooOld { age_secs: u64, max_secs: u64 },
    /// The timestamp is ahead of the server's clock by more than the allowed age.
    #[error("packet is {ahead_secs} s in the future (at most {max_secs} s)")]
    FromFuture { ahead_secs: u64, max_secs: u64 },
}

impl Refusal {
    /// True when the packet passed these keys' HMAC, so it was meant for
    /// them: the caller stops trying other stanzas and counts it as a
    /// refusal of an authentic packet. False for junk and other keys' packets.
    pub fn authenticated(&self) -> bool {
        !matches!(
            self,
            Refusal::TooShort { .. }
                | Refusal::TooLong { .. }
                | Refusal::NotBase64
                | Refusal::SaltedPrefix
                | Refusal::Gpg
                | Refusal::HmacMismatch
        )
    }
}
