//! The harness's error type: every failure says which command or file it was
//! about, so a failing end-to-end test explains itself.

use std::time::Duration;

/// What went wrong while building or driving a test network. `Debug` shows
/// the same text as `Display`, so a test returning `Err` prints a readable
/// message rather than a struct dump.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum E2eError {
    /// An I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (and stdout).
        stderr: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        after: Duration,
    },
    /// A process the harness waits on exited early.
    #[error("{what} exited early with {status}; its output:\n{output}")]
    ExitedEarly {
        /// The process.
        what: String,
        /// Its exit status.
        status: String,
        /// The lines it printed.
        output: String,
    },
    /// A file the harness reads is not what the documented format says.
    #[error("{path}: {message}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A binary the tests need is missing.
    #[error("{0}")]
    MissingBinary(String),
}

impl std::fmt::Debug for E2eError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Result of the harness.
pub type Result<T> = std::result::Result<T, E2eError>;

/// Builds an [`E2eError::Io`] from a description.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> E2eError {
    let what = what.into();
    move |source| E2eError::Io { what, source }
}
