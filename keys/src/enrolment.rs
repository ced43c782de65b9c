//! Self-enrolment: the user makes their secret `S` on their own machine and
//! sends the gateway's admin a request holding only what the gateway needs —
//! their user name and `K_srv` for that gateway — sealed to the gateway's
//! enrolment public key (X25519 with a fresh key per request, HKDF-SHA256,
//! ChaCha20-Poly1305, all from ring and x25519-dalek), so it is safe to send by
//! mail or chat. Owns the enrolment key file, the public key's text form, the
//! request's sealed form and the short fingerprints both sides read aloud.
//! Never prints a secret; secrets live in zeroizing types.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::digest::{digest, SHA256};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use spa_proto::{SecretBytes, ServerId, ServerKey, KEY_LEN};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::KeyFileError;
use crate::secret_file::read_secret_file;
use crate::toml_fields::{encode_key, parse_error, quote, KeyField, ServerIdField};
use crate::user_name::check_user_name;

/// How a gateway's enrolment public key starts: `spa-enrol-key-1:<server_id>:<base64>`.
pub const PUBLIC_KEY_PREFIX: &str = "spa-enrol-key-1";
/// How a sealed request's data line starts.
pub const REQUEST_PREFIX: &str = "spa-enrol-request-1:";
/// HKDF salt of the request key.
const KDF_SALT: &[u8] = b"spa/1 enrolment";
/// Associated data: binds the ciphertext to both public keys.
const AAD_LABEL: &[u8] = b"spa-enrol-request-1";

/// Why enrolment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrolmentError {
    /// The OS random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The public key text is not one.
    #[error("{0:?} is not a gateway enrolment key: it looks like {PUBLIC_KEY_PREFIX}:SERVER_ID:BASE64 (ask the gateway's admin for the line spa-keygen enrol-key printed)")]
    BadPublicKey(String),
    /// The request text is not one.
    #[error("this is not an spa enrolment request: {0}")]
    BadRequest(String),
    /// The request does not open with this gateway's key.
    #[error("the request does not open with the enrolment key of {0}: it was sealed to another gateway's key (or changed on the way); ask the user to make it again with this gateway's public key")]
    NotForUs(ServerId),
    /// Opened, but it names another gateway.
    #[error("the request is for gateway {request}, but this enrolment key is gateway {ours}'s")]
    WrongGateway {
        /// What the request says.
        request: ServerId,
        /// This key's gateway.
        ours: ServerId,
    },
    /// A public key of low order (no shared secret).
    #[error("the gateway enrolment key is not a usable X25519 public key")]
    WeakKey,
    /// The key file cannot be read or written.
    #[error(transparent)]
    File(#[from] KeyFileError),
}

/// A gateway's enrolment public key, as users get it from the admin.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolmentPublicKey {
    /// The gateway the key belongs to (what `K_srv` is derived for).
    pub server_id: ServerId,
    /// The X25519 public key.
    pub key: [u8; 32],
}

impl fmt::Debug for EnrolmentPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for EnrolmentPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PUBLIC_KEY_PREFIX}:{}:{}",
            self.server_id,
            base64::engine::general_purpose::STANDARD.encode(self.key)
        )
    }
}

impl FromStr for EnrolmentPublicKey {
    type Err = EnrolmentError;
    fn from_str(text: &str) -> Result<Self, EnrolmentError> {
        let bad = || EnrolmentError::BadPublicKey(text.to_owned());
        let mut parts = text.trim().split(':');
        let (Some(PUBLIC_KEY_PREFIX), Some(id), Some(b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let server_id: ServerId = id.parse().map_err(|_| bad())?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| bad())?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| bad())?;
        Ok(EnrolmentPublicKey { server_id, key })
    }
}

impl EnrolmentPublicKey {
    /// A short fingerprint of the public key, for checking it by phone.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&[
            b"spa-enrol-key-1",
            self.server_id.as_str().as_bytes(),
            &self.key,
        ])
    }
}

/// A gateway's enrolment key pair (the secret half stays on the admin's machine).
pub struct GatewayEnrolmentKey {
    /// The gateway.
    pub server_id: ServerId,
    secret: StaticSecret,
    /// The file it was loaded from or will be written to.
    pub path: PathBuf,
}

impl fmt::Debug for GatewayEnrolmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayEnrolmentKey")
            .field("server_id", &self.server_id)
            .field("secret", &"***")
            .field("public", &self.public())
            .field("path", &self.path)
            .finish()
    }
}

