//! The client key file (what `spa-client --key` reads): the user's secret `S`
//! and the gateways it is used with. Owns its TOML format in both directions.
//! The secret never reaches a `Debug` output or an error message.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spa_proto::{DoorName, ServerId, UserSecret};
use toml::Spanned;
use zeroize::Zeroizing;

use crate::error::KeyFileError;
use crate::rotating_knock::{KnockTable, RotatingKnock};
use crate::secret_file::read_secret_file;
use crate::toml_fields::{
    encode_key, located_error, parse_error, quote, DoorField, HostField, KeyField, PortField,
    ServerIdField, UserField,
};

/// A user's key file: who they are, their secret `S`, and their gateways.
#[derive(Clone)]
pub struct ClientKey {
    /// The user name (as on the gateways).
    pub user: String,
    /// The secret `S`; each gateway holds only `K_srv` derived from it.
    pub secret: UserSecret,
    /// The gateways this key is used with, in file order.
    pub gateways: Vec<Gateway>,
    /// The file it was loaded from (or will be written to); named in errors.
    pub path: PathBuf,
}

/// One `[[gateway]]` of a client key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The gateway's server id (what `K_srv` is derived for).
    pub server_id: ServerId,
    /// Where to send the packet, if not given on the command line.
    pub host: Option<String>,
    /// The gateway's SPA port, if not the default.
    pub port: Option<u16>,
    /// Rotating knock settings for classic doors, by door name.
    pub knock: BTreeMap<DoorName, RotatingKnock>,
}

