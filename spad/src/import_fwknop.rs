//! `spad import-fwknop`: reads fwknopd's access.conf (through spa-fwknop's
//! reader) and prints what each stanza would become, as a commented
//! proposal: spad has no fwknop door kind yet, so nothing printed is active
//! configuration. Every directive that does not carry is listed as a
//! warning with FILE:LINE and why. Pure: text in, text out; it prints no
//! key, reads no other file and writes nothing.

use std::fmt::Write as _;
use std::path::Path;

use spa_fwknop::access_conf::{parse, NoteKind, Sources, Stanza};
use spa_fwknop::DEFAULT_FWKNOP_PORT;

/// Said on stderr every time, so nobody mistakes the output for a config.
pub const NOT_YET_RUNNABLE: &str = "spad has no fwknop door kind yet: the output is a commented proposal of what each stanza would become, not a configuration spad can run";

/// The proposal and what the user must review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwknopImport {
    /// Commented text, one block per stanza spa can carry.
    pub proposal: String,
    /// `FILE:LINE: message`, in file order.
    pub warnings: Vec<String>,
    /// How many stanzas carried over.
    pub carried: usize,
    /// How many stanzas were refused.
    pub refused: usize,
}

/// Imports the text of `file` (named in the output and the warnings).
pub fn import(file: &Path, text: &str) -> FwknopImport {
    let name = file.display();
    let conf = parse(text);
    let mut proposal = String::new();
    let _ = writeln!(proposal, "# spad import-fwknop: a proposal from {name}");
    let _ = writeln!(
        proposal,
        "# Not active configuration: spad has no fwknop door kind yet. It shows what"
    );
    let _ = writeln!(
        proposal,
        "# each access stanza would become. No key is printed; keys would go to files"
    );
    let _ = writeln!(proposal, "# of mode 0600 named below.");
    for stanza in &conf.stanzas {
        render_stanza(&mut proposal, &name.to_string(), stanza);
    }
    let warnings = conf
        .notes
        .iter()
        .map(|note| format!("{name}:{}: {}", note.line, note.message))
        .collect();
    let refused = conf
        .notes
        .iter()
        .filter(|n| n.kind == NoteKind::StanzaRefused && n.message.starts_with("stanza refused"))
        .count();
    FwknopImport {
        proposal,
        warnings,
        carried: conf.stanzas.len(),
        refused,
    }
}

fn render_stanza(out: &mut String, file: &str, stanza: &Stanza) {
    let door = format!("fwknop-{}", stanza.line);
    let sources = match &stanza.sources {
        Sources::Any => "[\"any\"]".to_owned(),
        Sources::Nets(nets) => format!(
            "[{}]",
            nets.iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let open = stanza
        .open_ports
        .iter()
        .map(|p| format!("\"{}/{}\"", p.transport, p.port))
        .collect::<Vec<_>>()
        .join(", ");
    let keys = &stanza.keys;
    let _ = writeln!(out, "#");
    let _ = writeln!(out, "# from {file}:{}", stanza.line);
    let _ = writeln!(out, "# [[fwknop_door]]");
    let _ = writeln!(out, "# name = \"{door}\"");
    let _ = writeln!(
        out,
        "# port = {DEFAULT_FWKNOP_PORT}                 # udp, fwknop's default"
    );
    let _ = writeln!(out, "# sources = {sources}");
    let _ = writeln!(out, "# open = [{open}]");
    let _ = writeln!(out, "# open_secs = {}", stanza.access_timeout_secs);
    let _ = writeln!(out, "# max_open_secs = {}", stanza.max_timeout_secs);
    let _ = writeln!(
        out,
        "# named_address_must_be_source = true   # fwknopd opens any address a packet names"
    );
    if stanza.require_source_address {
        let _ = writeln!(
            out,
            "# refuse_unnamed_address = true         # REQUIRE_SOURCE_ADDRESS: 0.0.0.0 refused"
        );
    }
    if let Some(user) = &stanza.require_username {
        let _ = writeln!(out, "# require_username = \"{}\"", user.escape_default());
    }
    if let Some(at) = stanza.expires_at {
        let _ = writeln!(out, "# expires_at = {at}            # Unix seconds");
    }
    let _ = writeln!(
        out,
        "# hmac = \"{}\"",
        keys.hmac_digest().fwknop_name().to_ascii_lowercase()
    );
    let _ = writeln!(
        out,
        "# key_file = \"/etc/spad/fwknop/{door}.keys\"   # {}-byte KEY + {}-byte HMAC key, mode 0600",
        keys.key_len(),
        keys.hmac_key_len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "wHCG6pRmYWN2ipv7Ebp+D8q1lEZ8mXVLsuFXA/Fp6oY=";
    const HMAC: &str =
        "Mzo0rAOxwEHxqy0d5FzwqKpxtmRqg0cx3nAwzHp5Zc1LVn5YjzFuuNQuH3GYhEx3aqQ/SZ3GECHRT+f4jhsN6w==";

    #[test]
    fn prints_a_commented_proposal_without_keys_and_warns_with_file_and_line() {
        let text = format!(
            "SOURCE 10.0.0.0/8\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {HMAC}\n\
             FW_ACCESS_TIMEOUT 45\nENABLE_CMD_EXEC Y\n\
             SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {KEY}\n\
             SOURCE ANY\nGPG_DECRYPT_ID ABCD1234\nOPEN_PORTS tcp/22\n"
        );
        let import = import(Path::new("/etc/fwknop/access.conf"), &text);
        assert_eq!((import.carried, import.refused), (1, 2));
        assert!(import
            .proposal
            .lines()
            .all(|l| l.is_empty() || l.starts_with('#')));
        assert!(import.proposal.contains("# name = \"fwknop-1\""));
        assert!(import.proposal.contains("# sources = [\"10.0.0.0/8\"]"));
        assert!(import.proposal.contains("# open = [\"tcp/22\"]"));
        assert!(import.proposal.contains("# open_secs = 45"));
        assert!(import
            .proposal
            .contains("32-byte KEY + 64-byte HMAC key, mode 0600"));
        assert!(!import.proposal.contains(&KEY[..12]));
        assert!(!import.proposal.contains(&HMAC[..12]));
        assert_eq!(
            import.warnings,
            vec![
                "/etc/fwknop/access.conf:6: ENABLE_CMD_EXEC: command messages are always refused by spa; the stanza's access carries".to_owned(),
                "/etc/fwknop/access.conf:7: stanza refused: no HMAC_KEY_BASE64: spa requires HMAC (clients send it with --use-hmac; fwknop --key-gen makes a key)".to_owned(),
                "/etc/fwknop/access.conf:10: stanza refused (line 11): GPG_DECRYPT_ID: GPG stanzas are not supported (use KEY_BASE64 + HMAC_KEY_BASE64)".to_owned(),
            ]
        );
    }
}
