//! The durable journal file in `state_dir` (PROTOCOL §3 step 9): records
//! appended with one write and one `fdatasync` per batch, a torn tail cut
//! back on open and after a failed append, compaction through a temp file
//! created with O_EXCL|O_NOFOLLOW. Also checks the state directory: owned
//! by spad's user and writable by nobody else. Only files here; what the
//! records mean is spa-proto's.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use spa_proto::journal::{decode_file, encode, encode_file, JournalCut, Record, JOURNAL_MAGIC};

/// A state-file operation that failed, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct StateError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: io::Error,
}

/// Names `path` in an I/O error.
pub(crate) fn at(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError {
        path: path.to_path_buf(),
        source,
    }
}

fn refuse(path: &Path, why: String) -> StateError {
    StateError {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::PermissionDenied, why),
    }
}

/// Makes the state directory (0700) if it does not exist; refuses one that
/// is a symlink, not owned by this user, or writable by group or others
/// (someone else could plant or swap the journal).
pub fn ensure_state_dir(dir: &Path) -> Result<(), StateError> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(at(dir))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(at(dir))?;
            Ok(())
        }
        Err(e) => Err(at(dir)(e)),
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(refuse(
                    dir,
                    "is not a directory (a symlink is refused)".into(),
                ));
            }
            let me = nix::unistd::geteuid().as_raw();
            if meta.uid() != me {
                return Err(refuse(
                    dir,
                    format!(
                        "is owned by uid {}, not spad's uid {me}: chown {me} {}",
                        meta.uid(),
                        dir.display()
                    ),
                ));
            }
            if meta.mode() & 0o022 != 0 {
                return Err(refuse(
                    dir,
                    format!(
                        "is writable by group or others: chmod 700 {}",
                        dir.display()
                    ),
                ));
            }
            Ok(())
        }
    }
}

/// Writes `bytes` to `path` atomically and durably: a fresh temp file
/// (O_EXCL|O_NOFOLLOW, 0600), fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    // A temp file left by a crash (or planted) is removed, never followed.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(&tmp)(e)),
        _ => {}
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&tmp)
        .map_err(at(&tmp))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(at(&tmp)(e));
    }
    fs::rename(&tmp, path).map_err(at(path))?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// How the journal was found at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalStart {
    /// Read whole.
    Read,
    /// Read up to a torn or bad record, and cut back there.
    Cut(JournalCut),
    /// No journal: history unknown (a first start without `--init-state`,
    /// or a lost state directory).
    Missing,
    /// Not a journal at all: moved aside, history unknown.
    Unreadable(PathBuf),
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Length of the whole records written so far: an append that fails is
    /// cut back to this before anything else is written.
    good_len: u64,
    /// A failed append may have left a partial record past `good_len`.
    dirty: bool,
}

/// The journal's file name in the state directory.
pub const FILE_NAME: &str = "journal";

fn open_append(path: &Path) -> Result<File, StateError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(at(path))
}

