//! Building and sending the one SPA datagram: draws the nonce from the OS
//! CSPRNG, reads the system clock, seals the request with spa-proto and sends
//! exactly one UDP datagram. Never prints or logs key material.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};
use spa_proto::packet::{seal, Address, Request, PACKET_LEN};
use spa_proto::{DerivedKeys, DoorName};

use crate::route::unspecified_for;

/// Why the packet could not be built or sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The OS random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The system clock reads before 1970.
    #[error("the system clock reads before 1970-01-01")]
    ClockBeforeEpoch,
    /// The socket could not be opened or the datagram not sent.
    #[error("sending to {dest}: {source}")]
    Io {
        /// The destination.
        dest: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// The kernel sent fewer bytes than the packet holds.
    #[error("sending to {dest}: only {sent} of {PACKET_LEN} bytes went out")]
    Short {
        /// The destination.
        dest: SocketAddr,
        /// Bytes sent.
        sent: usize,
    },
}

/// What one `open` asks the gateway for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRequest {
    /// The door to open.
    pub door: DoorName,
    /// The address to open it for.
    pub address: Address,
    /// Requested seconds; 0 means the door's default.
    pub seconds: u16,
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> Result<u64, SendError> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SendError::ClockBeforeEpoch)?;
    Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// 12 fresh bytes from the OS CSPRNG.
pub fn fresh_nonce(rng: &SystemRandom) -> Result<[u8; 12], SendError> {
    let mut nonce = [0u8; 12];
    rng.fill(&mut nonce).map_err(|_| SendError::Random)?;
    Ok(nonce)
}

/// Seals `open` at `timestamp_ms` with `nonce` into the 100-byte packet.
pub fn build_packet(
    keys: &DerivedKeys,
    open: &OpenRequest,
    timestamp_ms: u64,
    nonce: [u8; 12],
) -> [u8; PACKET_LEN] {
    let request = Request {
        timestamp_ms,
        address: open.address,
        seconds: open.seconds,
        door: open.door.clone(),
    };
    seal(keys, &request, nonce)
}

/// Sends `packet` as exactly one UDP datagram to `dest`.
pub fn send_datagram(dest: SocketAddr, packet: &[u8]) -> Result<(), SendError> {
    let io_err = |source| SendError::Io { dest, source };
    let socket = UdpSocket::bind(unspecified_for(dest)).map_err(io_err)?;
    let sent = socket.send_to(packet, dest).map_err(io_err)?;
    if sent != packet.len() {
        return Err(SendError::Short { dest, sent });
    }
    Ok(())
}

/// Builds a packet for `open` with the current time and a fresh nonce, sends it
/// to `dest`, and returns the exact bytes sent.
pub fn send_open(
    keys: &DerivedKeys,
    open: &OpenRequest,
    dest: SocketAddr,
) -> Result<[u8; PACKET_LEN], SendError> {
    let nonce = fresh_nonce(&SystemRandom::new())?;
    let packet = build_packet(keys, open, now_ms()?, nonce);
    send_datagram(dest, &packet)?;
    Ok(packet)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
    use spa_proto::packet::{hint, open_with, window_of};
    use spa_proto::{SecretBytes, UserSecret};
    use std::net::Ipv4Addr;

    fn keys() -> DerivedKeys {
        UserSecret::new(SecretBytes::new([3; 32]))
            .server_key(&"gw.test".parse().expect("valid server id"))
            .derive()
    }

    #[test]
    fn built_packet_opens_to_the_request_with_the_window_hint() {
        let open = OpenRequest {
            door: "ssh".parse().expect("valid door"),
            address: Address::V4(Ipv4Addr::new(198, 51, 100, 7)),
            seconds: 90,
        };
        let k = keys();
        let ts = 1_764_000_012_345;
        let packet = build_packet(&k, &open, ts, [5; 12]);
        assert_eq!(packet[..8], hint(&k, window_of(ts)));
        assert_eq!(packet[8..20], [5; 12]);
        let cipher = ChaCha20Poly1305::new(k.aead.expose().into());
        let body = open_with(&cipher, &packet).expect("opens with K_aead");
        let req = Request::decode(&body).expect("valid plaintext");
        assert_eq!(
            (req.door, req.address, req.seconds, req.timestamp_ms),
            (open.door, open.address, 90, ts)
        );
    }

    #[test]
    fn nonces_are_fresh() {
        let rng = SystemRandom::new();
        assert_ne!(fresh_nonce(&rng).unwrap(), fresh_nonce(&rng).unwrap());
    }

    #[test]
    fn clock_reads_after_2020() {
        assert!(now_ms().unwrap() > 1_577_836_800_000);
    }
}
