//! Hand-made packets for the negative scenarios: a properly sealed spa/1
//! packet with a timestamp of the test's choosing (e.g. two minutes old),
//! built with spa-proto from a client key file, and random junk.

use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use spa_proto::packet::{seal, Address, Request, PACKET_LEN};
use spa_proto::{DoorName, ServerId, UserSecret};

use crate::error::{io, E2eError, Result};

/// The parts of a client key file (docs/keys.md format) a crafted packet needs.
#[derive(Debug)]
pub struct ClientKeyFile {
    /// The key's user.
    pub user: String,
    /// The user's secret S.
    pub secret: UserSecret,
    /// The server id of the file's first `[[gateway]]`.
    pub server_id: ServerId,
}

/// Reads `user`, `secret` and the first gateway's `server_id` from a client
/// key file, with spa-keys' own reader (the one owner of that format).
pub fn read_client_key(path: &Path) -> Result<ClientKeyFile> {
    let key = spa_keys::load_client_key(path).map_err(|e| E2eError::BadFile {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let server_id = key
        .gateways
        .first()
        .map(|g| g.server_id.clone())
        .ok_or_else(|| E2eError::BadFile {
            path: path.display().to_string(),
            message: "no [[gateway]] with a server_id".into(),
        })?;
    Ok(ClientKeyFile {
        user: key.user,
        secret: key.secret,
        server_id,
    })
}

/// Seals a request for `door` naming `address`, stamped `timestamp_ms`, with a random nonce.
pub fn sealed_packet(
    key: &ClientKeyFile,
    door: &str,
    address: IpAddr,
    seconds: u16,
    timestamp_ms: u64,
) -> Result<[u8; PACKET_LEN]> {
    let door: DoorName = door.parse().map_err(|e| E2eError::BadFile {
        path: "door name".into(),
        message: format!("{e}"),
    })?;
    let request = Request {
        timestamp_ms,
        address: Address::from(address),
        seconds,
        door,
    };
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&random_bytes(12)?);
    Ok(seal(
        &key.secret.server_key(&key.server_id).derive(),
        &request,
        nonce,
    ))
}

/// `n` bytes from the OS random source.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io("reading /dev/urandom"))?;
    Ok(bytes)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
    use spa_proto::packet::open_with;

    #[test]
    fn crafted_packet_opens_with_the_key_and_carries_the_old_timestamp() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io("creating a temp dir"))?;
        let path = dir.path().join("alice.key");
        use base64::Engine;
        let secret = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
        let text =
            format!("user = \"alice\"\nsecret = \"{secret}\"\n[[gateway]]\nserver_id = \"gw1\"\n");
        std::fs::write(&path, text).map_err(io("writing the key file"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod 600 the key file"))?;
        let key = read_client_key(&path)?;
        assert_eq!(key.user, "alice");
        let ts = now_ms() - 120_000;
        let addr = IpAddr::from([10, 77, 1, 2]);
        let pkt = sealed_packet(&key, "ssh", addr, 0, ts)?;
        let derived = key.secret.server_key(&key.server_id).derive();
        let cipher = ChaCha20Poly1305::new(derived.aead.expose().into());
        let request = open_with(&cipher, &pkt).map(|body| Request::decode(&body));
        let Some(Ok(request)) = request else {
            panic!("the crafted packet does not open: {request:?}")
        };
        assert_eq!(request.timestamp_ms, ts);
        assert_eq!(request.address, Address::V4([10, 77, 1, 2].into()));
        assert_eq!(request.door.as_str(), "ssh");
        Ok(())
    }
}
