//! Reading and writing files that hold secrets. Owns the permission rule
//! (nothing for group or others: mode 0600), creation with 0600 from the first
//! byte, atomic replacement, and fsync. Never logs or returns file contents
//! except to the caller, in a zeroizing buffer.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::KeyFileError;

/// The only mode a secret file may have.
pub const SECRET_FILE_MODE: u32 = 0o600;

/// The largest key file we read; real ones are well under 4 KiB.
pub const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// Refuses a file that group or others may read, write or execute, with a
/// message that names the exact `chmod 600 <path>` to run.
pub fn check_secret_file_mode(path: &Path) -> Result<(), KeyFileError> {
    let meta = fs::metadata(path).map_err(|e| KeyFileError::io(path, "checking permissions", e))?;
    check_mode(path, meta.permissions().mode())
}

fn check_mode(path: &Path, mode: u32) -> Result<(), KeyFileError> {
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Reads a secret file after checking (on the open file, so it cannot be
/// swapped in between) that only its owner may access it.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    let mut file = File::open(path).map_err(|e| KeyFileError::io(path, "opening", e))?;
    let meta = file
        .metadata()
        .map_err(|e| KeyFileError::io(path, "checking permissions", e))?;
    if !meta.is_file() {
        return Err(KeyFileError::io(
            path,
            "opening",
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    check_mode(path, meta.permissions().mode())?;
    if meta.len() > MAX_KEY_FILE_LEN {
        return Err(KeyFileError::TooLarge {
            path: path.to_owned(),
            len: meta.len(),
            max: MAX_KEY_FILE_LEN,
        });
    }
    // Room for the whole file up front, so the buffer never reallocates and
    // leaves an unwiped copy of the secret behind.
    let mut text = Zeroizing::new(String::with_capacity(meta.len() as usize + 1));
    (&mut file)
        .take(MAX_KEY_FILE_LEN)
        .read_to_string(&mut text)
        .map_err(|e| KeyFileError::io(path, "reading", e))?;
    Ok(text)
}

/// Writes a secret file with mode 0600 from its creation, then fsyncs it and
/// its directory.
///
/// Without `force` the file must not exist (`O_EXCL`; an existing file gives
/// [`KeyFileError::AlreadyExists`]). With `force` the file is replaced
/// atomically: written to a temporary file beside it and renamed over it, so a
/// reader sees the old or the new contents, never a mix.
pub fn write_secret_file(path: &Path, contents: &str, force: bool) -> Result<(), KeyFileError> {
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return Err(KeyFileError::MissingDirectory { path: dir });
    }
    if force {
        let tmp = temp_path_for(path);
        // A leftover from an interrupted run: it is ours to remove.
        let _ = fs::remove_file(&tmp);
        let written = create_exclusive(&tmp, contents).and_then(|()| {
            fs::rename(&tmp, path).map_err(|e| KeyFileError::io(path, "replacing", e))
        });
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
    } else {
        create_exclusive(path, contents)?;
    }
    sync_dir(&dir)
}

/// Creates `path` (which must not exist) with mode 0600, writes and fsyncs it.
fn create_exclusive(path: &Path, contents: &str) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SECRET_FILE_MODE)
        .open(path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                KeyFileError::AlreadyExists {
                    path: path.to_owned(),
                }
            } else {
                KeyFileError::io(path, "creating", e)
            }
        })?;
    let result = (|| {
        // The umask may have taken bits away; make it exactly 0600.
        file.set_permissions(Permissions::from_mode(SECRET_FILE_MODE))?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = result {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(KeyFileError::io(path, "writing", e));
    }
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!(".{name}.tmp-{}", std::process::id()))
}

fn sync_dir(dir: &Path) -> Result<(), KeyFileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| KeyFileError::io(dir, "syncing directory", e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path)
            .expect("written file exists")
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn new_file_is_0600_and_not_overwritten_without_force() -> Result<(), KeyFileError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.key");
        write_secret_file(&path, "one\n", false)?;
        assert_eq!(mode_of(&path), 0o600);
        let err = write_secret_file(&path, "two\n", false).expect_err("must refuse");
        assert!(matches!(err, KeyFileError::AlreadyExists { .. }), "{err}");
        assert_eq!(fs::read_to_string(&path).expect("read"), "one\n");
        write_secret_file(&path, "two\n", true)?;
        assert_eq!(fs::read_to_string(&path).expect("read"), "two\n");
        assert_eq!(mode_of(&path), 0o600);
        // No temporary file left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
        Ok(())
    }

    #[test]
    fn forced_write_makes_a_loose_file_0600() -> Result<(), KeyFileError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.key");
        fs::write(&path, "old").expect("write");
        fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        write_secret_file(&path, "new", true)?;
        assert_eq!(mode_of(&path), 0o600);
        Ok(())
    }

    #[test]
    fn mode_check_refuses_0644_and_0640_with_the_chmod_to_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.key");
        fs::write(&path, "x").expect("write");
        for mode in [0o644, 0o640, 0o604, 0o620] {
            fs::set_permissions(&path, Permissions::from_mode(mode)).expect("chmod");
            let err = check_secret_file_mode(&path).expect_err("must refuse");
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("chmod 600 {}", path.display())),
                "{msg}"
            );
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(read_secret_file(&path).is_err());
        }
        for mode in [0o600, 0o400] {
            fs::set_permissions(&path, Permissions::from_mode(mode)).expect("chmod");
            assert!(check_secret_file_mode(&path).is_ok());
        }
    }

    #[test]
    fn missing_directory_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nope").join("k.key");
        let err = write_secret_file(&path, "x", false).expect_err("must fail");
        assert!(
            err.to_string()
                .contains(&dir.path().join("nope").display().to_string()),
            "{err}"
        );
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
