//! `spad --check`: everything the daemon would refuse at start (errors, exit
//! non-zero) or warn about (warnings), found without root and without
//! touching the firewall — the config, its keys, its interfaces, its doors.

use std::fmt;
use std::path::{Path, PathBuf};

use spa_keys::{EntryStatus, ServerEntry};

use crate::config::{Config, ConfigError, DoorKind};
use crate::fwknop_access::FwknopAccess;

/// Why the check could not even read what it checks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The config file is not usable (file:line:col).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The keys directory or an entry in it is not usable.
    #[error("{0}")]
    Keys(#[from] spa_keys::KeyFileError),
    /// The config file is writable by others (it holds root commands).
    #[error("{0}")]
    Untrusted(#[from] crate::trust::UntrustedFile),
}

/// What `spad --check` found in a config that loads.
#[derive(Debug)]
pub struct CheckReport {
    /// The config file.
    pub path: PathBuf,
    /// One line about what was read.
    pub summary: String,
    /// What stops the daemon from starting or from ever opening a door.
    pub errors: Vec<String>,
    /// What the daemon would warn about.
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// Whether the daemon would start.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.ok() { "OK" } else { "FAILED" };
        write!(f, "{}: {verdict} — {}", self.path.display(), self.summary)?;
        for w in &self.warnings {
            write!(f, "\nwarning: {w}")?;
        }
        for e in &self.errors {
            write!(f, "\nerror: {e}")?;
        }
        Ok(())
    }
}

/// A key entry that names a door the config does not have: (user, door).
pub fn unknown_doors<'a>(config: &Config, entries: &'a [ServerEntry]) -> Vec<(&'a str, &'a str)> {
    entries
        .iter()
        .flat_map(|e| {
            e.doors
                .iter()
                .filter(|d| config.door(d).is_none())
                .map(move |d| (e.user.as_str(), d.as_str()))
        })
        .collect()
}

/// Interfaces the config names that this host does not have.
pub fn missing_interfaces(config: &Config) -> Vec<&str> {
    config
        .interfaces
        .iter()
        .map(String::as_str)
        .filter(|name| nix::net::if_::if_nametoindex(*name).is_err())
        .collect()
}

/// Checks the config at `config_path` and the keys it names, as of `now_ms`.
pub fn check(config_path: &Path, now_ms: u64) -> Result<CheckReport, CheckError> {
    crate::trust::check_config_file(config_path)?;
    let config = Config::load(config_path)?;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let fwknop = check_fwknop(&config, &mut errors, &mut warnings);
    if !config.reads_keys_dir() && !config.doors.is_empty() {
        // Knock sequences or fwknop doors only (a knockd or fwknopd
        // migration): no keys directory is read.
        for name in missing_interfaces(&config) {
            errors.push(format!(
                "interface {name:?} does not exist on this host (see `ip link`); spad could not capture on it"
            ));
        }
        let what = if fwknop.is_empty() {
            "knock sequences only".to_owned()
        } else {
            format!("{fwknop}, no spa/1 keys")
        };
        return Ok(CheckReport {
            path: config_path.to_path_buf(),
            summary: format!(
                "server_id {}, port {}, {} door(s), {what}: no keys needed ({} is not read)",
                config.server_id,
                config.port,
                config.doors.len(),
                config.keys_dir.display()
            ),
            errors,
            warnings,
        });
    }
    let dir = spa_keys::load_keys_dir(&config.keys_dir, &config.server_id)?;

    for name in missing_interfaces(&config) {
        errors.push(format!(
            "interface {name:?} does not exist on this host (see `ip link`); spad could not capture on it"
        ));
    }
    if config.doors.is_empty() {
        errors.push("no doors: add a [doors.NAME] section, or spad has nothing to open".into());
    }
    let spa_doors = config
        .doors
        .iter()
        .filter(|d| matches!(d.kind, DoorKind::Spa) && !d.fwknop)
        .count();
    let active = dir
        .entries
        .iter()
        .filter(|e| e.status_at(now_ms) == EntryStatus::Active)
        .count();
    if spa_doors > 0 && active == 0 {
        warnings.push(format!(
            "no active keys for server_id {} in {}: nobody can open the {spa_doors} SPA door(s) yet \
             (issue one with: spa-keygen issue --user NAME --server-id {} --doors DOOR --keys-dir {})",
            config.server_id,
            config.keys_dir.display(),
            config.server_id,
            config.keys_dir.display()
        ));
    }
    for (user, door) in unknown_doors(&config, &dir.entries) {
        warnings.push(format!(
            "key of user {user} names door {door:?}, which {} does not have: it opens nothing \
             (add [doors.{door}] or change the key with spa-keygen set --user {user} --doors ...)",
            config_path.display()
        ));
    }
    for e in &dir.entries {
        match e.status_at(now_ms) {
            EntryStatus::Active => {}
            status => warnings.push(format!(
                "key of user {} is {status}: it opens nothing ({})",
                e.user,
                e.path.display()
            )),
        }
    }
    for (path, why) in &dir.skipped {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden {
            warnings.push(format!("{} skipped: {why}", path.display()));
        }
    }
    Ok(CheckReport {
        path: config_path.to_path_buf(),
        summary: format!(
            "server_id {}, port {}, {} door(s), {} key(s) ({active} active) in {}{}",
            config.server_id,
            config.port,
            config.doors.len(),
            dir.entries.len(),
            config.keys_dir.display(),
            if fwknop.is_empty() {
                String::new()
            } else {
                format!(", {fwknop}")
            }
        ),
        errors,
        warnings,
    })
}

