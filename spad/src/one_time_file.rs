//! Marks used one-time sequences in their file, as knockd does (the
//! journal holds the mark that counts; this keeps the file honest for
//! people and for knockd-style tools).

use std::fs;
use std::path::Path;

use spa_proto::knock::{comment_out_one_time, KnockStep};

use crate::journal::{at, write_atomic, StateError};

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
