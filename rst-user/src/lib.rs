//! rstwatch's userspace, one folder per stage of a one-way flow (see
//! docs/architecture.md): `kernel` (everything that touches the kernel:
//! BTF, loading, attaching, reading counters and samples) feeds `pipeline`
//! (pure: decode, aggregate, alerts, the snapshot model), whose snapshots
//! `output` serves (HTTP, metrics, pcap, text). `cli` and `tui` are the
//! daemon's clients; `daemon` composes the stages. The binary (`main.rs`)
//! only parses the command line and runs one of these.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod error;
pub mod kernel;
pub mod output;
pub mod pipeline;
pub mod settings;
pub mod tui;