impl Journal {
    /// Opens the journal in `dir` (checked with [`ensure_state_dir`]) and
    /// returns its records. A torn tail is cut off here.
    pub fn open(dir: &Path) -> Result<(Journal, Vec<Record>, JournalStart), StateError> {
        ensure_state_dir(dir)?;
        let path = dir.join(FILE_NAME);
        let mut bytes = Vec::new();
        let found = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path);
        let (records, start) = match found {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                write_atomic(&path, JOURNAL_MAGIC)?;
                (Vec::new(), JournalStart::Missing)
            }
            Err(e) => return Err(at(&path)(e)),
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(at(&path))?;
                match decode_file(&bytes) {
                    Err(_) => {
                        let aside = path.with_extension("bad");
                        fs::rename(&path, &aside).map_err(at(&path))?;
                        write_atomic(&path, JOURNAL_MAGIC)?;
                        (Vec::new(), JournalStart::Unreadable(aside))
                    }
                    Ok(decoded) => {
                        let start = match decoded.cut {
                            None => JournalStart::Read,
                            Some(cut) => {
                                let f = open_append(&path)?;
                                f.set_len(decoded.good_len as u64).map_err(at(&path))?;
                                f.sync_data().map_err(at(&path))?;
                                JournalStart::Cut(cut)
                            }
                        };
                        (decoded.records, start)
                    }
                }
            }
        };
        let file = open_append(&path)?;
        let good_len = file.metadata().map_err(at(&path))?.len();
        Ok((
            Journal {
                path,
                file,
                good_len,
                dirty: false,
            },
            records,
            start,
        ))
    }

    /// Creates an empty journal if there is none: for a first install, where
    /// no earlier spad can have accepted a packet, so the skew-long wait after
    /// a start without history (PROTOCOL §3 step 9) is not needed. Returns
    /// whether it created one.
    pub fn init(dir: &Path) -> Result<bool, StateError> {
        ensure_state_dir(dir)?;
        let path = dir.join(FILE_NAME);
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(false);
        }
        write_atomic(&path, JOURNAL_MAGIC)?;
        Ok(true)
    }

    /// Appends records with one write and one `fdatasync`. On failure the
    /// file is cut back to its last whole record (now, or before the next
    /// append if that fails too), so nothing after it is ever misread.
    pub fn append(&mut self, records: &[Record]) -> Result<(), StateError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.dirty {
            self.cut_back()?;
        }
        let bytes = encode(records);
        let result = self
            .file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.good_len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.dirty = true;
                let _ = self.cut_back();
                Err(at(&self.path)(e))
            }
        }
    }

    fn cut_back(&mut self) -> Result<(), StateError> {
        self.file.set_len(self.good_len).map_err(at(&self.path))?;
        self.dirty = false;
        Ok(())
    }

    /// Replaces the journal with exactly `records` (compaction).
    pub fn rewrite(&mut self, records: &[Record]) -> Result<(), StateError> {
        let bytes = encode_file(records);
        write_atomic(&self.path, &bytes)?;
        self.file = open_append(&self.path)?;
        self.good_len = bytes.len() as u64;
        self.dirty = false;
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spa_proto::KeyId;

    fn replay(n: u8) -> Record {
        Record::Replay {
            key: KeyId([n; 16]),
            nonce: [n; 12],
            timestamp_ms: 1_764_000_000_000,
            expires_ms: 1_764_000_030_000,
        }
    }

    fn tmp() -> Result<tempfile::TempDir, StateError> {
        tempfile::tempdir().map_err(at(Path::new("tmp")))
    }

    #[test]
    fn records_survive_a_reopen() -> Result<(), StateError> {
        let dir = tmp()?;
        let (mut j, records, start) = Journal::open(dir.path())?;
        assert!(records.is_empty());
        assert_eq!(start, JournalStart::Missing);
        j.append(&[replay(1), replay(2)])?;
        drop(j);
        let (_j, records, start) = Journal::open(dir.path())?;
        assert_eq!(start, JournalStart::Read);
        assert_eq!(records, vec![replay(1), replay(2)]);
        let mode = fs::metadata(dir.path().join(FILE_NAME))
            .map_err(at(dir.path()))?
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        Ok(())
    }

    #[test]
    fn a_torn_tail_is_cut_back_and_later_records_are_read() -> Result<(), StateError> {
        let dir = tmp()?;
        let (mut j, _, _) = Journal::open(dir.path())?;
        j.append(&[replay(1)])?;
        drop(j);
        // A short write left half a record (a full disk, a crash).
        let path = dir.path().join(FILE_NAME);
        let half = &encode(&[replay(2)])[..20];
        let mut f = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(at(&path))?;
        f.write_all(half).map_err(at(&path))?;
        drop(f);
        let (mut j, records, start) = Journal::open(dir.path())?;
        assert_eq!(start, JournalStart::Cut(JournalCut::Torn));
        assert_eq!(records, vec![replay(1)]);
        j.append(&[replay(3)])?;
        drop(j);
        let (_j, records, start) = Journal::open(dir.path())?;
        assert_eq!(
            start,
            JournalStart::Read,
            "nothing after the cut is misread"
        );
        assert_eq!(records, vec![replay(1), replay(3)]);
        Ok(())
    }

    #[test]
    fn garbage_is_moved_aside_and_history_is_unknown() -> Result<(), StateError> {
        let dir = tmp()?;
        fs::write(dir.path().join(FILE_NAME), b"not a journal").map_err(at(dir.path()))?;
        let (_j, records, start) = Journal::open(dir.path())?;
        assert!(records.is_empty());
        assert!(matches!(start, JournalStart::Unreadable(_)));
        assert!(dir.path().join("journal.bad").exists());
        Ok(())
    }

    #[test]
    fn a_planted_symlink_is_never_followed() -> Result<(), StateError> {
        let dir = tmp()?;
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep me").map_err(at(&victim))?;
        let state = dir.path().join("state");
        fs::create_dir(&state).map_err(at(&state))?;
        fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).map_err(at(&state))?;
        std::os::unix::fs::symlink(&victim, state.join("journal.tmp")).map_err(at(&state))?;
        std::os::unix::fs::symlink(&victim, state.join(FILE_NAME)).map_err(at(&state))?;
        assert!(
            Journal::open(&state).is_err(),
            "the journal itself is a symlink: refused"
        );
        fs::remove_file(state.join(FILE_NAME)).map_err(at(&state))?;
        let (mut j, _, _) = Journal::open(&state)?;
        j.rewrite(&[replay(1)])?;
        assert_eq!(fs::read(&victim).map_err(at(&victim))?, b"keep me");
        Ok(())
    }

    #[test]
    fn a_state_dir_others_can_write_is_refused() -> Result<(), StateError> {
        let dir = tmp()?;
        let state = dir.path().join("state");
        fs::create_dir(&state).map_err(at(&state))?;
        fs::set_permissions(&state, fs::Permissions::from_mode(0o777)).map_err(at(&state))?;
        let err = Journal::open(&state)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("chmod 700"), "{err}");
        Ok(())
    }
}
