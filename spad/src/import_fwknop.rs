//! `spad import-fwknop`: reads fwknopd's access.conf (through spa-fwknop's
//! reader, the one spad runs) and, optionally, fwknopd.conf, and prints the
//! spad config that serves the same clients: an `[fwknop]` table pointing at
//! the access file (the keys stay there; spad reads it as fwknopd does) and
//! one door per port the stanzas open. Every directive that does not carry
//! is a warning with FILE:LINE and why. Pure: text in, text out; it prints
//! no key and reads no other file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use spa_fwknop::access_conf::{parse, NoteKind, Stanza};
use spa_fwknop::{DEFAULT_FWKNOP_PORT, DEFAULT_MAX_AGE_SECS};
use spa_proto::knock::Transport;

/// The config fragment and what the user must review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwknopImport {
    /// TOML to add to spad.toml.
    pub config: String,
    /// `FILE:LINE: message`, in file order.
    pub warnings: Vec<String>,
    /// How many stanzas carried over.
    pub carried: usize,
    /// How many stanzas were refused.
    pub refused: usize,
}

/// What fwknopd.conf says that spad carries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Daemon {
    port: u16,
    max_age_secs: u64,
}

/// Reads fwknopd.conf's PCAP_FILTER port and MAX_SPA_PACKET_AGE; warns
/// about the settings that change what fwknopd accepts and do not carry.
fn read_fwknopd_conf(file: &Path, text: &str, warnings: &mut Vec<String>) -> Daemon {
    let name = file.display();
    let mut d = Daemon {
        port: DEFAULT_FWKNOP_PORT,
        max_age_secs: DEFAULT_MAX_AGE_SECS,
    };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (key, value) = trimmed
            .split_once(char::is_whitespace)
            .map_or((trimmed, ""), |(k, v)| (k, v.trim()));
        // fwknopd.conf values end with `;`, sometimes quoted.
        let value = value.trim_end_matches(';').trim().trim_matches('"');
        match key {
            "PCAP_FILTER" => {
                let words: Vec<&str> = value.split_whitespace().collect();
                match words.as_slice() {
                    ["udp", "port", port] => match port.parse::<u16>() {
                        Ok(p) if p > 0 => d.port = p,
                        _ => warnings.push(format!("{name}:{line}: PCAP_FILTER port {port:?} is not a port; using {}", d.port)),
                    },
                    _ => warnings.push(format!(
                        "{name}:{line}: PCAP_FILTER {value:?} is not carried: spad captures one UDP port (port = {}); set it by hand if fwknop clients use another",
                        d.port
                    )),
                }
            }
            "MAX_SPA_PACKET_AGE" => match value.parse::<u64>() {
                Ok(age) if (1..=3600).contains(&age) => d.max_age_secs = age,
                _ => warnings.push(format!(
                    "{name}:{line}: MAX_SPA_PACKET_AGE {value:?} is not 1-3600 seconds; using {}",
                    d.max_age_secs
                )),
            },
            "ENABLE_SPA_PACKET_AGING" if value.eq_ignore_ascii_case("N") => warnings.push(format!(
                "{name}:{line}: ENABLE_SPA_PACKET_AGING N is not carried: spad always refuses packets older than max_age_secs"
            )),
            "ENABLE_DIGEST_PERSISTENCE" if value.eq_ignore_ascii_case("N") => warnings.push(format!(
                "{name}:{line}: ENABLE_DIGEST_PERSISTENCE N is not carried: spad's replay log always survives restarts"
            )),
            "ENABLE_SPA_OVER_HTTP" | "ENABLE_TCP_SERVER" | "ENABLE_UDP_SERVER"
                if value.eq_ignore_ascii_case("Y") =>
            {
                warnings.push(format!(
                    "{name}:{line}: {key} is not carried: spad sniffs UDP (it opens no socket)"
                ))
            }
            "ENABLE_NAT_ACCESS" | "ENABLE_IPT_FORWARDING" if value.eq_ignore_ascii_case("Y") => {
                warnings.push(format!(
                    "{name}:{line}: {key} is not carried: spad does no NAT; such requests are refused"
                ))
            }
            _ => {}
        }
    }
    d
}

