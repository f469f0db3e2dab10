//! Kernel counters + decoded samples -> [`Snapshot`]. Pure: no aya, no I/O.
//! Totals and per-cause counts come only from the kernel's exact counters;
//! samples only feed the list of recent resets.

use std::{
    collections::{BTreeMap, VecDeque},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use rst_common::{
    cause,
    maps::{self, OwnerKey, PeerKey, SampleState},
};

use crate::{
    decode::Event,
    model::{
        self, CauseCount, Coverage, OTHER, OwnerCount, PeerCount, PortCount, PortLabel, Recent, SNAPSHOT_VERSION,
        SampleStats, Snapshot, Totals,
    },
    owners::{self, Owner},
    payload::Payload,
};

/// Everything the kernel counted, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelCounts {
    /// By [`cause::slot`]; `maps::COUNT_SLOTS` entries.
    pub causes: Vec<u64>,
    /// (`maps::port_key`, count).
    pub ports: Vec<(u32, u64)>,
    pub peers: Vec<(PeerKey, u64)>,
    pub owners: Vec<(OwnerKey, u64)>,
    /// Port overflow at `slot`, peer overflow at `COUNT_SLOTS + slot`, owner
    /// overflow at `2 * COUNT_SLOTS + slot`.
    pub overflow: Vec<u64>,
    /// Sample accounting summed over CPUs (the window fields are meaningless here).
    pub samples: SampleState,
    /// (view, events the kernel did not run our program for).
    pub missed: Vec<(u8, u64)>,
}

/// Bounds of what the aggregator keeps.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Ports and peers listed per (view, cause); the rest is summed as `other`.
    pub top: usize,
    /// Recent samples kept.
    pub recent: usize,
}

pub struct Aggregator {
    limits: Limits,
    kernel: String,
    reason_names: BTreeMap<u32, String>,
    coverage: Coverage,
    ephemeral: Option<[u16; 2]>,
    /// The daemon's own network namespace: where the watched interfaces are.
    own_netns: Option<u32>,
    /// Wall minus monotonic clock: kernel timestamps as times of day.
    clock_offset: Option<std::time::Duration>,
    counts: KernelCounts,
    recent: VecDeque<Event>,
    delivered: u64,
}

fn peer_addr(k: &PeerKey) -> IpAddr {
    if k.family == 6 {
        IpAddr::V6(Ipv6Addr::from(k.addr))
    } else {
        IpAddr::V4(Ipv4Addr::new(k.addr[0], k.addr[1], k.addr[2], k.addr[3]))
    }
}

/// Per (view, cause): the `top` largest keys, then one `other` row holding
/// the rest plus the kernel's overflow for that pair. Order: view, cause, count desc.
fn top_rows<K: Ord + Clone>(
    rows: impl Iterator<Item = (u8, u8, K, u64)>,
    overflow: impl Fn(u32) -> u64,
    top: usize,
) -> Vec<(u8, u8, Option<K>, u64)> {
    let mut groups: BTreeMap<(u8, u8), Vec<(K, u64)>> = BTreeMap::new();
    for (v, c, k, n) in rows {
        groups.entry((v, c)).or_default().push((k, n));
    }
    for slot in 0..maps::COUNT_SLOTS {
        if overflow(slot) > 0 {
            let (v, c) = ((slot / u32::from(cause::SLOTS)) as u8, (slot % u32::from(cause::SLOTS)) as u8);
            groups.entry((v, c)).or_default();
        }
    }
    let mut out = Vec::new();
    for ((v, c), mut keys) in groups {
        keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let rest: u64 = keys.iter().skip(top).map(|k| k.1).sum::<u64>() + overflow(cause::slot(v, c));
        out.extend(keys.into_iter().take(top).map(|(k, n)| (v, c, Some(k), n)));
        if rest > 0 {
            out.push((v, c, None, rest));
        }
    }
    out
}

impl Aggregator {
    #[must_use]
    pub fn new(limits: Limits, kernel: String, reason_names: BTreeMap<u32, String>, coverage: Coverage) -> Self {
        Self {
            limits,
            kernel,
            reason_names,
            coverage,
            ephemeral: None,
            own_netns: None,
            clock_offset: None,
            counts: KernelCounts::default(),
            recent: VecDeque::with_capacity(limits.recent),
            delivered: 0,
        }
    }

    /// The ephemeral port range to report (clients' ports; bounded in /metrics).
    #[must_use]
    pub fn with_ephemeral_ports(mut self, range: Option<[u16; 2]>) -> Self {
        self.ephemeral = range;
        self
    }

