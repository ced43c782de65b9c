//! Key material of PROTOCOL §1: the user's secret `S`, the per-gateway server
//! key `K_srv`, and the keys derived from it. Owns HKDF derivation; every type
//! here zeroizes on drop and never shows its bytes in `Debug`.

use std::fmt;

use ring::hkdf;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::names::ServerId;

/// The length of every key in spa/1.
pub const KEY_LEN: usize = 32;

/// 32 secret bytes that are wiped when dropped and print as `***`.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretBytes([u8; KEY_LEN]);

impl SecretBytes {
    /// Wraps raw bytes; the caller should wipe its own copy.
    pub fn new(bytes: [u8; KEY_LEN]) -> Self {
        SecretBytes(bytes)
    }

    /// Takes exactly 32 bytes from a slice.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(SecretBytes(arr))
    }

    /// The secret bytes. Never log them.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(***)")
    }
}

/// A user's secret `S`: stays with the user, never on a gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct UserSecret(SecretBytes);

impl UserSecret {
    /// Wraps 32 bytes of a user's secret.
    pub fn new(bytes: SecretBytes) -> Self {
        UserSecret(bytes)
    }

    /// The raw secret. Never log it.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        self.0.expose()
    }

    /// `K_srv` for one gateway: HKDF-Expand(HKDF-Extract("spa/1", S), "spa/1 server " || server_id).
    pub fn server_key(&self, server_id: &ServerId) -> ServerKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"spa/1").extract(self.expose());
        let info = Zeroizing::new(format!("spa/1 server {}", server_id.as_str()));
        ServerKey(SecretBytes(expand(&prk, info.as_bytes())))
    }
}

impl fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserSecret(***)")
    }
}

/// `K_srv`: what a gateway stores for a user. Opens nothing on another gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerKey(SecretBytes);

impl ServerKey {
    /// Wraps a stored `K_srv`.
    pub fn new(bytes: SecretBytes) -> Self {
        ServerKey(bytes)
    }

    /// The raw key. Never log it.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        self.0.expose()
    }

    /// The keys used on the wire, derived with `K_srv` as the HKDF PRK.
    pub fn derive(&self) -> DerivedKeys {
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, self.expose());
        DerivedKeys {
            aead: SecretBytes(expand(&prk, b"spa/1 aead")),
            hint: SecretBytes(expand(&prk, b"spa/1 hint")),
            knock: SecretBytes(expand(&prk, b"spa/1 knock")),
        }
    }

    /// A public, stable identifier of this key (not a secret: SHA-256 is one-way),
    /// used to name the key in the replay cache file.
    pub fn key_id(&self) -> KeyId {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"spa/1 key id ");
        h.update(self.expose());
        let out = h.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&out[..16]);
        KeyId(id)
    }
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(***)")
    }
}

/// A public fingerprint of a `K_srv` (16 bytes of SHA-256), safe to store and log.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// `K_aead`, `K_hint` and `K_knock` of one server key.
#[derive(Clone)]
pub struct DerivedKeys {
    /// ChaCha20-Poly1305 key.
    pub aead: SecretBytes,
    /// HMAC-SHA256 key for the packet hint.
    pub hint: SecretBytes,
    /// HMAC-SHA256 key for rotating knock sequences.
    pub knock: SecretBytes,
}

impl fmt::Debug for DerivedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKeys(***)")
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

fn expand(prk: &hkdf::Prk, info: &[u8]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    let infos = [info];
    // HKDF-SHA256 can expand up to 255*32 bytes; 32 never fails.
    #[allow(clippy::expect_used)]
    prk.expand(&infos, Len32)
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF-Expand of 32 bytes cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secret_bytes() {
        let s = UserSecret::new(SecretBytes::new([0xab; 32]));
        let k = s.server_key(&"gw".parse().unwrap_or_else(|_| unreachable!()));
        let shown = format!("{s:?} {k:?} {:?}", k.derive());
        assert!(!shown.contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains("***"));
    }
}
