//! Command line (contract §6), and the commands that are clients of a
//! running daemon (`client`: snapshot) or of nothing (`manpages`).

pub mod client;
pub mod fleet;
pub mod manpages;

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

/// Defaults of the command line (and of the config file's keys, which `settings` resolves).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9477";
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/rstwatch";
pub const DEFAULT_SAMPLE_RATE: u32 = 200;
pub const DEFAULT_TOP: usize = 20;
pub const DEFAULT_POLL_MS: u64 = 1000;
pub const DEFAULT_SUMMARY_SECONDS: u64 = 300;
pub const DEFAULT_FOLD_SECONDS: u64 = 60;

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
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (rstwatch.8 and one per command, e.g. rstwatch-run.8) into DIR.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Internal: started by `run` on kernels without TCX (< 6.6); waits until its
    /// daemon is gone (its stdin closes), then removes the daemon's tc egress filters.
    #[command(hide = true, name = "tc-reaper")]
    TcReaper,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Address of the daemon: IP:PORT, localhost:PORT or :PORT (this host).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN, value_parser = daemon_addr)]
    pub listen: SocketAddr,
    /// The fleet instead of one daemon: read every host's metrics from the Prometheus at URL
    /// (http://HOST:9090) that scrapes them; hosts ranked by reset rate take the place of
    /// recent resets, hosts the place of peers. --tls-ca, --user and the password apply to it.
    #[arg(long, value_name = "URL", conflicts_with = "listen")]
    pub prometheus: Option<String>,
    /// With --prometheus: only hosts whose `instance` label matches this regular expression.
    #[arg(long, value_name = "REGEX", default_value = ".*", requires = "prometheus")]
    pub hosts: String,
    #[command(flatten)]
    pub access: Access,
}

/// How a client reaches a daemon whose endpoint has a web configuration
/// (`rstwatch run --web-config`): the password never on the command line.
#[derive(Args, Debug, Clone, Default)]
pub struct Access {
    /// Speak HTTPS and trust the daemon's certificate if this CA (PEM) signed it.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Basic auth user; the password comes from $RSTWATCH_PASSWORD or --password-file.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// File holding the basic auth password (its first line).
    #[arg(long, value_name = "FILE", requires = "user")]
    pub password_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
#[expect(clippy::struct_excessive_bools, reason = "independent command-line switches")]
pub struct RunArgs {
    /// Config file [default: /etc/rstwatch/rstwatch.toml when it exists]. Flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Interface to watch on the wire (tc ingress and egress); repeat for more. Without it
    /// (and without `interfaces` in the config) only the stack's views are counted.
    #[arg(long = "iface", value_name = "IF")]
    pub ifaces: Vec<String>,
    /// The hook that sees RSTs arriving (wire_in): tc ingress costs the traffic nothing and
    /// changes nothing about the device; xdp (native only) for a driver where XDP is free —
    /// on a veth it turns off the peer's segmentation offload. Where the driver refuses
    /// native XDP, tc ingress is used, with one log line [default: tc].
    #[arg(long, value_name = "HOOK", value_enum)]
    pub wire_in: Option<crate::kernel::loader::WireIn>,
    /// Attach no programs to interfaces at all, whatever --iface or the config say.
    #[arg(long)]
    pub no_wire: bool,
    /// Address to serve /snapshot and /metrics on: IP:PORT, localhost:PORT, or :PORT for
    /// every interface [default: 127.0.0.1:9477].
    #[arg(long, value_name = "ADDR", value_parser = listen_addr)]
    pub listen: Option<SocketAddr>,
    /// Reset samples per second per CPU sent to userspace; 0 disables samples (counts stay exact) [default: 200].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub sample_rate: Option<u32>,
    /// Ring buffer size in bytes: a power of two, at least 4096 [default: 262144].
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, value_parser = ring_size)]
    pub ring_bytes: Option<u32>,
    /// Distinct (view, cause, port) keys counted exactly; the rest counts as port "other" [default: 4096].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = key_budget)]
    pub port_keys: Option<u32>,
    /// Distinct (view, cause, peer) keys counted exactly; the rest counts as peer "other" [default: 4096].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = key_budget)]
    pub peer_keys: Option<u32>,
    /// Distinct (view, cause, owner cgroup) keys counted exactly; the rest counts as owner "other" [default: 1024].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = key_budget)]
    pub owner_keys: Option<u32>,
    /// The cgroup v2 mount used to name socket owners [default: found in /proc/self/mountinfo].
    /// In a container, mount the host's /sys/fs/cgroup and name it here.
    #[arg(long, value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,
    /// Ports, peers and owners listed per (view, cause) in /snapshot and /metrics; the rest is "other" [default: 20].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub top: Option<usize>,
    /// How often the kernel counters are read, in milliseconds [default: 1000].
    #[arg(long, value_name = "MS", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub poll_ms: Option<u64>,
    /// Every this many seconds the per-port, per-peer and per-owner keys move from the
    /// kernel maps into the daemon (exactly: nothing counted is lost), so the kernel's key
    /// budgets serve the keys active now; 0 never [default: 60].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub fold_seconds: Option<u64>,
    /// bpffs directory where the counter maps are pinned, so a restart keeps counting
    /// [default: /sys/fs/bpf/rstwatch].
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
    /// Count the stack views (sent, received) of this network namespace only, in the kernel:
    /// an inode number (`lsns -t net`), /run/netns/NAME, NAME (`ip netns`) or /proc/PID/ns/net.
    /// Without it every namespace is counted. Its counters are pinned apart
    /// [default pin dir: /sys/fs/bpf/rstwatch-netns-INODE].
    #[arg(long, value_name = "NS", value_parser = crate::kernel::netns::resolve)]
    pub netns: Option<u32>,
    /// TLS and basic auth for the endpoint, from a web configuration file in the Prometheus
    /// exporter toolkit's format (tls_server_config: cert_file, key_file, client_ca_file,
    /// client_auth_type; basic_auth_users: user: bcrypt hash), as node_exporter reads it.
    /// Re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<PathBuf>,
    /// Do not judge who sent received RSTs (peer, middlebox, forged: contract §2a): the
    /// watched interfaces then keep no handshake TTLs and every origin is unknown.
    #[arg(long)]
    pub no_origin: bool,
    /// Do not pin the counters: every start counts from zero.
    #[arg(long, conflicts_with = "fresh")]
    pub no_pin: bool,
    /// Start counting from zero: remove the pinned counters first.
    #[arg(long)]
    pub fresh: bool,
    /// Log a one-line summary every this many seconds; 0 never [default: 300].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub summary_seconds: Option<u64>,
    /// The running kernel's BTF (struct offsets and enum values are read from it). Only for
    /// a kernel that exposes it elsewhere: it must be this kernel's own BTF.
    #[arg(long, value_name = "FILE", default_value = crate::kernel::VMLINUX)]
    pub btf: PathBuf,
    /// Write pcap files of sampled resets here: per cause, the segments that triggered
    /// them (`trigger-*.pcap`) and the RSTs on watched interfaces (`*.pcap`).
    #[arg(long, value_name = "DIR")]
    pub pcap: Option<PathBuf>,
    /// Packets per pcap file; a full file is rotated to <name>.1.pcap (then .2, …).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub pcap_count: u64,
    /// Pcap files kept per cause, the one being written included; the oldest is removed.
    /// Disk use per cause stays under FILES × (24 + N × 112) bytes.
    #[arg(long, value_name = "FILES", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub pcap_files: u64,
    /// Also export rstwatch_owner_resets_total{view,cause,owner} in /metrics: socket-bound
    /// resets by the socket's systemd unit or container (top owners, the rest "other").
    #[arg(long)]
    pub owner_metrics: bool,
    /// Print a plain summary on stdout every two seconds while resets change.
    #[arg(long)]
    pub live: bool,
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Print the JSON snapshot (contract §4) instead of a readable summary.
    #[arg(long)]
    pub json: bool,
    /// Address of the daemon: IP:PORT, localhost:PORT or :PORT (this host).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN, value_parser = daemon_addr)]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub access: Access,
}

