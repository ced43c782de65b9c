//! spa-keygen's command line: every subcommand, option and check clap can
//! express, and the text `--help` shows. Parsing only; `main.rs` carries the
//! commands out. dist/ builds the man page and completions from it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use spa_keys::{parse_date, parse_knock_spec, RotatingKnock};
use spa_proto::{DoorName, ServerId};

/// Where a gateway's server entries live unless --keys-dir says otherwise.
pub use spa_keys::DEFAULT_KEYS_DIR;

#[derive(Parser, Debug)]
#[command(
    name = "spa-keygen",
    version,
    about = "Issue and manage spa user keys: a client key file for the user, a server entry per gateway",
    after_help = "\
Example: give alice a key for gateway gw1.example.net, then for gw2 as well:

  spa-keygen issue --user alice --server-id gw1.example.net --doors ssh,admin \\
      --keys-dir /etc/spad/keys.d --out alice.key --host gw1.example.net
  spa-keygen add-gateway --key alice.key --server-id gw2.example.net --doors ssh \\
      --keys-dir /srv/gw2/keys.d
  spa-keygen list --keys-dir /etc/spad/keys.d
  spa-keygen set --user alice --doors ssh --expires 2027-06-30 --keys-dir /etc/spad/keys.d
  spa-keygen revoke --user alice --keys-dir /etc/spad/keys.d

alice.key holds alice's secret: hand it to her over a safe channel. Each gateway's
keys dir gets <user>.toml holding only the key for that gateway, never the secret.
spad reads new or changed entries on reload (systemctl reload spad, or SIGHUP)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new user key: the client key file and the gateway's server entry.
    Issue(IssueArgs),
    /// Let an existing key file open doors on another gateway too.
    AddGateway(AddGatewayArgs),
    /// Show every entry of a keys directory.
    List(ListArgs),
    /// Change a user's entry on this gateway: doors, expiry, observed addresses.
    ///
    /// The entry file is edited in place: its comments stay.
    Set(SetArgs),
    /// Revoke a user's entry on this gateway (or delete it with --delete).
    Revoke(RevokeArgs),
    /// Make this gateway's enrolment key pair (or --show its public key) for self-enrolment.
    EnrolKey(crate::enrol_cli::EnrolKeyArgs),
    /// Open a user's enrolment request and, with --fingerprint, write their server entry.
    Accept(crate::enrol_cli::AcceptArgs),
}

/// What a gateway's server entry grants.
#[derive(Args, Debug)]
pub struct EntryArgs {
    /// The gateway's server_id (as in its spad config).
    #[arg(long, value_name = "ID")]
    pub server_id: ServerId,
    /// Doors the key may open, comma separated.
    #[arg(long, value_name = "DOOR,...", value_delimiter = ',', required = true)]
    pub doors: Vec<DoorName>,
    /// The gateway's keys directory, where <user>.toml is written.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_KEYS_DIR)]
    pub keys_dir: PathBuf,
    /// Host name or address the client sends to (stored in the key file).
    #[arg(long)]
    pub host: Option<String>,
    /// The gateway's SPA port (stored in the key file).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Last day (UTC) the key works, e.g. 2027-01-31.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub expires: Option<time::Date>,
    /// Accept packets that ask for "the address the server sees" (for users behind NAT).
    #[arg(long)]
    pub allow_observed: bool,
    /// A rotating knock for a classic door: DOOR:N:LO-HI, or DOOR:N:LO-HI:udp.
    #[arg(long, value_name = "DOOR:N:LO-HI[:udp]", value_parser = parse_knock_spec)]
    pub knock: Vec<(DoorName, RotatingKnock)>,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct IssueArgs {
    /// User name: 1-64 of a-z 0-9 . _ - (e.g. alice or alice.laptop).
    #[arg(long)]
    pub user: String,
    /// Where to write the client key file [default: ./<user>.key].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub entry: EntryArgs,
}

#[derive(Args, Debug)]
pub struct AddGatewayArgs {
    /// The user's client key file (it is rewritten with the new gateway).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    #[command(flatten)]
    pub entry: EntryArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// The gateway's keys directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_KEYS_DIR)]
    pub keys_dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct SetArgs {
    /// The user whose entry to change.
    #[arg(long)]
    pub user: String,
    /// The gateway's keys directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_KEYS_DIR)]
    pub keys_dir: PathBuf,
    /// The doors the key may open from now on, comma separated (replaces the list).
    #[arg(long, value_name = "DOOR,...", value_delimiter = ',')]
    pub doors: Option<Vec<DoorName>>,
    /// Last day (UTC) the key works, e.g. 2027-01-31, or "never".
    #[arg(long, value_name = "YYYY-MM-DD|never", value_parser = parse_expiry)]
    pub expires: Option<Expiry>,
    /// Accept packets that ask for "the address the server sees": yes or no.
    #[arg(long, value_name = "yes|no", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_observed: Option<bool>,
}

/// `--expires` of `set`: a day, or no expiry.
#[derive(Debug, Clone, Copy)]
pub struct Expiry(pub Option<time::Date>);

pub fn parse_expiry(text: &str) -> std::result::Result<Expiry, String> {
    if text == "never" {
        return Ok(Expiry(None));
    }
    parse_date(text).map(|d| Expiry(Some(d)))
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The user whose entry to revoke.
    #[arg(long)]
    pub user: String,
    /// The gateway's keys directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_KEYS_DIR)]
    pub keys_dir: PathBuf,
    /// Remove the entry file instead of marking it revoked.
    #[arg(long)]
    pub delete: bool,
}
