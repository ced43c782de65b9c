//! The packets the harness sends as a legitimate client: spa/1 packets sealed
//! here from a client key file (any address, any time, no process start in
//! the timed path), fwknop SPA packets made ahead of time by Debian's `fwknop`
//! client in test mode (`-T -B FILE`: built, saved, not sent), and knockd's
//! classic port sequence.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use spa_proto::packet::{seal, Address, Request};
use spa_proto::{DerivedKeys, DoorName, ServerId, PACKET_LEN};

use crate::error::{io, BenchError, Result};
use spa_e2e::netns::run_checked;

/// Seals spa/1 packets for one user key, gateway and door.
pub struct SpaSealer {
    keys: DerivedKeys,
    door: DoorName,
    rng: SystemRandom,
}

impl std::fmt::Debug for SpaSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpaSealer")
            .field("keys", &"***")
            .field("door", &self.door)
            .finish()
    }
}

impl SpaSealer {
    /// Derives the packet keys from a client key file (as `spa-client` does).
    pub fn from_key_file(path: &Path, server_id: &str, door: &str) -> Result<SpaSealer> {
        let key = spa_keys::load_client_key(path)?;
        let server_id: ServerId = server_id
            .parse()
            .map_err(|e| BenchError::Invalid(format!("server id {server_id:?}: {e}")))?;
        let door: DoorName = door
            .parse()
            .map_err(|e| BenchError::Invalid(format!("door {door:?}: {e}")))?;
        Ok(SpaSealer {
            keys: key.secret.server_key(&server_id).derive(),
            door,
            rng: SystemRandom::new(),
        })
    }

    /// A packet asking to open the door for `addr` for `seconds` (0 = the door's default).
    pub fn packet(&self, addr: Ipv4Addr, now_ms: u64, seconds: u16) -> Result<[u8; PACKET_LEN]> {
        let mut nonce = [0u8; 12];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| BenchError::Invalid("the OS random generator failed".into()))?;
        let request = Request {
            timestamp_ms: now_ms,
            address: Address::V4(addr),
            seconds,
            door: self.door.clone(),
        };
        Ok(seal(&self.keys, &request, nonce))
    }
}

/// fwknop's two keys (what `fwknop --key-gen` prints: 32-byte Rijndael, 64-byte HMAC).
#[derive(Clone)]
pub struct FwknopKeys {
    /// `KEY_BASE64`.
    pub rijndael_b64: String,
    /// `HMAC_KEY_BASE64`.
    pub hmac_b64: String,
}

impl std::fmt::Debug for FwknopKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FwknopKeys(***)")
    }
}

impl FwknopKeys {
    /// Fresh random keys.
    pub fn generate() -> Result<FwknopKeys> {
        let rng = SystemRandom::new();
        let mut k = [0u8; 32];
        let mut h = [0u8; 64];
        rng.fill(&mut k)
            .and_then(|()| rng.fill(&mut h))
            .map_err(|_| BenchError::Invalid("the OS random generator failed".into()))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(FwknopKeys {
            rijndael_b64: b64.encode(k),
            hmac_b64: b64.encode(h),
        })
    }
}

/// Makes fwknop SPA packets with the `fwknop` client, without sending them.
#[derive(Debug, Clone)]
pub struct FwknopPacketMaker {
    /// The keys (also in fwknopd's access.conf).
    pub keys: FwknopKeys,
    /// The server address the packet is for (`-D`).
    pub server: Ipv4Addr,
    /// What it opens, e.g. `tcp/2222` (`-A`).
    pub access: String,
    /// Scratch directory for the saved packets.
    pub dir: PathBuf,
}

impl FwknopPacketMaker {
    /// One packet asking to open `access` for `allow` (`-a`), as sent on the wire.
    pub fn packet(&self, allow: Ipv4Addr, tag: usize) -> Result<Vec<u8>> {
        let file = self.dir.join(format!("fwknop-{allow}-{tag}.pkt"));
        run_checked(
            Command::new("fwknop")
                .args(["--no-rc-file", "--no-save-args", "-T", "-A", &self.access])
                .args(["-a", &allow.to_string(), "-D", &self.server.to_string()])
                .args(["--key-base64-rijndael", &self.keys.rijndael_b64])
                .args(["--key-base64-hmac", &self.keys.hmac_b64])
                .arg("-B")
                .arg(&file),
        )?;
        let bytes = std::fs::read(&file).map_err(io(format!("reading {}", file.display())))?;
        let _ = std::fs::remove_file(&file);
        // The saved file ends with a newline the client does not send.
        let text = bytes.trim_ascii_end().to_vec();
        if text.is_empty() {
            return Err(BenchError::Invalid(format!(
                "fwknop saved an empty packet in {}",
                file.display()
            )));
        }
        Ok(text)
    }

    /// One packet per address, made on `threads` threads.
    pub fn packets(&self, addrs: &[Ipv4Addr], threads: usize) -> Result<Vec<Vec<u8>>> {
        let chunk = addrs.len().div_ceil(threads.max(1)).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = addrs
                .chunks(chunk)
                .enumerate()
                .map(|(c, part)| {
                    s.spawn(move || {
                        part.iter()
                            .enumerate()
                            .map(|(i, a)| self.packet(*a, c * chunk + i))
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(addrs.len());
            for h in handles {
                let part = h
                    .join()
                    .map_err(|_| BenchError::Invalid("a packet-making thread panicked".into()))??;
                all.extend(part);
            }
            Ok(all)
        })
    }
}

/// knockd's classic sequence in the harness: three UDP ports, one 1-byte datagram each.
pub const KNOCKD_SEQUENCE: [u16; 3] = [7001, 7002, 7003];
