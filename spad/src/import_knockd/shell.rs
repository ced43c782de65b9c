//! Rewrites a knockd command (run by `/bin/sh -c`) for spad's command
//! backend, which splits the template into argv itself and runs it without
//! a shell: commands that use shell syntax are wrapped in `/bin/sh -c '...'`,
//! braces are doubled (spad reads `{name}` as a placeholder). Pure text.

use std::time::Duration;

use super::At;
use crate::firewall::{CommandTemplates, TemplateError};

/// A knockd command rewritten as a spad command template.
pub(super) struct SpadCommand {
    pub(super) template: String,
    pub(super) notes: Vec<&'static str>,
}

/// Rewrites a knockd command (run by `/bin/sh -c`) for spad, which splits the
/// template into argv itself and runs it without a shell: commands using shell
/// syntax are wrapped in `/bin/sh -c '...'` (with a warning); braces are
/// doubled, because spad reads `{name}` as a placeholder and `{{` / `}}` as
/// literal braces. `%IP%` means the same in both.
pub(super) fn spad_command(
    section: &str,
    command: &At<String>,
    warn: &mut impl FnMut(usize, String),
) -> SpadCommand {
    let mut notes = Vec::new();
    let text = match shell_syntax(&command.value).or_else(|| trailing_backslash(&command.value)) {
        Some(why) => {
            warn(
                command.line,
                format!(
                    "[{section}]: the command uses shell syntax ({why}); spad runs commands \
                     without a shell, \
                     so it is wrapped in /bin/sh -c '...'"
                ),
            );
            notes.push("Wrapped in /bin/sh -c: the knockd command uses shell syntax.");
            format!("/bin/sh -c '{}'", command.value.replace('\'', r"'\''"))
        }
        None => command.value.clone(),
    };
    if text.contains(['{', '}']) {
        notes.push("`{{` and `}}` are literal braces in spad command templates.");
    }
    SpadCommand {
        template: text.replace('{', "{{").replace('}', "}}"),
        notes,
    }
}

/// Words that only mean something to a shell when they start a command.
const SHELL_WORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "!",
    "{", "}", "cd", "export", "exit", "exec", ".", "source", "set", "unset", "ulimit", "umask",
    "eval", "readonly", "shift", "trap", "alias", "return", "local",
];

/// A command ending in a lone backslash: `/bin/sh` keeps it literally, spad's
/// splitter refuses it, so it runs under `/bin/sh -c` (found by fuzzing).
fn trailing_backslash(command: &str) -> Option<String> {
    let braces_literal = command.replace('{', "{{").replace('}', "}}");
    match CommandTemplates::parse(&braces_literal, None, Duration::from_secs(1)) {
        Err(TemplateError::TrailingBackslash { .. }) => Some("a trailing backslash".to_owned()),
        _ => None,
    }
}

/// Why `command` needs `/bin/sh` to mean what it meant to knockd, or `None`
/// when splitting it into words (with quotes and backslashes, as spad does)
/// gives the same argv the shell would run.
fn shell_syntax(command: &str) -> Option<String> {
    let first_word = command.split_whitespace().next().unwrap_or("");
    if SHELL_WORDS.contains(&first_word) {
        return Some(format!("`{first_word}` is a shell keyword or builtin"));
    }
    if let Some((name, _)) = first_word.split_once('=') {
        let is_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_name {
            return Some(format!("`{name}=` sets a variable"));
        }
    }
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut quote = Quote::None;
    let mut word_start = true;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match quote {
            Quote::Single => {
                if c == '\'' {
                    quote = Quote::None;
                }
            }
            Quote::Double => match c {
                '"' => quote = Quote::None,
                '\\' => {
                    chars.next();
                }
                '$' | '`' => return Some(format!("'{c}'")),
                _ => {}
            },
            Quote::None => {
                match c {
                    '\'' => quote = Quote::Single,
                    '"' => quote = Quote::Double,
                    '\\' => {
                        chars.next();
                    }
                    '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' | '*' | '?' | '[' => {
                        return Some(format!("'{c}'"))
                    }
                    '#' | '~' if word_start => return Some(format!("'{c}'")),
                    _ => {}
                }
                word_start = c.is_whitespace();
                continue;
            }
        }
        word_start = false;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_commands_need_no_shell_and_shell_syntax_is_found() {
        for plain in [
            "/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT",
            "/usr/sbin/nft add element inet f s { %IP% }",
            "/usr/bin/logger 'a; b | c' \"x > y\"",
            "/bin/echo a\\;b key=value",
        ] {
            assert_eq!(shell_syntax(plain), None, "{plain}");
        }
        for (shelly, why) in [
            ("/sbin/iptables -L | grep x", "'|'"),
            ("a; b", "';'"),
            ("a && b", "'&'"),
            ("echo %IP% >> /tmp/log", "'>'"),
            ("echo $(date)", "'$'"),
            ("echo \"$HOME\"", "'$'"),
            ("echo `id`", "'`'"),
            ("rm /tmp/*.seq", "'*'"),
            ("cat ~/x", "'~'"),
            ("LANG=C iptables -L", "`LANG=` sets a variable"),
            ("cd /tmp", "`cd` is a shell keyword or builtin"),
            ("iptables -L # comment", "'#'"),
        ] {
            assert_eq!(shell_syntax(shelly).as_deref(), Some(why), "{shelly}");
        }
    }

    #[test]
    fn wrapped_commands_keep_their_single_quotes_and_braces() {
        let mut warnings = Vec::new();
        let cmd = At {
            value: "echo 'it''s' {x} | logger".to_owned(),
            line: 3,
        };
        let out = spad_command("s", &cmd, &mut |_, w| warnings.push(w));
        assert_eq!(
            out.template,
            r"/bin/sh -c 'echo '\''it'\'''\''s'\'' {{x}} | logger'"
        );
        assert_eq!(warnings.len(), 1);
    }
}