    /// The daemon's network namespace inode, reported for wire samples.
    #[must_use]
    pub fn with_own_netns(mut self, inode: Option<u32>) -> Self {
        self.own_netns = inode;
        self
    }

    /// Samples get a time of day: kernel timestamp + `offset` (wall minus monotonic clock).
    #[must_use]
    pub fn with_clock_offset(mut self, offset: std::time::Duration) -> Self {
        self.clock_offset = Some(offset);
        self
    }

    /// Changes how many ports and peers are listed (reload).
    pub fn set_top(&mut self, top: usize) {
        self.limits.top = top;
    }

    pub fn on_counts(&mut self, counts: KernelCounts) {
        self.counts = counts;
    }

    /// Every cgroup id counted or sampled: the owners to name.
    #[must_use]
    pub fn owner_ids(&self) -> Vec<u64> {
        let counted = self.counts.owners.iter().map(|(k, _)| k.cgroup);
        let sampled = self.recent.iter().filter_map(|e| e.cgroup);
        let mut ids: Vec<u64> = counted.chain(sampled).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn on_sample(&mut self, ev: Event) {
        self.delivered += 1;
        if self.limits.recent == 0 {
            return;
        }
        if self.recent.len() == self.limits.recent {
            self.recent.pop_front();
        }
        self.recent.push_back(ev);
    }

    /// The snapshot; `names` names the owners' cgroup ids (see `owners::Resolver`).
    #[must_use]
    pub fn snapshot(&self, uptime_seconds: f64, names: &BTreeMap<u64, Owner>) -> Snapshot {
        let owner = |id: u64| names.get(&id).cloned().unwrap_or_else(|| owners::gone(id));
        let k = &self.counts;
        let mut totals = Totals::default();
        let mut causes = Vec::new();
        for v in model::VIEWS {
            for &c in model::causes_of(v) {
                let n = k.causes.get(cause::slot(v, c) as usize).copied().unwrap_or(0);
                totals.add(v, n);
                if n > 0 {
                    causes.push(CauseCount {
                        view: model::view_name(v).into(),
                        cause: model::cause_name(c).into(),
                        count: n,
                    });
                }
            }
        }
        let port_over = |slot: u32| k.overflow.get(slot as usize).copied().unwrap_or(0);
        let peer_over = |slot: u32| k.overflow.get((maps::COUNT_SLOTS + slot) as usize).copied().unwrap_or(0);
        let ports = top_rows(
            k.ports.iter().map(|&(key, n)| {
                let (v, c, p) = maps::split_port_key(key);
                (v, c, p, n)
            }),
            port_over,
            self.limits.top,
        )
        .into_iter()
        .map(|(v, c, p, n)| PortCount {
            view: model::view_name(v).into(),
            cause: model::cause_name(c).into(),
            port: p.map_or_else(|| PortLabel::Other(OTHER.into()), PortLabel::Port),
            count: n,
        })
        .collect();
        let peers = top_rows(
            k.peers.iter().map(|(key, n)| (key.view, key.cause, (peer_addr(key), key.netns), *n)),
            peer_over,
            self.limits.top,
        )
        .into_iter()
        .map(|(v, c, a, n)| PeerCount {
            view: model::view_name(v).into(),
            cause: model::cause_name(c).into(),
            addr: a.map_or_else(|| OTHER.into(), |(a, _)| a.to_string()),
            netns: a.and_then(|(_, ns)| (ns != 0).then_some(ns)),
            count: n,
        })
        .collect();
        let owner_over = |slot: u32| k.overflow.get((2 * maps::COUNT_SLOTS + slot) as usize).copied().unwrap_or(0);
        let owners = top_rows(
            k.owners.iter().map(|(key, n)| (key.view, key.cause, key.cgroup, *n)),
            owner_over,
            self.limits.top,
        )
        .into_iter()
        .map(|(v, c, id, n)| {
            let owner = id.map(owner);
            OwnerCount {
                view: model::view_name(v).into(),
                cause: model::cause_name(c).into(),
                owner: owner.as_ref().map_or_else(|| OTHER.into(), |o| o.name.clone()),
                cgroup: id,
                cgroup_path: owner.and_then(|o| o.path),
                count: n,
            }
        })
        .collect();
        let (ring_full, rate_limited) = (k.samples.ring_full, k.samples.rate_limited);
        Snapshot {
            version: SNAPSHOT_VERSION,
            uptime_seconds,
            // filled by the daemon: the time it publishes, the namespace it selected
            time: String::new(),
            netns: None,
            kernel: self.kernel.clone(),
            totals,
            causes,
            ports,
            peers,
            owners,
            samples: SampleStats {
                delivered: self.delivered,
                dropped: ring_full + rate_limited,
                ring_full,
                rate_limited,
                captures_lost: k.samples.captures_lost,
            },
            recent: self.recent.iter().rev().map(|e| self.recent_row(e, owner)).collect(),
            coverage: self.coverage.clone(),
            ephemeral_ports: self.ephemeral,
            // filled by the alert detector, which runs on this snapshot
            alerts: Vec::new(),
            alerts_started: BTreeMap::new(),
            // filled by the daemon from the wire's state
            interfaces: Vec::new(),
            missed: k.missed.iter().map(|&(v, n)| (model::view_name(v).to_string(), n)).collect(),
        }
    }

    fn recent_row(&self, e: &Event, owner: impl Fn(u64) -> Owner) -> Recent {
        Recent {
            view: model::view_name(e.view).into(),
            cause: model::cause_name(e.cause).into(),
            reason: e.reason,
            reason_name: e.reason.and_then(|r| self.reason_names.get(&r).cloned()),
            family: if e.local.is_ipv6() { "ipv6" } else { "ipv4" }.into(),
            local: e.local.to_string(),
            remote: e.remote.to_string(),
            pid: e.pid,
            comm: e.comm.clone(),
            ifindex: e.ifindex,
            netns: e.netns.or(if e.ifindex.is_some() { self.own_netns } else { None }),
            cgroup: e.cgroup,
            owner: e.cgroup.map(|id| owner(id).name),
            payload: e.payload.as_ref().map(|(len, bytes)| Payload::new(*len, bytes)),
            ts_ns: e.ts_ns,
            time: self.clock_offset.map(|o| crate::clock::rfc3339(o, e.ts_ns)),
        }
    }
}

#[cfg(test)]
mod tests {
    use rst_common::{cause, view};

