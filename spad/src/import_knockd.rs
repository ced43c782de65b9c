//! `spad import-knockd`: turns a knockd.conf (knockd 0.8 syntax) into the
//! equivalent spad configuration, as commented TOML with classic doors, and
//! lists everything that does not carry over as warnings. Pure: it takes the
//! file's text and returns text; it reads no file and runs nothing.
//!
//! knockd's rules followed here: `#` starts a comment line (not an inline
//! comment), `[name]` starts a section (`[options]` holds the global
//! directives), `Key = value` splits at the first `=`, directive names are
//! case-insensitive, a later directive overrides an earlier one, sequence
//! steps default to TCP, `seq_timeout` defaults to 25 s and `cmd_timeout`
//! to 10 s, and commands run through `/bin/sh`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spa_proto::knock::{parse_sequence, KnockStep, KnockSyntaxError, TcpFlagsRule};
use spa_proto::DoorName;

use crate::firewall::{CommandTemplates, TemplateError};

/// knockd's `seq_timeout` when a section sets none (knockd.c `SEQ_TIMEOUT`).
pub const KNOCKD_SEQ_TIMEOUT_SECS: u32 = 25;
/// knockd's `cmd_timeout` when a section sets none (knockd.c `CMD_TIMEOUT`).
pub const KNOCKD_CMD_TIMEOUT_SECS: u32 = 10;
/// knockd refuses sequences longer than this (knockd.c `SEQ_MAX`).
pub const KNOCKD_SEQ_MAX: usize = 32;
/// The `server_id` written into an imported config; the user must change it.
pub const PLACEHOLDER_SERVER_ID: &str = "knockd-import";
/// How long one open or close command may run under spad (knockd sets no limit).
pub const IMPORTED_COMMAND_TIMEOUT_SECS: u32 = 10;

/// The result of an import: the spad config and what the user must review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The spad configuration, commented TOML.
    pub toml: String,
    /// Everything that did not carry over as is, in the order of the file,
    /// each starting with `FILE:LINE: ` (or `FILE: ` when about the whole file).
    pub warnings: Vec<String>,
}

/// A knockd.conf that knockd itself would refuse, or that cannot be expressed
/// in spad; located at its file and line (and column, when it is one item).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}{}: {}", .path.display(), .line, column_suffix(*.column), .problem)]
pub struct ImportError {
    /// The knockd.conf.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column of the offending item, when there is one.
    pub column: Option<usize>,
    /// What is wrong.
    pub problem: ImportProblem,
}

/// `:COLUMN`, or nothing when the error has no column.
fn column_suffix(column: Option<usize>) -> String {
    column.map(|c| format!(":{c}")).unwrap_or_default()
}

/// What is wrong in a knockd.conf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportProblem {
    /// `[]`.
    #[error("empty section name `[]`")]
    EmptySectionName,
    /// A directive before the first `[section]`.
    #[error("directive `{0}` comes before any [section]; knockd needs every directive inside one")]
    OutsideSection(String),
    /// A line that is neither a section, a comment nor `Key = value`.
    #[error("expected `Directive = value` or `[section]`, got {0:?}")]
    NotADirective(String),
    /// A door directive that needs a value got none.
    #[error("{0} needs a value")]
    EmptyValue(String),
    /// A sequence (or a TCP flags rule) that does not parse.
    #[error("{directive}: {reason}")]
    BadValue {
        /// The directive, as written.
        directive: String,
        /// Why its value is refused.
        reason: String,
    },
    /// knockd accepts at most [`KNOCKD_SEQ_MAX`] knocks.
    #[error("sequence has {0} ports; knockd accepts at most {KNOCKD_SEQ_MAX}")]
    TooManyPorts(usize),
    /// A timeout that is not a whole number of seconds.
    #[error("{directive} must be a whole number of seconds, got {value:?}")]
    BadSeconds {
        /// The directive, as written.
        directive: String,
        /// The value given.
        value: String,
    },
    /// `seq_timeout = 0`: no knock could ever complete.
    #[error("seq_timeout must be at least 1 second (0 means no knock can ever complete)")]
    ZeroSeqTimeout,
    /// A door section with neither a sequence nor a one-time sequence file.
    #[error("section [{0}] has no sequence or one_time_sequences (knockd refuses it too)")]
    NoSequence(String),
}

/// Imports knockd.conf `text`; `path` names the file in the output, the
/// warnings and the errors.
pub fn import(path: &Path, text: &str) -> Result<Import, ImportError> {
    let parsed = Parser::new(path).parse(text)?;
    Ok(render(path, parsed))
}

/// A value and the line it was set on.
#[derive(Debug, Clone)]
struct At<T> {
    value: T,
    line: usize,
}

