//! The kernel side of the flow, the only code that touches aya: what the
//! running kernel offers (BTF offsets and enums, tracepoint layouts; this
//! file: the programs' read-only configuration and a coverage report),
//! loading (`loader`, `pins`), attaching (`wire`, `reaper`) and reading
//! counters and samples (`source`).

mod btf;
pub mod callsites;
pub mod classify;
pub mod loader;
pub mod netns;
pub mod pins;
pub mod privileges;
pub mod programs;
pub mod reaper;
pub mod side;
pub mod source;
pub mod tracefs;
pub mod wire;

use std::{collections::BTreeMap, path::Path};

use rst_common::config::{ABSENT, Config};

use crate::{error::Error, pipeline::model::Coverage};

pub use btf::VMLINUX;

#[expect(clippy::struct_excessive_bools, reason = "one flag per kernel facility")]
pub struct Probe {
    pub config: Config,
    /// Reason value -> enumerator name (without `SK_RST_REASON_`).
    pub reason_names: BTreeMap<u32, String>,
    pub has_send_reset: bool,
    pub has_receive_reset: bool,
    /// `skb:kfree_skb` with its drop reason, and the RST drop reasons in BTF.
    pub has_rejected: bool,
    /// `tcp:tcp_send_reset` fires for resets without a full socket too (>= 6.10);
    /// else fentry on `tcp_v{4,6}_send_reset` counts those.
    pub send_reset_has_socketless: bool,
    /// `tcp_reset(sk, skb)` (>= 5.12): `received` is counted there, only when
    /// the segment has RST (the kernel also resets its own socket when data
    /// reaches an orphan). Else the tracepoint counts every `tcp_reset()`.
    pub tcp_reset_has_skb: bool,
    /// XDP programs may call `bpf_xdp_load_bytes` (>= 5.18): payloads in `wire_in` samples.
    pub has_xdp_load_bytes: bool,
    /// tc egress attaches through TCX links (>= 6.6).
    pub has_tcx: bool,
    /// The call-site table the `sent_call_site` program reads, the `SITES`
    /// map's entries: Some exactly when `config.call_sites` is 1.
    pub sites: Option<BTreeMap<u64, u64>>,
    pub release: String,
    /// What this kernel supports, and what degrades without it.
    pub coverage: Coverage,
}

#[cfg(test)]
impl Probe {
    /// What `probe` finds on a kernel with every facility (6.18).
    #[must_use]
    pub fn example_6_18() -> Self {
        Self {
            config: Config::ABSENT,
            reason_names: BTreeMap::new(),
            has_send_reset: true,
            has_receive_reset: true,
            has_rejected: true,
            send_reset_has_socketless: true,
            tcp_reset_has_skb: true,
            has_xdp_load_bytes: true,
            has_tcx: true,
            sites: None,
            release: "6.18.0".into(),
            coverage: Coverage::default(),
        }
    }

    /// What `probe` finds on Debian 11's 5.10: no reason field (call sites),
    /// no `tcp_reset(sk, skb)`, no RST drop reasons.
    #[must_use]
    pub fn example_5_10() -> Self {
        Self {
            has_rejected: false,
            send_reset_has_socketless: false,
            tcp_reset_has_skb: false,
            has_xdp_load_bytes: false,
            has_tcx: false,
            sites: Some(BTreeMap::from([(1, 1)])),
            release: "5.10.0".into(),
            ..Self::example_6_18()
        }
    }
}

/// This network namespace's ephemeral port range, `ip_local_port_range`.
#[must_use]
pub fn ephemeral_ports() -> Option<[u16; 2]> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    Some([it.next()?.ok()?, it.next()?.ok()?])
}

#[must_use]
pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "unknown".into(), |s| s.trim().into())
}

/// Records one feature; a missing one gets one log line saying what degrades.
pub fn note(c: &mut Coverage, feature: &str, present: bool, without: &str) {
    c.features.insert(feature.to_string(), present);
    if !present {
        let line = format!("{feature} is missing on this kernel: {without}");
        tracing::warn!("{line}");
        c.degraded.push(line);
    }
}

