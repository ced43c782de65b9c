//! spa-keys: the key files of spa, the library behind `spa-keygen` (package keygen/).
//!
//! A user holds a client key file with their secret `S` (PROTOCOL §1); each
//! gateway holds, per user, a server entry with `K_srv` derived from `S` for
//! that gateway only — never `S` itself. This crate reads and writes both
//! formats (TOML, secrets in base64), enforces mode 0600 on every secret file,
//! and reports each bad input with file, line and column. It does no
//! networking and keeps secrets in zeroizing types that never print.
#![forbid(unsafe_code)]

mod client_key;
mod enrolment;
mod entry_edit;
mod error;
mod keys_dir;
mod rotating_knock;
mod secret_file;
mod server_entry;
mod toml_fields;
mod user_name;

pub use client_key::{load_client_key, parse_client_key, ClientKey, Gateway};
pub use enrolment::{
    load_enrolment_key, parse_enrolment_key, EnrolmentError, EnrolmentPublicKey, EnrolmentRequest,
    GatewayEnrolmentKey, SealedRequest,
};
pub use entry_edit::{edit_server_entry, EntryChanges};
pub use error::KeyFileError;
pub use keys_dir::{
    entry_path, load_keys_dir, scan_keys_dir, EntryFiles, KeysDir, DEFAULT_KEYS_DIR,
};
pub use rotating_knock::{parse_knock_spec, KnockError, RotatingKnock};
pub use secret_file::{
    check_secret_file_mode, read_secret_file, write_secret_file, MAX_KEY_FILE_LEN, SECRET_FILE_MODE,
};
pub use server_entry::{load_server_entry, parse_server_entry, EntryStatus, ServerEntry};
pub use toml_fields::parse_date;
/// The TOML field types and the file:line:col error renderer, for other spa config files.
pub use toml_fields::{
    locate, located_error, parse_error, DoorField, Location, PortField, ServerIdField,
};
pub use user_name::{check_user_name, UserNameError, USER_NAME_MAX_LEN};
