//! spad serving fwknop's clients, on the very packets fwknopd gets: fwknopd's
//! access stanza (same keys, `REQUIRE_SOURCE_ADDRESS Y`, the door's time as
//! `FW_ACCESS_TIMEOUT`) plus the `OPEN_PORTS tcp/2222` spad requires, turned
//! into spad's config by the real `spad import-fwknop` — what a site moving
//! off fwknopd runs: an `[fwknop]` table on fwknop's port (62201, max age
//! 120 s: fwknopd's defaults) and one fwknop door for tcp/2222, in spad's
//! bench nftables table. No spa/1 key; a fresh state directory per start,
//! initialised with `--init-state` (so no wait for a replay history).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::fwknopd::{access_stanza, write_private};
use super::spad::{SpadInstall, SERVER_ID, TABLE};
use super::{Kind, Running};
use crate::error::{io, BenchError, Result};
use crate::lab::{Lab, SERVER_IF, SERVICE_PORT, SPA_PORT};
use crate::packets::FwknopKeys;
use spa_e2e::netns::run_checked;

/// The door `spad import-fwknop` makes for tcp/2222.
pub fn door() -> String {
    format!("fwknop-tcp-{SERVICE_PORT}")
}

/// The access.conf spad reads: fwknopd's stanza and the port it opens.
pub fn access_conf(keys: &FwknopKeys, door_secs: u32) -> String {
    format!(
        "{}OPEN_PORTS tcp/{SERVICE_PORT}\n",
        access_stanza(keys, door_secs)
    )
}

/// spad's config: the bench's gateway settings, then what `import-fwknop` printed.
fn config_text(dir: &Path, imported: &str) -> Result<String> {
    let header = format!("[doors.{}]", door());
    if !imported.lines().any(|l| l.trim() == header) {
        return Err(BenchError::Invalid(format!(
            "spad import-fwknop printed no {header} for the bench's access.conf:\n{imported}"
        )));
    }
    Ok(format!(
        "server_id = \"{SERVER_ID}\"\nkeys_dir = \"{}\"\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\ninterfaces = [\"{SERVER_IF}\"]\nport = {SPA_PORT}\nnft_table = \"{TABLE}\"\n\n{imported}",
        dir.join("no-spa-keys").display(),
        dir.join("state").display(),
        dir.join("control.sock").display(),
    ))
}

/// Starts spad with the imported fwknop door open for `door_secs` per knock.
pub fn start(
    lab: &Lab,
    install: &SpadInstall,
    keys: &FwknopKeys,
    door_secs: u32,
) -> Result<Running> {
    static STARTS: AtomicUsize = AtomicUsize::new(0);
    let n = STARTS.fetch_add(1, Ordering::Relaxed);
    let dir = lab.path(&format!("spad-fwknop-{n}"));
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let access = dir.join("access.conf");
    write_private(&access, &access_conf(keys, door_secs))?;
    let imported = run_checked(
        Command::new(&install.spad)
            .arg("import-fwknop")
            .arg(&access),
    )?;
    let config = dir.join("spad.toml");
    std::fs::write(
        &config,
        super::spad::with_capture_line(install, config_text(&dir, &imported)?),
    )
    .map_err(io(format!("writing {}", config.display())))?;
    super::spad::start_spad(
        lab,
        install,
        &config,
        Kind::SpadFwknop,
        &dir.join("spad.log"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> FwknopKeys {
        FwknopKeys {
            rijndael_b64: "cmlqbmRhZWw=".into(),
            hmac_b64: "aG1hYw==".into(),
        }
    }

    #[test]
    fn spad_gets_fwknopds_stanza_and_the_port_it_opens() {
        let text = access_conf(&keys(), 3);
        assert_eq!(
            text,
            "SOURCE ANY\nREQUIRE_SOURCE_ADDRESS Y\nKEY_BASE64 cmlqbmRhZWw=\nHMAC_KEY_BASE64 aG1hYw==\nFW_ACCESS_TIMEOUT 3\nOPEN_PORTS tcp/2222\n"
        );
        assert!(text.starts_with(&access_stanza(&keys(), 3)));
    }

    #[test]
    fn the_config_keeps_the_import_after_the_gateway_settings() {
        let imported = "[fwknop]\naccess_conf = \"/x/access.conf\"\nport = 62201\nmax_age_secs = 120\n\n[doors.fwknop-tcp-2222]\nopen = [\"tcp/2222\"]\nfwknop = true\n";
        let text = config_text(Path::new("/lab/spad-fwknop-0"), imported).expect("a door");
        assert!(text.starts_with("server_id = \"benchgw\"\n"), "{text}");
        assert!(
            text.contains("state_dir = \"/lab/spad-fwknop-0/state\"\n"),
            "{text}"
        );
        assert!(text.contains("nft_table = \"spadbench\"\n"), "{text}");
        assert!(text.ends_with(imported), "{text}");
        // Top-level keys must come before the first table.
        let first_table = text.find("\n[").expect("a table");
        assert!(
            text[..first_table].contains("interfaces = [\"bs0\"]"),
            "{text}"
        );
    }

    #[test]
    fn an_import_without_the_door_is_refused_with_what_it_printed() {
        let err = config_text(Path::new("/lab"), "[fwknop]\nport = 62201\n")
            .expect_err("no door")
            .to_string();
        assert!(err.contains("[doors.fwknop-tcp-2222]"), "{err}");
        assert!(err.contains("port = 62201"), "{err}");
    }
}
