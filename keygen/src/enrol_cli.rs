//! The admin's half of self-enrolment as `spa-keygen` subcommands:
//! `enrol-key` makes (or shows) the gateway's enrolment key pair, `accept`
//! opens a user's sealed request and writes their server entry once the
//! admin has confirmed the request's fingerprint with the user.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use spa_proto::{DoorName, ServerId};

use spa_keys::{
    entry_path, load_enrolment_key, parse_date, write_secret_file, EnrolmentError,
    GatewayEnrolmentKey, KeyFileError, SealedRequest, ServerEntry,
};

/// Where a gateway's enrolment key lives by default.
pub const DEFAULT_ENROL_KEY: &str = "/etc/spad/enrol.key";
use spa_keys::DEFAULT_KEYS_DIR;

/// `spa-keygen enrol-key`.
#[derive(Args, Debug)]
pub struct EnrolKeyArgs {
    /// The gateway's server_id (as in its spad config); not needed with --show.
    #[arg(long, value_name = "ID", required_unless_present = "show")]
    pub server_id: Option<ServerId>,
    /// The enrolment key file (secret, 0600).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_ENROL_KEY)]
    pub out: PathBuf,
    /// Print the public key of the existing file instead of making one.
    #[arg(long, conflicts_with_all = ["server_id", "force"])]
    pub show: bool,
    /// Replace an existing key (requests sealed to the old one no longer open).
    #[arg(long)]
    pub force: bool,
}

/// `spa-keygen accept`.
#[derive(Args, Debug)]
pub struct AcceptArgs {
    /// The request file the user sent.
    pub request: PathBuf,
    /// The fingerprint the user reads you (by phone); without it, accept only shows the request.
    #[arg(long, value_name = "XXXX-XXXX-XXXX-XXXX")]
    pub fingerprint: Option<String>,
    /// Doors the key may open, comma separated.
    #[arg(long, value_name = "DOOR,...", value_delimiter = ',', required = true)]
    pub doors: Vec<DoorName>,
    /// The gateway's enrolment key file.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_ENROL_KEY)]
    pub enrol_key: PathBuf,
    /// The gateway's keys directory, where <user>.toml is written.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_KEYS_DIR)]
    pub keys_dir: PathBuf,
    /// Last day (UTC) the key works, e.g. 2027-01-31.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub expires: Option<time::Date>,
    /// Accept packets that ask for "the address the server sees".
    #[arg(long)]
    pub allow_observed: bool,
    /// Overwrite an existing entry for this user.
    #[arg(long)]
    pub force: bool,
}

/// Why an enrolment command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrolCommandError {
    /// The crypto or a key file.
    #[error(transparent)]
    Enrolment(#[from] EnrolmentError),
    /// A key file.
    #[error(transparent)]
    File(#[from] KeyFileError),
    /// Reading the request.
    #[error("{}: reading the request: {source}", path.display())]
    ReadRequest {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The fingerprint given is not the request's.
    #[error("fingerprint {given} does not match this request's {actual}: do not accept it; ask the user to read theirs again (spa-client enroll printed it), or to send the request again")]
    FingerprintMismatch {
        /// What the admin typed.
        given: String,
        /// The request's.
        actual: String,
    },
    /// The entry exists.
    #[error("server entry {} already exists; nothing was written. Pass --force to replace it (the user's old key stops working here)", path.display())]
    EntryExists {
        /// The entry file.
        path: PathBuf,
    },
    /// `--expires` in the past.
    #[error("--expires {day} is in the past (today is {today} UTC); the key would never work")]
    ExpiresInPast {
        /// The day given.
        day: time::Date,
        /// Today.
        today: time::Date,
    },
}

/// Makes the gateway's enrolment key pair, or shows the public half of an existing one.
pub fn enrol_key(a: &EnrolKeyArgs, out: &mut dyn Write) -> Result<(), EnrolCommandError> {
    let key = match (&a.server_id, a.show) {
        (Some(id), false) => {
            let key = GatewayEnrolmentKey::generate(id.clone(), a.out.clone())?;
            write_secret_file(&a.out, &key.to_toml(), a.force)?;
            let _ = writeln!(
                out,
                "wrote the enrolment key of gateway {id}: {} (mode 0600; keep it on this machine)",
                a.out.display()
            );
            key
        }
        _ => load_enrolment_key(&a.out)?,
    };
    let public = key.public();
    let _ = writeln!(
        out,
        "public key (give it to your users; it is not secret):\n  {public}\nits fingerprint: {}",
        public.fingerprint()
    );
    let _ = writeln!(
        out,
        "users run: spa-client enroll --gateway-key '{public}' --user NAME"
    );
    Ok(())
}

/// Opens a request; with the matching fingerprint, writes the user's server entry.
pub fn accept(a: &AcceptArgs, out: &mut dyn Write) -> Result<bool, EnrolCommandError> {
    let gateway = load_enrolment_key(&a.enrol_key)?;
    let text =
        std::fs::read_to_string(&a.request).map_err(|source| EnrolCommandError::ReadRequest {
            path: a.request.clone(),
            source,
        })?;
    let sealed = SealedRequest::from_text(&text)?;
    let request = sealed.open(&gateway)?;
    let actual = sealed.fingerprint();
    let _ = writeln!(
        out,
        "request from user {} for gateway {}, fingerprint {actual}",
        request.user, request.server_id
    );
    let Some(given) = &a.fingerprint else {
        let _ = writeln!(
            out,
            "nothing written: confirm with {} (by phone or in person) that their spa-client enroll \
             printed fingerprint {actual}, then run this again with --fingerprint {actual}",
            request.user
        );
        return Ok(false);
    };
    if normalise(given) != normalise(&actual) {
        return Err(EnrolCommandError::FingerprintMismatch {
            given: given.clone(),
            actual,
        });
    }
    if let Some(day) = a.expires {
        let today = time::OffsetDateTime::now_utc().date();
        if day < today {
            return Err(EnrolCommandError::ExpiresInPast { day, today });
        }
    }
    let path = entry_path(&a.keys_dir, &request.user);
    if !a.force && path.exists() {
        return Err(EnrolCommandError::EntryExists { path });
    }
    let mut doors: Vec<DoorName> = Vec::new();
    for d in &a.doors {
        if !doors.contains(d) {
            doors.push(d.clone());
        }
    }
    let entry = ServerEntry {
        user: request.user.clone(),
        server_id: request.server_id.clone(),
        key: request.key,
        doors,
        expires: a.expires,
        allow_observed: a.allow_observed,
        revoked: false,
        path: path.clone(),
    };
    write_secret_file(&path, &entry.to_toml(), a.force)?;
    let _ = writeln!(
        out,
        "wrote server entry for {} on {}: {} (mode 0600); reload spad (systemctl reload spad, \
         or SIGHUP) to pick it up",
        entry.user,
        entry.server_id,
        path.display()
    );
    Ok(true)
}

fn normalise(fp: &str) -> String {
    fp.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}
