//! spad: the SPA daemon.
fn main() {}
