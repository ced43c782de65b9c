//! The command backend (knockd style): the operator's own open/close
//! commands, split into argv when the configuration is loaded (no shell,
//! ever), placeholders filled in per argument when a door opens or closes,
//! each run under a time limit with its exit status logged. spad adds no
//! drop rule for these doors: the commands manage the firewall themselves.
//!
//! An IPv6 knocker gets the door's IPv6 templates when it has them
//! (knockd's `start_command_6` / `stop_command_6`), the others otherwise.
//!
//! Placeholders: `%IP%` (as in knockd) and `{ip}`, `{door}`, `{port}`,
//! `{proto}`, `{seconds}`; `{{` and `}}` stand for literal braces. A
//! template that uses `{port}` or `{proto}` runs once per port of the door,
//! otherwise once per open or close.

use std::net::IpAddr;
use std::time::Duration;

use spa_proto::packet::canonical_ip;

use super::error::FirewallError;
use super::runner::{brief, Runner};
use super::spec::PortSpec;

/// Why a command template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template has no program to run.
    #[error("{which} command is empty")]
    Empty {
        /// `open` or `close`.
        which: &'static str,
    },
    /// A quote is never closed.
    #[error("{which} command: the {quote} quote at character {column} is never closed")]
    UnclosedQuote {
        /// `open` or `close`.
        which: &'static str,
        /// `'` or `"`.
        quote: char,
        /// 1-based character position of the opening quote.
        column: usize,
    },
    /// The template ends in a lone backslash.
    #[error("{which} command ends with a lone backslash")]
    TrailingBackslash {
        /// `open` or `close`.
        which: &'static str,
    },
    /// A `{name}` that is not one of the known placeholders.
    #[error(
        "{which} command: unknown placeholder {{{name}}} in argument {argument}; \
         known: %IP%, {{ip}}, {{door}}, {{port}}, {{proto}}, {{seconds}} (write {{{{ for a literal brace)"
    )]
    UnknownPlaceholder {
        /// `open` or `close`.
        which: &'static str,
        /// The name between the braces.
        name: String,
        /// 1-based index of the argument (0 is the program).
        argument: usize,
    },
    /// The time limit is zero.
    #[error("command timeout must be more than zero")]
    ZeroTimeout,
}

/// A door's open and close commands, already split into argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplates {
    /// Run to open (and to extend) a door.
    pub open: Vec<String>,
    /// Run to close it; `None` when the open command arranges closing itself.
    pub close: Option<Vec<String>>,
    /// Run instead of `open` for an IPv6 address (knockd's start_command_6).
    pub open6: Option<Vec<String>>,
    /// Run instead of `close` for an IPv6 address (knockd's stop_command_6).
    pub close6: Option<Vec<String>>,
    /// Each run is killed (with its process group) past this.
    pub timeout: Duration,
}

impl CommandTemplates {
    /// Splits `open` and `close` into argv (shell-like quoting: `'..'`,
    /// `".."`, backslash; no expansion of any kind) and checks every
    /// placeholder.
    pub fn parse(
        open: &str,
        close: Option<&str>,
        timeout: Duration,
    ) -> Result<CommandTemplates, TemplateError> {
        if timeout.is_zero() {
            return Err(TemplateError::ZeroTimeout);
        }
        let open = split_checked(open, "open")?;
        let close = close.map(|text| split_checked(text, "close")).transpose()?;
        Ok(CommandTemplates {
            open,
            close,
            open6: None,
            close6: None,
            timeout,
        })
    }

    /// The same templates with IPv6 variants (knockd's `start_command_6`,
    /// `stop_command_6`), checked like the others.
    pub fn with_ipv6(
        mut self,
        open6: Option<&str>,
        close6: Option<&str>,
    ) -> Result<CommandTemplates, TemplateError> {
        self.open6 = open6
            .map(|text| split_checked(text, "IPv6 open"))
            .transpose()?;
        self.close6 = close6
            .map(|text| split_checked(text, "IPv6 close"))
            .transpose()?;
        Ok(self)
    }

