//! spa-proto: the spa/1 single-packet authorization protocol, sans-IO.
//!
//! This crate decides; it never acts. It opens no socket, reads no clock and
//! touches no file: the caller passes `now` (milliseconds since the Unix epoch)
//! and the bytes it received, and gets back what to do. Everything here is
//! deterministic and tested with a fake clock.
#![deny(unsafe_code)]

pub mod clock_skew;
pub mod gateway;
pub mod hint_table;
pub mod journal;
pub mod keyring;
pub mod keys;
pub mod knock;
pub mod names;
pub mod open_doors;
pub mod packet;
pub mod replay;
pub mod verifier;

pub use clock_skew::ClockSkew;
pub use keyring::{KeyEntry, KeyIndex, Keyring};
pub use keys::{DerivedKeys, KeyId, SecretBytes, ServerKey, UserSecret, KEY_LEN};
pub use names::{DoorName, NameError, ServerId};
pub use open_doors::{DoorChange, OpenDoor, OpenDoors};
pub use packet::{Address, Request, PACKET_LEN};
pub use replay::{ReplayCache, ReplayRecord};
pub use verifier::{DoorPolicy, Grant, Reason, Verdict, Verifier, VerifierConfig};