/// `value`, set on `line`.
fn at<T>(line: usize, value: T) -> Option<At<T>> {
    Some(At { value, line })
}

/// The `[options]` directives spad cares about.
#[derive(Debug, Default)]
struct Options {
    interface: Option<At<String>>,
}

/// One knockd door section, as parsed.
#[derive(Debug)]
struct Section {
    name: String,
    line: usize,
    sequence: Option<At<Vec<KnockStep>>>,
    one_time_sequences: Option<At<String>>,
    seq_timeout: Option<At<u32>>,
    tcpflags: Option<At<TcpFlagsRule>>,
    start_command: Option<At<String>>,
    start_command6: Option<At<String>>,
    stop_command: Option<At<String>>,
    stop_command6: Option<At<String>>,
    cmd_timeout: Option<At<u32>>,
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
struct Parsed {
    options: Options,
    sections: Vec<Section>,
    /// (line, message); line 0 is about the whole file.
    warnings: Vec<(usize, String)>,
}

/// Which section the parser is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Current {
    None,
    Options,
    Door,
}

struct Parser<'a> {
    path: &'a Path,
    parsed: Parsed,
    current: Current,
}

impl<'a> Parser<'a> {
    fn new(path: &'a Path) -> Self {
        Parser {
            path,
            parsed: Parsed::default(),
            current: Current::None,
        }
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

    fn parse(mut self, text: &str) -> Result<Parsed, ImportError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
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
            if key.is_empty() {
                return Err(self.error(
                    line,
                    None,
                    ImportProblem::NotADirective(trimmed.to_owned()),
                ));
            }
            self.directive(line, key, value, value_column)?;
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

    fn section(&mut self, line: usize, name: &str) -> Result<(), ImportError> {
        let name = name.trim();
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

    fn directive(
        &mut self,
        line: usize,
        key: &str,
        value: Option<&str>,
        value_column: usize,
    ) -> Result<(), ImportError> {
        let upper = key.to_ascii_uppercase();
        // knockd accepts UseSyslog anywhere, even before the first section.
        if upper == "USESYSLOG" {
            self.warn(
                line,
                "UseSyslog has no equivalent: spad logs to stderr, which systemd sends to the \
                 journal (and syslog); dropped",
            );
            return Ok(());
        }
        let Some(value) = value else {
            return Err(self.error(line, None, ImportProblem::NotADirective(key.to_owned())));
        };
        match self.current {
            Current::None => {
                Err(self.error(line, None, ImportProblem::OutsideSection(key.to_owned())))
            }
            Current::Options => {
                self.option(line, key, &upper, value);
                Ok(())
            }
            Current::Door => self.door_directive(line, key, &upper, value, value_column),
        }
    }

    fn option(&mut self, line: usize, key: &str, upper: &str, value: &str) {
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
            "INTERFACE" => {
                self.parsed.options.interface = Some(At {
                    value: value.to_owned(),
                    line,
                })
            }
            _ if is_door_directive(upper) => self.warn(
                line,
                format!(
                    "{key} belongs in a door section, not in [options]; ignored \
                     (knockd refuses it there)"
                ),
            ),
            _ => self.warn(line, format!("unknown directive {key} in [options]; ignored")),
        }
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
        let setting = match upper {
            "SEQUENCE" => {
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
            "TCPFLAGS" => Setting::TcpFlags(value.parse().map_err(|e| bad_value(self, e))?),
            "START_COMMAND" | "COMMAND" => {
                self.check_command(line, value_column, key, value)?;
                Setting::StartCommand(value.to_owned())
            }
            "START_COMMAND_6" | "COMMAND_6" => Setting::StartCommand6(value.to_owned()),
            "STOP_COMMAND" => {
                self.check_command(line, value_column, key, value)?;
                Setting::StopCommand(value.to_owned())
            }
            "STOP_COMMAND_6" => Setting::StopCommand6(value.to_owned()),
            "CMD_TIMEOUT" => Setting::CmdTimeout(self.seconds(line, value_column, key, value)?),
            "TARGET" => {
                self.warn(
                    line,
                    format!(
                        "{key} = {value}: spad matches knocks sent to any address of the \
                         interfaces it listens on; not carried over (restrict with \
                         interfaces = [...] or your firewall)"
                    ),
                );
                return Ok(());
            }
            "LOGFILE" | "PIDFILE" | "INTERFACE" => {
                self.warn(
                    line,
                    format!(
                        "{key} belongs in [options], not in a door section; ignored \
                         (knockd refuses it there)"
                    ),
                );
                return Ok(());
            }
            _ => {
                self.warn(line, format!("unknown directive {key}; ignored"));
                return Ok(());
            }
        };
        if let Some(section) = self.parsed.sections.last_mut() {
            section.set(line, setting);
        }
        Ok(())
    }

    /// Refuses a command whose quote is never closed: `/bin/sh` refuses it too, and
    /// spad's command splitter (the owner of the check) would refuse the imported
    /// config.
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
    StartCommand(String),
    StartCommand6(String),
    StopCommand(String),
    StopCommand6(String),
    CmdTimeout(u32),
}

impl Section {
    /// Applies a directive of `line`; a later one overrides an earlier one, as in knockd.
    fn set(&mut self, line: usize, setting: Setting) {
        match setting {
            Setting::Sequence(v) => self.sequence = at(line, v),
            Setting::OneTimeSequences(v) => self.one_time_sequences = at(line, v),
            Setting::SeqTimeout(v) => self.seq_timeout = at(line, v),
            Setting::TcpFlags(v) => self.tcpflags = at(line, v),
            Setting::StartCommand(v) => self.start_command = at(line, v),
            Setting::StartCommand6(v) => self.start_command6 = at(line, v),
            Setting::StopCommand(v) => self.stop_command = at(line, v),
            Setting::StopCommand6(v) => self.stop_command6 = at(line, v),
            Setting::CmdTimeout(v) => self.cmd_timeout = at(line, v),
        }
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

/// A door ready to be written.
struct DoorOut {
    name: String,
    section: String,
    line: usize,
    body: String,
}

/// Writes the spad config and the remaining warnings.
fn render(path: &Path, mut parsed: Parsed) -> Import {
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
    out.push_str("keys_dir = \"/etc/spad/keys.d\"\n");
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
    let start = s.start_command.as_ref().filter(|c| !c.value.is_empty());
    let Some(start) = start else {
        warn(
            s.line,
            format!(
                "section [{}] runs no command (knockd only logged its knock); not imported",
                s.name
            ),
        );
        return None;
    };
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
    body.push_str("backend = \"command\"\n");

    let open = spad_command(&s.name, start, warn);
    for note in &open.notes {
        let _ = writeln!(body, "# {note}");
    }
    let _ = writeln!(body, "open_command = {}", quote(&open.template));
    let stop = s.stop_command.as_ref().filter(|c| !c.value.is_empty());
    let door_secs = match stop {
        Some(stop) => {
            let close = spad_command(&s.name, stop, warn);
            for note in &close.notes {
                let _ = writeln!(body, "# {note}");
            }
            let _ = writeln!(body, "close_command = {}", quote(&close.template));
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

    for (v6, v4, directive) in [
        (&s.start_command6, Some(start), "start_command_6"),
        (&s.stop_command6, stop, "stop_command_6"),
    ] {
        let Some(v6) = v6 else { continue };
        if v4.is_some_and(|v4| v4.value == v6.value) {
            continue;
        }
        let what = if v6.value.is_empty() {
            "is empty (run nothing for IPv6 knocks)".to_owned()
        } else {
            format!("is `{}`", v6.value)
        };
        warn(
            v6.line,
            format!(
                "[{}]: {directive} {what}; spad runs the same command for IPv4 and IPv6 knocks \
                 (%IP% is either), \
                 so the IPv6 variant is not carried over: make the command work for both",
                s.name
            ),
        );
    }
    Some(DoorOut {
        name,
        section: s.name.clone(),
        line: s.line,
        body,
    })
}

/// A knockd command rewritten as a spad command template.
struct SpadCommand {
    template: String,
    notes: Vec<&'static str>,
}

/// Rewrites a knockd command (run by `/bin/sh -c`) for spad, which splits the
/// template into argv itself and runs it without a shell: commands using shell
/// syntax are wrapped in `/bin/sh -c '...'` (with a warning); braces are
/// doubled, because spad reads `{name}` as a placeholder and `{{` / `}}` as
/// literal braces. `%IP%` means the same in both.
fn spad_command(
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

/// A command ending in a lone backslash: `/bin/sh` keeps it literally, spad's
/// splitter refuses it, so it runs under `/bin/sh -c`.
fn trailing_backslash(command: &str) -> Option<String> {
    let braces_literal = command.replace('{', "{{").replace('}', "}}");
    match CommandTemplates::parse(&braces_literal, None, Duration::from_secs(1)) {
        Err(TemplateError::TrailingBackslash { .. }) => Some("a trailing backslash".to_owned()),
        _ => None,
    }
}

/// Words that only mean something to a shell when they start a command.
const SHELL_WORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "!",
    "{", "}", "cd", "export", "exit", "exec", ".", "source", "set", "unset", "ulimit", "umask",
    "eval", "readonly", "shift", "trap", "alias", "return", "local",
];

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
