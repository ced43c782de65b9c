//! Shared pieces of spa's fuzz targets: the gateway every verifier target judges
//! against, the fwknop door the fwknop targets judge against, the knock/door
//! harness, and a classic-BPF interpreter for the capture filter. The targets themselves are thin (`fuzz_targets/*.rs`).

pub mod cbpf;
pub mod fwknop_gate;
pub mod gateway;
pub mod knock_harness;
