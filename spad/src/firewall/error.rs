//! The one error type of the firewall: which command failed, how, and what
//! it printed on stderr; or which door or setting was refused before any
//! command ran; or what nf_tables answered over netlink.

use std::process::ExitStatus;
use std::time::Duration;

use spa_proto::names::NameError;

use super::command::TemplateError;

/// What went wrong while setting up, opening, closing or tearing down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// The program could not be started (not installed, not executable...).
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line, shell-quoted for reading.
        command: String,
        /// Why the operating system refused.
        #[source]
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line, shell-quoted for reading.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote on stderr (trimmed, at most a few KiB).
        stderr: String,
    },
    /// The program ran past its time limit and was killed (with its
    /// process group).
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    TimedOut {
        /// The command line, shell-quoted for reading.
        command: String,
        /// The limit it ran past.
        timeout: Duration,
    },
    /// nf_tables refused a transaction sent over netlink (nothing of it
    /// was applied).
    #[error("nftables refused `{op}`: {message}")]
    NftRefused {
        /// The refused step, as its nft script line.
        op: String,
        /// The kernel's error (e.g. "No such file or directory (os error 2)").
        message: String,
    },
    /// The nf_tables netlink socket could not be opened or did not answer.
    #[error("nftables netlink: {0}")]
    NftNetlink(String),
    /// `open`/`close` named a door that is not configured.
    #[error("no door named {0:?} is configured")]
    UnknownDoor(String),
    /// A door name breaks the PROTOCOL §2 rule.
    #[error("door {name:?}: {source}")]
    BadDoorName {
        /// The name as configured.
        name: String,
        /// What is wrong with it.
        #[source]
        source: NameError,
    },
    /// Two doors share a name.
    #[error("door {0:?} is configured more than once")]
    DuplicateDoor(String),
    /// A door whose backend guards ports lists none.
    #[error("door {door:?} uses the {backend} backend but lists no ports")]
    NoPorts {
        /// The door.
        door: String,
        /// `nftables` or `iptables`.
        backend: &'static str,
    },
    /// A command template uses `{port}` or `{proto}` but the door has no port.
    #[error("door {0:?}: its command uses {{port}} or {{proto}} but the door lists no ports")]
    TemplateNeedsPorts(String),
    /// The table name cannot name an nftables table and an iptables chain.
    #[error(
        "firewall table name {0:?} must be 1 to 28 characters: a letter, then letters, digits or '_'"
    )]
    BadTableName(String),
    /// A command template could not be filled in.
    #[error("door {door:?}: {source}")]
    Template {
        /// The door whose template failed.
        door: String,
        /// What is wrong with it.
        #[source]
        source: TemplateError,
    },
}