impl Gateway {
    /// A gateway with only a server id.
    pub fn new(server_id: ServerId) -> Self {
        Gateway {
            server_id,
            host: None,
            port: None,
            knock: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("user", &self.user)
            .field("secret", &"***")
            .field("gateways", &self.gateways)
            .field("path", &self.path)
            .finish()
    }
}

impl ClientKey {
    /// The gateway to use. `None` picks the only gateway; with several, the
    /// error lists their server ids to choose from with `--server-id`.
    pub fn gateway(&self, server_id: Option<&ServerId>) -> Result<&Gateway, KeyFileError> {
        let available = || {
            self.gateways
                .iter()
                .map(|g| g.server_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (server_id, self.gateways.as_slice()) {
            (_, []) => Err(KeyFileError::NoGateway {
                path: self.path.clone(),
            }),
            (None, [only]) => Ok(only),
            (None, _) => Err(KeyFileError::AmbiguousGateway {
                path: self.path.clone(),
                available: available(),
            }),
            (Some(id), gateways) => gateways.iter().find(|g| &g.server_id == id).ok_or_else(|| {
                KeyFileError::UnknownGateway {
                    path: self.path.clone(),
                    wanted: id.clone(),
                    available: available(),
                }
            }),
        }
    }

    /// The file's text, with a header saying what it is. Contains the secret.
    pub fn to_toml(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        // Writing to a String cannot fail.
        let _ = write_client_key(&mut out, self);
        out
    }
}

fn write_client_key(out: &mut String, key: &ClientKey) -> fmt::Result {
    writeln!(
        out,
        "# spa client key for {} — keep it secret (chmod 600).",
        key.user
    )?;
    writeln!(
        out,
        "# Use it with: spa-client --key <this file>. Written by spa-keygen."
    )?;
    writeln!(out, "user = {}", quote(&key.user))?;
    out.push_str("secret = \"");
    out.push_str(&encode_key(key.secret.expose()));
    out.push_str("\"\n");
    for gw in &key.gateways {
        writeln!(out, "\n[[gateway]]")?;
        writeln!(out, "server_id = {}", quote(gw.server_id.as_str()))?;
        if let Some(host) = &gw.host {
            writeln!(out, "host = {}", quote(host))?;
        }
        if let Some(port) = gw.port {
            writeln!(out, "port = {port}")?;
        }
        for (door, k) in &gw.knock {
            writeln!(out, "\n[gateway.knock.{door}]")?;
            writeln!(
                out,
                "n = {}\nlo = {}\nhi = {}\nproto = \"{}\"",
                k.n,
                k.lo,
                k.hi,
                k.proto()
            )?;
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientKeyFile {
    user: UserField,
    secret: KeyField,
    #[serde(default)]
    gateway: Vec<GatewayTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayTable {
    server_id: Spanned<ServerIdField>,
    host: Option<HostField>,
    port: Option<PortField>,
    #[serde(default)]
    knock: BTreeMap<DoorField, KnockField>,
}

#[derive(Deserialize)]
#[serde(try_from = "KnockTable")]
struct KnockField(RotatingKnock);

impl TryFrom<KnockTable> for KnockField {
    type Error = crate::rotating_knock::KnockError;
    fn try_from(t: KnockTable) -> Result<Self, Self::Error> {
        RotatingKnock::try_from(t).map(KnockField)
    }
}

/// Loads a client key file, refusing it if group or others may read it.
pub fn load_client_key(path: &Path) -> Result<ClientKey, KeyFileError> {
    let text = read_secret_file(path)?;
    parse_client_key(path, &text)
}

/// Parses the text of a client key file; `path` is only used in errors.
pub fn parse_client_key(path: &Path, text: &str) -> Result<ClientKey, KeyFileError> {
    let file: ClientKeyFile = toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
    let mut gateways: Vec<Gateway> = Vec::with_capacity(file.gateway.len());
    for table in file.gateway {
        let span = table.server_id.span();
        let server_id = table.server_id.into_inner().0;
        if gateways.iter().any(|g| g.server_id == server_id) {
            return Err(located_error(
                path,
                text,
                Some(span),
                format!("gateway {server_id} is listed twice"),
            ));
        }
        gateways.push(Gateway {
            server_id,
            host: table.host.map(|h| h.0),
            port: table.port.map(|p| p.0),
            knock: table.knock.into_iter().map(|(d, k)| (d.0, k.0)).collect(),
        });
    }
    Ok(ClientKey {
        user: file.user.0,
        secret: UserSecret::new(file.secret.0),
        gateways,
        path: path.to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use spa_proto::SecretBytes;

    use super::*;

    const PATH: &str = "/home/alice/.spa/alice.key";

    fn id(s: &str) -> ServerId {
        s.parse().expect("valid server id")
    }

    fn sample() -> ClientKey {
        let mut gw1 = Gateway::new(id("gw1.example.net"));
        gw1.host = Some("gw1.example.net".into());
        gw1.port = Some(62210);
        gw1.knock.insert(
            "legacy".parse().expect("door"),
            RotatingKnock::new(4, 20000, 40000, true).expect("valid knock"),
        );
        gw1.knock.insert(
            "db".parse().expect("door"),
            RotatingKnock::new(3, 1024, 9999, false).expect("valid knock"),
        );
        ClientKey {
            user: "alice".into(),
            secret: UserSecret::new(SecretBytes::new([0x5a; 32])),
            gateways: vec![gw1, Gateway::new(id("gw2"))],
            path: PATH.into(),
        }
    }

    fn parse_err(text: &str) -> (usize, usize, String) {
        match parse_client_key(Path::new(PATH), text) {
            Err(e @ KeyFileError::Parse { .. }) => {
                let shown = e.to_string();
                let KeyFileError::Parse { line, col, .. } = e else {
                    unreachable!()
                };
                (line, col, shown)
            }
            Err(e) => panic!("expected a parse error, got {e}"),
            Ok(k) => panic!("expected a parse error, got {k:?}"),
        }
    }

    #[test]
    fn round_trip_keeps_every_field() -> Result<(), KeyFileError> {
        let key = sample();
        let text = key.to_toml();
        let back = parse_client_key(Path::new(PATH), &text)?;
        assert_eq!(back.user, key.user);
        assert_eq!(back.secret, key.secret);
        assert_eq!(back.gateways, key.gateways);
        assert!(text.starts_with("# spa client key for alice"), "{}", *text);
        assert!(
            text.contains("[gateway.knock.legacy]\nn = 4\nlo = 20000\nhi = 40000\nproto = \"udp\"")
        );
        Ok(())
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = sample();
        let b64 = encode_key(key.secret.expose());
        let shown = format!("{key:?}");
        assert!(!shown.contains(b64.as_str()), "{shown}");
        assert!(!shown.contains("90"), "decimal bytes shown: {shown}"); // 0x5a
        assert!(shown.contains("secret: \"***\""), "{shown}");
        assert!(shown.contains("gw1.example.net"), "{shown}");
    }

    #[test]
    fn gateway_choice() -> Result<(), KeyFileError> {
        let mut key = sample();
        let err = key.gateway(None).expect_err("two gateways");
        assert_eq!(
            err.to_string(),
            format!("{PATH} holds keys for several gateways (gw1.example.net, gw2); choose one with --server-id")
        );
        assert_eq!(key.gateway(Some(&id("gw2")))?.server_id, id("gw2"));
        let err = key.gateway(Some(&id("gw3"))).expect_err("no gw3");
        assert!(
            err.to_string()
                .contains("no gateway with server_id gw3 (it has: gw1.example.net, gw2)"),
            "{err}"
        );
        key.gateways.truncate(1);
        assert_eq!(key.gateway(None)?.server_id, id("gw1.example.net"));
        key.gateways.clear();
        assert!(matches!(
            key.gateway(None),
            Err(KeyFileError::NoGateway { .. })
        ));
        Ok(())
    }

    #[test]
    fn minimal_file_without_optional_fields_loads() -> Result<(), KeyFileError> {
        let text = format!(
            "user = \"bob\"\nsecret = \"{}\"\n[[gateway]]\nserver_id = \"gw1\"\n[gateway.knock.legacy]\nn = 4\nlo = 20000\nhi = 40000\n",
            *encode_key(&[1; 32])
        );
        let key = parse_client_key(Path::new(PATH), &text)?;
        let gw = key.gateway(None)?;
        assert_eq!((gw.host.as_deref(), gw.port), (None, None));
        assert!(
            !gw.knock[&"legacy".parse::<DoorName>().expect("door")].udp,
            "tcp is the default"
        );
        Ok(())
    }

    #[test]
    fn bad_inputs_are_located() {
        let s = encode_key(&[1; 32]).to_string();
        let cases: [(String, (usize, usize), &str); 7] = [
            (format!("user = \"a\"\nsecret = \"{}\"\n", &s[..43]), (2, 10), "not valid base64"),
            (format!("user = \"a\"\nsecret = \"{s}\"\nsecrte = 1\n"), (3, 1), "unknown field `secrte`"),
            (
                format!("user = \"a\"\nsecret = \"{s}\"\n[[gateway]]\nserver_id = \"gw1\"\nport = 0\n"),
                (5, 8),
                "port must be 1 to 65535",
            ),
            (
                format!("user = \"a\"\nsecret = \"{s}\"\n[[gateway]]\nserver_id = \"gw1\"\n[[gateway]]\nserver_id = \"gw1\"\n"),
                (6, 13),
                "gateway gw1 is listed twice",
            ),
            (
                format!("user = \"a\"\nsecret = \"{s}\"\n[[gateway]]\nserver_id = \"gw1\"\n[gateway.knock.legacy]\nn = 2\nlo = 1\nhi = 100\n"),
                (5, 1),
                "fewer than 2^32",
            ),
            (
                format!("user = \"a\"\nsecret = \"{s}\"\n[[gateway]]\nserver_id = \"gw1\"\n[gateway.knock.legacy]\nn = 4\nlo = 1\nhi = 60000\nproto = \"sctp\"\n"),
                (9, 9),
                "unknown variant `sctp`",
            ),
            (
                format!("user = \"a\"\nsecret = \"{s}\"\n[[gateway]]\nserver_id = \"gw1\"\nhots = \"x\"\n"),
                (5, 1),
                "unknown field `hots`",
            ),
        ];
        for (text, want, needle) in cases {
            let (line, col, shown) = parse_err(&text);
            assert!(shown.contains(needle), "{shown}");
            assert_eq!((line, col), want, "{shown}");
            assert!(
                shown.starts_with(&format!("{PATH}:{}:{}: ", want.0, want.1)),
                "{shown}"
            );
            assert!(!shown.contains(&s[..20]), "secret shown: {shown}");
        }
    }
}
