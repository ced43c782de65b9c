//! fwknop's clients in spad: reads fwknopd's access.conf (root's, mode 0600:
//! it holds keys) through spa-fwknop's reader, and turns each captured
//! packet on fwknop's port into the gateway's `PortGrant` or a refusal with
//! one of spad's reasons. The decoding and the per-stanza policy are
//! spa-fwknop's (`admit`); the replay check and the doors are the gateway's.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use spa_fwknop::access_conf::{parse, NoteKind, Stanza};
use spa_fwknop::{admit, Denial, Refusal};
use spa_proto::gateway::PortGrant;
use spa_proto::Reason;

use crate::config::FwknopSettings;

/// Why the access file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FwknopAccessError {
    /// It is not root's (or spad's) or others may write it.
    #[error("fwknop access file {0}")]
    Untrusted(#[from] crate::trust::UntrustedFile),
    /// It cannot be read, or group or others may read it.
    #[error("fwknop access file: {0}")]
    Read(#[from] spa_keys::KeyFileError),
    /// Not one stanza carries over.
    #[error("{path}: no access stanza spad can run ({why})")]
    NoStanza {
        /// The file.
        path: PathBuf,
        /// The first note, or that the file is empty.
        why: String,
    },
}

/// The stanzas spad runs, and what the reader said about the rest.
#[derive(Debug)]
pub struct FwknopAccess {
    /// The UDP port fwknop clients send to.
    pub port: u16,
    /// fwknopd's MAX_SPA_PACKET_AGE, seconds.
    pub max_age_secs: u64,
    stanzas: Vec<Stanza>,
    /// The access file, for warnings.
    path: PathBuf,
    /// `FILE:LINE: message` for every stanza refused and every directive
    /// not carried, in file order.
    pub notes: Vec<String>,
    /// How many of the notes refuse a whole stanza.
    pub refused: usize,
}

/// A packet that opens nothing before the gateway: the counter it goes to,
/// and words for the log when the packet was authentic (junk gets none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwknopRefusal {
    /// spad's counter (and fail2ban's `reason=`): junk is `length`, `aead`
    /// or `hint` like spa/1 junk; an authentic packet gets the rule it broke.
    pub reason: Reason,
    /// For an authentic packet: what was wrong (and the stanza's line).
    pub detail: Option<String>,
}

impl FwknopAccess {
    /// Reads the access file `settings` names.
    pub fn load(settings: &FwknopSettings) -> Result<FwknopAccess, FwknopAccessError> {
        let path = settings.access_conf.as_path();
        crate::trust::check_config_file(path)?;
        let text = spa_keys::read_secret_file(path)?;
        Self::from_text(path, &text, settings)
    }

    /// Builds from the file's text (`path` names it in notes).
    pub fn from_text(
        path: &Path,
        text: &str,
        settings: &FwknopSettings,
    ) -> Result<FwknopAccess, FwknopAccessError> {
        let conf = parse(text);
        let notes: Vec<String> = conf
            .notes
            .iter()
            .map(|n| format!("{}:{}: {}", path.display(), n.line, n.message))
            .collect();
        if conf.stanzas.is_empty() {
            return Err(FwknopAccessError::NoStanza {
                path: path.to_path_buf(),
                why: notes
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "the file has no SOURCE line".into()),
            });
        }
        let refused = conf
            .notes
            .iter()
            .filter(|n| n.kind == NoteKind::StanzaRefused)
            .count();
        Ok(FwknopAccess {
            port: settings.port,
            max_age_secs: settings.max_age_secs,
            stanzas: conf.stanzas,
            path: path.to_path_buf(),
            notes,
            refused,
        })
    }

    /// How many stanzas are served.
    pub fn stanza_count(&self) -> usize {
        self.stanzas.len()
    }

    /// `(stanza line, port)` for each port a stanza's OPEN_PORTS allows
    /// that `has_door` says no fwknop door opens: such requests are refused.
    fn ports_without_door(
        &self,
        has_door: impl Fn(spa_proto::knock::Transport, u16) -> bool,
    ) -> Vec<(usize, String)> {
        self.stanzas
            .iter()
            .flat_map(|s| {
                s.open_ports
                    .iter()
                    .filter(|p| !has_door(p.transport, p.port))
                    .map(move |p| (s.line, format!("{}/{}", p.transport.as_str(), p.port)))
            })
            .collect()
    }

    /// What the daemon warns about and `spad --check` reports: every note of
    /// the reader, then each port a stanza allows that `has_door` says no
    /// fwknop door opens (requests for it are refused).
    pub fn warnings(
        &self,
        has_door: impl Fn(spa_proto::knock::Transport, u16) -> bool,
    ) -> Vec<String> {
        let mut out = self.notes.clone();
        out.extend(self.ports_without_door(has_door).into_iter().map(|(line, port)| {
            format!(
                "{}:{line}: OPEN_PORTS allows {port} but no door with fwknop = true opens it: requests for it are refused",
                self.path.display()
            )
        }));
        out
    }

    /// Decides one packet (the UDP payload) from `src` at `wall_ms`.
    pub fn decide(
        &self,
        payload: &[u8],
        src: IpAddr,
        wall_ms: u64,
    ) -> Result<PortGrant, FwknopRefusal> {
        let now_secs = wall_ms / 1000;
        match admit(payload, &self.stanzas, src, now_secs, self.max_age_secs) {
            Ok(g) => Ok(PortGrant {
                digest: g.replay_key,
                timestamp_ms: g.timestamp.saturating_mul(1000),
                // A copy is refused by its age check after now + 2 × max
                // age (its timestamp is at most max age ahead of now).
                replay_until_ms: wall_ms.saturating_add(self.max_age_secs.saturating_mul(2000)),
                addr: g.addr,
                user: format!("fwknop:{}:{}", g.stanza_line, g.username.escape_default()),
                ports: g.ports.iter().map(|p| (p.transport, p.port)).collect(),
                seconds: g.open_secs,
            }),
            Err(denial) => Err(refusal(&denial)),
        }
    }
}

