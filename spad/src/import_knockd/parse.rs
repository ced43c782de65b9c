//! Reads a knockd.conf as knockd 0.8's `parseconfig()` does: `#` starts a
//! comment line (not an inline comment), `[name]` starts a section (exactly
//! `[options]` holds the global directives; any other name is a door),
//! `Key = value` splits at the first `=`, directive names are
//! case-insensitive, a later directive overrides an earlier one (TCPFlags
//! lines add up, as in knockd), unknown or misplaced directives are errors,
//! and a bare `UseSyslog` is the only directive without a value. What
//! knockd would misread (see `spa_proto::knock::parse_sequence`) is refused.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use spa_proto::knock::{parse_sequence, KnockStep, KnockSyntaxError, TcpFlagsRule};

use super::{at, At, ImportError, ImportProblem, KNOCKD_MAX_LINE, KNOCKD_SEQ_MAX};
use crate::firewall::{CommandTemplates, TemplateError};

/// The `[options]` directives spad cares about.
#[derive(Debug, Default)]
pub(super) struct Options {
    pub(super) interface: Option<At<String>>,
}

/// One knockd door section, as parsed.
#[derive(Debug)]
pub(super) struct Section {
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) sequence: Option<At<Vec<KnockStep>>>,
    pub(super) one_time_sequences: Option<At<String>>,
    pub(super) seq_timeout: Option<At<u32>>,
    pub(super) tcpflags: Option<At<TcpFlagsRule>>,
    pub(super) target: Option<At<IpAddr>>,
    pub(super) start_command: Option<At<String>>,
    pub(super) start_command6: Option<At<String>>,
    pub(super) stop_command: Option<At<String>>,
    pub(super) stop_command6: Option<At<String>>,
    pub(super) cmd_timeout: Option<At<u32>>,
}

impl Section {
    fn new(name: &str, line: usize) -> Self {
        Section {
            name: name.to_owned(),
            line,
            sequence: None,
            one_time_sequences: None,
            seq_timeout: None,
            tcpflags: None,
            target: None,
            start_command: None,
            start_command6: None,
            stop_command: None,
            stop_command6: None,
            cmd_timeout: None,
        }
    }
}

/// Everything read from the file.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub(super) options: Options,
    pub(super) sections: Vec<Section>,
    /// (line, message); line 0 is about the whole file.
    pub(super) warnings: Vec<(usize, String)>,
}

/// Which section the parser is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Current {
    None,
    Options,
    Door,
}

/// Reads one knockd.conf.
pub(super) struct Parser<'a> {
    path: &'a Path,
    parsed: Parsed,
    current: Current,
}

impl<'a> Parser<'a> {
    pub(super) fn new(path: &'a Path) -> Self {
        Parser {
            path,
            parsed: Parsed::default(),
            current: Current::None,
        }
    }

    /// A directive knockd knows, in a section where it does not belong.
    fn misplaced(&self, line: usize, key: &str, belongs: &'static str) -> ImportError {
        let place = self.place();
        self.error(
            line,
            None,
            ImportProblem::Misplaced {
                key: key.to_owned(),
                belongs,
                place,
            },
        )
    }

    /// A directive knockd does not know.
    fn unknown_directive(&self, line: usize, key: &str) -> ImportError {
        let place = self.place();
        self.error(
            line,
            None,
            ImportProblem::UnknownDirective {
                key: key.to_owned(),
                place,
            },
        )
    }

    fn error(&self, line: usize, column: Option<usize>, problem: ImportProblem) -> ImportError {
        ImportError {
            path: self.path.to_path_buf(),
            line,
            column,
            problem,
        }
    }

    fn warn(&mut self, line: usize, message: impl Into<String>) {
        self.parsed.warnings.push((line, message.into()));
    }

    /// Where a directive is, for errors: `[options]` or `door section [NAME]`.
    fn place(&self) -> String {
        match (self.current, self.parsed.sections.last()) {
            (Current::Door, Some(s)) => format!("door section [{}]", s.name),
            _ => "[options]".to_owned(),
        }
    }