/// Reads everything kernel-specific from the BTF at `btf_path` and tracefs.
pub fn probe(btf_path: &Path) -> Result<Probe, Error> {
    let btf = btf::KernelBtf::load(btf_path)?;
    let root = tracefs::root()?;
    let mut config = Config::ABSENT;
    let mut cov = Coverage::default();
    struct_offsets(&btf, &mut config, &mut cov);
    let reason_names = reasons(&btf, &mut config, &mut cov);
    let send = tracefs::fields(&root, "tcp", "tcp_send_reset");
    let recv = tracefs::fields(&root, "tcp", "tcp_receive_reset");
    note(&mut cov, "tracepoint:tcp:tcp_send_reset", send.is_some(), "the sent view stays at zero");
    note(&mut cov, "tracepoint:tcp:tcp_receive_reset", recv.is_some(), "the received view stays at zero");
    if let Some(f) = &send {
        let has = f.contains_key("reason");
        note(
            &mut cov,
            "tracepoint:tcp:tcp_send_reset.reason",
            has,
            "socket resets are named by their call site instead (kernel < 6.10)",
        );
        config.has_reason = u32::from(has);
    }
    let sites =
        if config.has_reason == 0 || callsites::forced() { call_sites(&btf, &mut config, &mut cov) } else { None };
    let has_rejected = rejected(&btf, &root, &mut config, &mut cov);
    // Both arrived in 6.10: the tracepoint's `reason` and its firing without a full socket.
    let send_reset_has_socketless = config.has_reason == 1;
    if !send_reset_has_socketless {
        let no_route = "resets to segments not routed to this host may be counted as sent";
        config.skb_refdst = off(&btf, &mut cov, "sk_buff", &[&["_skb_refdst"]], no_route);
        config.rt_type = off(&btf, &mut cov, "rtable", &[&["rt_type"]], no_route);
        config.rt6i_flags = off(&btf, &mut cov, "rt6_info", &[&["rt6i_flags"]], no_route);
    }
    config.req_hash_pprev = off(
        &btf,
        &mut cov,
        "request_sock",
        &[&["__req_common", "skc_nulls_node", "pprev"]],
        "a RST that ends a handshake (request socket) is not counted as received",
    );
    let (tcp_reset_has_skb, has_xdp_load_bytes, has_tcx) = facilities(&btf, &mut cov);
    Ok(Probe {
        config,
        reason_names,
        has_send_reset: send.is_some(),
        has_receive_reset: recv.is_some(),
        has_rejected,
        send_reset_has_socketless,
        tcp_reset_has_skb,
        has_xdp_load_bytes,
        has_tcx,
        sites,
        release: release(),
        coverage: cov,
    })
}

/// A member's offset in a kernel struct, from BTF. Each member may have
/// moved between kernel versions: the first path found wins.
fn off(btf: &btf::KernelBtf, cov: &mut Coverage, s: &str, paths: &[&[&str]], without: &str) -> u32 {
    let found = paths.iter().find_map(|p| btf.member_offset(s, p));
    note(cov, &format!("btf:{s}.{}", paths[0].join(".")), found.is_some(), without);
    found.unwrap_or(ABSENT)
}

