//! spad as a library: the thin shell around spa-proto — packet capture,
//! firewall backends, configuration, durable state and the event loop.
//! `main.rs` only parses the command line and calls in here.

pub mod capture;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod durable;
pub mod firewall;
pub mod import_knockd;
pub mod knocks;
