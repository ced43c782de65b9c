//! spa-bench: the flood and latency benchmark harness (root only). It builds
//! two network namespaces joined by a veth pair, runs spad, fwknopd, spad
//! serving fwknop packets, and knockd in turn against the real firewall in
//! the server namespace, drives them from the client namespace with its own
//! bounded sender, and reports one table: scenario, spad, fwknopd, ratio,
//! spad on fwknop packets, its ratio, knockd.
//!
//! It never touches the host's own network or firewall: every address, rule
//! and process lives in namespaces named `spa-bench-<pid>-<n>-<role>`
//! (spa-e2e's [`spa_e2e::netns::Netns`]), deleted when the run ends (and
//! swept at the next start if a run was killed).

pub mod error;
pub mod flood;
pub mod lab;
pub mod monitor;
pub mod netns;
pub mod packets;
pub mod probe;
pub mod procstat;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod targets;
pub mod wire;

pub use error::{BenchError, Result};
