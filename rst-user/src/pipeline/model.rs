//! The snapshot every output renders (contract §4). The names of the
//! kernel's codes it carries are in [`super::names`].

use rst_common::view;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub uptime_seconds: f64,
    /// When the daemon made this snapshot: RFC 3339 UTC with milliseconds.
    #[serde(default)]
    pub time: String,
    /// `--netns`: the one network namespace (inode) the stack views count; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<u32>,
    /// Release of the running kernel.
    pub kernel: String,
    pub totals: Totals,
    pub causes: Vec<CauseCount>,
    pub ports: Vec<PortCount>,
    pub peers: Vec<PeerCount>,
    /// Socket-bound resets by the socket's owner (cgroup -> unit/container):
    /// exact per cgroup up to the kernel's key budget, the rest as `other`.
    #[serde(default)]
    pub owners: Vec<OwnerCount>,
    /// Received RSTs (`received`, `wire_in`) by who sent them, as now judged
    /// (contract §2a): per view, the rows add up to the view's total.
    #[serde(default)]
    pub origins: Vec<OriginCount>,
    /// Verdicts later evidence changed (each is also in `origins` as corrected).
    #[serde(default)]
    pub origin_corrections: Vec<OriginCorrection>,
    pub samples: SampleStats,
    pub recent: Vec<Recent>,
    /// Per view: resets the kernel did not run our program for — reported by
    /// the kernel (recursion) or caught on a watched interface (a stack reset
    /// leaving with no `tcp_send_reset` event). Not in `totals`.
    #[serde(default)]
    pub missed: std::collections::BTreeMap<String, u64>,
    /// `missed` by kind: [`MISSED_RECURSION`] (the kernel skipped our program
    /// because it was already running on that CPU: a softirq interrupting a
    /// process-context run, or a preempted one) and, for `sent`,
    /// [`MISSED_UNANNOUNCED`] (tc saw the stack's reply leave with no event).
    #[serde(default)]
    pub missed_by_kind: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    /// The kernel's ephemeral port range (`ip_local_port_range`): ports in it
    /// are clients' and are summed as `port="ephemeral"` in /metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_ports: Option<[u16; 2]>,
    /// What this kernel supports (tracepoints, fields, BTF types) and what degrades.
    #[serde(default)]
    pub coverage: Coverage,
    /// Alerts in force: port_scan, listener_down, rst_flood (see alerts.rs).
    #[serde(default)]
    pub alerts: Vec<Alert>,
    /// Alerts started since the daemon started, by kind.
    #[serde(default)]
    pub alerts_started: std::collections::BTreeMap<String, u64>,
    /// Each interface asked for (`--iface`, `interfaces`) and which hooks are attached to it now.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// The keyed maps' keys: in the kernel now, folded into the daemon, forgotten.
    #[serde(default)]
    pub keys: Keys,
    /// The cost of each of our loaded programs, from the kernel's own
    /// per-program stats (counted only while `kernel.bpf_stats_enabled` is 1).
    #[serde(default)]
    pub programs: Vec<ProgramCost>,
}

/// One program's runs and time in them, as the kernel counts (`bpf_prog_info`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramCost {
    pub program: String,
    pub runs: u64,
    pub run_ns: u64,
}

/// Folding (see `aggregate::Drained`): per keyed map, how its keys live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    /// Folds done since the daemon started.
    pub folds: u64,
    pub ports: KeyStats,
    pub peers: KeyStats,
    pub owners: KeyStats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStats {
    /// Keys in the kernel map now (of its budget).
    pub kernel: u64,
    /// Keys the daemon holds, folded out of the kernel.
    pub held: u64,
    /// Keys moved out of the kernel by folds, in all.
    pub folded: u64,
    /// Held keys forgotten (the coldest, past the daemon's limit): their
    /// counts are in the `expired` rows.
    pub forgotten: u64,
}

