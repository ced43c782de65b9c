//! The shell around spa-proto's knock state machine: builds it from the
//! config and keyring, keeps the durable list of used rotating steps, and
//! marks used one-time sequences in their file, as knockd does.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use spa_proto::knock::{comment_out_one_time, step_of, KnockStep, Knocker, RotatingDoor};
use spa_proto::{DoorName, KeyId, Keyring};

use crate::config::{Config, DoorKind};
use crate::durable::{at, write_atomic, StateError};

/// The knock state machine for a config and keyring: classic doors as
/// configured, rotating doors with every enabled user allowed on them.
fn build_knocker(config: &Config, keyring: &Keyring, now_ms: u64) -> Knocker {
    let mut classic = Vec::new();
    let mut rotating = Vec::new();
    for d in &config.doors {
        match &d.kind {
            DoorKind::Spa => {}
            DoorKind::Classic { door, .. } => classic.push(door.clone()),
            DoorKind::Rotating {
                spec,
                transport,
                seq_timeout_ms,
            } => {
                let users = keyring
                    .iter()
                    .map(|(_, k)| k)
                    .filter(|k| k.entry.usable_at(now_ms) && k.entry.doors.contains(&d.name))
                    .map(|k| (k.entry.user.clone(), k.id, k.derived.knock.clone()))
                    .collect();
                rotating.push(RotatingDoor {
                    name: d.name.clone(),
                    spec: *spec,
                    transport: *transport,
                    seq_timeout_ms: *seq_timeout_ms,
                    users,
                });
            }
        }
    }
    Knocker::new(classic, rotating, now_ms)
}

/// The knock state machine with the rotating steps already used restored
/// from `state_dir` (start and reload both need exactly this).
pub fn restore_knocker(
    config: &Config,
    keyring: &Keyring,
    state_dir: &Path,
    now_ms: u64,
) -> Result<(Knocker, UsedStepLog), StateError> {
    let mut knocker = build_knocker(config, keyring, now_ms);
    let (log, used) = UsedStepLog::open(state_dir, now_ms)?;
    for (key, door, step) in used {
        knocker.mark_used(key, &door, step);
    }
    Ok((knocker, log))
}

/// One used rotating step: the key, the door, the step.
pub type UsedStep = (KeyId, DoorName, u64);

/// Used rotating (key, door, step) triples: appended and flushed before the
/// door opens, so a sniffed sequence cannot be completed again after a restart.
#[derive(Debug)]
pub struct UsedStepLog {
    path: PathBuf,
    file: File,
}

fn hex(id: &KeyId) -> String {
    id.0.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_line(line: &str) -> Option<(KeyId, DoorName, u64)> {
    let mut parts = line.split_whitespace();
    let key = parts.next()?;
    if key.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(key.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let door = parts.next()?.parse().ok()?;
    let step = parts.next()?.parse().ok()?;
    Some((KeyId(id), door, step))
}

impl UsedStepLog {
    /// Opens the log in `dir`, returning the entries that still matter at `now_ms`
    /// (steps from s-2 on); the file is rewritten to hold only those.
    pub fn open(dir: &Path, now_ms: u64) -> Result<(UsedStepLog, Vec<UsedStep>), StateError> {
        let path = dir.join("knock-used.log");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(StateError { path, source: e }),
        };
        let oldest = step_of(now_ms).saturating_sub(2);
        let live: Vec<_> = text
            .lines()
            .filter_map(parse_line)
            .filter(|(_, _, s)| *s >= oldest)
            .collect();
        let mut kept = String::new();
        for (k, d, s) in &live {
            kept.push_str(&format!("{} {d} {s}\n", hex(k)));
        }
        write_atomic(&path, kept.as_bytes())?;
        let file = OpenOptions::new()
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(at(&path))?;
        Ok((UsedStepLog { path, file }, live))
    }

    /// Appends used steps and flushes them to disk.
    pub fn append(&mut self, used: &[UsedStep]) -> Result<(), StateError> {
        if used.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for (k, d, s) in used {
            text.push_str(&format!("{} {d} {s}\n", hex(k)));
        }
        self.file
            .write_all(text.as_bytes())
            .map_err(at(&self.path))?;
        self.file.sync_data().map_err(at(&self.path))
    }
}

/// Marks a used one-time sequence in its file (knockd comments the line out).
/// Returns false when no unused line held it.
pub fn mark_one_time_used(file: &Path, steps: &[KnockStep]) -> Result<bool, StateError> {
    let text = fs::read_to_string(file).map_err(at(file))?;
    match comment_out_one_time(&text, steps) {
        Some(updated) => {
            write_atomic(file, updated.as_bytes())?;
            Ok(true)
        }
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_steps_survive_a_reopen_and_old_ones_are_dropped() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(at(Path::new("tmp")))?;
        let now = 1_764_000_000_000;
        let s = step_of(now);
        let door: DoorName = "legacy"
            .parse()
            .map_err(|_| at(Path::new("door"))(io::Error::other("door")))?;
        let (mut log, live) = UsedStepLog::open(dir.path(), now)?;
        assert!(live.is_empty());
        log.append(&[
            (KeyId([7; 16]), door.clone(), s),
            (KeyId([8; 16]), door.clone(), s - 5),
        ])?;
        drop(log);
        let (_log, live) = UsedStepLog::open(dir.path(), now)?;
        assert_eq!(live, vec![(KeyId([7; 16]), door, s)]);
        Ok(())
    }

    #[test]
    fn a_used_one_time_sequence_is_commented_out() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(at(Path::new("tmp")))?;
        let file = dir.path().join("otp");
        fs::write(&file, "1000,2000,3000\n4000,5000,6000\n").map_err(at(&file))?;
        let used = [
            KnockStep::tcp(1000),
            KnockStep::tcp(2000),
            KnockStep::tcp(3000),
        ];
        assert!(mark_one_time_used(&file, &used)?);
        let text = fs::read_to_string(&file).map_err(at(&file))?;
        assert_eq!(text.lines().next(), Some("#1000,2000,3000"));
        assert!(!mark_one_time_used(&file, &used)?, "already used");
        Ok(())
    }
}
