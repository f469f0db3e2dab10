//! What the running kernel offers: BTF offsets and enums, tracepoint layouts.
//! Produces the programs' read-only configuration and a coverage report.

mod btf;
pub mod classify;
pub mod tracefs;

use std::collections::BTreeMap;

use rst_common::config::{ABSENT, Config};

use crate::error::Error;

pub struct Probe {
    pub config: Config,
    /// Reason value -> enumerator name (without `SK_RST_REASON_`).
    pub reason_names: BTreeMap<u32, String>,
    pub has_send_reset: bool,
    pub has_receive_reset: bool,
    pub release: String,
}

#[must_use]
pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "unknown".into(), |s| s.trim().into())
}

/// Reads everything kernel-specific. Missing pieces degrade with one log line.
pub fn probe() -> Result<Probe, Error> {
    let btf = btf::KernelBtf::load()?;
    let root = tracefs::root()?;
    let mut config = Config::ABSENT;
    // Each member may have moved between kernel versions: the first path found wins.
    let off = |s: &str, paths: &[&[&str]]| {
        paths.iter().find_map(|p| btf.member_offset(s, p)).unwrap_or_else(|| {
            tracing::warn!("BTF has no {s}.{}; the causes that need it degrade", paths[0].join("."));
            ABSENT
        })
    };
    config.skb_data = off("sk_buff", &[&["data"]]);
    config.sk_state = off("sock", &[&["__sk_common", "skc_state"]]);
    config.sk_flags = off("sock", &[&["sk_flags"], &["__sk_common", "skc_flags"]]);
    config.sk_lingertime = off("sock", &[&["sk_lingertime"]]);
    config.sock_linger_bit = btf
        .enum_values("sock_flags")
        .and_then(|v| v.into_iter().find(|(n, _)| n == "SOCK_LINGER"))
        .map_or(ABSENT, |(_, v)| v as u32);
    let reasons = btf.enum_values("sk_rst_reason").unwrap_or_else(|| {
        tracing::warn!("BTF has no enum sk_rst_reason (kernel < 6.10): sent causes limited to closed_port, stale_segment, linger_abort, unspecified");
        Vec::new()
    });
    config.reason_cause = classify::reason_table(&reasons);
    config.state_cause = classify::state_table();
    let reason_names = reasons
        .into_iter()
        .map(|(n, v)| (v as u32, n.trim_start_matches("SK_RST_REASON_").to_string()))
        .collect();
    let send = tracefs::read_layout(&root, "tcp", "tcp_send_reset");
    let recv = tracefs::read_layout(&root, "tcp", "tcp_receive_reset");
    if let Some(l) = send {
        if l.reason == ABSENT {
            tracing::warn!("tcp_send_reset has no reason field on this kernel: socket resets count as unspecified unless SO_LINGER {{1,0}}");
        }
        config.send = l;
    }
    if let Some(l) = recv {
        config.recv = l;
    }
    Ok(Probe {
        config,
        reason_names,
        has_send_reset: send.is_some(),
        has_receive_reset: recv.is_some(),
        release: release(),
    })
}
