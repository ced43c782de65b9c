//! The shipped config files and `spad --check`: the example `conf/spad.toml`
//! is accepted as shipped (so it cannot rot), a typo is reported as
//! FILE:LINE:COL with a non-zero exit, and `conf/spad.service` keeps the
//! hardening the docs promise.

use std::collections::BTreeMap;
use std::path::Path;

use spa_e2e::lab::Lab;
use spa_e2e::spad::{check_config, Backend};
use spa_e2e::{E2eError, Result};

const CONF_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../conf");

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| E2eError::Io {
        what: format!("reading {}", path.display()),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| E2eError::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn shipped_example_config_passes_check() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|source| E2eError::Io {
        what: "creating a temp dir".into(),
        source,
    })?;
    let shipped = read(&Path::new(CONF_DIR).join("spad.toml"))?;
    // Only the two paths change: the example points at /etc and /var/lib.
    let keys = dir.path().join("keys.d");
    let state = dir.path().join("state");
    for d in [&keys, &state] {
        std::fs::create_dir(d).map_err(|source| E2eError::Io {
            what: format!("creating {}", d.display()),
            source,
        })?;
    }
    let text = shipped
        .replace(
            "\"/etc/spad/keys.d\"",
            &format!("{:?}", keys.display().to_string()),
        )
        .replace(
            "\"/var/lib/spad\"",
            &format!("{:?}", state.display().to_string()),
        );
    assert_ne!(
        text, shipped,
        "conf/spad.toml no longer sets keys_dir and state_dir"
    );
    let path = dir.path().join("spad.toml");
    write(&path, &text)?;
    let out = check_config(&path)?;
    assert!(
        out.status.success(),
        "spad --check refuses the shipped example:\n{}",
        output_text(&out)
    );
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn check_reports_a_typo_as_file_line_column_and_fails() -> Result<()> {
    let lab = Lab::new()?;
    let good = lab.config(Backend::Nftables, 30).to_toml();
    let path = lab.dir.path().join("typo.toml");

    write(&path, &good)?;
    let out = check_config(&path)?;
    assert!(
        out.status.success(),
        "the config without the typo is fine:\n{}",
        output_text(&out)
    );

    let typo = good.replacen("default_secs = 2", "defualt_secs = 2", 1);
    let line = typo
        .lines()
        .position(|l| l.starts_with("defualt_secs"))
        .map(|i| i + 1);
    let Some(line) = line else {
        panic!("the generated config has no default_secs line:\n{good}")
    };
    write(&path, &typo)?;
    let out = check_config(&path)?;
    let text = output_text(&out);
    assert!(
        !out.status.success(),
        "spad --check accepted a typo:\n{text}"
    );
    let place = format!("{}:{line}:1:", path.display());
    assert!(text.contains(&place), "expected `{place}` in:\n{text}");
    assert!(
        text.contains("defualt_secs"),
        "the message names the unknown key:\n{text}"
    );

    let bad_value = good.replacen("skew_secs = 30", "skew_secs = \"thirty\"", 1);
    let line = bad_value
        .lines()
        .position(|l| l.starts_with("skew_secs"))
        .map_or(0, |i| i + 1);
    write(&path, &bad_value)?;
    let out = check_config(&path)?;
    let text = output_text(&out);
    assert!(
        !out.status.success(),
        "spad --check accepted skew_secs = \"thirty\":\n{text}"
    );
    assert!(
        text.contains(&format!("{}:{line}:", path.display())),
        "expected file:{line}:col in:\n{text}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn service_unit_runs_spad_with_only_the_capabilities_it_needs() -> Result<()> {
    let unit = read(&Path::new(CONF_DIR).join("spad.service"))?;
    let mut settings: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
    {
        if let Some((key, value)) = line.split_once('=') {
            settings.entry(key).or_default().push(value);
        }
    }
    let has = |key: &str, value: &str| settings.get(key).is_some_and(|v| v.contains(&value));
    for (key, value) in [
        ("Type", "notify"),
        ("ExecStart", "/usr/sbin/spad --config /etc/spad.toml"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("CapabilityBoundingSet", "CAP_NET_RAW CAP_NET_ADMIN"),
        ("AmbientCapabilities", "CAP_NET_RAW CAP_NET_ADMIN"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/spad"),
        ("StateDirectory", "spad"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        (
            "RestrictAddressFamilies",
            "AF_PACKET AF_NETLINK AF_UNIX AF_INET AF_INET6",
        ),
        ("Restart", "on-failure"),
    ] {
        assert!(has(key, value), "conf/spad.service lacks {key}={value}");
    }
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn check_fails_on_a_missing_interface_and_no_doors_and_warns_about_keys() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|source| E2eError::Io {
        what: "creating a temp dir".into(),
        source,
    })?;
    let keys = dir.path().join("keys.d");
    std::fs::create_dir(&keys).map_err(|source| E2eError::Io {
        what: "creating keys.d".into(),
        source,
    })?;
    let head = format!(
        "server_id = \"gw1\"\nkeys_dir = {:?}\nstate_dir = {:?}\n",
        keys.display().to_string(),
        dir.path().join("state").display().to_string()
    );
    let path = dir.path().join("spad.toml");

    write(
        &path,
        &format!("{head}interfaces = [\"spa-op-none0\"]\n[doors.ssh]\nopen = [\"tcp/22\"]\n"),
    )?;
    let out = check_config(&path)?;
    let text = output_text(&out);
    assert!(!out.status.success(), "a missing interface passed:\n{text}");
    assert!(
        text.contains("error: interface \"spa-op-none0\" does not exist on this host"),
        "{text}"
    );
    assert!(
        text.contains("warning: no active keys for server_id gw1"),
        "{text}"
    );

    write(&path, &head)?;
    let out = check_config(&path)?;
    let text = output_text(&out);
    assert!(!out.status.success(), "zero doors passed:\n{text}");
    assert!(text.contains("error: no doors"), "{text}");
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn a_start_without_capabilities_names_them_once() -> Result<()> {
    let spad = spa_e2e::bins::workspace_bin("spad")?;
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(&spad)
        .args(["--config", "/nonexistent/spad.toml"])
        .output()
        .map_err(|source| E2eError::Io {
            what: "running spad as nobody".into(),
            source,
        })?;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "spad: needs CAP_NET_RAW and CAP_NET_ADMIN (run as root or via conf/spad.service)\n"
    );
    assert!(out.stdout.is_empty());
    Ok(())
}
