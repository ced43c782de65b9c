//! The tests' sealer is the crate's own (`spa_fwknop::seal`, feature `seal`,
//! which the crate's dev-dependency on itself turns on).

pub use spa_fwknop::seal::{message, seal};
