//! spad as a library: the thin executor around spa-proto's gateway — packet
//! capture, firewall backends, configuration, the journal and the event
//! loop. `main.rs` only parses the command line and calls in here.

pub mod audit;
pub mod capture;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod effects;
pub mod executor;
pub mod firewall;
pub mod fwknop_access;
pub mod import_fwknop;
pub mod import_knockd;
pub mod intake;
pub mod journal;
pub mod local_addrs;
pub mod log_format;
pub mod metrics_http;
pub mod one_time_file;
pub mod refusals;
pub mod rules;
pub mod status;
pub mod trust;