/// A requested interface: the hooks of its wire views and whether they are
/// attached (contract §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[expect(clippy::struct_excessive_bools, reason = "the contract's fields (§4): two per view, two kept from before")]
pub struct Interface {
    pub name: String,
    /// The hook that makes `wire_in` on it: `tcx` (tc ingress, a TCX link), `tc`
    /// (tc ingress, a clsact filter) or `xdp` (native); while detached, the one tried next.
    #[serde(default)]
    pub ingress: String,
    /// The hook that makes `wire_out`: `tcx` or `tc` (tc egress).
    #[serde(default)]
    pub egress: String,
    #[serde(default)]
    pub wire_in: bool,
    #[serde(default)]
    pub wire_out: bool,
    /// Native XDP makes `wire_in` (`--wire-in xdp`) and is attached.
    pub xdp: bool,
    /// tc egress is attached (the same as `wire_out`).
    pub tc: bool,
}

impl Interface {
    /// What people call the ingress hook (`tc ingress`, `xdp`).
    #[must_use]
    pub fn ingress_hook(&self) -> &'static str {
        if self.ingress == "xdp" { "xdp" } else { "tc ingress" }
    }

    /// Both hooks attached (a daemon from before issue 32 sends only `xdp` and `tc`).
    #[must_use]
    pub fn watched(&self) -> bool {
        if self.ingress.is_empty() { self.xdp && self.tc } else { self.wire_in && self.wire_out }
    }
}