    pub(super) fn parse(mut self, text: &str) -> Result<Parsed, ImportError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            if raw.len() > KNOCKD_MAX_LINE {
                return Err(self.error(line, None, ImportProblem::LineTooLong(raw.len())));
            }
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if trimmed.len() >= 2 && trimmed.starts_with('[') && trimmed.ends_with(']') {
                self.section(line, &trimmed[1..trimmed.len() - 1])?;
                continue;
            }
            // Column (1-based) where the value starts, for errors in it.
            let indent = raw.len() - raw.trim_start().len();
            let (key, value, value_column) = match trimmed.split_once('=') {
                Some((key, value)) => {
                    let value_start =
                        indent + key.len() + 1 + (value.len() - value.trim_start().len());
                    let column = raw.get(..value_start).map_or(1, |h| h.chars().count() + 1);
                    (key.trim(), Some(value.trim()), column)
                }
                None => (trimmed, None, 1),
            };
            if self.current == Current::None {
                return Err(self.error(line, None, ImportProblem::OutsideSection(key.to_owned())));
            }
            let upper = key.to_ascii_uppercase();
            match value {
                None if upper == "USESYSLOG" => self.warn(
                    line,
                    "UseSyslog has no equivalent: spad logs to stderr, which systemd sends to \
                     the journal (and syslog); dropped",
                ),
                None => {
                    return Err(self.error(
                        line,
                        None,
                        ImportProblem::NotADirective(key.to_owned()),
                    ))
                }
                Some(_) if key.is_empty() => {
                    return Err(self.error(
                        line,
                        None,
                        ImportProblem::NotADirective(trimmed.to_owned()),
                    ))
                }
                Some(value) if self.current == Current::Options => {
                    self.option(line, key, &upper, value)?
                }
                Some(value) => self.door_directive(line, key, &upper, value, value_column)?,
            }
        }
        // knockd refuses a door without a sequence; so do we.
        if let Some(s) = self
            .parsed
            .sections
            .iter()
            .find(|s| s.sequence.is_none() && s.one_time_sequences.is_none())
        {
            return Err(self.error(s.line, None, ImportProblem::NoSequence(s.name.clone())));
        }
        Ok(self.parsed)
    }

    /// `[name]`: knockd compares the name with "options" exactly (no trim,
    /// case-sensitive); anything else starts a door.
    fn section(&mut self, line: usize, name: &str) -> Result<(), ImportError> {
        if name.is_empty() {
            return Err(self.error(line, None, ImportProblem::EmptySectionName));
        }
        if name == "options" {
            self.current = Current::Options;
        } else {
            self.current = Current::Door;
            self.parsed.sections.push(Section::new(name, line));
        }
        Ok(())
    }

    fn option(
        &mut self,
        line: usize,
        key: &str,
        upper: &str,
        value: &str,
    ) -> Result<(), ImportError> {
        match upper {
            "LOGFILE" => self.warn(
                line,
                format!(
                    "LogFile = {value}: spad has no log file of its own \
                     (it logs to stderr / the journal); dropped"
                ),
            ),
            "PIDFILE" => self.warn(
                line,
                format!(
                    "PidFile = {value}: spad writes no pid file (systemd keeps track of it); dropped"
                ),
            ),
            // knockd keeps its default (eth0) for an empty Interface.
            "INTERFACE" if value.is_empty() => self.warn(
                line,
                "Interface is empty: knockd kept its default (eth0); ignored",
            ),
            "INTERFACE" => self.parsed.options.interface = at(line, value.to_owned()),
            _ if is_door_directive(upper) => {
                return Err(self.misplaced(line, key, "a door section"))
            }
            _ => {
                return Err(self.unknown_directive(line, key))
            }
        }
        Ok(())
    }

    fn door_directive(
        &mut self,
        line: usize,
        key: &str,
        upper: &str,
        value: &str,
        value_column: usize,
    ) -> Result<(), ImportError> {
        let bad_value = |parser: &Self, e: KnockSyntaxError| {
            parser.error(
                line,
                Some(value_column + e.column - 1),
                ImportProblem::BadValue {
                    directive: key.to_owned(),
                    reason: e.kind.to_string(),
                },
            )
        };
        let bad = |parser: &Self, column: usize, reason: String| {
            parser.error(
                line,
                Some(column),
                ImportProblem::BadValue {
                    directive: key.to_owned(),
                    reason,
                },
            )
        };
        let setting = match upper {
            "SEQUENCE" => {
                if self
                    .parsed
                    .sections
                    .last()
                    .is_some_and(|s| s.one_time_sequences.is_some())
                {
                    return Err(self.error(line, None, ImportProblem::SequenceAfterOneTime));
                }
                let steps = parse_sequence(value).map_err(|e| bad_value(self, e))?;
                if steps.len() > KNOCKD_SEQ_MAX {
                    return Err(self.error(
                        line,
                        Some(value_column),
                        ImportProblem::TooManyPorts(steps.len()),
                    ));
                }
                Setting::Sequence(steps)
            }
            "ONE_TIME_SEQUENCES" => {
                if value.is_empty() {
                    return Err(self.error(line, None, ImportProblem::EmptyValue(key.to_owned())));
                }
                Setting::OneTimeSequences(value.to_owned())
            }
            "SEQ_TIMEOUT" | "TIMEOUT" => {
                let secs = self.seconds(line, value_column, key, value)?;
                if secs == 0 {
                    return Err(self.error(
                        line,
                        Some(value_column),
                        ImportProblem::ZeroSeqTimeout,
                    ));
                }
                Setting::SeqTimeout(secs)
            }
            "TCPFLAGS" => {
                // knockd compares each comma-separated item as it is: a blank
                // around a flag, or an empty item, is an unknown flag to it.
                let mut offset = 0;
                for item in value.split(',') {
                    if item.is_empty() || item.trim() != item {
                        return Err(bad(
                            self,
                            value_column + value[..offset].chars().count(),
                            format!(
                                "knockd refuses the flag {item:?} (write flags without blanks, \
                                 separated by single commas: syn,!ack)"
                            ),
                        ));
                    }
                    offset += item.len() + 1;
                }
                Setting::TcpFlags(value.parse().map_err(|e| bad_value(self, e))?)
            }
            "TARGET" => {
                let addr = value.parse::<IpAddr>().map_err(|_| {
                    bad(
                        self,
                        value_column,
                        format!(
                            "{value:?} is not an IP address: knockd compares it with each \
                             packet's destination address, so the door could never open"
                        ),
                    )
                })?;
                if addr.to_string() != value {
                    return Err(bad(
                        self,
                        value_column,
                        format!(
                            "knockd compares the text with the destination address as it \
                             prints it ({addr}), so {value:?} never matches; write {addr}"
                        ),
                    ));
                }
                Setting::Target(addr)
            }
            "START_COMMAND" | "COMMAND" => {
                self.check_command(line, value_column, key, value)?;
                Setting::StartCommand(value.to_owned())
            }
            "START_COMMAND_6" | "COMMAND_6" => {
                self.check_command(line, value_column, key, value)?;
                Setting::StartCommand6(value.to_owned())
            }
            "STOP_COMMAND" => {
                self.check_command(line, value_column, key, value)?;
                Setting::StopCommand(value.to_owned())
            }
            "STOP_COMMAND_6" => {
                self.check_command(line, value_column, key, value)?;
                Setting::StopCommand6(value.to_owned())
            }
            "CMD_TIMEOUT" => Setting::CmdTimeout(self.seconds(line, value_column, key, value)?),
            "LOGFILE" | "PIDFILE" | "INTERFACE" => {
                return Err(self.misplaced(line, key, "[options]"))
            }
            _ => return Err(self.unknown_directive(line, key)),
        };
        let mut note = None;
        if let Some(section) = self.parsed.sections.last_mut() {
            note = section.set(line, setting);
        }
        if let Some(note) = note {
            self.warn(line, note);
        }
        Ok(())
    }

    /// Refuses a command whose quote is never closed: `/bin/sh` refuses it too, and
    /// spad's command splitter (the owner of the check) would refuse the imported
    /// config (found by the import_knockd fuzz target).
    fn check_command(
        &self,
        line: usize,
        value_column: usize,
        key: &str,
        value: &str,
    ) -> Result<(), ImportError> {
        match CommandTemplates::parse(value, None, Duration::from_secs(1)) {
            Err(TemplateError::UnclosedQuote { quote, column, .. }) => Err(self.error(
                line,
                Some(value_column + column - 1),
                ImportProblem::BadValue {
                    directive: key.to_owned(),
                    reason: format!(
                        "the {quote} quote is never closed (knockd's /bin/sh refuses this \
                         command too)"
                    ),
                },
            )),
            _ => Ok(()),
        }
    }

    fn seconds(
        &self,
        line: usize,
        column: usize,
        key: &str,
        value: &str,
    ) -> Result<u32, ImportError> {
        value
            .parse::<u32>()
            .ok()
            .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                self.error(
                    line,
                    Some(column),
                    ImportProblem::BadSeconds {
                        directive: key.to_owned(),
                        value: value.to_owned(),
                    },
                )
            })
    }
}