/// The struct members the programs read: the segment, the socket's tuple
/// and state, linger, owner and namespace.
fn struct_offsets(btf: &btf::KernelBtf, config: &mut Config, cov: &mut Coverage) {
    let at = |cov: &mut Coverage, s: &str, paths: &[&[&str]], without: &str| off(btf, cov, s, paths, without);
    config.skb_data = at(cov, "sk_buff", &[&["data"]], "closed_port and stale_segment count as unspecified");
    config.skb_transport_header = at(cov, "sk_buff", &[&["transport_header"]], "rejected_invalid is not counted");
    config.skb_head = at(cov, "sk_buff", &[&["head"]], "socketless resets carry no addresses");
    config.skb_network_header = at(cov, "sk_buff", &[&["network_header"]], "socketless resets carry no addresses");
    let no_addr = "socket resets carry no addresses or ports";
    config.sk_family = at(cov, "sock", &[&["__sk_common", "skc_family"]], no_addr);
    config.sk_daddr = at(cov, "sock", &[&["__sk_common", "skc_daddr"]], no_addr);
    config.sk_rcv_saddr = at(cov, "sock", &[&["__sk_common", "skc_rcv_saddr"]], no_addr);
    config.inet_sport = at(cov, "inet_sock", &[&["inet_sport"]], no_addr);
    config.sk_dport = at(cov, "sock", &[&["__sk_common", "skc_dport"]], no_addr);
    let no_v6 = "IPv6 socket resets carry no addresses";
    config.sk_v6_daddr = at(cov, "sock", &[&["__sk_common", "skc_v6_daddr"]], no_v6);
    config.sk_v6_rcv_saddr = at(cov, "sock", &[&["__sk_common", "skc_v6_rcv_saddr"]], no_v6);
    config.sk_state = at(cov, "sock", &[&["__sk_common", "skc_state"]], "received causes count as other");
    config.sk_flags =
        at(cov, "sock", &[&["sk_flags"], &["__sk_common", "skc_flags"]], "linger_abort counts as bad_state");
    config.sk_lingertime = at(cov, "sock", &[&["sk_lingertime"]], "linger_abort counts as bad_state");
    config.sk_shutdown = at(cov, "sock", &[&["sk_shutdown"]], "linger_abort counts as bad_state");
    config.sock_linger_bit = btf
        .enum_values("sock_flags")
        .and_then(|v| v.into_iter().find(|(n, _)| n == "SOCK_LINGER"))
        .map_or(ABSENT, |(_, v)| v as u32);
    note(cov, "btf:enum sock_flags.SOCK_LINGER", config.sock_linger_bit != ABSENT, "linger_abort counts as bad_state");
    let no_owner = "socket-bound resets carry no owner (cgroup)";
    config.sk_cgroup = at(cov, "sock", &[&["sk_cgrp_data", "cgroup"]], no_owner);
    config.cgroup_kn = at(cov, "cgroup", &[&["kn"]], no_owner);
    config.kn_id = at(cov, "kernfs_node", &[&["id"]], no_owner);
    let no_netns = "stack resets carry no network namespace";
    config.sk_net = at(cov, "sock", &[&["__sk_common", "skc_net", "net"]], no_netns);
    config.skb_dev = at(cov, "sk_buff", &[&["dev"]], no_netns);
    config.dev_net = at(cov, "net_device", &[&["nd_net", "net"]], no_netns);
    config.net_inum = at(cov, "net", &[&["ns", "inum"]], no_netns);
}

/// `enum sk_rst_reason` (6.10+) mapped to causes, and the socket states'
/// causes; returns the reasons' names by value.
fn reasons(btf: &btf::KernelBtf, config: &mut Config, cov: &mut Coverage) -> BTreeMap<u32, String> {
    let reasons = btf.enum_values("sk_rst_reason").unwrap_or_default();
    note(
        cov,
        "btf:enum sk_rst_reason",
        !reasons.is_empty(),
        "sent causes of socket resets come from their call site instead (kernel < 6.10; see kallsyms:call sites)",
    );
    config.reason_cause = classify::reason_table(&reasons);
    config.state_cause = classify::state_table();
    reasons.into_iter().map(|(n, v)| (v as u32, n.trim_start_matches("SK_RST_REASON_").to_string())).collect()
}

/// `received/rejected_invalid`: `skb:kfree_skb` with its drop reason and the
/// RST drop reasons in BTF. Returns whether both are there.
fn rejected(btf: &btf::KernelBtf, root: &Path, config: &mut Config, cov: &mut Coverage) -> bool {
    let drops = btf.enum_values("skb_drop_reason").unwrap_or_default();
    config.rst_drop_reasons = classify::rst_drop_reasons(&drops);
    let kfree_fields = tracefs::fields(root, "skb", "kfree_skb");
    let kfree = kfree_fields.as_ref().is_some_and(|f| f.contains_key("reason"));
    let rx_sk = kfree && kfree_fields.as_ref().is_some_and(|f| f.contains_key("rx_sk"));
    config.kfree_rx_sk = u32::from(rx_sk);
    let has_drop_reasons = config.rst_drop_reasons.iter().any(|b| *b != 0);
    note(cov, "tracepoint:skb:kfree_skb.reason", kfree, "received/rejected_invalid is not counted");
    note(cov, "btf:enum skb_drop_reason.TCP_RESET", has_drop_reasons, "received/rejected_invalid is not counted");
    let has_rejected = kfree && has_drop_reasons;
    if has_rejected {
        note(
            cov,
            "tracepoint:skb:kfree_skb.rx_sk",
            rx_sk,
            "rejected_invalid samples carry no namespace or owner (kernel < 6.11)",
        );
    }
    has_rejected
}