    use super::*;

    fn counts() -> KernelCounts {
        let mut k = KernelCounts {
            causes: vec![0; maps::COUNT_SLOTS as usize],
            overflow: vec![0; maps::OVERFLOW_SLOTS as usize],
            ..KernelCounts::default()
        };
        k.causes[cause::slot(view::SENT, cause::CLOSED_PORT) as usize] = 10;
        k.causes[cause::slot(view::RECEIVED, cause::REFUSED) as usize] = 10;
        k.causes[cause::slot(view::WIRE_IN, cause::REFUSAL) as usize] = 4;
        k.ports = vec![
            (maps::port_key(view::SENT, cause::CLOSED_PORT, 9999), 6),
            (maps::port_key(view::SENT, cause::CLOSED_PORT, 80), 1),
            (maps::port_key(view::SENT, cause::CLOSED_PORT, 443), 2),
        ];
        k.overflow[cause::slot(view::SENT, cause::CLOSED_PORT) as usize] = 1;
        k.peers = vec![(
            PeerKey {
                view: view::RECEIVED,
                cause: cause::REFUSED,
                family: 4,
                _pad: 0,
                addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                netns: 0,
            },
            10,
        )];
        k.samples.ring_full = 2;
        k.samples.rate_limited = 3;
        k.samples.captures_lost = 4;
        k
    }

    fn agg(top: usize) -> Aggregator {
        let mut a = Aggregator::new(
            Limits { top, recent: 2 },
            "6.18".into(),
            BTreeMap::from([(14, "TCP_STATE".into())]),
            Coverage::default(),
        );
        a.on_counts(counts());
        a
    }

    #[test]
    fn totals_and_causes_come_from_kernel_counts() {
        let s = agg(10).snapshot(1.0, &BTreeMap::new());
        assert_eq!(s.totals, Totals { sent: 10, received: 10, wire_in: 4, wire_out: 0 });
        assert_eq!(s.causes.len(), 3);
        assert_eq!(s.causes[0], CauseCount { view: "sent".into(), cause: "closed_port".into(), count: 10 });
    }