/// One line for a command-line error (clap's first line, without its
/// "error: " and the usage block), pointing at `--help`.
#[must_use]
pub fn usage_error_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
    format!("{first} (see --help)")
}

/// A key budget: 1 to `MAX_KEYS`.
fn key_budget(s: &str) -> Result<u32, String> {
    let max = rst_common::maps::MAX_KEYS;
    s.parse::<u32>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("must be a whole number from 1 to {max}"))
}

/// `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT` (loopback) or `:PORT` (`unspecified`: all interfaces
/// for the daemon, this host for a client).
fn socket_addr(s: &str, unspecified: std::net::IpAddr) -> Result<SocketAddr, String> {
    const FORMS: &str = "use IP:PORT (127.0.0.1:9477, [::1]:9477), localhost:PORT or :PORT";
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(|| FORMS.to_string())?;
    let port: u16 = port.parse().map_err(|_| format!("{port:?} is not a port; {FORMS}"))?;
    match host {
        "" => Ok(SocketAddr::new(unspecified, port)),
        "localhost" => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        _ => Err(format!("{host:?} is not an IP address; {FORMS}")),
    }
}

/// An address for the daemon to listen on (flag or config file).
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    socket_addr(s, std::net::Ipv4Addr::UNSPECIFIED.into())
}

fn daemon_addr(s: &str) -> Result<SocketAddr, String> {
    socket_addr(s, std::net::Ipv4Addr::LOCALHOST.into())
}

fn ring_size(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if n < 4096 || !n.is_power_of_two() {
        return Err("must be a power of two of at least 4096".into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_every_form_a_user_types() {
        assert_eq!(listen_addr("127.0.0.1:9477").unwrap().to_string(), "127.0.0.1:9477");
        assert_eq!(listen_addr("[::1]:9477").unwrap().to_string(), "[::1]:9477");
        assert_eq!(listen_addr("localhost:9477").unwrap().to_string(), "127.0.0.1:9477");
        assert_eq!(listen_addr(":9477").unwrap().to_string(), "0.0.0.0:9477", "every interface, as exporters do");
        assert_eq!(daemon_addr(":9477").unwrap().to_string(), "127.0.0.1:9477", "a client asks this host");
        assert!(listen_addr("9477").unwrap_err().contains("use IP:PORT"));
        assert!(listen_addr("host:9477").unwrap_err().contains("\"host\" is not an IP address"));
        assert!(listen_addr(":http").unwrap_err().contains("\"http\" is not a port"));
    }

    #[test]
    fn key_budgets_are_bounded() {
        assert_eq!(key_budget("1"), Ok(1));
        assert_eq!(key_budget("1048576"), Ok(1 << 20));
        assert!(key_budget("0").is_err() && key_budget("1048577").is_err() && key_budget("-1").is_err());
    }
}
