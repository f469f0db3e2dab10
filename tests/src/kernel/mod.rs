//! The kernel's side of a check: its own TCP counters, its per-program
//! stats, the real kernel object for BPF_PROG_TEST_RUN, and a plain-Rust
//! reference of the wire parser to hold the programs against.

pub mod bpf_stats;
pub mod counters;
pub mod programs;
pub mod reference;
