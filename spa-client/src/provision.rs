//! Handing a client key to another device: the provisioning URI (its format
//! is documented in docs/client.md) in both directions, and its terminal QR
//! code (drawn by the `qrcode` crate). The URI carries the secret `S`: it is
//! built in zeroizing memory, and callers must warn before showing it.

use std::fmt::Write as _;
use std::path::PathBuf;

use base64::Engine as _;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};
use spa_keys::{check_user_name, parse_knock_spec, ClientKey, Gateway};
use spa_proto::{SecretBytes, ServerId, UserSecret};
use zeroize::Zeroizing;

use crate::target::HostSpec;

/// The URI's fixed start.
pub const URI_PREFIX: &str = "spa://key/1?";

/// Characters kept as they are in a query value (RFC 3986 unreserved).
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a URI is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an spa key URI: {0}")]
pub struct UriError(pub String);

/// Why no QR code could be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the QR code: {0}")]
pub struct QrError(String);

/// `spa://key/1?user=U&secret=S&gateway=ID[@HOST[:PORT]]&knock=ID/DOOR:N:LO-HI[:udp]`.
pub fn to_uri(key: &ClientKey) -> Zeroizing<String> {
    let mut uri = Zeroizing::new(String::from(URI_PREFIX));
    let enc = |s: &str| utf8_percent_encode(s, VALUE).to_string();
    let _ = write!(uri, "user={}&secret=", enc(&key.user));
    uri.push_str(&Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.secret.expose()),
    ));
    for gw in &key.gateways {
        let mut value = gw.server_id.to_string();
        if let Some(host) = &gw.host {
            let spec = host
                .parse::<HostSpec>()
                .unwrap_or_else(|_| HostSpec::named(host));
            let with_port = HostSpec {
                port: spec.port.or(gw.port),
                ..spec
            };
            let _ = write!(value, "@{with_port}");
        }
        let _ = write!(uri, "&gateway={}", enc(&value));
        for (door, k) in &gw.knock {
            let spec = format!(
                "{}/{door}:{}:{}-{}{}",
                gw.server_id,
                k.n,
                k.lo,
                k.hi,
                if k.udp { ":udp" } else { "" }
            );
            let _ = write!(uri, "&knock={}", enc(&spec));
        }
    }
    uri
}

/// Reads a key from its URI; `path` is where it will be saved.
pub fn from_uri(uri: &str, path: PathBuf) -> Result<ClientKey, UriError> {
    let bad = |why: String| UriError(why);
    let query = uri
        .trim()
        .strip_prefix(URI_PREFIX)
        .ok_or_else(|| bad(format!("it must start with {URI_PREFIX}")))?;
    let (mut user, mut secret) = (None, None);
    let mut gateways: Vec<Gateway> = Vec::new();
    let mut knocks = Vec::new();
    for pair in query.split('&') {
        let (name, raw) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("{pair:?} is not NAME=VALUE")))?;
        let value = Zeroizing::new(
            percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| bad(format!("{name} is not UTF-8")))?
                .into_owned(),
        );
        match name {
            "user" => {
                check_user_name(&value).map_err(|e| bad(e.to_string()))?;
                user = Some(value.to_string());
            }
            "secret" => {
                let bytes = Zeroizing::new(
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(value.as_bytes())
                        .map_err(|_| bad("secret is not base64url".into()))?,
                );
                let s = SecretBytes::from_slice(&bytes)
                    .ok_or_else(|| bad("secret is not 32 bytes".into()))?;
                secret = Some(UserSecret::new(s));
            }
            "gateway" => gateways.push(gateway(&value).map_err(bad)?),
            "knock" => knocks.push(value.to_string()),
            other => return Err(bad(format!("unknown field {other:?}"))),
        }
    }
    for k in knocks {
        let (id, spec) = k
            .split_once('/')
            .ok_or_else(|| bad(format!("knock {k:?} is not SERVER_ID/DOOR:N:LO-HI")))?;
        let (door, knock) = parse_knock_spec(spec).map_err(|e| bad(e.to_string()))?;
        let gw = gateways
            .iter_mut()
            .find(|g| g.server_id.as_str() == id)
            .ok_or_else(|| bad(format!("knock for {id}, which has no gateway field")))?;
        gw.knock.insert(door, knock);
    }
    Ok(ClientKey {
        user: user.ok_or_else(|| bad("no user".into()))?,
        secret: secret.ok_or_else(|| bad("no secret".into()))?,
        gateways,
        path,
    })
}

