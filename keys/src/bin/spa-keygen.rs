//! spa-keygen.
fn main() {}
