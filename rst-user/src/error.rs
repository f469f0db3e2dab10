//! Every error a user can meet, each saying what to do next. Usage and
//! environment problems exit 2, runtime failures exit 1.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing privileges for bpf(2), perf tracepoints or netlink.
    #[error(
        "not permitted to load eBPF programs: run rstwatch as root (or with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)"
    )]
    NotPermitted,
    /// The kernel exposes no BTF.
    #[error("cannot read kernel BTF at {} ({detail}): rstwatch needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian >= 11, Ubuntu >= 20.10, RHEL >= 8.2 have it); its BTF tracepoints and fentry programs are checked against the running kernel's own BTF, so a BTF file from elsewhere cannot stand in for it", path.display())]
    NoBtf { path: std::path::PathBuf, detail: String },
    /// tracefs is neither mounted nor mountable.
    #[error(
        "tracefs is not mounted and mounting it failed ({detail}): run `mount -t tracefs tracefs /sys/kernel/tracing`"
    )]
    NoTracefs { detail: String },
    /// A watched interface does not exist.
    #[error("interface {name:?} does not exist: list interfaces with `ip link` and name one with --iface")]
    NoInterface { name: String },
    /// The listen address is taken.
    #[error("cannot listen on {addr}: address already in use (another rstwatch?); choose another with --listen ADDR")]
    AddrInUse { addr: SocketAddr },
    /// Any other failure to listen.
    #[error("cannot listen on {addr}: {source}; choose another with --listen ADDR")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The config file is unreadable or wrong.
    #[error("config {} line {line}: {message}", path.display())]
    Config { path: std::path::PathBuf, line: usize, message: String },
    /// The config file cannot be read at all.
    #[error("cannot read config {} ({detail}): name an existing file with --config, or leave it out", path.display())]
    ConfigUnreadable { path: std::path::PathBuf, detail: String },
    /// The `--pcap` directory cannot be made or written.
    #[error("cannot write pcap files in {} ({detail}): name a writable directory with --pcap", dir.display())]
    PcapDir { dir: std::path::PathBuf, detail: String },
    /// `--cgroup-root` is not a cgroup v2 mount.
    #[error("{} is not a cgroup v2 mount (no cgroup.procs there): name the host's cgroup2 mount with --cgroup-root, or leave it out to find it", dir.display())]
    NoCgroupRoot { dir: std::path::PathBuf },
    /// `rstwatch top --prometheus`: Prometheus did not answer.
    #[error("Prometheus at {url}: {detail}")]
    NoPrometheus { url: String, detail: String },
    /// A client option that cannot be used (a CA file, a password).
    #[error("{detail}")]
    Usage { detail: String },
    /// `--web-config FILE` cannot be used.
    #[error("web config {}: {detail} (the Prometheus exporter toolkit's format: tls_server_config, basic_auth_users)", path.display())]
    WebConfig { path: std::path::PathBuf, detail: String },
    /// The pin directory cannot be used.
    #[error("cannot keep counters in {}: {detail} (or run with --no-pin)", dir.display())]
    Pin { dir: std::path::PathBuf, detail: String },
    /// The pin directory holds counters of a daemon with another scope.
    #[error("the counters pinned in {} belong to {theirs}, and this one is {ours}: name a directory of its own with --pin-dir, or take this one over from zero with --fresh", dir.display())]
    PinsOfAnother { dir: std::path::PathBuf, theirs: String, ours: String },
    /// `--netns` needs the namespace fields in BTF.
    #[error(
        "--netns cannot select a namespace on this kernel: its BTF lacks sock_common.skc_net or net.ns.inum; leave --netns out to count every namespace"
    )]
    NoNetnsFilter,
    /// The kernel refused the programs or a map.
    #[error("loading the kernel programs failed: {detail}")]
    Load { detail: String },
    /// A program could not be attached.
    #[error("attaching {what} failed: {detail}")]
    Attach { what: String, detail: String },
    /// `rstwatch snapshot` found no daemon.
    #[error(
        "no rstwatch daemon answers at {addr} ({detail}): start one with `rstwatch run`, or name its address with --listen"
    )]
    NoDaemon { addr: SocketAddr, detail: String },
    /// I/O while running.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// For `map_err` on one I/O step: `.map_err(Error::io("reading the ring buffer"))`.
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { what, source }
    }

    /// A short form for a status line.
    #[must_use]
    pub fn short(&self) -> String {
        match self {
            Self::NoDaemon { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }

    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NotPermitted
            | Self::NoBtf { .. }
            | Self::NoTracefs { .. }
            | Self::NoInterface { .. }
            | Self::AddrInUse { .. }
            | Self::Listen { .. }
            | Self::Config { .. }
            | Self::ConfigUnreadable { .. }
            | Self::PcapDir { .. }
            | Self::NoCgroupRoot { .. }
            | Self::WebConfig { .. }
            | Self::Usage { .. }
            | Self::NoNetnsFilter
            | Self::PinsOfAnother { .. } => 2,
            _ => 1,
        }
    }
}

/// Flattens an error and its sources into one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let t = src.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = src.source();
    }
    s
}
