//! Helpers for rstwatch's root integration tests, grouped by what they make:
//! `namespaces` (network namespaces and a veth pair, cgroups, an nginx in
//! them; each made and removed by its test), `traffic` (real sockets that
//! make real resets, a SYN flood, hand-built frames), `rig` (the real daemon
//! in a test's namespace and what reads it: snapshots, a terminal for `top`),
//! `kernel` (the kernel's own counters, program stats, the real object for
//! BPF_PROG_TEST_RUN and a reference parser) and `wait` (bounded polling).
//! Traffic stays on loopback or inside the test's own namespaces.

pub mod kernel;
pub mod namespaces;
pub mod rig;
pub mod traffic;
pub mod wait;
