//! `--save-packet FILE`: writes the exact bytes sent, readable by the owner
//! only (mode 0600 from creation; an existing file is truncated and made
//! 0600 too), since a saved packet opens the door again until it expires.

use std::fs::{OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of a saved packet.
pub const PACKET_FILE_MODE: u32 = 0o600;

/// Writes `bytes` to `path` with mode 0600.
pub fn save_packet(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PACKET_FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(PACKET_FILE_MODE))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn mode(path: &Path) -> io::Result<u32> {
        Ok(fs::metadata(path)?.permissions().mode() & 0o7777)
    }

    #[test]
    fn new_and_existing_files_end_up_0600_with_the_bytes() -> io::Result<()> {
        let dir = std::env::temp_dir().join(format!("spa-cl-packet-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let path = dir.join("p.bin");
        let _ = fs::remove_file(&path);
        save_packet(&path, &[7; 100])?;
        assert_eq!((mode(&path)?, fs::read(&path)?), (0o600, vec![7; 100]));
        fs::set_permissions(&path, Permissions::from_mode(0o644))?;
        save_packet(&path, &[9; 100])?;
        assert_eq!((mode(&path)?, fs::read(&path)?), (0o600, vec![9; 100]));
        fs::remove_dir_all(&dir)
    }
}