impl GatewayEnrolmentKey {
    /// A new key pair from the OS CSPRNG.
    pub fn generate(server_id: ServerId, path: PathBuf) -> Result<Self, EnrolmentError> {
        Ok(GatewayEnrolmentKey {
            server_id,
            secret: StaticSecret::from(*random_32()?),
            path,
        })
    }

    /// The public half, for users.
    pub fn public(&self) -> EnrolmentPublicKey {
        EnrolmentPublicKey {
            server_id: self.server_id.clone(),
            key: PublicKey::from(&self.secret).to_bytes(),
        }
    }

    /// The key file's text. Contains the secret.
    pub fn to_toml(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        out.push_str(&format!(
            "# spa enrolment key of gateway {} — keep it secret (chmod 600).\n\
             # Users seal their enrolment requests to its public half:\n#   {}\n\
             # Open them with: spa-keygen accept REQUEST --enrol-key <this file> --doors ...\n",
            self.server_id,
            self.public()
        ));
        out.push_str(&format!("server_id = {}\n", quote(self.server_id.as_str())));
        out.push_str("secret = \"");
        let bytes = Zeroizing::new(self.secret.to_bytes());
        out.push_str(&encode_key(&bytes));
        out.push_str("\"\n");
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolmentKeyFile {
    server_id: ServerIdField,
    secret: KeyField,
}

/// Loads a gateway enrolment key file, refusing it if group or others may read it.
pub fn load_enrolment_key(path: &Path) -> Result<GatewayEnrolmentKey, KeyFileError> {
    let text = read_secret_file(path)?;
    parse_enrolment_key(path, &text)
}

/// Parses the text of a gateway enrolment key file.
pub fn parse_enrolment_key(path: &Path, text: &str) -> Result<GatewayEnrolmentKey, KeyFileError> {
    let file: EnrolmentKeyFile = toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
    let bytes = Zeroizing::new(*file.secret.0.expose());
    Ok(GatewayEnrolmentKey {
        server_id: file.server_id.0,
        secret: StaticSecret::from(*bytes),
        path: path.to_owned(),
    })
}

/// What an opened request holds: exactly what the gateway's server entry needs.
#[derive(Debug)]
pub struct EnrolmentRequest {
    /// The user name.
    pub user: String,
    /// The gateway.
    pub server_id: ServerId,
    /// `K_srv` for that gateway.
    pub key: ServerKey,
}

/// A sealed request: the sender's one-time public key, then the ciphertext and tag.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedRequest {
    bytes: Vec<u8>,
}

impl fmt::Debug for SealedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedRequest({})", self.fingerprint())
    }
}

