//! `spad --check`: loads the config and, when a door needs keys, the keys
//! directory, and says in one line what spad would run with (or the first
//! error). A config of knock sequences only needs no keys directory, and
//! the summary says so rather than looking for one.

use std::path::Path;

use crate::config::Config;
use crate::daemon::DaemonError;

/// The summary `spad --check` prints, or why the config cannot be used.
pub fn check(config_path: &Path) -> Result<String, DaemonError> {
    crate::trust::check_config_file(config_path)?;
    let config = Config::load(config_path)?;
    let head = format!(
        "{}: OK — server_id {}, port {}, {} door(s)",
        config_path.display(),
        config.server_id,
        config.port,
        config.doors.len(),
    );
    if !config.needs_keys() {
        return Ok(format!(
            "{head}, knock sequences only: no keys needed ({} is not read)",
            config.keys_dir.display()
        ));
    }
    let dir = spa_keys::load_keys_dir(&config.keys_dir, &config.server_id)?;
    let mut lines = vec![format!(
        "{head}, {} key(s) in {}",
        dir.entries.len(),
        config.keys_dir.display()
    )];
    for (path, why) in &dir.skipped {
        lines.push(format!("warning: {} skipped: {why}", path.display()));
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_of_knock_sequences_only_checks_without_a_keys_directory(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("spad.toml");
        let missing = dir.path().join("no-such-keys.d");
        std::fs::write(
            &path,
            format!(
                "server_id = \"gw\"\nkeys_dir = {:?}\n[doors.ssh]\nsequence = [\"7000\", \"8000\"]\n\
                 backend = \"command\"\nopen_command = \"/bin/true %IP%\"\n",
                missing.display().to_string()
            ),
        )?;
        let summary = check(&path)?;
        assert!(
            summary.contains("1 door(s), knock sequences only: no keys needed"),
            "{summary}"
        );
        // An SPA door needs its keys: the missing directory is an error.
        std::fs::write(
            &path,
            format!(
                "server_id = \"gw\"\nkeys_dir = {:?}\n[doors.ssh]\nopen = [\"tcp/22\"]\n",
                missing.display().to_string()
            ),
        )?;
        assert!(check(&path).is_err());
        Ok(())
    }
}
