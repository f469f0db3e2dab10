//! rstwatch's userspace, one folder per stage of a one-way flow (see
//! docs/architecture.md): `kernel` (everything that touches the kernel:
//! BTF, loading, attaching, reading counters and samples) feeds `pipeline`
//! (pure: decode, aggregate, alerts, the snapshot model), whose snapshots
//! `output` serves (HTTP, metrics, pcap, text). `cli` is the command line
//! (with `settings` and `config`, the setup) and the daemon's HTTP clients;
//! `tui` is the full-screen client; `daemon` composes the stages. The binary (`main.rs`)
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
