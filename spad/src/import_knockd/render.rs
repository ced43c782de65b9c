//! Writes the spad configuration for a parsed knockd.conf: one classic
//! command door per knockd section that runs a command, knockd's defaults
//! written out, every directive carried over (Target as `target`,
//! start/stop_command_6 as `open_command_6`/`close_command_6`), and what
//! does not carry over listed as warnings in the file's header.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use spa_proto::DoorName;

use super::parse::{Parsed, Section};
use super::shell::{spad_command, SpadCommand};
use super::{
    At, Import, IMPORTED_COMMAND_TIMEOUT_SECS, KNOCKD_CMD_TIMEOUT_SECS, KNOCKD_SEQ_TIMEOUT_SECS,
    PLACEHOLDER_SERVER_ID,
};

/// What spad runs where knockd ran nothing (an empty command for one
/// address family while the other has one).
const NOTHING: &str = "/bin/true";

/// A door ready to be written.
struct DoorOut {
    name: String,
    section: String,
    line: usize,
    body: String,
}

/// Writes the spad config and the remaining warnings.
pub(super) fn render(path: &Path, mut parsed: Parsed) -> Import {
    let file = path.display().to_string();
    let mut warnings = std::mem::take(&mut parsed.warnings);
    let mut warn = |line: usize, message: String| warnings.push((line, message));

    let mut used_names = BTreeSet::new();
    let mut doors = Vec::new();
    for section in &parsed.sections {
        if let Some(door) = render_door(section, &mut used_names, &mut warn) {
            doors.push(door);
        }
    }

    let interfaces = match &parsed.options.interface {
        Some(iface) => format!(
            "# knockd listened on Interface = {} (line {}).\ninterfaces = [{}]\n",
            comment_safe(&iface.value),
            iface.line,
            quote(&iface.value)
        ),
        None => {
            warn(
                0,
                "no Interface in [options]: knockd listened on eth0 (or on its -i INTERFACE, see \
                 KNOCKD_OPTS in /etc/default/knockd); spad will listen on every interface: \
                 set interfaces = [...] to keep knockd's behaviour"
                    .to_owned(),
            );
            "# knockd listened on eth0 (its default); spad listens on every interface unless told:\n\
             # interfaces = [\"eth0\"]\n"
                .to_owned()
        }
    };
    warn(
        0,
        format!(
            "server_id is set to the placeholder {PLACEHOLDER_SERVER_ID:?}: set it to this \
             gateway's id before issuing SPA keys"
        ),
    );

    // File-wide warnings first, then in the order of the file.
    warnings.sort_by_key(|(line, _)| *line);
    let warnings: Vec<String> = warnings
        .into_iter()
        .map(|(line, message)| match line {
            0 => format!("{file}: {message}"),
            _ => format!("{file}:{line}: {message}"),
        })
        .collect();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# spad configuration imported from {} by `spad import-knockd`.",
        comment_safe(&file)
    );
    out.push_str("# REVIEW IT before use, then check it: spad --check --config THIS-FILE\n");
    out.push_str("#\n# What did not carry over:\n");
    for w in &warnings {
        let _ = writeln!(out, "#   - {}", comment_safe(w));
    }
    out.push_str(
        "\n# This gateway's id (PROTOCOL §1). knockd has none: CHANGE IT before issuing SPA keys.\n",
    );
    let _ = writeln!(out, "server_id = {}", quote(PLACEHOLDER_SERVER_ID));
    out.push_str(
        "# Knock sequences need no keys. Once you add SPA or rotating doors, spad reads\n\
         # their keys from keys_dir (default /etc/spad/keys.d):\n\
         # keys_dir = \"/etc/spad/keys.d\"\n",
    );
    out.push_str("state_dir = \"/var/lib/spad\"\n");
    out.push_str(&interfaces);
    let _ = writeln!(out, "port = {}", spa_proto::packet::DEFAULT_PORT);
    for door in &doors {
        let _ = writeln!(
            out,
            "\n# From knockd section [{}] (line {}).",
            comment_safe(&door.section),
            door.line
        );
        let _ = writeln!(out, "[doors.{}]", door.name);
        out.push_str(&door.body);
    }
    Import {
        toml: out,
        warnings,
    }
}