/// `ID[@HOST[:PORT]]` into a gateway.
fn gateway(value: &str) -> Result<Gateway, String> {
    let (id, host) = match value.split_once('@') {
        Some((id, host)) => (id, Some(host)),
        None => (value, None),
    };
    let server_id: ServerId = id.parse().map_err(|e| format!("gateway: {e}"))?;
    let mut gw = Gateway::new(server_id);
    if let Some(host) = host {
        let spec: HostSpec = host.parse().map_err(|e| format!("gateway: {e}"))?;
        gw.port = spec.port;
        gw.host = Some(spec.host_and_zone());
    }
    Ok(gw)
}

/// The URI as a QR code for a terminal: two rows per line, light modules
/// drawn as blocks (for a dark background) unless `light_background`.
pub fn qr_text(uri: &str, light_background: bool) -> Result<Zeroizing<String>, QrError> {
    let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
        .map_err(|e| QrError(e.to_string()))?;
    let mut render = code.render::<Dense1x2>();
    if !light_background {
        render
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark);
    }
    Ok(Zeroizing::new(render.quiet_zone(true).build()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spa_keys::RotatingKnock;

    fn key() -> ClientKey {
        let mut gw1 = Gateway::new("gw1.example.net".parse().unwrap_or_else(|_| panic!("id")));
        gw1.host = Some("gw1.example.net".into());
        gw1.port = Some(62211);
        gw1.knock.insert(
            "legacy".parse().unwrap_or_else(|_| panic!("door")),
            RotatingKnock::new(4, 20000, 40000, true).unwrap_or_else(|e| panic!("{e}")),
        );
        let mut gw2 = Gateway::new("gw2".parse().unwrap_or_else(|_| panic!("id")));
        gw2.host = Some("fe80::1%eth0".into());
        let gw3 = Gateway::new("gw3".parse().unwrap_or_else(|_| panic!("id")));
        ClientKey {
            user: "alice.laptop".into(),
            secret: UserSecret::new(SecretBytes::new([0xfb; 32])),
            gateways: vec![gw1, gw2, gw3],
            path: "/a".into(),
        }
    }

    #[test]
    fn the_uri_round_trips_every_field() -> Result<(), UriError> {
        let k = key();
        let uri = to_uri(&k);
        assert!(
            uri.starts_with("spa://key/1?user=alice.laptop&secret="),
            "{}",
            *uri
        );
        assert!(
            uri.contains("&gateway=gw1.example.net%40gw1.example.net%3A62211"),
            "{}",
            *uri
        );
        let back = from_uri(&uri, "/b".into())?;
        assert_eq!(back.user, k.user);
        assert_eq!(back.secret, k.secret);
        assert_eq!(back.gateways, k.gateways);
        assert_eq!(back.path, PathBuf::from("/b"));
        Ok(())
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        for (uri, needle) in [
            ("https://x", "must start with spa://key/1?"),
            ("spa://key/1?user=a", "no secret"),
            ("spa://key/1?user=a&secret=AAAA", "not 32 bytes"),
            ("spa://key/1?user=A!&secret=AAAA", "user"),
            ("spa://key/1?user=a&sekret=x", "unknown field \"sekret\""),
            ("spa://key/1?user=a&gateway=gw1%40gw:0", "not a port number"),
            (
                "spa://key/1?user=a&knock=gw9/x:4:1-60000",
                "no gateway field",
            ),
        ] {
            let err = from_uri(uri, "/k".into())
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert!(
                matches!(&err, Err(m) if m.contains(needle)),
                "{uri}: {err:?}"
            );
        }
    }

    #[test]
    fn the_qr_code_is_drawn_with_a_quiet_zone() -> Result<(), QrError> {
        let text = qr_text("spa://key/1?user=a", false)?;
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 10);
        // Quiet zone on a dark background: the first line is all light (blocks).
        assert!(lines[0].chars().all(|c| c == '\u{2588}'), "{}", lines[0]);
        let light = qr_text("spa://key/1?user=a", true)?;
        assert!(light
            .lines()
            .next()
            .is_some_and(|l| l.chars().all(|c| c == ' ')));
        Ok(())
    }
}
