//! Which key file and which of its gateways a command uses: loads the file
//! (a missing one gets an answer saying what to do) and picks the gateway by
//! `--server-id`, else by the HOST typed, else the only one.

use std::io;
use std::path::{Path, PathBuf};

use spa_keys::{load_client_key, ClientKey, Gateway, KeyFileError};
use spa_proto::ServerId;

use crate::target::HostSpec;

/// Why no key could be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyChoiceError {
    /// The key file does not exist.
    #[error(
        "no key file at {}: pass --key FILE (or set key in ~/.spa/config.toml) if yours is \
         elsewhere; to get one, ask your gateway's admin (spa-keygen issue), or make a request \
         to send them with: spa-client enroll",
        path.display()
    )]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The file exists but cannot be used, or holds no such gateway.
    #[error(transparent)]
    Key(#[from] KeyFileError),
}

/// Loads the client key file at `path`.
pub fn load_key(path: &Path) -> Result<ClientKey, KeyChoiceError> {
    load_client_key(path).map_err(|e| match e {
        KeyFileError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
            KeyChoiceError::Missing {
                path: path.to_owned(),
            }
        }
        other => KeyChoiceError::Key(other),
    })
}

/// The gateway to use: the one `server_id` names; else, when the file holds
/// several, the one whose `host` or `server_id` is the HOST typed; else the
/// only one (several and no match: the error lists them).
pub fn choose_gateway<'k>(
    key: &'k ClientKey,
    server_id: Option<&ServerId>,
    host: Option<&HostSpec>,
) -> Result<&'k Gateway, KeyFileError> {
    if server_id.is_none() && key.gateways.len() > 1 {
        if let Some(host) = host {
            let named: Vec<&Gateway> = key
                .gateways
                .iter()
                .filter(|g| names_host(g, host))
                .collect();
            if let [only] = named.as_slice() {
                return Ok(only);
            }
        }
    }
    key.gateway(server_id)
}

fn names_host(gateway: &Gateway, host: &HostSpec) -> bool {
    let same = |a: &str| a.eq_ignore_ascii_case(&host.host);
    same(gateway.server_id.as_str())
        || gateway
            .host
            .as_deref()
            .and_then(|h| h.parse::<HostSpec>().ok())
            .is_some_and(|h| same(&h.host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spa_proto::{SecretBytes, UserSecret};

    fn key() -> ClientKey {
        let gw = |id: &str, host: Option<&str>| {
            let mut g = Gateway::new(id.parse().unwrap_or_else(|_| panic!("id {id}")));
            g.host = host.map(Into::into);
            g
        };
        ClientKey {
            user: "alice".into(),
            secret: UserSecret::new(SecretBytes::new([1; 32])),
            gateways: vec![
                gw("gw1", Some("gw1.example.net")),
                gw("gw2", Some("[2001:db8::2]:62211")),
                gw("gw3.example.net", None),
            ],
            path: "/k".into(),
        }
    }

    fn chosen(server_id: Option<&str>, host: Option<&str>) -> Result<String, String> {
        let key = key();
        let id = server_id
            .map(|s| s.parse::<ServerId>().map_err(|e| e.to_string()))
            .transpose()?;
        let host = host
            .map(|h| h.parse::<HostSpec>().map_err(|e| e.to_string()))
            .transpose()?;
        choose_gateway(&key, id.as_ref(), host.as_ref())
            .map(|g| g.server_id.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_host_typed_picks_the_gateway_that_names_it() {
        assert_eq!(chosen(None, Some("gw1.example.net")), Ok("gw1".into()));
        assert_eq!(
            chosen(None, Some("GW1.example.net:62210")),
            Ok("gw1".into())
        );
        assert_eq!(chosen(None, Some("2001:db8::2")), Ok("gw2".into()));
        assert_eq!(chosen(None, Some("[2001:db8::2]:1")), Ok("gw2".into()));
        assert_eq!(
            chosen(None, Some("gw3.example.net")),
            Ok("gw3.example.net".into())
        );
    }

    #[test]
    fn server_id_wins_over_the_host() {
        assert_eq!(
            chosen(Some("gw2"), Some("gw1.example.net")),
            Ok("gw2".into())
        );
    }

    #[test]
    fn an_unknown_host_still_asks_for_server_id() {
        let err = chosen(None, Some("10.0.0.9"));
        assert!(
            matches!(&err, Err(m) if m.contains("several gateways (gw1, gw2, gw3.example.net); choose one with --server-id")),
            "{err:?}"
        );
    }

    #[test]
    fn a_missing_key_file_says_what_to_do() {
        let dir = std::env::temp_dir().join(format!("spa-cl-nokey-{}", std::process::id()));
        let err = load_key(&dir.join("key"))
            .map(|_| ())
            .map_err(|e| e.to_string());
        let Err(m) = err else {
            panic!("a missing file loaded");
        };
        assert!(
            m.starts_with(&format!(
                "no key file at {}: pass --key FILE",
                dir.join("key").display()
            )),
            "{m}"
        );
        assert!(m.contains("ask your gateway's admin"), "{m}");
        assert!(m.contains("spa-client enroll"), "{m}");
    }
}
