//! spa-client as a library: the command line, sending one SPA packet, finding
//! routes, classic and rotating knocks, and waiting for a door. `main` is a
//! thin shell around [`app::run`]; the tests call these modules directly.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod clock_sync;
pub mod enroll;
pub mod keyfile;
pub mod knock;
pub mod packet_file;
pub mod profile;
pub mod provision;
pub mod rotate;
pub mod route;
pub mod send;
pub mod settings;
pub mod ssh_proxy;
pub mod target;
pub mod wait;
