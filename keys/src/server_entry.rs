//! A server entry: one user's `K_srv` on one gateway, the doors it may open,
//! its expiry and whether it is revoked (`<keys_dir>/<user>.toml`). Owns that
//! TOML format in both directions and the conversion to spa-proto's
//! [`KeyEntry`]. It never holds or writes the user's secret `S`.

use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spa_proto::{DoorName, KeyEntry, NameError, ServerId, ServerKey};
use toml::Spanned;
use zeroize::Zeroizing;

use crate::error::KeyFileError;
use crate::secret_file::read_secret_file;
use crate::toml_fields::{
    encode_key, located_error, parse_error, quote, DateField, KeyField, ServerIdField, UserField,
};

/// One user's key on one gateway, as spad loads it.
#[derive(Debug, Clone)]
pub struct ServerEntry {
    /// The user name; the file is `<user>.toml`.
    pub user: String,
    /// The gateway this entry is for.
    pub server_id: ServerId,
    /// `K_srv` for this gateway (not the user's secret).
    pub key: ServerKey,
    /// The doors this key may open.
    pub doors: Vec<DoorName>,
    /// The last day (UTC) the key works; it stops at the following midnight UTC.
    pub expires: Option<time::Date>,
    /// Whether address kind 0 (the observed source) is accepted.
    pub allow_observed: bool,
    /// A revoked key opens nothing.
    pub revoked: bool,
    /// The file it was loaded from (or will be written to).
    pub path: PathBuf,
}

/// Whether an entry opens anything at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    /// Usable.
    Active,
    /// `revoked = true`.
    Revoked,
    /// Past its `expires` day.
    Expired,
}

impl fmt::Display for EntryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryStatus::Active => "active",
            EntryStatus::Revoked => "revoked",
            EntryStatus::Expired => "expired",
        })
    }
}

impl ServerEntry {
    /// The entry as the verifier's keyring wants it: an `expires` date becomes
    /// the start of the next day UTC in ms; `revoked` becomes `enabled = false`.
    pub fn to_key_entry(&self) -> KeyEntry {
        KeyEntry {
            user: self.user.clone(),
            key: self.key.clone(),
            doors: self.doors.iter().cloned().collect(),
            allow_observed: self.allow_observed,
            expires_at_ms: self.expires.map(end_of_day_ms),
            enabled: !self.revoked,
        }
    }

    /// Active, revoked or expired at `now_ms` (ms since the Unix epoch).
    pub fn status_at(&self, now_ms: u64) -> EntryStatus {
        if self.revoked {
            EntryStatus::Revoked
        } else if self.expires.is_some_and(|d| now_ms >= end_of_day_ms(d)) {
            EntryStatus::Expired
        } else {
            EntryStatus::Active
        }
    }

    /// The file's text, with a header saying what it is. Contains `K_srv`.
    pub fn to_toml(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        // Writing to a String cannot fail.
        let _ = write_server_entry(&mut out, self);
        out
    }
}

/// The first millisecond after `date` ends, UTC.
fn end_of_day_ms(date: time::Date) -> u64 {
    let Some(next) = date.next_day() else {
        return u64::MAX;
    };
    let secs = next.midnight().assume_utc().unix_timestamp();
    u64::try_from(secs).unwrap_or(0).saturating_mul(1000)
}

