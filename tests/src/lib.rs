//! spa-e2e: the end-to-end harness for spa (root only). It builds small
//! networks of Linux network namespaces joined by veth pairs, runs the real
//! `spad`, `spa-client` and `spa-keygen` binaries inside them, and observes
//! what a user would see: TCP connects that succeed or fail, and what the
//! server host sends back (nothing, for SPA packets).
//!
//! It never touches the host's own network stack or firewall: every address,
//! rule and process lives inside a namespace named `spa-e2e-<pid>-<n>-<role>`,
//! deleted on drop; namespaces left by crashed runs are swept at the next start.

pub mod bins;
pub mod capture;
pub mod child;
pub mod craft;
pub mod error;
pub mod lab;
pub mod netns;
pub mod probe;
pub mod spad;

pub use error::{E2eError, Result};
