//! SIGHUP end to end: a key issued after spad started opens nothing until the
//! reload and then opens the door; a broken config sent with SIGHUP is
//! reported and the running configuration keeps working. Root only.

use std::time::Duration;

use spa_e2e::lab::{Lab, SERVER_V4, SSH_PORT};
use spa_e2e::spad::Backend;
use spa_e2e::{E2eError, Result};

fn knock_ok(lab: &Lab, key: &std::path::Path) -> Result<bool> {
    let out = lab.knock(
        key,
        "ssh",
        SERVER_V4.into(),
        &["--wait", &SSH_PORT.to_string(), "--wait-timeout", "2"],
    )?;
    Ok(out.status.success())
}

#[test]
#[ignore = "needs root"]
fn sighup_picks_up_new_keys_and_survives_a_broken_config() -> Result<()> {
    let lab = Lab::new()?;
    let alice = lab.issue_key("alice", &["ssh"])?;
    let mut spad = lab.start_spad(&lab.config(Backend::Nftables, 1))?;

    // bob's entry appears after spad read the keys dir: no door for bob yet.
    let bob = lab.issue_key("bob", &["ssh"])?;
    assert!(
        !knock_ok(&lab, &bob)?,
        "a key spad has not loaded opens nothing"
    );
    spad.reload()?;
    spad.wait_for_log("the reload", Duration::from_secs(5), |l| {
        l.contains("configuration reloaded")
    })?;
    // bob's first packet went into no replay cache; a fresh one opens the door.
    assert!(
        knock_ok(&lab, &bob)?,
        "after SIGHUP bob's key opens the door"
    );

    // A typo in the config: the reload is refused, with the place, and the old config runs on.
    let path = lab.config_path();
    let good = std::fs::read_to_string(&path).map_err(|source| E2eError::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    std::fs::write(&path, format!("{good}\nthis is = not toml\n")).map_err(|source| {
        E2eError::Io {
            what: format!("writing {}", path.display()),
            source,
        }
    })?;
    spad.reload()?;
    let line = spad.wait_for_log("the refused reload", Duration::from_secs(5), |l| {
        l.contains("reload failed")
    })?;
    assert!(
        line.contains(&format!("{}:", path.display())),
        "the error names the file and line: {line}"
    );
    std::thread::sleep(Duration::from_millis(2500)); // bob's door from above closes
    assert!(
        knock_ok(&lab, &alice)?,
        "the previous configuration still opens doors"
    );
    Ok(())
}