/// What one door directive sets.
enum Setting {
    Sequence(Vec<KnockStep>),
    OneTimeSequences(String),
    SeqTimeout(u32),
    TcpFlags(TcpFlagsRule),
    Target(IpAddr),
    StartCommand(String),
    StartCommand6(String),
    StopCommand(String),
    StopCommand6(String),
    CmdTimeout(u32),
}

impl Section {
    /// Applies a directive of `line`; a later one overrides an earlier one,
    /// as in knockd, except TCPFlags, which adds to the earlier rule (knockd
    /// never resets the flags): returns a note for the user then.
    fn set(&mut self, line: usize, setting: Setting) -> Option<String> {
        match setting {
            Setting::Sequence(v) => self.sequence = at(line, v),
            Setting::OneTimeSequences(v) => self.one_time_sequences = at(line, v),
            Setting::SeqTimeout(v) => self.seq_timeout = at(line, v),
            Setting::TcpFlags(v) => {
                let Some(earlier) = &self.tcpflags else {
                    self.tcpflags = at(line, v);
                    return None;
                };
                let required = (earlier.value.required() & !v.excluded()) | v.required();
                let excluded = (earlier.value.excluded() & !v.required()) | v.excluded();
                let merged = TcpFlagsRule::new(required, excluded).unwrap_or(v);
                let note = format!(
                    "[{}]: tcpflags adds to the rule of line {} (knockd never resets it): \
                     the rule is now {merged}",
                    self.name, earlier.line
                );
                self.tcpflags = at(line, merged);
                return Some(note);
            }
            Setting::Target(v) => self.target = at(line, v),
            Setting::StartCommand(v) => self.start_command = at(line, v),
            Setting::StartCommand6(v) => self.start_command6 = at(line, v),
            Setting::StopCommand(v) => self.stop_command = at(line, v),
            Setting::StopCommand6(v) => self.stop_command6 = at(line, v),
            Setting::CmdTimeout(v) => self.cmd_timeout = at(line, v),
        }
        None
    }
}

fn is_door_directive(upper: &str) -> bool {
    matches!(
        upper,
        "SEQUENCE"
            | "ONE_TIME_SEQUENCES"
            | "SEQ_TIMEOUT"
            | "TIMEOUT"
            | "TCPFLAGS"
            | "START_COMMAND"
            | "COMMAND"
            | "START_COMMAND_6"
            | "COMMAND_6"
            | "STOP_COMMAND"
            | "STOP_COMMAND_6"
            | "CMD_TIMEOUT"
            | "TARGET"
    )
}
