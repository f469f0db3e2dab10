//! Prometheus text exposition (contract §5), rendered from one snapshot.

use crate::pipeline::names;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, text::encode},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use crate::{
    output::{
        exposition::{self, Format},
        process::Process,
    },
    pipeline::model::{PortLabel, Snapshot},
};

/// The `port` label of clients' ephemeral ports, summed.
pub const EPHEMERAL: &str = "ephemeral";

/// What `/metrics` exports beyond the contract's fixed families.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// `rstwatch_owner_resets_total{view,cause,owner}` (off by default: one
    /// series per owner, bounded by `top` per view and cause).
    pub owners: bool,
}

#[derive(Debug)]
struct SnapshotCollector(Snapshot, Options, Option<Process>);

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, String)>, u64)],
) -> std::fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
    for (labels, value) in rows {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, rows: &[(Vec<(&str, String)>, i64)]) -> std::fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
    for (labels, value) in rows {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn plain_counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let c = ConstCounter::new(value);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn plain_gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> std::fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

/// What the kernel counts for each of our programs (bpf_prog_info run_cnt, run_time_ns).
fn program_costs(enc: &mut DescriptorEncoder, s: &Snapshot) -> std::fmt::Result {
    const HOW: &str = "counted by the kernel only while kernel.bpf_stats_enabled is 1 (`sysctl -w kernel.bpf_stats_enabled=1`; it adds two clock reads per run), 0 otherwise";
    let mut runs = enc.encode_descriptor(
        "rstwatch_program_runs",
        &format!("Runs of each rstwatch kernel program, {HOW}."),
        None,
        ConstCounter::new(0u64).metric_type(),
    )?;
    for p in &s.programs {
        ConstCounter::new(p.runs).encode(runs.encode_family(&[("program", p.program.as_str())])?)?;
    }
    let mut time = enc.encode_descriptor(
        "rstwatch_program_run_seconds",
        &format!("Time spent in each rstwatch kernel program, {HOW}; divided by rstwatch_program_runs_total, the cost per event."),
        None,
        ConstCounter::new(0f64).metric_type(),
    )?;
    for p in &s.programs {
        ConstCounter::new(p.run_ns as f64 / 1e9).encode(time.encode_family(&[("program", p.program.as_str())])?)?;
    }
    Ok(())
}

/// `process_*`, as the Prometheus clients of other languages export them.
fn process(enc: &mut DescriptorEncoder, p: &Process) -> std::fmt::Result {
    let c = ConstCounter::new(p.cpu_seconds);
    c.encode(enc.encode_descriptor(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds.",
        None,
        c.metric_type(),
    )?)?;
    for (name, help, value) in [
        ("process_resident_memory_bytes", "Resident memory size in bytes.", p.resident_bytes as f64),
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.", p.virtual_bytes as f64),
        ("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", p.start_time_seconds),
        ("process_open_fds", "Number of open file descriptors.", p.open_fds as f64),
        ("process_max_fds", "Maximum number of open file descriptors.", p.max_fds as f64),
    ] {
        plain_gauge(enc, name, help, value)?;
    }
    Ok(())
}

/// Owner rows summed by name (two cgroups may carry one unit's name).
fn owner_rows(s: &Snapshot) -> Vec<(Vec<(&'static str, String)>, u64)> {
    let mut by_owner: std::collections::BTreeMap<(&str, &str, &str), u64> = std::collections::BTreeMap::new();
    for o in &s.owners {
        *by_owner.entry((o.view.as_str(), o.cause.as_str(), o.owner.as_str())).or_default() += o.count;
    }
    by_owner
        .into_iter()
        .map(|((v, c, o), n)| (vec![("view", v.to_string()), ("cause", c.to_string()), ("owner", o.to_string())], n))
        .collect()
}

fn coverage_rows(s: &Snapshot) -> Vec<(Vec<(&'static str, String)>, i64)> {
    s.coverage.features.iter().map(|(f, on)| (vec![("feature", f.clone())], i64::from(*on))).collect()
}

/// Per requested interface, one row per hook: `tc_ingress` or `xdp` (wire_in),
/// `tc` (tc egress, wire_out; named before tc ingress was a hook of ours).
fn interface_rows(s: &Snapshot) -> Vec<(Vec<(&'static str, String)>, i64)> {
    s.interfaces
        .iter()
        .flat_map(|i| {
            let ingress = if i.ingress == "xdp" { "xdp" } else { "tc_ingress" };
            [(ingress, i.wire_in), ("tc", i.wire_out)]
                .map(|(hook, on)| (vec![("iface", i.name.clone()), ("hook", hook.to_string())], i64::from(on)))
        })
        .collect()
}

/// Received RSTs by origin as first judged (monotonic, unlike the snapshot's
/// corrected rows: a counter never goes down), and the corrections since.
fn origins(enc: &mut DescriptorEncoder, s: &Snapshot) -> std::fmt::Result {
    let moved = |v: &str, from: &str, to: &str| {
        s.origin_corrections
            .iter()
            .filter(|c| c.view == v && (from.is_empty() || c.from == from) && (to.is_empty() || c.to == to))
            .map(|c| c.count)
            .sum::<u64>()
    };
    let mut first = Vec::new();
    let mut corrected = Vec::new();
    for v in [rst_common::view::RECEIVED, rst_common::view::WIRE_IN].map(names::view_name) {
        for o in names::ORIGINS.map(names::origin_name) {
            let now: u64 = s.origins.iter().filter(|r| r.view == v && r.origin == o).map(|r| r.count).sum();
            let judged = (now + moved(v, o, "")).saturating_sub(moved(v, "", o));
            first.push((vec![("view", v.to_string()), ("origin", o.to_string())], judged));
            for to in names::ORIGINS.map(names::origin_name).into_iter().filter(|t| *t != o) {
                let labels = vec![("view", v.to_string()), ("from", o.to_string()), ("to", to.to_string())];
                corrected.push((labels, moved(v, o, to)));
            }
        }
    }
    counter(
        enc,
        "rstwatch_rst_origin",
        "Received TCP resets (view received, wire_in) by who sent them as first judged: peer, middlebox, forged, unknown (contract §2a); later corrections are in rstwatch_rst_origin_corrections_total.",
        &first,
    )?;
    counter(
        enc,
        "rstwatch_rst_origin_corrections",
        "Origin verdicts later evidence changed (the peer kept talking: forged; a handshake on a changed path: peer).",
        &corrected,
    )
}

/// Exact resets by (view, cause), and by this host's port.
fn resets(enc: &mut DescriptorEncoder, s: &Snapshot) -> std::fmt::Result {
    let count_of = |v: &str, c: &str| s.causes.iter().find(|r| r.view == v && r.cause == c).map_or(0, |r| r.count);
    let mut resets = Vec::new();
    for v in names::VIEWS {
        for c in names::causes_of(v) {
            let (v, c) = (names::view_name(v), names::cause_name(c));
            resets.push((vec![("view", v.to_string()), ("cause", c.to_string())], count_of(v, c)));
        }
    }
    counter(enc, "rstwatch_resets", "TCP resets counted exactly in the kernel, by view and cause.", &resets)?;
    // Clients' ephemeral ports are summed per (view, cause): dashboards stay bounded.
    let ephemeral = |p: &PortLabel| match (p, s.ephemeral_ports) {
        (PortLabel::Port(n), Some([lo, hi])) => (lo..=hi).contains(n),
        _ => false,
    };
    let mut ports: Vec<(Vec<(&str, String)>, u64)> = Vec::new();
    let mut clients: std::collections::BTreeMap<(&str, &str), u64> = std::collections::BTreeMap::new();
    for p in &s.ports {
        if ephemeral(&p.port) {
            *clients.entry((p.view.as_str(), p.cause.as_str())).or_default() += p.count;
        } else {
            ports.push((
                vec![("view", p.view.clone()), ("cause", p.cause.clone()), ("port", p.port.to_string())],
                p.count,
            ));
        }
    }
    ports.extend(clients.into_iter().map(|((v, c), n)| {
        (vec![("view", v.to_string()), ("cause", c.to_string()), ("port", EPHEMERAL.to_string())], n)
    }));
    counter(
        enc,
        "rstwatch_port_resets",
        "TCP resets by this host's port; ports past the key budget or top-N as port=\"other\", clients' ephemeral ports summed as port=\"ephemeral\".",
        &ports,
    )?;
    Ok(())
}

/// What was not delivered or not counted, and why: samples, alerts started, misses.
fn losses(enc: &mut DescriptorEncoder, s: &Snapshot) -> std::fmt::Result {
    for (name, help, value) in [
        ("rstwatch_samples_delivered", "Reset samples read from the ring buffer.", s.samples.delivered),
        (
            "rstwatch_samples_dropped",
            "Reset samples not delivered (ring full or rate-limited); counts stay exact.",
            s.samples.dropped,
        ),
        ("rstwatch_samples_ring_full", "Reset samples lost because the ring buffer was full.", s.samples.ring_full),
        (
            "rstwatch_samples_rate_limited",
            "Reset samples skipped by the per-CPU sample rate limit.",
            s.samples.rate_limited,
        ),
        (
            "rstwatch_captures_lost",
            "Packet captures of sampled resets (--pcap) lost because their ring buffer was full.",
            s.samples.captures_lost,
        ),
    ] {
        plain_counter(enc, name, help, value)?;
    }
    let alerts: Vec<_> = ["port_scan", "listener_down", "rst_flood"]
        .iter()
        .map(|k| (vec![("kind", (*k).to_string())], s.alerts_started.get(*k).copied().unwrap_or(0)))
        .collect();
    counter(enc, "rstwatch_alerts", "Alerts started (port_scan, listener_down, rst_flood).", &alerts)?;
    let missed: Vec<_> = s.missed.iter().map(|(v, n)| (vec![("view", v.clone())], *n)).collect();
    counter(
        enc,
        "rstwatch_missed",
        "Resets the kernel did not run rstwatch's program for (reported by the kernel, or seen leaving a watched interface without their tracepoint event); not in rstwatch_resets_total.",
        &missed,
    )?;
    let by_kind: Vec<_> = s
        .missed_by_kind
        .iter()
        .flat_map(|(v, kinds)| kinds.iter().map(move |(k, n)| (vec![("view", v.clone()), ("kind", k.clone())], *n)))
        .collect();
    counter(
        enc,
        "rstwatch_missed_by_kind",
        "rstwatch_missed_total by kind: recursion (the kernel skipped the program because it was already running on that CPU, its fdinfo recursion_misses) or unannounced (sent: a reply tc egress saw leave a watched interface through the stack's control socket that no sent program run announced, with none under way on that CPU).",
        &by_kind,
    )?;
    Ok(())
}

/// What works here: coverage, interface hooks, key budgets.
fn health(enc: &mut DescriptorEncoder, s: &Snapshot) -> std::fmt::Result {
    gauge(
        enc,
        "rstwatch_coverage",
        "1 when this kernel supports the feature rstwatch uses, 0 when that part degrades.",
        &coverage_rows(s),
    )?;
    gauge(
        enc,
        "rstwatch_interface_attached",
        "1 when the hook (xdp: wire_in, tc: wire_out) is attached to the requested interface, 0 when it is not (absent, or failing to attach).",
        &interface_rows(s),
    )?;
    let k = &s.keys;
    let maps = [("ports", k.ports), ("peers", k.peers), ("owners", k.owners)];
    let folded: Vec<_> = maps.iter().map(|(m, st)| (vec![("map", (*m).to_string())], st.folded)).collect();
    counter(
        enc,
        "rstwatch_keys_folded",
        "Port, peer and owner keys moved from the kernel maps into the daemon by folds (exact; frees the kernel's key budget).",
        &folded,
    )?;
    let forgotten: Vec<_> = maps.iter().map(|(m, st)| (vec![("map", (*m).to_string())], st.forgotten)).collect();
    counter(
        enc,
        "rstwatch_keys_forgotten",
        "Folded keys the daemon stopped holding (the coldest, past 4x the key budget); their resets are in the port/peer/owner \"expired\" rows.",
        &forgotten,
    )?;
    let live: Vec<_> = maps
        .iter()
        .flat_map(|(m, st)| {
            [("kernel", st.kernel), ("daemon", st.held)].map(|(at, n)| {
                (vec![("map", (*m).to_string()), ("at", at.to_string())], i64::try_from(n).unwrap_or(i64::MAX))
            })
        })
        .collect();
    gauge(enc, "rstwatch_keys", "Keys held now, in the kernel map (of its budget) and in the daemon.", &live)?;
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        resets(&mut enc, s)?;
        origins(&mut enc, s)?;
        if self.1.owners {
            counter(
                &mut enc,
                "rstwatch_owner_resets",
                "Socket-bound TCP resets by the socket's owner (systemd unit, container:<id> or cgroup path); top owners per view and cause, the rest as owner=\"other\".",
                &owner_rows(s),
            )?;
        }
        losses(&mut enc, s)?;
        health(&mut enc, s)?;
        program_costs(&mut enc, s)?;
        if let Some(p) = &self.2 {
            process(&mut enc, p)?;
        }
        let mut info = enc.encode_descriptor(
            "rstwatch_build_info",
            "rstwatch version and running kernel.",
            None,
            ConstGauge::new(1i64).metric_type(),
        )?;
        let labels = [("version", env!("CARGO_PKG_VERSION").to_string()), ("kernel", s.kernel.clone())];
        ConstGauge::new(1i64).encode(info.encode_family(&labels)?)?;
        Ok(())
    }
}

/// The `/metrics` body for `snapshot` (OpenMetrics), with the daemon's `process` when given.
#[must_use]
pub fn render(snapshot: &Snapshot, options: Options, process: Option<Process>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot.clone(), options, process)));
    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

/// [`render`] in `format`.
#[must_use]
pub fn render_as(format: Format, snapshot: &Snapshot, options: Options, process: Option<Process>) -> String {
    let om = render(snapshot, options, process);
    match format {
        Format::OpenMetrics => om,
        Format::Text => exposition::to_text(&om),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::pipeline::model::{CauseCount, PortCount, PortLabel};

    #[test]
    fn renders_contract_names_with_zero_series() {
        let s = Snapshot {
            kernel: "6.18".into(),
            causes: vec![CauseCount { view: "sent".into(), cause: "closed_port".into(), count: 3 }],
            ports: vec![
                PortCount { view: "sent".into(), cause: "closed_port".into(), port: PortLabel::Port(9999), count: 2 },
                PortCount {
                    view: "sent".into(),
                    cause: "closed_port".into(),
                    port: PortLabel::Other("other".into()),
                    count: 1,
                },
            ],
            ..Snapshot::default()
        };
        let text = render(&s, Options::default(), None);
        assert!(text.contains("rstwatch_resets_total{view=\"sent\",cause=\"closed_port\"} 3\n"), "{text}");
        assert!(text.contains("rstwatch_resets_total{view=\"wire_out\",cause=\"not_from_stack\"} 0\n"));
        assert!(text.contains("rstwatch_port_resets_total{view=\"sent\",cause=\"closed_port\",port=\"other\"} 1\n"));
        assert!(text.contains("rstwatch_samples_dropped_total 0\n"), "{text}");
        assert!(text.contains("rstwatch_build_info{version=\""));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn origins_are_exported_as_first_judged_with_corrections_apart() {
        use crate::pipeline::model::{OriginCorrection, OriginCount};
        let row = |origin: &str, count| OriginCount {
            view: "received".into(),
            cause: "peer_reset".into(),
            origin: origin.into(),
            count,
        };
        let s = Snapshot {
            // 3 judged middlebox, one of them corrected to forged since
            origins: vec![row("peer", 4), row("middlebox", 2), row("forged", 1)],
            origin_corrections: vec![OriginCorrection::example()],
            ..Snapshot::default()
        };
        let text = render(&s, Options::default(), None);
        for (origin, n) in [("peer", 4), ("middlebox", 3), ("forged", 0), ("unknown", 0)] {
            let line = format!("rstwatch_rst_origin_total{{view=\"received\",origin=\"{origin}\"}} {n}\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(text.contains("rstwatch_rst_origin_total{view=\"wire_in\",origin=\"peer\"} 0\n"));
        assert!(
            text.contains(
                "rstwatch_rst_origin_corrections_total{view=\"received\",from=\"middlebox\",to=\"forged\"} 1\n"
            )
        );
    }

    #[test]
    fn missed_is_exported_in_total_and_by_kind() {
        let kinds = BTreeMap::from([("recursion".to_string(), 3), ("unannounced".to_string(), 2)]);
        let s = Snapshot {
            missed: BTreeMap::from([("sent".into(), 5)]),
            missed_by_kind: BTreeMap::from([("sent".into(), kinds)]),
            ..Snapshot::default()
        };
        let text = render(&s, Options::default(), None);
        assert!(text.contains("rstwatch_missed_total{view=\"sent\"} 5\n"), "{text}");
        assert!(text.contains("rstwatch_missed_by_kind_total{view=\"sent\",kind=\"recursion\"} 3\n"), "{text}");
        assert!(text.contains("rstwatch_missed_by_kind_total{view=\"sent\",kind=\"unannounced\"} 2\n"), "{text}");
    }

    #[test]
    fn ephemeral_ports_are_summed_into_one_label() {
        let row = |cause: &str, port: u16, count| PortCount {
            view: "received".into(),
            cause: cause.into(),
            port: PortLabel::Port(port),
            count,
        };
        let s = Snapshot {
            ephemeral_ports: Some([32768, 60999]),
            ports: vec![
                row("refused", 40001, 2),
                row("refused", 40002, 3),
                row("refused", 8080, 1),
                row("peer_reset", 50000, 4),
            ],
            ..Snapshot::default()
        };
        let text = render(&s, Options::default(), None);
        assert!(
            text.contains("rstwatch_port_resets_total{view=\"received\",cause=\"refused\",port=\"ephemeral\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("rstwatch_port_resets_total{view=\"received\",cause=\"peer_reset\",port=\"ephemeral\"} 4\n")
        );
        assert!(text.contains("port=\"8080\"} 1\n"));
        assert!(!text.contains("40001") && !text.contains("50000"), "{text}");
    }

    #[test]
    fn owner_label_only_when_asked_and_summed_by_name() {
        let row = |owner: &str, cgroup, count| crate::pipeline::model::OwnerCount {
            view: "sent".into(),
            cause: "linger_abort".into(),
            owner: owner.into(),
            cgroup,
            cgroup_path: None,
            count,
        };
        let s = Snapshot {
            owners: vec![row("nginx.service", Some(1), 3), row("nginx.service", Some(2), 2), row("other", None, 1)],
            ..Snapshot::default()
        };
        assert!(!render(&s, Options::default(), None).contains("rstwatch_owner_resets"));
        let text = render(&s, Options { owners: true }, None);
        assert!(
            text.contains(
                "rstwatch_owner_resets_total{view=\"sent\",cause=\"linger_abort\",owner=\"nginx.service\"} 5\n"
            ),
            "{text}"
        );
        assert!(text.contains("owner=\"other\"} 1\n"));
    }
}