/// One `[doors.NAME]` table for a knockd section, or `None` (with a warning)
/// when the section runs no command at all.
fn render_door(
    s: &Section,
    used_names: &mut BTreeSet<String>,
    warn: &mut impl FnMut(usize, String),
) -> Option<DoorOut> {
    // knockd runs start_command_6 for IPv6 knockers when set (even empty:
    // then nothing), start_command otherwise; an empty command runs nothing.
    let start = s.start_command.as_ref().filter(|c| !c.value.is_empty());
    let start6 = s
        .start_command6
        .as_ref()
        .filter(|c6| start.is_none_or(|c| c.value != c6.value));
    if start.is_none() && start6.is_none_or(|c| c.value.is_empty()) {
        warn(
            s.line,
            format!(
                "section [{}] runs no command (knockd only logged its knock); not imported",
                s.name
            ),
        );
        return None;
    }
    let name = unique_door_name(&s.name, used_names);
    if name != s.name {
        warn(
            s.line,
            format!(
                "door [{}] is named {name:?} in spad (door names are 1-32 of a-z, 0-9, '_', '-', \
                 starting with a letter or digit)",
                s.name
            ),
        );
    }
    let mut body = String::new();
    match (&s.one_time_sequences, &s.sequence) {
        (Some(file), seq) => {
            if let Some(seq) = seq {
                warn(
                    seq.line,
                    format!(
                        "[{}]: sequence is ignored because one_time_sequences is set \
                         (as knockd does)",
                        s.name
                    ),
                );
            }
            let _ = writeln!(body, "one_time_sequences = {}", quote(&file.value));
        }
        (None, Some(seq)) => {
            let steps: Vec<String> = seq
                .value
                .iter()
                .map(|step| quote(&step.to_string()))
                .collect();
            let _ = writeln!(body, "sequence = [{}]", steps.join(", "));
        }
        // The parser refuses sections with neither.
        (None, None) => return None,
    }
    let seq_timeout = s
        .seq_timeout
        .as_ref()
        .map_or(KNOCKD_SEQ_TIMEOUT_SECS, |t| t.value);
    if s.seq_timeout.is_none() {
        body.push_str("# knockd's default, written out:\n");
    }
    let _ = writeln!(body, "seq_timeout_secs = {seq_timeout}");
    if let Some(flags) = &s.tcpflags {
        let _ = writeln!(body, "tcpflags = {}", quote(&flags.value.to_string()));
    }
    if let Some(target) = &s.target {
        body.push_str("# knockd's Target: only knocks sent to this address count.\n");
        let _ = writeln!(body, "target = [{}]", quote(&target.value.to_string()));
    }
    body.push_str("backend = \"command\"\n");

    let mut command = |key: &str, directive: &str, cmd: Option<&At<String>>| {
        let spad = match cmd {
            Some(cmd) if !cmd.value.is_empty() => spad_command(&s.name, cmd, warn),
            _ => {
                let line = cmd.map_or(s.line, |c| c.line);
                warn(
                    line,
                    format!(
                        "[{}]: {directive} is empty or missing, so knockd ran nothing there; \
                         spad runs {NOTHING} instead",
                        s.name
                    ),
                );
                SpadCommand {
                    template: NOTHING.to_owned(),
                    notes: vec!["knockd ran no command here."],
                }
            }
        };
        for note in &spad.notes {
            let _ = writeln!(body, "# {note}");
        }
        let _ = writeln!(body, "{key} = {}", quote(&spad.template));
    };
    command("open_command", "start_command", start);
    if let Some(start6) = start6 {
        command("open_command_6", "start_command_6", Some(start6));
    }
    let stop = s.stop_command.as_ref().filter(|c| !c.value.is_empty());
    let stop6 = s
        .stop_command6
        .as_ref()
        .filter(|c6| stop.is_none_or(|c| c.value != c6.value))
        .filter(|c6| stop.is_some() || !c6.value.is_empty());
    if let Some(stop) = stop {
        command("close_command", "stop_command", Some(stop));
    }
    if let Some(stop6) = stop6 {
        command("close_command_6", "stop_command_6", Some(stop6));
    }
    let door_secs = match stop.or(stop6) {
        Some(_) => {
            let secs = s
                .cmd_timeout
                .as_ref()
                .map_or(KNOCKD_CMD_TIMEOUT_SECS, |t| t.value);
            if secs == 0 {
                let line = s.cmd_timeout.as_ref().map_or(s.line, |t| t.line);
                warn(
                    line,
                    format!(
                        "[{}]: cmd_timeout = 0 becomes 1 second (spad's shortest door time)",
                        s.name
                    ),
                );
            }
            if s.cmd_timeout.is_none() {
                body.push_str(
                    "# knockd's default cmd_timeout (time between open and close), written out:\n",
                );
            } else {
                body.push_str(
                    "# knockd's cmd_timeout: the close command runs this long after the open one.\n",
                );
            }
            secs.max(1)
        }
        None => {
            body.push_str("# knockd had no stop_command: nothing runs to close this door.\n");
            1
        }
    };
    let _ = writeln!(body, "default_secs = {door_secs}");
    let _ = writeln!(body, "max_secs = {door_secs}");
    body.push_str("# spad stops a command still running after this long (knockd had no limit).\n");
    let _ = writeln!(
        body,
        "command_timeout_secs = {IMPORTED_COMMAND_TIMEOUT_SECS}"
    );

    Some(DoorOut {
        name,
        section: s.name.clone(),
        line: s.line,
        body,
    })
}

