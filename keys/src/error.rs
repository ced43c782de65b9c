//! The one error type of key-file handling. Every variant names the file (or
//! directory) it is about; parse errors also give line, column and a snippet
//! with a caret, and never show a secret value.

use std::io;
use std::path::PathBuf;

use spa_proto::ServerId;

/// What went wrong reading, checking or writing a key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The operating system refused an operation on the file.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What we were doing, e.g. "reading".
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A directory that must exist does not.
    #[error(
        "directory {} does not exist (create it with: install -d -m 700 {})",
        path.display(),
        path.display()
    )]
    MissingDirectory {
        /// The missing directory.
        path: PathBuf,
    },
    /// The file is not valid: wrong syntax, unknown field, bad value.
    #[error("{}:{line}:{col}: {message}\n{snippet}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        col: usize,
        /// What is wrong, without the offending secret.
        message: String,
        /// The offending line with a caret under the problem; secret values are masked.
        snippet: String,
    },
    /// A secret file that group or others may access.
    #[error(
        "{} is accessible by group or others (mode {mode:04o}); run: chmod 600 {}",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Writing without `force` to a path that exists.
    #[error("{} already exists (refusing to overwrite it)", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// Far larger than any key file.
    #[error("{} is {len} bytes, too large for a key file (at most {max})", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A client key file without any `[[gateway]]`.
    #[error("{}: no [[gateway]] in this key file (add one with: spa-keygen add-gateway --key {})", path.display(), path.display())]
    NoGateway {
        /// The client key file.
        path: PathBuf,
    },
    /// Several gateways and none chosen.
    #[error("{} holds keys for several gateways ({available}); choose one with --server-id", path.display())]
    AmbiguousGateway {
        /// The client key file.
        path: PathBuf,
        /// The server ids in the file, comma separated.
        available: String,
    },
    /// The chosen gateway is not in the file.
    #[error("{} has no gateway with server_id {wanted} (it has: {available}); choose one of those with --server-id", path.display())]
    UnknownGateway {
        /// The client key file.
        path: PathBuf,
        /// The server id asked for.
        wanted: ServerId,
        /// The server ids in the file, comma separated.
        available: String,
    },
    /// A server entry whose file name does not match its user.
    #[error("{}: user = \"{user}\" must live in a file named {user}.toml", path.display())]
    FileNameMismatch {
        /// The entry file.
        path: PathBuf,
        /// The user named inside it.
        user: String,
    },
}

impl KeyFileError {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Self {
        KeyFileError::Io {
            path: path.into(),
            action,
            source,
        }
    }
}