/// spad's reason for a denial (one mapping, used for counters and logs).
fn refusal(denial: &Denial) -> FwknopRefusal {
    let junk = |reason| FwknopRefusal {
        reason,
        detail: None,
    };
    let authentic = |reason| FwknopRefusal {
        reason,
        detail: Some(format!("fwknop: {denial}")),
    };
    match denial {
        Denial::NoStanzaForSource(_) => junk(Reason::Hint),
        Denial::NotAuthentic(Refusal::TooShort { .. } | Refusal::TooLong { .. }) => {
            junk(Reason::Length)
        }
        Denial::NotAuthentic(_) => junk(Reason::Aead),
        Denial::Refused { reason, .. } => authentic(match reason {
            Refusal::TooOld { .. } | Refusal::FromFuture { .. } => Reason::Window,
            _ => Reason::Field,
        }),
        Denial::Expired(_) => authentic(Reason::Door),
        Denial::AddressNotSource { .. } | Denial::UnnamedAddress => authentic(Reason::Address),
        Denial::PortNotAllowed(_) | Denial::WrongUser(_) => authentic(Reason::Door),
        _ => authentic(Reason::Field),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "wHCG6pRmYWN2ipv7Ebp+D8q1lEZ8mXVLsuFXA/Fp6oY=";
    const HMAC: &str =
        "Mzo0rAOxwEHxqy0d5FzwqKpxtmRqg0cx3nAwzHp5Zc1LVn5YjzFuuNQuH3GYhEx3aqQ/SZ3GECHRT+f4jhsN6w==";

    fn settings() -> FwknopSettings {
        FwknopSettings {
            access_conf: PathBuf::from("/etc/fwknop/access.conf"),
            port: 62201,
            max_age_secs: 120,
        }
    }

    fn access(text: &str) -> Result<FwknopAccess, FwknopAccessError> {
        FwknopAccess::from_text(Path::new("/etc/fwknop/access.conf"), text, &settings())
    }

    #[test]
    fn a_file_without_a_runnable_stanza_is_refused_with_the_reason() {
        let no_hmac = format!("SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\n");
        let err = access(&no_hmac).map_or_else(|e| e.to_string(), |_| String::new());
        assert!(err.contains("no access stanza spad can run"), "{err}");
        assert!(
            err.contains("access.conf:1: stanza refused: no HMAC_KEY_BASE64"),
            "{err}"
        );
        let empty = access("# nothing\n").map_or_else(|e| e.to_string(), |_| String::new());
        assert!(empty.contains("no SOURCE line"), "{empty}");
    }

    #[test]
    fn notes_name_the_file_and_line_and_ports_without_a_door_are_listed() -> Result<(), String> {
        let text = format!(
            "SOURCE ANY\nOPEN_PORTS tcp/22, udp/53\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\n\
             ENABLE_CMD_EXEC Y\n\
             SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\n"
        );
        let a = access(&text).map_err(|e| e.to_string())?;
        assert_eq!(a.stanza_count(), 1);
        assert_eq!(a.refused, 1);
        assert!(a.notes[0].starts_with("/etc/fwknop/access.conf:5: ENABLE_CMD_EXEC"));
        let missing = a.ports_without_door(|t, p| t.as_str() == "tcp" && p == 22);
        assert_eq!(missing, vec![(1, "udp/53".to_owned())]);
        let warnings = a.warnings(|t, p| t.as_str() == "tcp" && p == 22);
        assert_eq!(warnings[..2], a.notes[..]);
        assert_eq!(
            warnings[2],
            "/etc/fwknop/access.conf:1: OPEN_PORTS allows udp/53 but no door with fwknop = true opens it: requests for it are refused"
        );
        Ok(())
    }

    #[test]
    fn junk_is_counted_like_spa_junk_and_gets_no_detail() -> Result<(), String> {
        let text = format!(
            "SOURCE 10.0.0.0/8\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\n"
        );
        let a = access(&text).map_err(|e| e.to_string())?;
        let inside: IpAddr = "10.1.2.3".parse().map_err(|_| "addr")?;
        let outside: IpAddr = "192.168.1.1".parse().map_err(|_| "addr")?;
        let now = 1_764_000_000_000;
        let short = a.decide(b"abc", inside, now);
        assert_eq!(short.map_err(|r| r.reason), Err(Reason::Length));
        let junk = vec![b'A'; 200];
        let forged = a.decide(&junk, inside, now);
        assert_eq!(forged.clone().map_err(|r| r.reason), Err(Reason::Aead));
        assert_eq!(forged.err().and_then(|r| r.detail), None);
        let stranger = a.decide(&junk, outside, now);
        assert_eq!(stranger.map_err(|r| r.reason), Err(Reason::Hint));
        Ok(())
    }
}
