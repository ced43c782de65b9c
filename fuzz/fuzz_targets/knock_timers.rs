//! The knock state machine and the open-door timers under arbitrary packet,
//! timeout, restart and clock streams (including a clock that goes back); the
//! invariants live in `spa_fuzz::knock_harness`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spa_fuzz::knock_harness::{run, Script};

fuzz_target!(|script: Script| run(&script));
