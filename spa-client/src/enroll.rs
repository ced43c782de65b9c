//! `spa-client enroll`: the user's half of self-enrolment. Makes the secret
//! `S` here (or reuses the key file's), adds the gateway to the key file, and
//! writes a request holding only the user name and `K_srv` for that gateway,
//! sealed to the gateway's enrolment public key (spa-keys owns the sealing).
//! `S` never leaves this machine; the admin never sees it.

use std::fs::{self, DirBuilder};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use spa_keys::{
    check_user_name, write_secret_file, ClientKey, EnrolmentError, EnrolmentPublicKey, Gateway,
    KeyFileError, SealedRequest, UserNameError,
};
use spa_proto::{SecretBytes, UserSecret};
use zeroize::Zeroizing;

use crate::keyfile::{load_key, KeyChoiceError};

/// What `enroll` was asked.
#[derive(Debug, Clone)]
pub struct EnrollRequest {
    /// The gateway's enrolment public key line.
    pub gateway_key: EnrolmentPublicKey,
    /// The user name (needed when the key file is new).
    pub user: Option<String>,
    /// The gateway's host, stored in the key file.
    pub host: Option<String>,
    /// The gateway's SPA port, stored in the key file.
    pub port: Option<u16>,
    /// The client key file.
    pub key_path: PathBuf,
    /// Where to write the request.
    pub request_path: Option<PathBuf>,
}

/// What `enroll` did.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The user name.
    pub user: String,
    /// Whether the key file (and `S`) was created now.
    pub new_key_file: bool,
    /// Whether the gateway was added to the key file now.
    pub added_gateway: bool,
    /// The request file.
    pub request_path: PathBuf,
    /// The request's fingerprint.
    pub fingerprint: String,
}

/// Why enrolment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// Sealing failed.
    #[error(transparent)]
    Enrolment(#[from] EnrolmentError),
    /// The key file.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The key file cannot be read.
    #[error(transparent)]
    KeyChoice(#[from] KeyChoiceError),
    /// No user name for a new key file.
    #[error("{} does not exist yet: pass --user NAME to make a new key (your user name on the gateway)", path.display())]
    NeedUser {
        /// The key file.
        path: PathBuf,
    },
    /// A user name that is not one.
    #[error("--user: {0}")]
    BadUser(#[from] UserNameError),
    /// --user differs from the key file's.
    #[error("{} belongs to user {file_user}, not {given}: drop --user, or pass --key for another file", path.display())]
    OtherUser {
        /// The key file.
        path: PathBuf,
        /// Its user.
        file_user: String,
        /// --user.
        given: String,
    },
    /// Creating ~/.spa or writing the request failed.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// What the OS said.
        source: io::Error,
    },
    /// The OS random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
}

/// Makes or extends the key file and writes the sealed request.
pub fn enroll(req: &EnrollRequest) -> Result<Enrolled, EnrollError> {
    let server_id = &req.gateway_key.server_id;
    let (mut key, new_key_file) = match load_key(&req.key_path) {
        Ok(key) => {
            if let Some(given) = &req.user {
                if *given != key.user {
                    return Err(EnrollError::OtherUser {
                        path: req.key_path.clone(),
                        file_user: key.user.clone(),
                        given: given.clone(),
                    });
                }
            }
            (key, false)
        }
        Err(KeyChoiceError::Missing { path }) => {
            let user = req.user.clone().ok_or(EnrollError::NeedUser { path })?;
            check_user_name(&user)?;
            let key = ClientKey {
                user,
                secret: new_secret()?,
                gateways: Vec::new(),
                path: req.key_path.clone(),
            };
            (key, true)
        }
        Err(e) => return Err(e.into()),
    };
    let added_gateway = !key.gateways.iter().any(|g| &g.server_id == server_id);
    if added_gateway {
        key.gateways.push(Gateway {
            host: req.host.clone(),
            port: req.port,
            ..Gateway::new(server_id.clone())
        });
    }
    let sealed = SealedRequest::seal(
        &req.gateway_key,
        &key.user,
        &key.secret.server_key(server_id),
    )?;
    let request_path = req
        .request_path
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-{}.spa-request", key.user, server_id)));
    if new_key_file {
        make_private_dir(&req.key_path)?;
    }
    if new_key_file || added_gateway {
        write_secret_file(&req.key_path, &key.to_toml(), !new_key_file)?;
    }
    fs::write(&request_path, sealed.to_text(&key.user, server_id)).map_err(|source| {
        EnrollError::Io {
            path: request_path.clone(),
            action: "writing the request",
            source,
        }
    })?;
    Ok(Enrolled {
        user: key.user.clone(),
        new_key_file,
        added_gateway,
        request_path,
        fingerprint: sealed.fingerprint(),
    })
}

/// Tells the user what happened and what to do next.
pub fn report(req: &EnrollRequest, done: &Enrolled, out: &mut dyn Write) {
    let id = &req.gateway_key.server_id;
    let key = req.key_path.display();
    let _ = if done.new_key_file {
        writeln!(
            out,
            "made your secret and key file {key} (mode 0600): it never leaves this machine"
        )
    } else if done.added_gateway {
        writeln!(out, "added gateway {id} to your key file {key}")
    } else {
        writeln!(
            out,
            "your key file {key} already has gateway {id}; made a new request for it"
        )
    };
    let _ = writeln!(
        out,
        "wrote enrolment request {} for user {} on gateway {id}\n\
         send it to {id}'s admin: mail or chat is fine, it is sealed to the gateway's enrolment key\n\
         request fingerprint: {}  (read it to the admin when they check with you)\n\
         gateway key fingerprint: {}  (ask the admin to confirm it too)\n\
         once they accept it: spa-client open DOOR {}",
        done.request_path.display(),
        done.user,
        done.fingerprint,
        req.gateway_key.fingerprint(),
        req.host.as_deref().unwrap_or(id.as_str()),
    );
}

fn new_secret() -> Result<UserSecret, EnrollError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(&mut *bytes)
        .map_err(|_| EnrollError::Random)?;
    Ok(UserSecret::new(SecretBytes::new(*bytes)))
}

/// Creates the key file's directory (mode 0700) if it is missing.
pub(crate) fn make_private_dir(key_path: &Path) -> Result<(), EnrollError> {
    match key_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| EnrollError::Io {
                path: dir.to_owned(),
                action: "creating the directory",
                source,
            }),
        _ => Ok(()),
    }
}
