//! The tests' sealer is the crate's own (`spa_fwknop::seal`, feature `seal`,
//! which the crate's dev-dependency on itself turns on).

#[allow(unused_imports)] // not every test file that shares `common` seals
pub use spa_fwknop::seal::{message, seal};
