//! Helpers for rstwatch's root integration tests: network namespaces and a
//! veth pair made (and removed) by each test, the real daemon, real sockets.
//! Traffic stays on loopback or inside the test's own namespaces.

pub mod bpf_stats;
pub mod cgroup;
pub mod daemon;
pub mod flood;
pub mod frames;
pub mod kernel_counters;
pub mod netns;
pub mod nginx;
pub mod programs;
pub mod reference;
pub mod rig;
pub mod snapshot;
pub mod tmux;
pub mod traffic;
pub mod wait;