/// The kernel facilities some hooks need: `tcp_reset(sk, skb)` (5.12+),
/// `bpf_xdp_load_bytes` (5.18+) and TCX links (6.6+).
fn facilities(btf: &btf::KernelBtf, cov: &mut Coverage) -> (bool, bool, bool) {
    let tcp_reset_has_skb = btf.func_params("tcp_reset").is_some_and(|n| n >= 2);
    note(
        cov,
        "btf:func tcp_reset(sk, skb)",
        tcp_reset_has_skb,
        "received also counts the resets the kernel raises on its own socket with no RST arriving (data reaching an orphaned socket; kernel < 5.12)",
    );
    let helpers = btf.enum_values("bpf_func_id").unwrap_or_default();
    let has_xdp_load_bytes = helpers.iter().any(|(n, _)| n == "BPF_FUNC_xdp_load_bytes");
    note(
        cov,
        "helper:bpf_xdp_load_bytes",
        has_xdp_load_bytes,
        "wire_in samples carry no payload bytes (kernel < 5.18)",
    );
    let tcx = aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0));
    note(
        cov,
        "tcx",
        tcx,
        "tc egress uses a clsact filter (kernel < 6.6), removed by a helper process (rstwatch tc-reaper) if the daemon is killed",
    );
    (tcp_reset_has_skb, has_xdp_load_bytes, tcx)
}

/// Socket resets named by call site (kernels without the reason field):
/// the table from /proc/kallsyms and what the callers test, from BTF.
fn call_sites(btf: &btf::KernelBtf, config: &mut Config, cov: &mut Coverage) -> Option<BTreeMap<u64, u64>> {
    let without = "socket resets count as unspecified unless SO_LINGER {1,0} (no reason field before 6.10)";
    let flag = |name: &str| {
        btf.enum_values("sock_flags")
            .and_then(|v| v.into_iter().find(|(n, _)| n == name))
            .map_or(ABSENT, |(_, v)| v as u32)
    };
    config.sock_dead_bit = flag("SOCK_DEAD");
    config.sock_done_bit = flag("SOCK_DONE");
    let tp = |m: &str| btf.member_offset("tcp_sock", &[m]).unwrap_or(ABSENT);
    config.tp_linger2 = tp("linger2");
    config.tp_snd_una = tp("snd_una");
    config.tp_snd_nxt = tp("snd_nxt");
    config.tp_write_seq = tp("write_seq");
    let fields = [
        config.sock_dead_bit,
        config.sock_done_bit,
        config.tp_linger2,
        config.tp_snd_una,
        config.tp_snd_nxt,
        config.tp_write_seq,
    ];
    note(cov, "btf:call-site fields (sock_flags, tcp_sock)", !fields.contains(&ABSENT), without);
    let sites = callsites::read();
    note(cov, "kallsyms:call sites", sites.is_some(), without);
    let sites = sites.filter(|_| !fields.contains(&ABSENT))?;
    config.call_sites = 1;
    Some(callsites::buckets(&sites))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_feature_is_recorded_with_what_degrades() {
        let mut c = Coverage::default();
        note(&mut c, "tracepoint:tcp:tcp_send_reset.reason", false, "socket resets count as unspecified");
        note(&mut c, "tcx", true, "unused");
        assert_eq!(c.features.get("tcx"), Some(&true));
        assert_eq!(c.features.get("tracepoint:tcp:tcp_send_reset.reason"), Some(&false));
        assert_eq!(
            c.degraded,
            vec![
                "tracepoint:tcp:tcp_send_reset.reason is missing on this kernel: socket resets count as unspecified"
                    .to_string()
            ]
        );
    }
}