impl SealedRequest {
    /// Seals `user`'s `key` (their `K_srv` for `to.server_id`) to the gateway's public key.
    pub fn seal(
        to: &EnrolmentPublicKey,
        user: &str,
        key: &ServerKey,
    ) -> Result<SealedRequest, EnrolmentError> {
        check_user_name(user).map_err(|e| EnrolmentError::BadRequest(e.to_string()))?;
        let ours = StaticSecret::from(*random_32()?);
        let our_public = PublicKey::from(&ours).to_bytes();
        let sealing = request_key(&ours, &our_public, &to.key)?;
        let mut body = Zeroizing::new(Vec::with_capacity(2 + 64 + 64 + KEY_LEN + 16));
        for field in [user.as_bytes(), to.server_id.as_str().as_bytes()] {
            body.push(field.len() as u8); // both at most 64 bytes
            body.extend_from_slice(field);
        }
        body.extend_from_slice(key.expose());
        sealing
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(aad(&our_public, &to.key)),
                &mut *body,
            )
            .map_err(|_| EnrolmentError::Random)?;
        let mut bytes = our_public.to_vec();
        bytes.extend_from_slice(&body);
        Ok(SealedRequest { bytes })
    }

    /// Opens the request with the gateway's enrolment key.
    pub fn open(&self, with: &GatewayEnrolmentKey) -> Result<EnrolmentRequest, EnrolmentError> {
        let not_ours = || EnrolmentError::NotForUs(with.server_id.clone());
        let (their_public, sealed) = self.bytes.split_at(32);
        let their_public: [u8; 32] = their_public.try_into().map_err(|_| not_ours())?;
        let gw_public = with.public().key;
        let opening =
            request_key(&with.secret, &their_public, &gw_public).map_err(|_| not_ours())?;
        let mut body = Zeroizing::new(sealed.to_vec());
        let plain = opening
            .open_in_place(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(aad(&their_public, &gw_public)),
                &mut body,
            )
            .map_err(|_| not_ours())?;
        let bad = |why: &str| EnrolmentError::BadRequest(why.to_owned());
        let (user, rest) = take_field(plain).ok_or_else(|| bad("truncated user name"))?;
        let (server_id, rest) = take_field(rest).ok_or_else(|| bad("truncated server id"))?;
        let user = String::from_utf8(user.to_vec()).map_err(|_| bad("user name is not UTF-8"))?;
        check_user_name(&user).map_err(|e| bad(&e.to_string()))?;
        let server_id: ServerId = std::str::from_utf8(server_id)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad server id"))?;
        let key = SecretBytes::from_slice(rest).ok_or_else(|| bad("K_srv is not 32 bytes"))?;
        if server_id != with.server_id {
            return Err(EnrolmentError::WrongGateway {
                request: server_id,
                ours: with.server_id.clone(),
            });
        }
        Ok(EnrolmentRequest {
            user,
            server_id,
            key: ServerKey::new(key),
        })
    }

    /// A short fingerprint both sides compute from the sealed bytes, to
    /// confirm by phone that the admin holds the request the user sent.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&[b"spa-enrol-request-1", &self.bytes])
    }

    /// The request file's text: comments saying what it is, and one data line.
    pub fn to_text(&self, user: &str, server_id: &ServerId) -> String {
        format!(
            "# spa enrolment request: user {user} for gateway {server_id}.\n\
             # Sealed to the gateway's enrolment key: only its admin can open it; safe to send by mail or chat.\n\
             # Fingerprint {} — the admin reads it back to you before accepting.\n\
             # Admin: spa-keygen accept THIS_FILE --enrol-key FILE --doors DOOR,...\n\
             {REQUEST_PREFIX}{}\n",
            self.fingerprint(),
            base64::engine::general_purpose::STANDARD.encode(&self.bytes)
        )
    }

    /// Reads the request from its file's text (comments are ignored).
    pub fn from_text(text: &str) -> Result<SealedRequest, EnrolmentError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(REQUEST_PREFIX))
            .ok_or_else(|| {
                EnrolmentError::BadRequest(format!("no line starting with {REQUEST_PREFIX}"))
            })?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&line[REQUEST_PREFIX.len()..])
            .map_err(|_| EnrolmentError::BadRequest("the data line is not base64".into()))?;
        if bytes.len() < 32 + 2 + 1 + 1 + KEY_LEN + 16 {
            return Err(EnrolmentError::BadRequest("too short".into()));
        }
        Ok(SealedRequest { bytes })
    }
}

fn take_field(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = data.split_first()?;
    (rest.len() >= usize::from(len)).then(|| rest.split_at(usize::from(len)))
}

fn aad(sender: &[u8; 32], gateway: &[u8; 32]) -> Vec<u8> {
    [AAD_LABEL, sender, gateway].concat()
}

/// The one-time AEAD key: X25519(ours, theirs) through HKDF-SHA256 with both
/// public keys as info. The same on both sides.
fn request_key(
    ours: &StaticSecret,
    sender_public: &[u8; 32],
    gateway_public: &[u8; 32],
) -> Result<LessSafeKey, EnrolmentError> {
    let our_public = PublicKey::from(ours).to_bytes();
    let theirs = if &our_public == sender_public {
        gateway_public
    } else {
        sender_public
    };
    let shared = ours.diffie_hellman(&PublicKey::from(*theirs));
    if !shared.was_contributory() {
        return Err(EnrolmentError::WeakKey);
    }
    let prk = Salt::new(HKDF_SHA256, KDF_SALT).extract(shared.as_bytes());
    let info = [sender_public.as_slice(), gateway_public.as_slice()];
    let okm = prk
        .expand(&info, &CHACHA20_POLY1305)
        .map_err(|_| EnrolmentError::WeakKey)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn random_32() -> Result<Zeroizing<[u8; 32]>, EnrolmentError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(&mut *bytes)
        .map_err(|_| EnrolmentError::Random)?;
    Ok(bytes)
}