fn write_server_entry(out: &mut String, e: &ServerEntry) -> fmt::Result {
    writeln!(
        out,
        "# spa server entry for {} on {} — read by spad (chmod 600).",
        e.user, e.server_id
    )?;
    writeln!(
        out,
        "# Holds K_srv for this gateway only, never the user's secret."
    )?;
    writeln!(out, "user = {}", quote(&e.user))?;
    writeln!(out, "server_id = {}", quote(e.server_id.as_str()))?;
    out.push_str("k_srv = \"");
    out.push_str(&encode_key(e.key.expose()));
    out.push_str("\"\n");
    let doors: Vec<String> = e.doors.iter().map(|d| quote(d.as_str())).collect();
    writeln!(out, "doors = [{}]", doors.join(", "))?;
    match e.expires {
        Some(d) => writeln!(out, "expires = {d}")?,
        None => writeln!(
            out,
            "# expires = 2027-01-31   (last day the key works, UTC)"
        )?,
    }
    writeln!(out, "allow_observed = {}", e.allow_observed)?;
    writeln!(out, "revoked = {}", e.revoked)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerEntryFile {
    user: UserField,
    server_id: ServerIdField,
    k_srv: KeyField,
    doors: Vec<Spanned<String>>,
    expires: Option<DateField>,
    #[serde(default)]
    allow_observed: bool,
    #[serde(default)]
    revoked: bool,
}

/// Loads one server entry, refusing it if group or others may read it or if
/// its file name is not `<user>.toml`.
pub fn load_server_entry(path: &Path) -> Result<ServerEntry, KeyFileError> {
    let text = read_secret_file(path)?;
    let entry = parse_server_entry(path, &text)?;
    let expected = format!("{}.toml", entry.user);
    if path
        .file_name()
        .is_some_and(|n| n.to_str() != Some(expected.as_str()))
    {
        return Err(KeyFileError::FileNameMismatch {
            path: path.to_owned(),
            user: entry.user,
        });
    }
    Ok(entry)
}

/// Parses the text of a server entry; `path` is used in errors and kept.
pub fn parse_server_entry(path: &Path, text: &str) -> Result<ServerEntry, KeyFileError> {
    let file: ServerEntryFile = toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
    let mut doors: Vec<DoorName> = Vec::with_capacity(file.doors.len());
    for spanned in file.doors {
        // Checked here rather than in a field type so the error points at the
        // element, not at the whole array.
        let door: DoorName = spanned.get_ref().parse().map_err(|e: NameError| {
            located_error(path, text, Some(spanned.span()), e.to_string())
        })?;
        if !doors.contains(&door) {
            doors.push(door);
        }
    }
    Ok(ServerEntry {
        user: file.user.0,
        server_id: file.server_id.0,
        key: ServerKey::new(file.k_srv.0),
        doors,
        expires: file.expires.map(|d| d.0),
        allow_observed: file.allow_observed,
        revoked: file.revoked,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_the_start_of_the_next_day_utc() {
        let d = time::macros::date!(2027 - 01 - 31);
        // 2027-02-01T00:00:00Z
        assert_eq!(end_of_day_ms(d), 1_801_440_000_000);
        assert_eq!(end_of_day_ms(time::macros::date!(1960 - 01 - 01)), 0);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod format_tests {
    use spa_proto::{SecretBytes, UserSecret};

    use super::*;
    use crate::toml_fields::encode_key;

    const PATH: &str = "/etc/spad/keys.d/alice.toml";

    fn sample() -> ServerEntry {
        let s = UserSecret::new(SecretBytes::new([9; 32]));
        let server_id: ServerId = "gw1.example.net".parse().expect("valid id");
        ServerEntry {
            user: "alice".into(),
            key: s.server_key(&server_id),
            server_id,
            doors: vec!["ssh".parse().expect("door"), "admin".parse().expect("door")],
            expires: Some(time::macros::date!(2027 - 01 - 31)),
            allow_observed: true,
            revoked: false,
            path: PATH.into(),
        }
    }

    fn parse_err(text: &str) -> (usize, usize, String, String) {
        match parse_server_entry(Path::new(PATH), text) {
            Err(e @ KeyFileError::Parse { .. }) => {
                let shown = e.to_string();
                let KeyFileError::Parse {
                    line, col, message, ..
                } = e
                else {
                    unreachable!()
                };
                (line, col, message, shown)
            }
            Err(e) => panic!("expected a parse error, got {e}"),
            Ok(_) => panic!("expected a parse error for:\n{text}"),
        }
    }

    fn key_b64() -> String {
        encode_key(&[5; 32]).to_string()
    }

    #[test]
    fn round_trip_keeps_every_field() -> Result<(), KeyFileError> {
        let e = sample();
        let text = e.to_toml();
        let back = parse_server_entry(Path::new(PATH), &text)?;
        assert_eq!(back.user, "alice");
        assert_eq!(back.server_id, e.server_id);
        assert_eq!(back.key, e.key);
        assert_eq!(back.doors, e.doors);
        assert_eq!(back.expires, e.expires);
        assert!(back.allow_observed);
        assert!(!back.revoked);
        assert!(text.contains("expires = 2027-01-31\n"), "{}", *text);
        let mut none = e.clone();
        none.expires = None;
        none.revoked = true;
        let back = parse_server_entry(Path::new(PATH), &none.to_toml())?;
        assert_eq!((back.expires, back.revoked), (None, true));
        Ok(())
    }

    #[test]
    fn to_key_entry_maps_expiry_and_revocation() {
        let mut e = sample();
        let k = e.to_key_entry();
        assert_eq!(k.expires_at_ms, Some(1_801_440_000_000));
        assert!(k.enabled);
        assert_eq!(k.doors.len(), 2);
        assert!(k.usable_at(1_801_439_999_999));
        assert!(!k.usable_at(1_801_440_000_000));
        assert_eq!(e.status_at(1_801_439_999_999), EntryStatus::Active);
        assert_eq!(e.status_at(1_801_440_000_000), EntryStatus::Expired);
        e.revoked = true;
        assert!(!e.to_key_entry().enabled);
        assert_eq!(e.status_at(0), EntryStatus::Revoked);
    }

    #[test]
    fn bad_base64_names_file_line_and_column_without_the_value() {
        let text = "user = \"alice\"\nserver_id = \"gw1\"\nk_srv = \"not!base64!secret!value\"\ndoors = [\"ssh\"]\n";
        let (line, col, message, shown) = parse_err(text);
        assert_eq!((line, col), (3, 9), "{shown}");
        assert!(message.contains("not valid base64"), "{shown}");
        assert!(shown.starts_with(&format!("{PATH}:3:9: ")), "{shown}");
        assert!(!shown.contains("not!base64"), "secret shown: {shown}");
        assert!(shown.contains("^"), "{shown}");
    }

    #[test]
    fn wrong_key_length_names_line_and_column() {
        let text = "user = \"alice\"\nserver_id = \"gw1\"\nk_srv = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\ndoors = [\"ssh\"]\n";
        let (line, col, message, shown) = parse_err(text);
        assert_eq!((line, col), (3, 9), "{shown}");
        assert!(message.contains("decodes to 42 bytes"), "{shown}");
        assert!(message.contains("exactly 32 bytes"), "{shown}");
        assert!(!shown.contains("AAAAAAAA"), "secret shown: {shown}");
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let text = format!(
            "user = \"alice\"\nserver_id = \"gw1\"\nk_srv = \"{}\"\ndoors = [\"ssh\"]\n  alow_observed = true\n",
            key_b64()
        );
        let (line, col, message, shown) = parse_err(&text);
        assert_eq!((line, col), (5, 3), "{shown}");
        assert!(message.contains("unknown field `alow_observed`"), "{shown}");
        assert!(
            message.contains("allow_observed"),
            "lists the expected fields: {shown}"
        );
    }

    #[test]
    fn bad_door_name_points_at_the_door() {
        let text = format!(
            "user = \"alice\"\nserver_id = \"gw1\"\nk_srv = \"{}\"\ndoors = [\"ssh\", \"Admin\"]\n",
            key_b64()
        );
        let (line, col, message, shown) = parse_err(&text);
        assert_eq!((line, col), (4, 17), "{shown}");
        assert!(message.contains("door name \"Admin\""), "{shown}");
    }

    #[test]
    fn bad_user_server_id_and_date_are_located() {
        let k = key_b64();
        let (line, _, message, _) = parse_err(&format!(
            "user = \"../root\"\nserver_id = \"gw1\"\nk_srv = \"{k}\"\ndoors = []\n"
        ));
        assert_eq!(line, 1);
        assert!(message.contains("user name"), "{message}");
        let (line, _, message, _) = parse_err(&format!(
            "user = \"a\"\nserver_id = \"GW1\"\nk_srv = \"{k}\"\ndoors = []\n"
        ));
        assert_eq!(line, 2);
        assert!(message.contains("server_id"), "{message}");
        let (line, col, message, _) = parse_err(&format!(
            "user = \"a\"\nserver_id = \"gw1\"\nk_srv = \"{k}\"\ndoors = []\nexpires = 2027-02-30\n"
        ));
        // TOML itself rejects the day, and points at it.
        assert_eq!((line, col), (5, 19), "{message}");
        let (line, col, message, _) = parse_err(&format!(
            "user = \"a\"\nserver_id = \"gw1\"\nk_srv = \"{k}\"\ndoors = []\nexpires = \"2027-02-30\"\n"
        ));
        assert_eq!((line, col), (5, 11), "{message}");
        assert!(
            message.contains("\"2027-02-30\" is not a valid date"),
            "{message}"
        );
    }

    #[test]
    fn missing_field_is_reported_with_the_file() {
        let text = "user = \"alice\"\nserver_id = \"gw1\"\ndoors = [\"ssh\"]\n";
        let (_, _, message, shown) = parse_err(text);
        assert!(message.contains("missing field `k_srv`"), "{shown}");
        assert!(shown.starts_with(PATH), "{shown}");
    }

    #[test]
    fn quoted_expiry_date_is_accepted() -> Result<(), KeyFileError> {
        let text = format!(
            "user = \"a\"\nserver_id = \"gw1\"\nk_srv = \"{}\"\ndoors = [\"ssh\"]\nexpires = \"2027-01-31\"\n",
            key_b64()
        );
        let e = parse_server_entry(Path::new(PATH), &text)?;
        assert_eq!(e.expires, Some(time::macros::date!(2027 - 01 - 31)));
        Ok(())
    }
}
