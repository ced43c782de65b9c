//! Which files spad trusts: its config holds command templates that run as
//! root, so a config that anyone but its owner (root or spad's user) can
//! write is refused, with the command that fixes it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why a file is not trusted.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct UntrustedFile {
    /// The file.
    pub path: String,
    /// Why, and what to do.
    pub why: String,
}

/// Refuses `path` if group or others may write it, or if its owner is
/// neither root nor the user spad runs as.
pub fn check_config_file(path: &Path) -> Result<(), UntrustedFile> {
    let untrusted = |why: String| UntrustedFile {
        path: path.display().to_string(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| untrusted(e.to_string()))?;
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(format!(
            "writable by group or others, and it holds commands spad runs as root: chmod go-w {}",
            path.display()
        )));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(untrusted(format!(
            "owned by uid {}, neither root nor spad's uid {me}: chown root {}",
            meta.uid(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_config_others_can_write_is_refused_with_the_fix() -> Result<(), std::io::Error> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("spad.toml");
        std::fs::write(&path, "x")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        assert!(check_config_file(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        let err = check_config_file(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("chmod go-w"), "{err}");
        Ok(())
    }
}