    #[test]
    fn ports_keep_top_n_and_sum_the_rest_with_overflow_as_other() {
        let s = agg(2).snapshot(1.0, &BTreeMap::new());
        let rows: Vec<_> = s.ports.iter().map(|p| (p.port.clone(), p.count)).collect();
        assert_eq!(
            rows,
            vec![(PortLabel::Port(9999), 6), (PortLabel::Port(443), 2), (PortLabel::Other("other".into()), 2)]
        );
        // nothing lost: the rows add up to the exact count
        assert_eq!(s.ports.iter().map(|p| p.count).sum::<u64>(), 10);
        let json = serde_json::to_value(&s.ports[2]).unwrap();
        assert_eq!(json["port"], "other");
    }

    #[test]
    fn peers_and_sample_stats() {
        let s = agg(10).snapshot(1.0, &BTreeMap::new());
        assert_eq!(s.peers[0].addr, "10.0.0.1");
        assert_eq!(s.peers[0].cause, "refused");
        assert_eq!(
            s.samples,
            SampleStats { delivered: 0, dropped: 5, ring_full: 2, rate_limited: 3, captures_lost: 4 }
        );
    }

    #[test]
    fn loopback_peers_of_two_namespaces_are_two_rows() {
        let mut a = agg(10);
        let mut k = counts();
        let lo = |netns| PeerKey {
            view: view::SENT,
            cause: cause::CLOSED_PORT,
            family: 4,
            _pad: 0,
            addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            netns,
        };
        k.peers = vec![(lo(11), 3), (lo(12), 5)];
        a.on_counts(k);
        let s = a.snapshot(1.0, &BTreeMap::new());
        let rows: Vec<_> = s.peers.iter().map(|p| (p.addr.as_str(), p.netns, p.count)).collect();
        assert_eq!(rows, vec![("127.0.0.1", Some(12), 5), ("127.0.0.1", Some(11), 3)]);
        assert!(model::several_netns(s.peers.iter().map(|p| p.netns)));
        assert_eq!(s.peers[0].label(true), "127.0.0.1 (netns 12)");
        assert!(!model::several_netns([Some(1), None, Some(1)]));
    }

    #[test]
    fn recent_is_bounded_newest_first_with_reason_names() {
        let mut a = agg(10);
        for ts in 1..=3 {
            a.on_sample(Event {
                view: view::SENT,
                cause: cause::LINGER_ABORT,
                reason: Some(14),
                local: "127.0.0.1:1".parse().unwrap(),
                remote: "127.0.0.1:2".parse().unwrap(),
                pid: Some(9),
                comm: Some("x".into()),
                ifindex: None,
                state: 0,
                tcp_flags: 0,
                ts_ns: ts,
                cgroup: Some(77),
                payload: None,
                netns: Some(4_026_531_840),
            });
        }
        let s = a.snapshot(1.0, &BTreeMap::new());
        assert_eq!(s.samples.delivered, 3);
        assert_eq!(s.recent.iter().map(|r| r.ts_ns).collect::<Vec<_>>(), vec![3, 2]);
        assert_eq!(s.recent[0].reason_name.as_deref(), Some("TCP_STATE"));
        assert_eq!(s.recent[0].owner.as_deref(), Some("cgroup:77"), "unnamed until resolved");
        assert_eq!(a.owner_ids(), vec![77]);
        let names =
            BTreeMap::from([(77, Owner { name: "nginx.service".into(), path: Some("/x/nginx.service".into()) })]);
        assert_eq!(a.snapshot(1.0, &names).recent[0].owner.as_deref(), Some("nginx.service"));
    }

    #[test]
    fn owners_by_cgroup_with_names_and_overflow_as_other() {
        let mut a = agg(1);
        let mut k = counts();
        let key = |cgroup| OwnerKey { cgroup, view: view::SENT, cause: cause::LINGER_ABORT, _pad: [0; 6] };
        k.owners = vec![(key(5), 3), (key(6), 1)];
        k.overflow[(2 * maps::COUNT_SLOTS + cause::slot(view::SENT, cause::LINGER_ABORT)) as usize] = 2;
        a.on_counts(k);
        let names = BTreeMap::from([(
            5,
            Owner { name: "nginx.service".into(), path: Some("/system.slice/nginx.service".into()) },
        )]);
        let s = a.snapshot(1.0, &names);
        let rows: Vec<_> = s.owners.iter().map(|o| (o.owner.as_str(), o.cgroup, o.count)).collect();
        assert_eq!(rows, vec![("nginx.service", Some(5), 3), ("other", None, 3)]);
        assert_eq!(s.owners[0].cgroup_path.as_deref(), Some("/system.slice/nginx.service"));
    }
}
