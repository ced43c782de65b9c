//! Changing a server entry in place: doors, expiry, observed addresses,
//! revocation. Edits the TOML document (toml_edit), so the administrator's
//! comments and layout stay; the result is checked with the one entry parser
//! before it replaces the file (atomically, mode 0600).

use std::path::Path;

use spa_proto::DoorName;
use toml_edit::{Array, DocumentMut, Item, Value};
use zeroize::Zeroizing;

use crate::error::KeyFileError;
use crate::secret_file::{read_secret_file, write_secret_file};
use crate::server_entry::{parse_server_entry, ServerEntry};

/// What to change in an entry; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryChanges {
    /// The doors the key may open (replaces the list).
    pub doors: Option<Vec<DoorName>>,
    /// `Some(Some(day))` sets the last day, `Some(None)` removes the expiry.
    pub expires: Option<Option<time::Date>>,
    /// Whether "the address the server sees" is accepted.
    pub allow_observed: Option<bool>,
    /// Whether the key is revoked.
    pub revoked: Option<bool>,
}

impl EntryChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self == &EntryChanges::default()
    }
}

/// Applies `changes` to the entry file at `path` and returns the entry as now
/// written. The file must already be a valid entry with mode 0600; comments,
/// key order and formatting of untouched lines are kept.
pub fn edit_server_entry(path: &Path, changes: &EntryChanges) -> Result<ServerEntry, KeyFileError> {
    let text = read_secret_file(path)?;
    // Refuse to edit a file spad would not load: the error names line and column.
    parse_server_entry(path, &text)?;
    let mut doc: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| KeyFileError::Parse {
                path: path.to_owned(),
                line: 1,
                col: 1,
                message: e.message().to_owned(),
                snippet: String::new(),
            })?;
    if let Some(doors) = &changes.doors {
        let mut list = Array::new();
        for d in doors {
            if !list.iter().any(|v| v.as_str() == Some(d.as_str())) {
                list.push(d.as_str());
            }
        }
        set(&mut doc, "doors", Value::Array(list));
    }
    match changes.expires {
        Some(Some(day)) => {
            let value: Value = day.to_string().parse().map_err(|_| KeyFileError::Parse {
                path: path.to_owned(),
                line: 1,
                col: 1,
                message: format!("cannot write expires = {day}"),
                snippet: String::new(),
            })?;
            set(&mut doc, "expires", value);
        }
        Some(None) => {
            doc.remove("expires");
        }
        None => {}
    }
    if let Some(on) = changes.allow_observed {
        set(&mut doc, "allow_observed", Value::from(on));
    }
    if let Some(on) = changes.revoked {
        set(&mut doc, "revoked", Value::from(on));
    }
    let new_text = Zeroizing::new(doc.to_string());
    drop(doc);
    let entry = parse_server_entry(path, &new_text)?;
    write_secret_file(path, &new_text, true)?;
    Ok(entry)
}

/// Sets `key` to `value`, keeping the decoration (comments, spacing) of an existing line.
fn set(doc: &mut DocumentMut, key: &str, mut value: Value) {
    match doc.get_mut(key) {
        Some(Item::Value(old)) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        _ => {
            doc.insert(key, Item::Value(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const ENTRY: &str = "\
# alice's laptop key — issued 2026-11-02, ticket OPS-112
user = \"alice\"
server_id = \"gw1\"
k_srv = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"
doors = [\"ssh\"]   # only ssh until her training is done
# expires = 2027-01-31   (last day the key works, UTC)
allow_observed = false
revoked = false
";

    fn write_entry(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("alice.toml");
        std::fs::write(&path, ENTRY).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }

    #[test]
    fn revoking_keeps_every_comment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_entry(dir.path());
        let entry = edit_server_entry(
            &path,
            &EntryChanges {
                revoked: Some(true),
                ..Default::default()
            },
        )
        .expect("edit");
        assert!(entry.revoked);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, ENTRY.replace("revoked = false", "revoked = true"));
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn set_changes_doors_expiry_and_observed_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_entry(dir.path());
        let changes = EntryChanges {
            doors: Some(vec![
                "ssh".parse().expect("door"),
                "web".parse().expect("door"),
            ]),
            expires: Some(Some(time::macros::date!(2027 - 03 - 31))),
            allow_observed: Some(true),
            revoked: None,
        };
        let entry = edit_server_entry(&path, &changes).expect("edit");
        assert_eq!(entry.doors.len(), 2);
        assert_eq!(entry.expires, Some(time::macros::date!(2027 - 03 - 31)));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("doors = [\"ssh\", \"web\"]   # only ssh until her training is done\n"),
            "{text}"
        );
        assert!(text.starts_with("# alice's laptop key"), "{text}");
        assert!(text.contains("allow_observed = true\n"), "{text}");
        assert!(text.contains("expires = 2027-03-31\n"), "{text}");
        // And back: no expiry.
        let cleared = edit_server_entry(
            &path,
            &EntryChanges {
                expires: Some(None),
                ..Default::default()
            },
        )
        .expect("edit");
        assert_eq!(cleared.expires, None);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("\nexpires = "), "{text}");
        assert!(
            text.contains("# expires = 2027-01-31   (last day"),
            "{text}"
        );
    }

    #[test]
    fn a_broken_entry_is_not_edited() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alice.toml");
        std::fs::write(&path, ENTRY.replace("doors = [", "doors = [[")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let before = std::fs::read_to_string(&path).expect("read");
        let err = edit_server_entry(
            &path,
            &EntryChanges {
                revoked: Some(true),
                ..Default::default()
            },
        )
        .expect_err("broken");
        assert!(
            err.to_string().contains("alice.toml:7:1: invalid array"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), before);
    }
}
