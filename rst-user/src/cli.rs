//! Command line (contract §6).

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use rst_common::maps;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9477";

#[derive(Parser, Debug)]
#[command(
    name = "rstwatch",
    version,
    about = "Who is resetting TCP connections on this host, and why.",
    long_about = "rstwatch counts every TCP RST on this host with eBPF: the ones the TCP stack sends \
(view `sent`, with the kernel's reason) and accepts (`received`), and every RST crossing a watched \
interface (`wire_in`, `wire_out`). Each reset gets one cause, e.g. closed_port (SYN to a port nobody \
listens on), linger_abort (close() with SO_LINGER {1,0}), stale_segment (data for a connection this \
host forgot). Counts are exact (per-CPU kernel counters); samples of individual resets are rate-limited \
and every one not delivered is counted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load the kernel programs, count resets and serve /snapshot (JSON) and /metrics (Prometheus).
    Run(RunArgs),
    /// Print one snapshot from a running daemon.
    Snapshot(SnapshotArgs),
    /// Live full-screen view of a running daemon (a plain table each second when not on a terminal).
    Top(TopArgs),
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Address of the daemon.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Interface to watch on the wire (XDP ingress, tc egress); repeat for more. Without it only
    /// the stack's views (sent, received) are counted.
    #[arg(long = "iface", value_name = "IF")]
    pub ifaces: Vec<String>,
    /// Do not attach XDP/tc programs at all, even when --iface is given.
    #[arg(long)]
    pub no_wire: bool,
    /// Address to serve /snapshot and /metrics on (keep it on loopback unless you mean it).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Samples per second per CPU sent to userspace; 0 disables samples (counts stay exact).
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub sample_rate: u32,
    /// Ring buffer size in bytes: a power of two, at least one page.
    #[arg(long, value_name = "BYTES", default_value_t = maps::DEFAULT_RING_BYTES, value_parser = ring_size)]
    pub ring_bytes: u32,
    /// Distinct (view, cause, port) keys counted exactly; the rest is counted as port "other".
    #[arg(long, value_name = "N", default_value_t = maps::DEFAULT_PORT_KEYS, value_parser = clap::value_parser!(u32).range(1..))]
    pub port_keys: u32,
    /// Distinct (view, cause, peer) keys counted exactly; the rest is counted as peer "other".
    #[arg(long, value_name = "N", default_value_t = maps::DEFAULT_PEER_KEYS, value_parser = clap::value_parser!(u32).range(1..))]
    pub peer_keys: u32,
    /// Ports and peers listed per (view, cause) in /snapshot and /metrics; the rest is "other".
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
    /// How often the kernel counters are read, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub poll_ms: u64,
    /// Print a plain summary on stdout every two seconds while resets change.
    #[arg(long)]
    pub live: bool,
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Print the JSON snapshot (contract §4) instead of a readable summary.
    #[arg(long)]
    pub json: bool,
    /// Address of the daemon.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
}

fn ring_size(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if n < 4096 || !n.is_power_of_two() {
        return Err("must be a power of two of at least 4096".into());
    }
    Ok(n)
}