    /// The template to run for `ip`: `open` (`which == "open"`) or close,
    /// the IPv6 variant for an IPv6 address when there is one (as knockd
    /// falls back to the IPv4 command). `None`: no close command.
    pub fn for_address(&self, which: &str, ip: IpAddr) -> Option<&[String]> {
        let v6 = canonical_ip(ip).is_ipv6();
        let (v4_template, v6_template) = match which {
            "open" => (Some(&self.open), self.open6.as_ref()),
            _ => (self.close.as_ref(), self.close6.as_ref()),
        };
        match v6_template {
            Some(t) if v6 => Some(t.as_slice()),
            _ => v4_template.map(Vec::as_slice),
        }
    }

    /// True when a template uses `{port}` or `{proto}` (runs once per port).
    pub fn uses_ports(&self) -> bool {
        let uses = |argv: &[String]| {
            argv.iter().any(|arg| {
                tokenize(arg, "open", 0)
                    .map(|pieces| {
                        pieces
                            .iter()
                            .any(|p| matches!(p, Piece::Var(Var::Port | Var::Proto)))
                    })
                    .unwrap_or(false)
            })
        };
        uses(&self.open)
            || self.close.as_deref().is_some_and(uses)
            || self.open6.as_deref().is_some_and(uses)
            || self.close6.as_deref().is_some_and(uses)
    }
}

fn split_checked(text: &str, which: &'static str) -> Result<Vec<String>, TemplateError> {
    let argv = split_argv(text, which)?;
    if argv.is_empty() {
        return Err(TemplateError::Empty { which });
    }
    for (index, arg) in argv.iter().enumerate() {
        tokenize(arg, which, index)?;
    }
    Ok(argv)
}

