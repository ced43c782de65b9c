//! The harness's one error type: every failure names what was being done
//! (the command, the file, the namespace) so a failed run says where it broke.

use std::time::Duration;

/// Why a benchmark step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A socket or namespace call failed.
    #[error("{what}: {errno}")]
    Sys {
        /// What was being done.
        what: String,
        /// The errno.
        errno: nix::errno::Errno,
    },
    /// A namespace or an external command of the shared harness failed.
    #[error(transparent)]
    Harness(#[from] spa_e2e::E2eError),
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
    /// A key file could not be used.
    #[error("{0}")]
    Key(#[from] spa_keys::KeyFileError),
    /// A binary the harness runs is missing.
    #[error("{0}")]
    MissingBinary(String),
    /// A setting or an output the harness reads makes no sense.
    #[error("{0}")]
    Invalid(String),
}

/// The harness's result type.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Maps an `io::Error` to [`BenchError::Io`] with context.
pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// Maps an errno to [`BenchError::Sys`] with context.
pub fn sys(what: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> BenchError {
    let what = what.into();
    move |errno| BenchError::Sys { what, errno }
}
