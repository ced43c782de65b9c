//! spa-client: sends one SPA packet.
fn main() {}
