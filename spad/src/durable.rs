//! What must survive `kill -9`: the replay log (appended and flushed before
//! any door opens, compacted now and then) and the open-doors state file
//! (rewritten atomically before the firewall is touched). Only files here;
//! the decisions about their contents are spa-proto's.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use spa_proto::replay::{ReplayCache, ReplayRecord, LOG_MAGIC};
use spa_proto::OpenDoor;

/// Appended records after which the log is compacted to its live entries.
const COMPACT_AFTER: usize = 4096;

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

/// Makes the state directory (0700) if it does not exist.
pub fn ensure_state_dir(dir: &Path) -> Result<(), StateError> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(at(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(at(dir))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably: temp file, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(at(&tmp))?;
    f.write_all(bytes).map_err(at(&tmp))?;
    f.sync_all().map_err(at(&tmp))?;
    fs::rename(&tmp, path).map_err(at(path))?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// The replay log: `LOG_MAGIC` then fixed-size records, one per accepted packet.
#[derive(Debug)]
pub struct ReplayLog {
    path: PathBuf,
    file: File,
    appended: usize,
}

/// How the replay cache was found at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayStart {
    /// Restored from the log.
    Restored,
    /// No log (first start): packets from before start + skew are refused.
    NoHistory,
    /// The log was unreadable; it was moved aside and packets from before start + skew are refused.
    Unreadable,
}

impl ReplayLog {
    /// Opens (or creates) the log and restores the cache from it.
    pub fn open(
        dir: &Path,
        cap: usize,
        skew_ms: u64,
        start_ms: u64,
    ) -> Result<(ReplayLog, ReplayCache, ReplayStart), StateError> {
        let path = dir.join("replay.log");
        let (cache, start) = match fs::read(&path) {
            Ok(bytes) => match ReplayCache::from_log(&bytes, cap, skew_ms) {
                Ok(cache) => (cache, ReplayStart::Restored),
                Err(_) => {
                    let aside = path.with_extension("log.bad");
                    fs::rename(&path, &aside).map_err(at(&path))?;
                    (
                        ReplayCache::new_without_history(cap, skew_ms, start_ms),
                        ReplayStart::Unreadable,
                    )
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => (
                ReplayCache::new_without_history(cap, skew_ms, start_ms),
                ReplayStart::NoHistory,
            ),
            Err(e) => return Err(StateError { path, source: e }),
        };
        let mut cache = cache;
        let now = cache.advance(start_ms);
        // Start from a compact log of what is live (this also records the high-water mark).
        write_atomic(&path, &cache.to_log(now))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(at(&path))?;
        Ok((
            ReplayLog {
                path,
                file,
                appended: 0,
            },
            cache,
            start,
        ))
    }

    /// Creates an empty replay log if there is none: for a first install, where no
    /// earlier spad can have accepted a packet, so the skew-long wait after a start
    /// without history (PROTOCOL §3 step 9) is not needed. Returns whether it created one.
    pub fn init(dir: &Path) -> Result<bool, StateError> {
        ensure_state_dir(dir)?;
        let path = dir.join("replay.log");
        if path.exists() {
            return Ok(false);
        }
        write_atomic(&path, LOG_MAGIC)?;
        Ok(true)
    }

    /// Appends records and flushes them to disk (call before opening any door).
    pub fn append(&mut self, records: &[ReplayRecord]) -> Result<(), StateError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(records.len() * ReplayRecord::LEN);
        for r in records {
            buf.extend_from_slice(&r.encode());
        }
        self.file.write_all(&buf).map_err(at(&self.path))?;
        self.file.sync_data().map_err(at(&self.path))?;
        self.appended += records.len();
        Ok(())
    }

    /// Rewrites the log to the live entries once enough records were appended.
    pub fn maybe_compact(&mut self, cache: &ReplayCache, now_ms: u64) -> Result<(), StateError> {
        if self.appended < COMPACT_AFTER {
            return Ok(());
        }
        write_atomic(&self.path, &cache.to_log(now_ms))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(at(&self.path))?;
        self.appended = 0;
        Ok(())
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The open-doors state file.
#[derive(Debug, Clone)]
pub struct DoorStateFile {
    path: PathBuf,
}

impl DoorStateFile {
    /// The file in `dir`.
    pub fn new(dir: &Path) -> Self {
        DoorStateFile {
            path: dir.join("doors.state"),
        }
    }

    /// Reads what was open when spad last wrote it (nothing when there is no file).
    pub fn read(&self) -> Result<Vec<OpenDoor>, StateError> {
        match fs::read_to_string(&self.path) {
            Ok(text) => spa_proto::OpenDoors::parse_state(&text).map_err(|e| StateError {
                path: self.path.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(StateError {
                path: self.path.clone(),
                source: e,
            }),
        }
    }

    /// Replaces the file with `text`, durably.
    pub fn write(&self, text: &str) -> Result<(), StateError> {
        write_atomic(&self.path, text.as_bytes())
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

    #[test]
    fn replay_records_survive_a_reopen() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(at(Path::new("tmp")))?;
        let start = 1_764_000_000_000;
        let (mut log, mut cache, how) = ReplayLog::open(dir.path(), 32, 30_000, start)?;
        assert_eq!(how, ReplayStart::NoHistory);
        let rec = cache.insert(KeyId([3; 16]), [4; 12], start + 40_000, start + 40_000);
        let rec = rec.map_err(|e| StateError {
            path: log.path().into(),
            source: io::Error::other(e),
        })?;
        log.append(&[rec])?;
        drop(log);
        let (_log, cache, how) = ReplayLog::open(dir.path(), 32, 30_000, start + 41_000)?;
        assert_eq!(how, ReplayStart::Restored);
        assert!(cache.contains(&KeyId([3; 16]), &[4; 12], start + 41_000));
        assert_eq!(cache.high_water_ms(), start + 41_000);
        let mode = fs::metadata(dir.path().join("replay.log"))
            .map_err(at(dir.path()))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        Ok(())
    }

    #[test]
    fn a_corrupt_log_is_moved_aside_and_history_is_unknown() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(at(Path::new("tmp")))?;
        fs::write(dir.path().join("replay.log"), b"not a log").map_err(at(dir.path()))?;
        let (_log, cache, how) = ReplayLog::open(dir.path(), 32, 30_000, 1_000_000)?;
        assert_eq!(how, ReplayStart::Unreadable);
        assert_eq!(cache.refuse_until_ms(), 1_030_000);
        assert!(dir.path().join("replay.log.bad").exists());
        Ok(())
    }
}