/// Splits a command line into words the way a shell would quote them, and
/// does nothing else: `$`, `;`, `|`, backquotes and globs stay literal.
pub(crate) fn split_argv(text: &str, which: &'static str) -> Result<Vec<String>, TemplateError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().enumerate();
    while let Some((index, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                let (_, next) = chars
                    .next()
                    .ok_or(TemplateError::TrailingBackslash { which })?;
                word.push(next);
                in_word = true;
            }
            '\'' | '"' => {
                in_word = true;
                let mut closed = false;
                while let Some((_, inner)) = chars.next() {
                    if inner == c {
                        closed = true;
                        break;
                    }
                    if c == '"' && inner == '\\' {
                        match chars.next() {
                            Some((_, escaped @ ('"' | '\\'))) => word.push(escaped),
                            Some((_, other)) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => break,
                        }
                    } else {
                        word.push(inner);
                    }
                }
                if !closed {
                    return Err(TemplateError::UnclosedQuote {
                        which,
                        quote: c,
                        column: index + 1,
                    });
                }
            }
            other => {
                word.push(other);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Ip,
    Door,
    Port,
    Proto,
    Seconds,
}

/// A piece of one argument: literal text or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// Cuts one argument into literal text and placeholders.
fn tokenize(arg: &str, which: &'static str, argument: usize) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = arg;
    let flush = |text: &mut String, pieces: &mut Vec<Piece>, var: Option<Var>| {
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(text)));
        }
        if let Some(var) = var {
            pieces.push(Piece::Var(var));
        }
    };
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("%IP%") {
            flush(&mut text, &mut pieces, Some(Var::Ip));
            rest = after;
        } else if let Some(after) = rest.strip_prefix("{{") {
            text.push('{');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("}}") {
            text.push('}');
            rest = after;
        } else if let Some((name, after)) = rest
            .strip_prefix('{')
            .and_then(|inner| inner.split_once('}'))
            .filter(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        {
            let var = match name {
                "ip" => Var::Ip,
                "door" => Var::Door,
                "port" => Var::Port,
                "proto" => Var::Proto,
                "seconds" => Var::Seconds,
                _ => {
                    return Err(TemplateError::UnknownPlaceholder {
                        which,
                        name: name.to_owned(),
                        argument,
                    })
                }
            };
            flush(&mut text, &mut pieces, Some(var));
            rest = after;
        } else {
            text.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    flush(&mut text, &mut pieces, None);
    Ok(pieces)
}

/// The values placeholders stand for in one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Values<'a> {
    pub ip: IpAddr,
    pub door: &'a str,
    pub port: Option<PortSpec>,
    pub seconds: u32,
}

/// Fills in the placeholders of one argument. `{port}`/`{proto}` without
/// a port become empty (setup refuses such doors before this can happen).
fn fill(
    arg: &str,
    which: &'static str,
    argument: usize,
    values: &Values<'_>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(arg.len() + 16);
    for piece in tokenize(arg, which, argument)? {
        match piece {
            Piece::Text(text) => out.push_str(&text),
            Piece::Var(Var::Ip) => out.push_str(&values.ip.to_string()),
            Piece::Var(Var::Door) => out.push_str(values.door),
            Piece::Var(Var::Seconds) => out.push_str(&values.seconds.to_string()),
            Piece::Var(Var::Port) => {
                if let Some(port) = values.port {
                    out.push_str(&port.port.to_string());
                }
            }
            Piece::Var(Var::Proto) => {
                if let Some(port) = values.port {
                    out.push_str(port.proto.as_str());
                }
            }
        }
    }
    Ok(out)
}

/// Fills in a whole template.
pub(crate) fn fill_argv(
    template: &[String],
    which: &'static str,
    values: &Values<'_>,
) -> Result<Vec<String>, TemplateError> {
    template
        .iter()
        .enumerate()
        .map(|(index, arg)| fill(arg, which, index, values))
        .collect()
}

/// Runs the open (`which == "open"`) or close template of a door for one
/// address: once, or once per port when the template uses `{port}`/`{proto}`.
/// Stops at the first failure.
pub(crate) fn run_template(
    runner: &Runner,
    templates: &CommandTemplates,
    which: &'static str,
    door: &str,
    ports: &[PortSpec],
    ip: IpAddr,
    seconds: u32,
) -> Result<(), FirewallError> {
    let Some(template) = templates.for_address(which, ip) else {
        tracing::debug!(door, %ip, "door has no close command; nothing to run");
        return Ok(());
    };
    let per_port: Vec<Option<PortSpec>> = if templates.uses_ports() {
        ports.iter().copied().map(Some).collect()
    } else {
        vec![None]
    };
    for port in per_port {
        let values = Values {
            ip,
            door,
            port,
            seconds,
        };
        let argv =
            fill_argv(template, which, &values).map_err(|source| FirewallError::Template {
                door: door.to_owned(),
                source,
            })?;
        let done = match runner.run(&argv, None, templates.timeout) {
            Ok(done) => done,
            Err(err) => {
                tracing::warn!(door, %ip, action = which, error = %err, "door command did not complete");
                return Err(err);
            }
        };
        if done.status.success() {
            tracing::info!(
                door, %ip, action = which, command = %done.command, status = %done.status,
                stdout = %brief(&done.stdout, 200), stderr = %brief(&done.stderr, 200),
                "door command finished"
            );
        } else {
            tracing::warn!(
                door, %ip, action = which, command = %done.command, status = %done.status,
                stdout = %brief(&done.stdout, 200), stderr = %brief(&done.stderr, 200),
                "door command failed"
            );
        }
        done.success()?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::firewall::spec::Proto;

    fn words(text: &str) -> Vec<String> {
        split_argv(text, "open").unwrap()
    }

    #[test]
    fn splitting_honours_quotes_and_nothing_else() {
        assert_eq!(
            words(r#"iptables -I INPUT -s %IP% -m comment --comment "spa door" -j ACCEPT"#),
            [
                "iptables",
                "-I",
                "INPUT",
                "-s",
                "%IP%",
                "-m",
                "comment",
                "--comment",
                "spa door",
                "-j",
                "ACCEPT"
            ]
        );
        assert_eq!(
            words(r"echo 'a;b' $(id) x\ y `z`"),
            ["echo", "a;b", "$(id)", "x y", "`z`"]
        );
        assert_eq!(words(r#"a "q\"d" '' b"#), ["a", "q\"d", "", "b"]);
        assert_eq!(words("   "), Vec::<String>::new());
    }

    #[test]
    fn an_ipv6_knocker_gets_the_ipv6_commands_and_the_ipv4_ones_otherwise() {
        let t = CommandTemplates::parse("open4 %IP%", Some("close4 %IP%"), Duration::from_secs(1))
            .unwrap()
            .with_ipv6(Some("open6 %IP%"), None)
            .unwrap();
        let v4: IpAddr = "10.0.0.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        let first = |which, ip| t.for_address(which, ip).map(|argv| argv[0].clone());
        assert_eq!(first("open", v4).as_deref(), Some("open4"));
        assert_eq!(first("open", mapped).as_deref(), Some("open4"));
        assert_eq!(first("open", v6).as_deref(), Some("open6"));
        // No stop_command_6: IPv6 falls back to the IPv4 close, as in knockd.
        assert_eq!(first("close", v6).as_deref(), Some("close4"));
        let none = CommandTemplates::parse("x", None, Duration::from_secs(1)).unwrap();
        assert_eq!(none.for_address("close", v6), None);
        assert_eq!(
            CommandTemplates::parse("x", None, Duration::from_secs(1))
                .unwrap()
                .with_ipv6(None, Some("c6 {bogus}")),
            Err(TemplateError::UnknownPlaceholder {
                which: "IPv6 close",
                name: "bogus".into(),
                argument: 1
            })
        );
    }

    #[test]
    fn bad_templates_say_where() {
        assert_eq!(
            CommandTemplates::parse("echo 'oops", None, Duration::from_secs(1)),
            Err(TemplateError::UnclosedQuote {
                which: "open",
                quote: '\'',
                column: 6
            })
        );
        assert_eq!(
            CommandTemplates::parse("echo", Some("  "), Duration::from_secs(1)),
            Err(TemplateError::Empty { which: "close" })
        );
        let err = CommandTemplates::parse("echo {addr}", None, Duration::from_secs(1)).unwrap_err();
        assert!(
            err.to_string().contains("{addr}") && err.to_string().contains("argument 1"),
            "{err}"
        );
        assert_eq!(
            CommandTemplates::parse("echo", None, Duration::ZERO),
            Err(TemplateError::ZeroTimeout)
        );
    }

    #[test]
    fn placeholders_are_filled_per_argument() {
        let values = Values {
            ip: "192.0.2.7".parse().unwrap(),
            door: "ssh",
            port: Some(PortSpec {
                proto: Proto::Tcp,
                port: 22,
            }),
            seconds: 30,
        };
        let template = words("x %IP% {ip}/{door}:{proto}/{port}+{seconds} {{ip}} '{not closed'");
        assert_eq!(
            fill_argv(&template, "open", &values).unwrap(),
            [
                "x",
                "192.0.2.7",
                "192.0.2.7/ssh:tcp/22+30",
                "{ip}",
                "{not closed"
            ]
        );
    }

    #[test]
    fn port_placeholders_make_the_command_run_per_port() {
        let per_port = CommandTemplates::parse("x {port}", None, Duration::from_secs(1)).unwrap();
        let once =
            CommandTemplates::parse("x {ip}", Some("y {{port}}"), Duration::from_secs(1)).unwrap();
        assert!(per_port.uses_ports());
        assert!(!once.uses_ports());
    }
}
