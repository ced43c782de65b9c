//! spa-keys: key files.