/// Reads the fwknop access file as the daemon would: an unusable file is an
/// error, what does not carry and ports without a door are warnings.
/// Returns words for the summary (empty when fwknop is not served).
fn check_fwknop(config: &Config, errors: &mut Vec<String>, warnings: &mut Vec<String>) -> String {
    let Some(settings) = &config.fwknop else {
        return String::new();
    };
    let access = match FwknopAccess::load(settings) {
        Ok(access) => access,
        Err(e) => {
            errors.push(e.to_string());
            return format!("fwknop on udp/{}: access file unusable", settings.port);
        }
    };
    let doors = config.port_doors();
    warnings.extend(access.warnings(|t, p| doors.contains_key(&(t, p))));
    format!(
        "fwknop on udp/{}: {} access stanza(s) from {}",
        settings.port,
        access.stanza_count(),
        settings.access_conf.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const NOW_MS: u64 = 1_764_587_899_000;

    struct Setup {
        _dir: tempfile::TempDir,
        config: PathBuf,
        keys: PathBuf,
    }

    fn setup(extra: &str, doors: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys.d");
        std::fs::create_dir(&keys).expect("keys dir");
        let config = dir.path().join("spad.toml");
        std::fs::write(
            &config,
            format!(
                "server_id = \"gw1\"\nkeys_dir = \"{}\"\nstate_dir = \"{}\"\n{extra}\n{doors}",
                keys.display(),
                dir.path().join("state").display()
            ),
        )
        .expect("config");
        Setup {
            _dir: dir,
            config,
            keys,
        }
    }

    fn add_key(keys: &Path, user: &str, doors: &str, revoked: bool) {
        let path = keys.join(format!("{user}.toml"));
        std::fs::write(
            &path,
            format!(
                "user = \"{user}\"\nserver_id = \"gw1\"\nk_srv = \"{}\"\ndoors = [{doors}]\nrevoked = {revoked}\n",
                "A".repeat(43) + "="
            ),
        )
        .expect("entry");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    const SSH: &str = "[doors.ssh]\nopen = [\"tcp/22\"]\n";

    #[test]
    fn a_good_config_with_a_key_is_ok() {
        let s = setup("interfaces = [\"lo\"]", SSH);
        add_key(&s.keys, "alice", "\"ssh\"", false);
        let r = check(&s.config, NOW_MS).expect("loads");
        assert!(r.ok(), "{r}");
        assert!(r.warnings.is_empty(), "{r}");
        assert!(
            r.to_string()
                .contains(": OK — server_id gw1, port 62210, 1 door(s), 1 key(s) (1 active)"),
            "{r}"
        );
    }

    #[test]
    fn a_missing_interface_is_an_error() {
        let s = setup("interfaces = [\"lo\", \"nosuch0\"]", SSH);
        add_key(&s.keys, "alice", "\"ssh\"", false);
        let r = check(&s.config, NOW_MS).expect("loads");
        assert!(!r.ok());
        assert_eq!(r.errors.len(), 1, "{r}");
        assert!(
            r.to_string()
                .contains("error: interface \"nosuch0\" does not exist on this host"),
            "{r}"
        );
        assert!(r.to_string().contains(": FAILED — "), "{r}");
    }

    #[test]
    fn zero_doors_is_an_error_and_unknown_doors_warn() {
        let s = setup("", "");
        add_key(&s.keys, "alice", "\"ssh\", \"web\"", false);
        let r = check(&s.config, NOW_MS).expect("loads");
        assert!(!r.ok());
        assert!(r.errors[0].starts_with("no doors"), "{r}");
        let text = r.to_string();
        assert!(
            text.contains("warning: key of user alice names door \"ssh\", which")
                && text.contains("warning: key of user alice names door \"web\", which"),
            "{text}"
        );
    }

    #[test]
    fn zero_active_keys_with_spa_doors_warns_and_names_the_fix() {
        let s = setup("", SSH);
        add_key(&s.keys, "bob", "\"ssh\"", true);
        let r = check(&s.config, NOW_MS).expect("loads");
        assert!(r.ok(), "a fresh install must still start: {r}");
        let text = r.to_string();
        assert!(
            text.contains("warning: no active keys for server_id gw1"),
            "{text}"
        );
        assert!(text.contains("spa-keygen issue --user NAME"), "{text}");
        assert!(
            text.contains("warning: key of user bob is revoked"),
            "{text}"
        );
    }

    #[test]
    fn an_unreadable_config_is_an_error_with_its_place() {
        let s = setup("bogus = 1", SSH);
        let e = check(&s.config, NOW_MS).expect_err("unknown field");
        let text = e.to_string();
        assert!(text.contains("spad.toml:4:1"), "{text}");
    }

    #[test]
    fn a_config_of_knock_sequences_only_checks_without_a_keys_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("spad.toml");
        let missing = dir.path().join("no-such-keys.d");
        std::fs::write(
            &path,
            format!(
                "server_id = \"gw\"\nkeys_dir = {:?}\n[doors.ssh]\nsequence = [\"7000\", \"8000\"]\n\
                 backend = \"command\"\nopen_command = \"/bin/true %IP%\"\n",
                missing.display().to_string()
            ),
        )
        .expect("config");
        let report = check(&path, NOW_MS).expect("loads without a keys dir");
        assert!(report.ok(), "{report}");
        assert!(
            report
                .to_string()
                .contains("1 door(s), knock sequences only: no keys needed"),
            "{report}"
        );
    }
}
