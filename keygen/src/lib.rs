//! spa-keygen as a library: only its command line, so dist/ can build the man
//! page and completions from the same definition the binary parses.
#![forbid(unsafe_code)]

pub mod cli;
pub mod enrol_cli;