/// 64 bits of SHA-256 as `xxxx-xxxx-xxxx-xxxx`.
fn fingerprint_of(parts: &[&[u8]]) -> String {
    let hash = digest(&SHA256, &parts.concat());
    hash.as_ref()[..8]
        .chunks(2)
        .map(|c| format!("{:02x}{:02x}", c[0], c[1]))
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use spa_proto::UserSecret;

    fn gateway() -> GatewayEnrolmentKey {
        GatewayEnrolmentKey::generate(
            "gw1.example.net".parse().unwrap(),
            "/etc/spad/enrol.key".into(),
        )
        .unwrap()
    }

    #[test]
    fn a_sealed_request_opens_to_the_users_k_srv_and_nothing_more() {
        let gw = gateway();
        let secret = UserSecret::new(SecretBytes::new([9; 32]));
        let k_srv = secret.server_key(&gw.server_id);
        let sealed = SealedRequest::seal(&gw.public(), "alice", &k_srv).unwrap();
        let text = sealed.to_text("alice", &gw.server_id);
        assert!(
            !text.contains(&*encode_key(k_srv.expose())),
            "K_srv in clear"
        );
        assert!(!text.contains(&*encode_key(secret.expose())), "S in clear");
        let back = SealedRequest::from_text(&text).unwrap();
        assert_eq!(back.fingerprint(), sealed.fingerprint());
        assert!(text.contains(&format!("Fingerprint {}", sealed.fingerprint())));
        let opened = back.open(&gw).unwrap();
        assert_eq!(opened.user, "alice");
        assert_eq!(opened.server_id, gw.server_id);
        assert_eq!(opened.key.expose(), k_srv.expose());
    }

    #[test]
    fn another_gateways_key_cannot_open_it_and_a_changed_byte_is_caught() {
        let gw = gateway();
        let k_srv = ServerKey::new(SecretBytes::new([1; 32]));
        let sealed = SealedRequest::seal(&gw.public(), "bob", &k_srv).unwrap();
        let other = gateway();
        assert!(matches!(
            sealed.open(&other),
            Err(EnrolmentError::NotForUs(_))
        ));
        let mut bent = sealed.clone();
        let last = bent.bytes.len() - 1;
        bent.bytes[last] ^= 1;
        assert!(matches!(bent.open(&gw), Err(EnrolmentError::NotForUs(_))));
        assert_ne!(bent.fingerprint(), sealed.fingerprint());
        // Two requests of the same key differ (fresh one-time key).
        let again = SealedRequest::seal(&gw.public(), "bob", &k_srv).unwrap();
        assert_ne!(again.bytes, sealed.bytes);
    }

    #[test]
    fn a_request_naming_another_gateway_is_refused() {
        let gw = gateway();
        let mut pretend = gw.public();
        pretend.server_id = "gw2".parse().unwrap();
        let k = ServerKey::new(SecretBytes::new([2; 32]));
        let sealed = SealedRequest::seal(&pretend, "carol", &k).unwrap();
        assert!(matches!(
            sealed.open(&gw),
            Err(EnrolmentError::WrongGateway { .. })
        ));
    }

    #[test]
    fn the_key_file_and_public_line_round_trip_without_showing_the_secret() {
        let gw = gateway();
        let text = gw.to_toml();
        let back = parse_enrolment_key(&gw.path, &text).unwrap();
        assert_eq!(back.public(), gw.public());
        let line = gw.public().to_string();
        assert!(
            line.starts_with("spa-enrol-key-1:gw1.example.net:"),
            "{line}"
        );
        assert_eq!(line.parse::<EnrolmentPublicKey>().unwrap(), gw.public());
        let secret_b64 = encode_key(&gw.secret.to_bytes());
        assert!(!format!("{gw:?}").contains(&*secret_b64));
        assert!(!line.contains(&*secret_b64));
        let fp = gw.public().fingerprint();
        assert_eq!(fp.len(), 19, "{fp}");
        for bad in [
            "",
            "spa-enrol-key-1:gw1:AAAA",
            "ssh-ed25519 AAAA",
            "spa-enrol-key-1:Bad Id:x",
        ] {
            assert!(bad.parse::<EnrolmentPublicKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn garbage_is_not_a_request() {
        for text in [
            "",
            "hello",
            "spa-enrol-request-1:!!!",
            "spa-enrol-request-1:AAAA",
        ] {
            assert!(SealedRequest::from_text(text).is_err(), "{text}");
        }
    }
}
