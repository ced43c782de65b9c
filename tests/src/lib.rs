//! spa-e2e: helpers for end-to-end tests that build network namespaces (root only).