#[cfg(test)]
impl Interface {
    /// An example for tests: `name` attached at TCX ingress and egress, or detached.
    #[must_use]
    pub fn example(name: &str, attached: bool) -> Self {
        Self {
            name: name.into(),
            ingress: "tcx".into(),
            egress: "tcx".into(),
            wire_in: attached,
            wire_out: attached,
            xdp: false,
            tc: attached,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// When it started: RFC 3339 UTC with milliseconds.
    pub since: String,
    /// Whole numbers: distinct closed ports hit (port_scan), resets since the
    /// previous check (listener_down, rst_flood).
    pub count: u64,
    /// Resets per second at the last check, one decimal (listener_down, rst_flood).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

impl Alert {
    /// What the alert is about: the peer, the port, or the wire.
    #[must_use]
    pub fn subject(&self) -> String {
        self.peer.clone().or_else(|| self.port.map(|p| format!("port {p}"))).unwrap_or_else(|| "wire_in".into())
    }

    /// How big, for people: `25 ports` or `1234.5/s`.
    #[must_use]
    pub fn size(&self) -> String {
        self.rate.map_or_else(|| format!("{} ports", self.count), |r| format!("{r:.1}/s"))
    }

    /// When it started, for people: local `HH:MM:SS.mmm`.
    #[must_use]
    pub fn started(&self) -> String {
        crate::pipeline::clock::local_hms(&self.since).unwrap_or_else(|| self.since.clone())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub features: std::collections::BTreeMap<String, bool>,
    /// One line per missing feature: what it is and what degrades.
    pub degraded: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub sent: u64,
    pub received: u64,
    pub wire_in: u64,
    pub wire_out: u64,
}

impl Totals {
    pub fn add(&mut self, v: u8, n: u64) {
        match v {
            view::SENT => self.sent += n,
            view::RECEIVED => self.received += n,
            view::WIRE_IN => self.wire_in += n,
            view::WIRE_OUT => self.wire_out += n,
            _ => {}
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CauseCount {
    pub view: String,
    pub cause: String,
    pub count: u64,
}

/// A port, or `"other"` for everything past the key budget or the top-N.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortLabel {
    Port(u16),
    Other(String),
}

impl std::fmt::Display for PortLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Port(n) => write!(f, "{n}"),
            Self::Other(o) => f.write_str(o),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCount {
    pub view: String,
    pub cause: String,
    pub port: PortLabel,
    pub count: u64,
}

/// `addr` is an IP address, or `"other"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCount {
    pub view: String,
    pub cause: String,
    pub addr: String,
    /// For a loopback peer of `sent`/`received`: its network namespace's
    /// inode (loopback is another host in every namespace, never merged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<u32>,
    pub count: u64,
}

impl PeerCount {
    /// The address, with its namespace when `with_netns` (several are shown).
    #[must_use]
    pub fn label(&self, with_netns: bool) -> String {
        match self.netns {
            Some(ns) if with_netns => format!("{} (netns {ns})", self.addr),
            _ => self.addr.clone(),
        }
    }
}

/// Whether rows name more than one network namespace: outputs then show it.
#[must_use]
pub fn several_netns(netns: impl IntoIterator<Item = Option<u32>>) -> bool {
    let mut seen = None;
    for ns in netns.into_iter().flatten() {
        match seen {
            None => seen = Some(ns),
            Some(first) if first != ns => return true,
            Some(_) => {}
        }
    }
    false
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerCount {
    pub view: String,
    pub cause: String,
    /// systemd unit, `container:<id>`, cgroup path, `cgroup:<id>` (gone) or `other`.
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_path: Option<String>,
    pub count: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleStats {
    /// Samples read from the ring buffer by this daemon.
    pub delivered: u64,
    /// Samples the kernel could not deliver: `ring_full + rate_limited`.
    pub dropped: u64,
    pub ring_full: u64,
    pub rate_limited: u64,
    /// `--pcap`: packet captures lost because their ring was full (not in `dropped`:
    /// the samples themselves went out).
    #[serde(default)]
    pub captures_lost: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    pub view: String,
    pub cause: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_name: Option<String>,
    pub family: String,
    pub local: String,
    pub remote: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    /// Inode of the network namespace the reset happened in (as in
    /// `/proc/<pid>/ns/net`); for wire views, the daemon's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<u32>,
    /// The socket's owner (cgroup id and its name), for socket-bound resets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What the RST carried as payload (wire views), decoded when it can be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<crate::pipeline::payload::Payload>,
    /// Received RSTs: who sent it (contract §2a) and why we think so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    pub ts_ns: u64,
    /// `ts_ns` as a time of day: RFC 3339 UTC with milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginCount {
    pub view: String,
    pub cause: String,
    pub origin: String,
    pub count: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginCorrection {
    pub view: String,
    pub cause: String,
    pub from: String,
    pub to: String,
    pub count: u64,
}

/// The evidence behind a received RST's origin (contract §2a); absent fields were not seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The RST's TTL (hop limit), and the one the peer's handshake arrived with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_ttl: Option<u8>,
    /// The RST came from further away than the peer: the path got longer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_longer: bool,
    /// ms since the flow's previous RST (a burst, or the answer to a challenge ACK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_rst_ms: Option<u32>,
    /// The verdict before later evidence corrected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected_from: Option<String>,
    /// ms until the peer spoke again after the RST, and its sequence minus the RST's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_spoke_after_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_distance: Option<i32>,
    /// ms until a handshake from the peer arrived with the RST's TTL (the path changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_path_after_ms: Option<u32>,
}

/// One host of a fleet (a Prometheus `instance`) and its reset rate (`rstwatch top --prometheus`).
#[derive(Clone, Debug, PartialEq)]
pub struct HostRate {
    pub host: String,
    /// sent + received resets per second over the last minute.
    pub rate: f64,
    /// Every reset counted there, all views.
    pub total: u64,
}

pub const OTHER: &str = "other";
/// The row of keys that were folded and then forgotten (or folded by an earlier run).
pub const EXPIRED: &str = "expired";

impl Recent {
    /// When, for people: local `HH:MM:SS.mmm`, else seconds since boot.
    #[must_use]
    pub fn when(&self) -> String {
        self.time
            .as_deref()
            .and_then(crate::pipeline::clock::local_hms)
            .unwrap_or_else(|| format!("{}.{:03}", self.ts_ns / 1_000_000_000, (self.ts_ns / 1_000_000) % 1000))
    }

    /// Which way the RST travelled, `src → dst`: from this host for `sent`
    /// and `wire_out`, to it for `received` and `wire_in` (as tcpdump reads).
    #[must_use]
    pub fn path(&self) -> String {
        let (src, dst) = self.ends();
        format!("{src} → {dst}")
    }

    /// (source, destination) of the RST.
    #[must_use]
    pub fn ends(&self) -> (&str, &str) {
        if self.inbound() { (&self.remote, &self.local) } else { (&self.local, &self.remote) }
    }

    /// Whether the RST came to this host (`received`, `wire_in`).
    #[must_use]
    pub fn inbound(&self) -> bool {
        self.view == "received" || self.view == "wire_in"
    }

    /// Who and what, for people: the process when the reset ran in it
    /// (`comm[pid]`), else the socket's owner; then any payload it carried.
    #[must_use]
    pub fn who(&self) -> String {
        let mut who = self.origin_summary();
        let process = match (&self.comm, self.pid, &self.owner) {
            (Some(c), Some(p), _) => format!("{c}[{p}]"),
            (_, _, Some(o)) => o.clone(),
            _ => String::new(),
        };
        if !process.is_empty() {
            if !who.is_empty() {
                who.push(' ');
            }
            who.push_str(&process);
        }
        if let Some(p) = &self.payload {
            if !who.is_empty() {
                who.push(' ');
            }
            who.push_str(&p.summary());
        }
        who
    }
}

impl Recent {
    /// Who sent a received RST and the evidence, in a few words: `middlebox
    /// ttl 64/63` (the RST's TTL / the peer's), `peer ttl 62/63 longer path`,
    /// `forged (was middlebox) peer spoke +3ms seq +0`; empty for sent resets.
    #[must_use]
    pub fn origin_summary(&self) -> String {
        let Some(origin) = &self.origin else { return String::new() };
        let mut s = origin.clone();
        let Some(e) = &self.evidence else { return s };
        if let Some(from) = &e.corrected_from {
            let _ = write!(s, " (was {from})");
        }
        if let (Some(t), Some(b)) = (e.ttl, e.peer_ttl) {
            let _ = write!(s, " ttl {t}/{b}");
        } else if let Some(t) = e.ttl {
            let _ = write!(s, " ttl {t}");
        }
        if e.path_longer {
            s.push_str(" longer path");
        }
        if let Some(ms) = e.after_rst_ms {
            let _ = write!(s, " {ms}ms after a RST");
        }
        if let Some(ms) = e.peer_spoke_after_ms {
            let _ = write!(s, " peer spoke +{ms}ms seq {:+}", e.seq_distance.unwrap_or(0));
        }
        if let Some(ms) = e.new_path_after_ms {
            let _ = write!(s, " new path +{ms}ms");
        }
        s
    }
}

#[cfg(test)]
impl OriginCorrection {
    /// One received peer_reset judged middlebox, corrected to forged, for rendering tests.
    #[must_use]
    pub fn example() -> Self {
        Self {
            view: "received".into(),
            cause: "peer_reset".into(),
            from: "middlebox".into(),
            to: "forged".into(),
            count: 1,
        }
    }
}

#[cfg(test)]
impl Recent {
    /// A `linger_abort` sample by `nginx[pid]`, for rendering tests.
    #[must_use]
    pub fn example(local: &str, remote: &str, pid: u32, ts_ns: u64) -> Self {
        Self {
            view: "sent".into(),
            cause: "linger_abort".into(),
            reason: Some(14),
            reason_name: Some("TCP_STATE".into()),
            family: "ipv4".into(),
            local: local.into(),
            remote: remote.into(),
            pid: Some(pid),
            comm: Some("nginx".into()),
            ifindex: None,
            netns: None,
            cgroup: Some(7),
            owner: Some("nginx.service".into()),
            payload: None,
            origin: None,
            evidence: None,
            ts_ns,
            time: None,
        }
    }
}
