//! `spad import-knockd`: turns a knockd.conf (knockd 0.8 syntax) into the
//! equivalent spad configuration, as commented TOML with classic doors, and
//! lists everything that does not carry over as warnings. Pure: it takes the
//! file's text and returns text; it reads no file and runs nothing.
//!
//! Every directive is read as knockd 0.8's `parseconfig()` reads it
//! (knockd.c), or refused with FILE:LINE and why when knockd would misread
//! it or spad cannot mean the same. The roles: [`parse`] reads the file,
//! [`render`] writes the spad config, [`shell`] rewrites commands for spad's
//! shell-less runner.

mod parse;
mod render;
mod shell;

use std::path::{Path, PathBuf};

/// knockd's `seq_timeout` when a section sets none (knockd.c `SEQ_TIMEOUT`).
pub const KNOCKD_SEQ_TIMEOUT_SECS: u32 = 25;
/// knockd's `cmd_timeout` when a section sets none (knockd.c `CMD_TIMEOUT`).
pub const KNOCKD_CMD_TIMEOUT_SECS: u32 = 10;
/// knockd refuses sequences longer than this (knockd.c `SEQ_MAX`).
pub const KNOCKD_SEQ_MAX: usize = 32;
/// knockd reads lines with `fgets(line, PATH_MAX)`: a line this long or
/// longer is cut, and knockd reads the rest as a line of its own.
pub const KNOCKD_MAX_LINE: usize = 4095;
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

/// A knockd.conf that knockd itself would refuse or misread, or that cannot
/// be expressed in spad; located at its file and line (and column, when it
/// is one item).
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
    #[error("empty section name `[]` (knockd refuses it too)")]
    EmptySectionName,
    /// A directive before the first `[section]`.
    #[error(
        "directive `{0}` comes before any [section]; knockd refuses it (every directive, \
         UseSyslog too, must be inside one)"
    )]
    OutsideSection(String),
    /// A line that is neither a section, a comment nor `Key = value`.
    #[error("expected `Directive = value` or `[section]`, got {0:?} (knockd: syntax error)")]
    NotADirective(String),
    /// A directive knockd 0.8 does not know.
    #[error("unknown directive `{key}` in {place} (knockd refuses the file: syntax error)")]
    UnknownDirective {
        /// The directive, as written.
        key: String,
        /// `[options]` or `door section [NAME]`.
        place: String,
    },
    /// A known directive in the wrong kind of section.
    #[error("`{key}` belongs in {belongs}, not in {place} (knockd refuses it there)")]
    Misplaced {
        /// The directive, as written.
        key: String,
        /// Where it belongs.
        belongs: &'static str,
        /// Where it was found.
        place: String,
    },
    /// A door directive that needs a value got none.
    #[error("{0} needs a value")]
    EmptyValue(String),
    /// A sequence, a TCP flags rule or a target that does not parse.
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
    /// `Sequence` after `One_Time_Sequences` in one section.
    #[error(
        "sequence after one_time_sequences: knockd would expect this sequence first and the \
         file's afterwards; keep one of the two"
    )]
    SequenceAfterOneTime,
    /// A line knockd would cut in two.
    #[error("line of {0} characters: knockd reads at most {max} and would read the rest as another line", max = KNOCKD_MAX_LINE - 1)]
    LineTooLong(usize),
}

/// Imports knockd.conf `text`; `path` names the file in the output, the
/// warnings and the errors.
pub fn import(path: &Path, text: &str) -> Result<Import, ImportError> {
    let parsed = parse::Parser::new(path).parse(text)?;
    Ok(render::render(path, parsed))
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