/// A knockd section name as a spad door name, unique among `used`: lowercase,
/// other characters become '-', at most 32 characters.
fn unique_door_name(section: &str, used: &mut BTreeSet<String>) -> String {
    let base = door_name_base(section);
    let mut name = base.clone();
    let mut n = 2;
    while used.contains(&name) {
        let suffix = format!("-{n}");
        let keep = DoorName::MAX_LEN - suffix.len();
        let head = base[..base.len().min(keep)].trim_end_matches(['-', '_']);
        name = format!("{head}{suffix}");
        n += 1;
    }
    used.insert(name.clone());
    name
}

fn door_name_base(section: &str) -> String {
    let mut name = String::new();
    for c in section.chars() {
        let mapped = match c {
            'a'..='z' | '0'..='9' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        };
        if mapped == '-' && name.ends_with('-') {
            continue;
        }
        name.push(mapped);
    }
    let name = name.trim_start_matches(['-', '_']);
    let name = &name[..name.len().min(DoorName::MAX_LEN)];
    let name = name.trim_end_matches('-');
    if name.is_empty() {
        "door".to_owned()
    } else {
        name.to_owned()
    }
}

/// A TOML string literal.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Text safe inside a TOML comment (no control characters but tab).
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_names_become_valid_unique_door_names() {
        let mut used = BTreeSet::new();
        let names: Vec<String> = [
            "openSSH",
            "OpenSSH",
            "open SSH!",
            "--x",
            "!!!",
            &"A".repeat(40),
            &"a".repeat(40),
        ]
        .iter()
        .map(|s| unique_door_name(s, &mut used))
        .collect();
        assert_eq!(names[0], "openssh");
        assert_eq!(names[1], "openssh-2");
        assert_eq!(names[2], "open-ssh");
        assert_eq!(names[3], "x");
        assert_eq!(names[4], "door");
        assert_eq!(names[5], "a".repeat(32));
        assert_eq!(names[6], format!("{}-2", "a".repeat(30)));
        for n in &names {
            assert!(n.parse::<DoorName>().is_ok(), "{n}");
        }
    }
}
