//! A gateway's keys directory: one server entry per user, `<dir>/<user>.toml`.
//! Owns which files count as entries and which are skipped (hidden files,
//! editor leftovers, other gateways' entries), and says why each was skipped.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use spa_proto::ServerId;

use crate::error::KeyFileError;
use crate::server_entry::{load_server_entry, ServerEntry};

/// The entries of a keys directory for one gateway.
#[derive(Debug, Default)]
pub struct KeysDir {
    /// Entries for this gateway, sorted by file name.
    pub entries: Vec<ServerEntry>,
    /// Files that are not entries for this gateway, each with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// The candidate entry files of a keys directory, before they are parsed.
#[derive(Debug, Default)]
pub struct EntryFiles {
    /// `*.toml` regular files, sorted.
    pub files: Vec<PathBuf>,
    /// Everything else, each with the reason it is not an entry.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Where a gateway's server entries live unless configured otherwise (the one
/// default shared by spad's config and spa-keygen).
pub const DEFAULT_KEYS_DIR: &str = "/etc/spad/keys.d";

/// Where a user's entry lives in `dir`. The caller validates `user` first
/// (see [`crate::check_user_name`]), so it cannot point outside `dir`.
pub fn entry_path(dir: &Path, user: &str) -> PathBuf {
    dir.join(format!("{user}.toml"))
}

/// Lists a keys directory: `*.toml` regular files are entries, the rest skipped.
pub fn scan_keys_dir(dir: &Path) -> Result<EntryFiles, KeyFileError> {
    let read = fs::read_dir(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => KeyFileError::MissingDirectory {
            path: dir.to_owned(),
        },
        _ => KeyFileError::io(dir, "listing keys directory", e),
    })?;
    let mut found = EntryFiles::default();
    for item in read {
        let item = item.map_err(|e| KeyFileError::io(dir, "listing keys directory", e))?;
        let path = item.path();
        let name = item.file_name().to_string_lossy().into_owned();
        let skip = if name.starts_with('.') {
            Some("hidden file")
        } else if !name.ends_with(".toml") {
            Some("not a .toml file")
        } else if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            Some("not a regular file")
        } else {
            None
        };
        match skip {
            Some(reason) => found.skipped.push((path, reason.to_string())),
            None => found.files.push(path),
        }
    }
    found.files.sort();
    found.skipped.sort();
    Ok(found)
}

/// Loads every entry for `server_id` from `dir`. Entries for other gateways
/// and non-entry files are listed in `skipped`; a broken or loosely
/// permissioned entry file is an error naming it.
pub fn load_keys_dir(dir: &Path, server_id: &ServerId) -> Result<KeysDir, KeyFileError> {
    let files = scan_keys_dir(dir)?;
    let mut out = KeysDir {
        entries: Vec::new(),
        skipped: files.skipped,
    };
    for path in files.files {
        // One broken entry is skipped and named: it must not hold back the
        // others, nor keep a revoked key in force by failing a reload.
        let entry = match load_server_entry(&path) {
            Ok(entry) => entry,
            Err(e) => {
                out.skipped.push((path, e.to_string()));
                continue;
            }
        };
        if &entry.server_id == server_id {
            out.entries.push(entry);
        } else {
            let reason = format!("entry for server_id {}, not {server_id}", entry.server_id);
            out.skipped.push((path, reason));
        }
    }
    Ok(out)
}