/// Imports the text of `access` (named in the output and the warnings) and,
/// if given, of fwknopd.conf.
pub fn import(access: &Path, text: &str, fwknopd: Option<(&Path, &str)>) -> FwknopImport {
    let name = access.display();
    let conf = parse(text);
    let mut warnings: Vec<String> = conf
        .notes
        .iter()
        .map(|note| format!("{name}:{}: {}", note.line, note.message))
        .collect();
    let daemon = match fwknopd {
        Some((file, text)) => read_fwknopd_conf(file, text, &mut warnings),
        None => Daemon {
            port: DEFAULT_FWKNOP_PORT,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
        },
    };
    let refused = conf
        .notes
        .iter()
        .filter(|n| n.kind == NoteKind::StanzaRefused)
        .count();
    let mut config = String::new();
    if !conf.stanzas.is_empty() {
        render(&mut config, access, &conf.stanzas, &daemon);
    }
    FwknopImport {
        config,
        warnings,
        carried: conf.stanzas.len(),
        refused,
    }
}

/// The door a port gets: `fwknop-tcp-22`.
fn door_name(transport: Transport, port: u16) -> String {
    format!("fwknop-{}-{port}", transport.as_str())
}

fn render(out: &mut String, access: &Path, stanzas: &[Stanza], daemon: &Daemon) {
    // Each port any stanza opens, with the longest time a stanza allows and
    // the stanzas that open it.
    let mut ports: BTreeMap<(Transport, u16), (u32, u32, Vec<usize>)> = BTreeMap::new();
    for s in stanzas {
        for p in &s.open_ports {
            let e = ports
                .entry((p.transport, p.port))
                .or_insert((0, 0, Vec::new()));
            e.0 = e.0.max(s.access_timeout_secs);
            e.1 = e.1.max(s.max_timeout_secs.max(s.access_timeout_secs));
            e.2.push(s.line);
        }
    }
    let name = access.display();
    let _ = writeln!(out, "# spad import-fwknop: from {name}");
    let _ = writeln!(
        out,
        "# spad reads the access stanzas ({} of them) from that file itself, as fwknopd",
        stanzas.len()
    );
    let _ = writeln!(
        out,
        "# does: the keys stay there (it must be root's, mode 0600). Each stanza's SOURCE,"
    );
    let _ = writeln!(
        out,
        "# OPEN_PORTS, FW_ACCESS_TIMEOUT, MAX_FW_TIMEOUT, REQUIRE_USERNAME and expiry apply"
    );
    let _ = writeln!(
        out,
        "# to its packets; a packet must name its own source address (HMAC is required)."
    );
    let _ = writeln!(out, "# Add this to spad.toml, then: spad --check");
    let _ = writeln!(out);
    let _ = writeln!(out, "[fwknop]");
    let _ = writeln!(out, "access_conf = {}", toml_string(&name.to_string()));
    let _ = writeln!(out, "port = {}", daemon.port);
    let _ = writeln!(out, "max_age_secs = {}", daemon.max_age_secs);
    for ((transport, port), (default_secs, max_secs, lines)) in &ports {
        let _ = writeln!(out);
        let lines = lines
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "# opened by the stanza(s) at line(s) {lines}; an existing door on this port can take"
        );
        let _ = writeln!(out, "# `fwknop = true` instead of this one.");
        let _ = writeln!(out, "[doors.{}]", door_name(*transport, *port));
        let _ = writeln!(out, "open = [\"{}/{port}\"]", transport.as_str());
        let _ = writeln!(out, "fwknop = true");
        let _ = writeln!(out, "default_secs = {default_secs}");
        let _ = writeln!(out, "max_secs = {max_secs}");
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const KEY: &str = "wHCG6pRmYWN2ipv7Ebp+D8q1lEZ8mXVLsuFXA/Fp6oY=";
    const HMAC: &str =
        "Mzo0rAOxwEHxqy0d5FzwqKpxtmRqg0cx3nAwzHp5Zc1LVn5YjzFuuNQuH3GYhEx3aqQ/SZ3GECHRT+f4jhsN6w==";

    fn access() -> String {
        format!(
            "SOURCE 10.0.0.0/8\nOPEN_PORTS tcp/22, udp/53\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\n\
             FW_ACCESS_TIMEOUT 45\nENABLE_CMD_EXEC Y\n\
             SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\n\
             SOURCE ANY\nGPG_DECRYPT_ID ABCD1234\nOPEN_PORTS tcp/22\n\
             SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\nMAX_FW_TIMEOUT 600\n"
        )
    }

    #[test]
    fn prints_a_config_spad_runs_without_keys_and_warns_with_file_and_line(
    ) -> Result<(), crate::config::ConfigError> {
        let import = import(Path::new("/etc/fwknop/access.conf"), &access(), None);
        assert_eq!((import.carried, import.refused), (2, 2));
        let config = Config::parse(
            Path::new("/etc/spad.toml"),
            &format!("server_id = \"gw1\"\n{}", import.config),
        )?;
        let fwknop = config.fwknop.clone().unwrap_or_else(|| unreachable!());
        assert_eq!(fwknop.access_conf, Path::new("/etc/fwknop/access.conf"));
        assert_eq!((fwknop.port, fwknop.max_age_secs), (62201, 120));
        let names: Vec<String> = config.doors.iter().map(|d| d.name.to_string()).collect();
        assert_eq!(names, vec!["fwknop-tcp-22", "fwknop-udp-53"]);
        // The longest time any stanza allows: stanza 4's MAX_FW_TIMEOUT.
        assert_eq!(config.doors[0].policy.max_secs, 600);
        assert_eq!(config.port_doors().len(), 2);
        assert!(!import.config.contains(&KEY[..12]));
        assert!(!import.config.contains(&HMAC[..12]));
        assert_eq!(
            import.warnings[..3],
            [
                "/etc/fwknop/access.conf:6: ENABLE_CMD_EXEC: command messages are always refused by spa; the stanza's access carries".to_owned(),
                "/etc/fwknop/access.conf:7: stanza refused: no HMAC_KEY_BASE64: spa requires HMAC (clients send it with --use-hmac; fwknop --key-gen makes a key)".to_owned(),
                "/etc/fwknop/access.conf:10: stanza refused (line 11): GPG_DECRYPT_ID: GPG stanzas are not supported (use KEY_BASE64 + HMAC_KEY_BASE64)".to_owned(),
            ]
        );
        Ok(())
    }

    #[test]
    fn fwknopd_conf_gives_the_port_and_age_and_names_what_does_not_carry() {
        let daemon = "# fwknopd.conf\nPCAP_FILTER udp port 40001;\nMAX_SPA_PACKET_AGE 60;\n\
                      ENABLE_SPA_PACKET_AGING N;\nENABLE_NAT_ACCESS Y;\n";
        let imported = import(
            Path::new("/etc/fwknop/access.conf"),
            &access(),
            Some((Path::new("/etc/fwknop/fwknopd.conf"), daemon)),
        );
        assert!(imported
            .config
            .contains("port = 40001\nmax_age_secs = 60\n"));
        assert!(imported.warnings.iter().any(|w| w
            == "/etc/fwknop/fwknopd.conf:4: ENABLE_SPA_PACKET_AGING N is not carried: spad always refuses packets older than max_age_secs"));
        assert!(imported
            .warnings
            .iter()
            .any(|w| w.starts_with("/etc/fwknop/fwknopd.conf:5: ENABLE_NAT_ACCESS")));
        let odd = import(
            Path::new("a"),
            &access(),
            Some((
                Path::new("d"),
                "PCAP_FILTER udp port 62201 or udp port 62202\n",
            )),
        );
        assert!(odd.config.contains("port = 62201\n"));
        assert!(odd
            .warnings
            .iter()
            .any(|w| w.starts_with("d:1: PCAP_FILTER")));
    }
}
